//! The reference CPU forward: the equations as written, with `ndarray`.
//!
//! It is the oracle the fast engine ([`super::fast`]) and the GPU are tested against. For each
//! layer and direction it computes the input projection of all time steps in one matrix
//! product (`Gx = X·W_ihᵀ + b_ih`), then walks the sequence: per step one matrix product for
//! the recurrent part (`Gh = H·W_hhᵀ + b_hh`) and the cell equations ([`cells`]) row
//! by row (a GRU whose reset gate applies before its linear part takes a second product per
//! step, `W_hn (r ⊙ h)`). It favours readability over speed, and computes every option of
//! [`RnnSpec`].

mod cells;

use ndarray::{s, Array2, Array3, ArrayView2, Axis};

use crate::error::Result;
use crate::spec::{Cell, RnnSpec};
use crate::tensor::{Input, Output, Prepared};
use crate::weights::{DirectionWeights, Weights};

/// The forward of `weights` over `input`, as the equations are written.
pub(crate) fn forward(weights: &Weights, input: &Input<'_>) -> Result<Output> {
    let spec = weights.spec();
    let p = Prepared::new(spec, input)?;
    let (t, b) = (p.steps, p.batch);
    let (h, h_out, dirs) = (spec.hidden_size, spec.hidden_out(), spec.num_directions());
    let ld = spec.num_layers * dirs;
    let mut h_n = Array3::<f32>::zeros((ld, b, h_out));
    let mut c_n = Array3::<f32>::zeros((ld, b, h));
    let mut layer_in = p.x.to_owned();
    // The directions run on threads of their own; each splits its matrix products
    // between the cores left.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / dirs).max(1);
    for layer in 0..spec.num_layers {
        let x2 = layer_in
            .view()
            .into_shape_with_order((t * b, layer_in.dim().2))
            .expect("layer input is contiguous");
        // Each direction runs on its own thread, into its own output.
        let run = |d: usize| {
            let idx = layer * dirs + d;
            let mut state = State {
                h: p.h0.as_ref().map_or_else(
                    || Array2::zeros((b, h_out)),
                    |a| a.slice(s![idx, .., ..]).to_owned(),
                ),
                c: p.c0.as_ref().map_or_else(
                    || Array2::zeros((b, h)),
                    |a| a.slice(s![idx, .., ..]).to_owned(),
                ),
            };
            let mut y = Array3::<f32>::zeros((t, b, h_out));
            let dir = Direction {
                reverse: spec.reverses(d),
                gates: cells::Gates::of(spec, d),
                threads,
            };
            run_direction(spec, weights.get(layer, d), x2, dir, &p, &mut state, &mut y);
            (y, state)
        };
        let results: Vec<(Array3<f32>, State)> = if dirs == 2 {
            std::thread::scope(|scope| {
                let reverse = scope.spawn(|| run(1));
                let forward = run(0);
                vec![forward, reverse.join().expect("reverse direction panicked")]
            })
        } else {
            vec![run(0)]
        };
        let mut y = Array3::<f32>::zeros((t, b, dirs * h_out));
        for (d, (yd, state)) in results.into_iter().enumerate() {
            let idx = layer * dirs + d;
            y.slice_mut(s![.., .., d * h_out..(d + 1) * h_out])
                .assign(&yd);
            h_n.slice_mut(s![idx, .., ..]).assign(&state.h);
            c_n.slice_mut(s![idx, .., ..]).assign(&state.c);
        }
        layer_in = y;
    }
    let c_n = spec.cell.has_cell_state().then_some(c_n);
    Ok(p.finish(layer_in, h_n, c_n))
}

/// Which way one direction walks the sequence, its gate options, and how many threads its
/// products may use.
#[derive(Debug, Clone, Copy)]
struct Direction {
    reverse: bool,
    gates: cells::Gates,
    threads: usize,
}

impl Direction {
    /// The time index a sequence of `len` steps processes at step `s < len`: the reverse
    /// direction starts at its own last step.
    fn time(self, s: usize, len: usize) -> usize {
        if self.reverse {
            len - 1 - s
        } else {
            s
        }
    }
}

/// The recurrent state of one layer and direction: `h` `[B, H_out]`, `c` `[B, H]` (LSTM).
struct State {
    h: Array2<f32>,
    c: Array2<f32>,
}

/// Rows below which a matrix product is not split between threads.
const MIN_ROWS_PER_THREAD: usize = 8;

