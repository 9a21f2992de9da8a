//! The host's model of a run: what every element of `m`, `c` and `mn` must hold, each step
//! computed in f64 from the `h_{t−1}` the kernel wrote (from the host's own for the exact
//! cell), with the tolerance the module's documentation reasons.

use super::case::{Case, Inputs, Setup};
use super::{TAIL, TOL};
use crate::spec::Cell;

/// What one element of an output buffer must hold after the run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want {
    /// Not written: NaN as before.
    Nan,
    /// A two-pass GRU's scratch (r ⊙ h_{t−1} in `c`): anything.
    Any,
    /// `value` within `tol` (bit for bit where `tol` is 0), written at step `step` or, for
    /// the final states, after it.
    Value { value: f64, tol: f64, step: usize },
}

impl Want {
    pub(super) fn holds(self, got: f32) -> bool {
        match self {
            Want::Nan => got.is_nan(),
            Want::Any => true,
            Want::Value {
                value, tol: 0.0, ..
            } => got.to_bits() == (value as f32).to_bits(),
            Want::Value { value, tol, .. } => (f64::from(got) - value).abs() <= tol,
        }
    }

    /// Where a failure of this element sorts: the earliest step first, writes outside last.
    pub(super) fn order(self) -> usize {
        match self {
            Want::Value { step, .. } => step,
            _ => usize::MAX,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The expected contents of `m`, `c` and `mn` after the run.
pub(super) fn expected(case: &Case, inp: &Inputs, gpu_m: &[f32]) -> [Vec<Want>; 3] {
    let (dirs, h) = (inp.dirs, inp.h);
    let (t_n, b_n) = (case.steps, case.batch);
    let mut out = Expected {
        m: vec![Want::Nan; t_n * b_n * dirs * h + TAIL],
        c: vec![Want::Nan; inp.gap_state + dirs * b_n * h + TAIL],
        mn: vec![Want::Nan; inp.gap_state + dirs * b_n * h + TAIL],
    };
    for d in 0..dirs {
        let layer = Layer { case, inp, d };
        for b in 0..b_n {
            layer.sequence(b, gpu_m, &mut out);
        }
    }
    [out.m, out.c, out.mn]
}

/// The three output buffers' expectations, filled sequence by sequence.
struct Expected {
    m: Vec<Want>,
    c: Vec<Want>,
    mn: Vec<Want>,
}

/// One direction of the case's layer.
struct Layer<'a> {
    case: &'a Case,
    inp: &'a Inputs,
    d: usize,
}

/// One step's recurrent sums for every packed lane: Σ_k v[k]·w[k][·] and Σ_k |v[k]·w[k][·]|.
struct Sums {
    acc: Vec<f64>,
    mag: Vec<f64>,
}

/// One step's results for every unit: `h_t` and its tolerance.
struct StepOut {
    h: Vec<f64>,
    tol: Vec<f64>,
}

/// A sequence's LSTM cell state on the host and the tolerance it has gathered.
struct CellState {
    c: Vec<f64>,
    tol: Vec<f64>,
}

impl Layer<'_> {
    fn cols(&self) -> usize {
        self.inp.n4 * 4
    }

    fn exact(&self) -> bool {
        self.case.setup == Setup::RnnRelu
    }

    /// The recurrent product of `v` with this direction's weights `w` (`[D, len(v), cols]`).
    fn product(&self, v: &[f64], w: &[f32]) -> Sums {
        let cols = self.cols();
        let (mut acc, mut mag) = (vec![0.0; cols], vec![0.0; cols]);
        for (k, &x) in v.iter().enumerate() {
            let row = &w[(self.d * v.len() + k) * cols..][..cols];
            for (i, &wv) in row.iter().enumerate() {
                acc[i] += x * f64::from(wv);
                mag[i] += (x * f64::from(wv)).abs();
            }
        }
        Sums { acc, mag }
    }

    /// Lane `i` of `gx` at time `t` of sequence `b`.
    fn gx(&self, t: usize, b: usize, i: usize) -> f64 {
        let (t_n, b_n) = (self.case.steps, self.case.batch);
        f64::from(self.inp.gx[((self.d * t_n + t) * b_n + b) * self.cols() + i])
    }

    /// Where `h_t` of sequence `b` starts in `m`.
    fn m_at(&self, t: usize, b: usize) -> usize {
        let dh = self.inp.dirs * self.inp.h;
        (t * self.case.batch + b) * dh + self.d * self.inp.h
    }

    /// Sequence `b`'s steps: its outputs in `m`, zeros past its length, its final states.
    fn sequence(&self, b: usize, gpu_m: &[f32], out: &mut Expected) {
        let (inp, case, d, h) = (self.inp, self.case, self.d, self.inp.h);
        let (b_n, k0) = (case.batch, inp.k0);
        let spec = &inp.spec;
        let len = case.lens[b] as usize;
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let h0 = widen(&inp.h0[(d * b_n + b) * k0..][..k0]);
        let mut state = CellState {
            c: widen(&inp.c0[(d * b_n + b) * h..][..h]),
            tol: vec![0.0; h],
        };
        let w_rec = inp.wrec.as_ref().unwrap_or(&inp.w0);
        let mut host_h = h0.clone();
        let mut last: Option<StepOut> = None;
        for s in 0..case.steps {
            if s >= len {
                let zero = Want::Value {
                    value: 0.0,
                    tol: 0.0,
                    step: s,
                };
                out.m[self.m_at(s, b)..][..h].fill(zero);
                continue;
            }
            let t = if spec.reverses(d) { len - 1 - s } else { s };
            let (prev, w): (Vec<f64>, &[f32]) = if s == 0 {
                (h0.clone(), &inp.w0)
            } else if self.exact() {
                (host_h.clone(), w_rec)
            } else {
                let tp = if spec.reverses(d) { t + 1 } else { t - 1 };
                (widen(&gpu_m[self.m_at(tp, b)..][..h]), w_rec)
            };
            let sums = self.product(&prev, w);
            let g = |i: usize| self.gx(t, b, i);
            let step = match spec.cell {
                Cell::RnnRelu | Cell::RnnTanh => self.rnn(&sums, g),
                Cell::Lstm => self.lstm(&sums, g, &mut state),
                Cell::Gru => self.gru(&sums, g, &prev, w_rec),
            };
            for (u, (&value, &tol)) in step.h.iter().zip(&step.tol).enumerate() {
                out.m[self.m_at(t, b) + u] = Want::Value {
                    value,
                    tol,
                    step: s,
                };
            }
            host_h.clone_from(&step.h);
            last = Some(step);
        }
        let st = inp.gap_state + (d * b_n + b) * h;
        let step = len.max(1) - 1;
        if let Some(last) = last {
            for u in 0..h {
                out.mn[st + u] = Want::Value {
                    value: last.h[u],
                    tol: last.tol[u],
                    step,
                };
            }
        }
        for u in 0..h {
            out.c[st + u] = match case.setup {
                Setup::Lstm | Setup::LstmPeepholeProjection => Want::Value {
                    value: state.c[u],
                    tol: state.tol[u],
                    step,
                },
                Setup::GruResetBefore if len > 0 => Want::Any,
                _ => Want::Nan,
            };
        }
    }

    /// An RNN step: `relu` (exact) or `tanh` of gx + W·h.
    fn rnn(&self, sums: &Sums, g: impl Fn(usize) -> f64) -> StepOut {
        let h = self.inp.h;
        let mut out = StepOut {
            h: vec![0.0; h],
            tol: vec![0.0; h],
        };
        for u in 0..h {
            let x = g(u) + sums.acc[u];
            if self.exact() {
                out.h[u] = x.max(0.0);
            } else {
                out.h[u] = x.tanh();
                out.tol[u] = TOL * (1.0 + g(u).abs() + sums.mag[u]);
            }
        }
        out
    }

    /// An LSTM step (gates i, f, g, o in the packed lanes; peepholes where the case has
    /// them), updating the sequence's cell state.
    fn lstm(&self, sums: &Sums, g: impl Fn(usize) -> f64, state: &mut CellState) -> StepOut {
        let (h, d) = (self.inp.h, self.d);
        let mut out = StepOut {
            h: vec![0.0; h],
            tol: vec![0.0; h],
        };
        for j in 0..h {
            let a = |l: usize| g(4 * j + l) + sums.acc[4 * j + l];
            let p = |l: usize| {
                self.inp
                    .ph
                    .as_ref()
                    .map_or(0.0, |ph| f64::from(ph[(d * h + j) * 4 + l]))
            };
            let cp = state.c[j];
            let i = sigmoid(a(0) + p(0) * cp);
            let f = sigmoid(a(1) + p(1) * cp);
            let cn = f * cp + i * a(2).tanh();
            let o = sigmoid(a(3) + p(2) * cn);
            out.h[j] = o * cn.tanh();
            let sum: f64 = (0..4)
                .map(|l| g(4 * j + l).abs() + sums.mag[4 * j + l])
                .sum();
            let peep = 1.0 + p(0).abs() + p(1).abs() + p(2).abs();
            let step_tol = TOL * (1.0 + sum + (cp.abs() + cn.abs()) * peep);
            state.c[j] = cn;
            state.tol[j] += step_tol;
            out.tol[j] = state.tol[j] + step_tol;
        }
        out
    }

    /// A GRU step (lanes r, z, n, b_hn). With the reset gate before the linear part the
    /// candidate's product runs over r ⊙ h_{t−1} with the recurrent weights (a second pass).
    fn gru(&self, sums: &Sums, g: impl Fn(usize) -> f64, prev: &[f64], w_rec: &[f32]) -> StepOut {
        let h = self.inp.h;
        let reset_before = !self.inp.spec.linear_before_reset;
        let rh = reset_before.then(|| {
            let rh: Vec<f64> = (0..h)
                .map(|k| sigmoid(g(4 * k) + sums.acc[4 * k]) * prev[k])
                .collect();
            self.product(&rh, w_rec)
        });
        let mut out = StepOut {
            h: vec![0.0; h],
            tol: vec![0.0; h],
        };
        for (j, &hp) in prev.iter().enumerate() {
            let r = sigmoid(g(4 * j) + sums.acc[4 * j]);
            let z = sigmoid(g(4 * j + 1) + sums.acc[4 * j + 1]);
            let (n, n_mag) = match &rh {
                Some(rh) => {
                    let x = g(4 * j + 2) + rh.acc[4 * j + 2] + g(4 * j + 3);
                    (x.tanh(), rh.mag[4 * j + 2] + sums.mag[4 * j + 2])
                }
                None => {
                    let x = g(4 * j + 2) + r * (sums.acc[4 * j + 2] + g(4 * j + 3));
                    (x.tanh(), sums.mag[4 * j + 2])
                }
            };
            out.h[j] = (1.0 - z) * n + z * hp;
            let sum: f64 = (0..4).map(|l| g(4 * j + l).abs()).sum::<f64>()
                + sums.mag[4 * j]
                + sums.mag[4 * j + 1]
                + n_mag;
            out.tol[j] = TOL * (1.0 + sum + hp.abs());
        }
        out
    }
}