/// `out = x · wᵀ + bias`, the rows split between up to `threads` threads.
fn affine_into(
    x: ArrayView2<'_, f32>,
    w: &Array2<f32>,
    bias: &ndarray::Array1<f32>,
    mut out: ndarray::ArrayViewMut2<'_, f32>,
    threads: usize,
) {
    let product = |x: ArrayView2<'_, f32>, mut out: ndarray::ArrayViewMut2<'_, f32>| {
        let dim = out.raw_dim();
        out.assign(&bias.broadcast(dim).expect("bias matches the columns"));
        ndarray::linalg::general_mat_mul(1.0, &x, &w.t(), 1.0, &mut out);
    };
    let rows = x.nrows();
    let threads = threads.min(rows / MIN_ROWS_PER_THREAD).max(1);
    if threads == 1 {
        return product(x, out);
    }
    let chunk = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (xc, oc) in x
            .axis_chunks_iter(Axis(0), chunk)
            .zip(out.axis_chunks_iter_mut(Axis(0), chunk))
        {
            scope.spawn(move || product(xc, oc));
        }
    });
}

/// `x · wᵀ + bias` for all rows of `x` at once.
fn affine(
    x: ArrayView2<'_, f32>,
    w: &Array2<f32>,
    bias: &ndarray::Array1<f32>,
    threads: usize,
) -> Array2<f32> {
    let mut out = Array2::zeros((x.nrows(), w.nrows()));
    affine_into(x, w, bias, out.view_mut(), threads);
    out
}

/// Runs one layer in one direction over `x` (`[T·B, in]`, time-major rows), starting from and
/// updating `state`, and writing `h_t` into `y[t, b, ..]` (`[T, B, H_out]`). Sequence `b`
/// takes part in steps `0..len_b` only; its outputs past its length stay 0.
fn run_direction(
    spec: &RnnSpec,
    w: &DirectionWeights,
    x: ArrayView2<'_, f32>,
    dir: Direction,
    p: &Prepared<'_>,
    state: &mut State,
    y: &mut Array3<f32>,
) {
    let threads = dir.threads;
    let (steps, batch) = (p.steps, p.batch);
    // The input part of every step at once (hoisted out of the time loop).
    let gx = affine(x, &w.w_ih, &w.bias_ih(), threads);
    let b_hh = w.bias_hh();
    let mut gh = Array2::<f32>::zeros((batch, w.w_hh.nrows()));
    let mut gx_t = Array2::<f32>::zeros((batch, gx.ncols()));
    let mut m = Array2::<f32>::zeros((batch, spec.hidden_size));
    let peephole = w
        .w_ph
        .clone()
        .unwrap_or_else(|| ndarray::Array1::zeros(3 * spec.hidden_size));
    let peephole = peephole.as_slice().expect("a vector is contiguous");
    for s in 0..steps {
        let active: Vec<(usize, usize)> = (0..batch)
            .filter(|&b| s < p.length(b))
            .map(|b| (b, dir.time(s, p.length(b))))
            .collect();
        for &(b, t) in &active {
            gx_t.row_mut(b).assign(&gx.row(t * batch + b));
        }
        affine_into(state.h.view(), &w.w_hh, &b_hh, gh.view_mut(), threads);
        let gates = &dir.gates;
        if spec.cell == Cell::Gru && !spec.linear_before_reset {
            // The reset gate applies before the linear part: gh_n = W_hn (r ⊙ h) + b_hn.
            let hn = spec.hidden_size;
            let mut reset = Array2::<f32>::zeros((batch, hn));
            for &(b, _) in &active {
                cells::gru_reset(
                    gx_t.row(b),
                    gh.row(b),
                    gates,
                    state.h.row(b),
                    reset.row_mut(b),
                );
            }
            let w_hn = w.w_hh.slice(s![2 * hn.., ..]);
            let b_hn = b_hh.slice(s![2 * hn..]);
            let gh_n = reset.dot(&w_hn.t()) + b_hn;
            gh.slice_mut(s![.., 2 * hn..]).assign(&gh_n);
        }
        let mut h_new = state.h.clone();
        for &(b, _) in &active {
            let (gxr, ghr) = (gx_t.row(b), gh.row(b));
            match spec.cell {
                Cell::Lstm => {
                    let out = if w.w_hr.is_some() {
                        m.row_mut(b)
                    } else {
                        h_new.row_mut(b)
                    };
                    cells::lstm(gxr, ghr, peephole, gates, state.c.row_mut(b), out)
                }
                Cell::Gru => {
                    cells::gru(gxr, ghr, gates, spec.linear_before_reset, h_new.row_mut(b))
                }
                Cell::RnnTanh | Cell::RnnRelu => cells::rnn(gxr, ghr, gates, h_new.row_mut(b)),
            }
        }
        if let Some(w_hr) = &w.w_hr {
            // h_t = W_hr m_t
            let projected = m.dot(&w_hr.t());
            for &(b, _) in &active {
                h_new.row_mut(b).assign(&projected.row(b));
            }
        }
        state.h = h_new;
        for &(b, t) in &active {
            y.slice_mut(s![t, b, ..]).assign(&state.h.row(b));
        }
    }
}
