//! The fast CPU engine.
//!
//! Weights are packed once ([`super::pack`]). A forward runs as one team of threads for its
//! whole length, on the model's persistent pool; per layer:
//!
//! 1. the input projection of every time step and direction, `Gx = X·W_ihᵀ + b`, one product
//!    with the packed `W_ih`;
//! 2. per time step, one product `H_{t−1}·W_hhᵀ` per direction whose epilogue adds `Gx_t`,
//!    applies the activations and updates the cell while the gates are still in registers,
//!    then (LSTM with a projection) the product `h_t = W_hr m_t`.
//!
//! Between phases the threads meet at a barrier. Work is split by output columns (tiles of
//! hidden units, of both directions), never along a sum, so every output element is computed
//! the same way whatever the number of threads: results are bit-identical at any thread
//! count. Nothing is allocated inside the step loop.

use std::borrow::Cow;

use ndarray::Array3;

use super::kernel::{product, Isa};
use super::math::{sigmoid, tanh};
use super::pack::{pack, PackedDirection, Tiling};
use super::pool::{share, PoisonOnPanic, Shared, SpinBarrier};
use crate::error::Result;
use crate::spec::{Cell, RnnSpec};
use crate::tensor::{Input, Output, Prepared};
use crate::weights::Weights;

/// Rows of the input projection computed against one tile before moving to the next tile
/// (so that these rows of `X` stay in cache while the tiles stream past).
const ROW_BLOCK: usize = 64;

/// A model packed for the fast engine.
#[derive(Debug)]
pub(crate) struct FastModel {
    spec: RnnSpec,
    tiling: Tiling,
    proj_tiling: Tiling,
    dirs: Vec<PackedDirection>,
    isa: Isa,
}

/// Everything the threads of one forward share.
struct Ctx<'a> {
    m: &'a FastModel,
    steps: usize,
    batch: usize,
    lengths: &'a [usize],
    /// Layer 0's input `[T·B, I]`.
    x0: &'a [f32],
    /// Layer outputs `[T·B, D·H_out]`, layer `l` writing `y[l % 2]`.
    y: [Shared<'a>; 2],
    /// Input projections `[D][T·B][tiles·width]`.
    gx: Shared<'a>,
    /// Hidden states `[L·D][2][B][H_out]`: step `s` reads slot `s % 2` and writes the other.
    h: Shared<'a>,
    /// Cell states `[L·D][B][H]`.
    c: Shared<'a>,
    /// LSTM with a projection: `m_t = o ⊙ tanh(c_t)`, `[D][B][H]`.
    m_buf: Shared<'a>,
    barrier: &'a SpinBarrier,
    threads: usize,
}

impl FastModel {
    pub(crate) fn new(weights: &Weights) -> Self {
        let spec = weights.spec().clone();
        let isa = Isa::detect();
        let lanes = isa.lanes();
        FastModel {
            tiling: Tiling::step(&spec, lanes),
            proj_tiling: Tiling::plain(spec.proj_size, lanes),
            dirs: pack(weights, lanes),
            isa,
            spec,
        }
    }

    /// The instruction set the kernels run with.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    /// Work items of a step (tiles of both directions): more threads than this idle.
    pub(crate) fn step_items(&self) -> usize {
        self.spec.num_directions() * self.tiling.tiles
    }

    /// Multiply-adds of one time step over `batch` sequences (every layer's recurrent
    /// product, both directions), the work the threads split.
    pub(crate) fn step_work(&self, batch: usize) -> usize {
        let s = &self.spec;
        let per_layer = s.num_directions() * s.hidden_out() * s.gate_rows()
            + s.num_directions() * s.proj_size * s.hidden_size;
        batch * per_layer
    }

    /// The forward on `threads` threads of `pool` (on the calling thread when `pool` is `None`
    /// or `threads` is 1).
    pub(crate) fn forward(
        &self,
        input: &Input<'_>,
        pool: Option<&rayon::ThreadPool>,
        threads: usize,
    ) -> Result<Output> {
        let spec = &self.spec;
        let p = Prepared::new(spec, input)?;
        let (t, b) = (p.steps, p.batch);
        let (h, h_out, dirs, layers) = (
            spec.hidden_size,
            spec.hidden_out(),
            spec.num_directions(),
            spec.num_layers,
        );
        let ld = layers * dirs;
        let lengths: Vec<usize> = (0..b).map(|i| p.length(i)).collect();
        let x0: Cow<'_, [f32]> = match p.x.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(p.x.iter().copied().collect()),
        };
        let rows = t * b;
        let mut y0 = vec![0.0f32; rows * dirs * h_out];
        let mut y1 = if layers > 1 {
            vec![0.0f32; rows * dirs * h_out]
        } else {
            Vec::new()
        };
        let mut gx = vec![0.0f32; dirs * rows * self.tiling.tiles * self.tiling.width];
        let mut hs = vec![0.0f32; ld * 2 * b * h_out];
        let mut cs = vec![
            0.0f32;
            if spec.cell == Cell::Lstm {
                ld * b * h
            } else {
                0
            }
        ];
        let mut m_buf = vec![0.0f32; if spec.proj_size > 0 { dirs * b * h } else { 0 }];
        if let Some(h0) = &p.h0 {
            for (idx, s) in h0.outer_iter().enumerate() {
                let dst = &mut hs[idx * 2 * b * h_out..][..b * h_out];
                for (d, v) in dst.iter_mut().zip(s.iter()) {
                    *d = *v;
                }
            }
        }
        if let Some(c0) = &p.c0 {
            for (d, v) in cs.iter_mut().zip(c0.iter()) {
                *d = *v;
            }
        }

        let threads = threads.clamp(1, self.step_items());
        let barrier = SpinBarrier::new(threads);
        let cx = Ctx {
            m: self,
            steps: t,
            batch: b,
            lengths: &lengths,
            x0: &x0,
            y: [Shared::new(&mut y0), Shared::new(&mut y1)],
            gx: Shared::new(&mut gx),
            h: Shared::new(&mut hs),
            c: Shared::new(&mut cs),
            m_buf: Shared::new(&mut m_buf),
            barrier: &barrier,
            threads,
        };
        match pool {
            Some(pool) if threads > 1 => {
                pool.broadcast(|bc| {
                    if bc.index() < threads {
                        cx.run(bc.index());
                    }
                });
            }
            _ => cx.run(0),
        }

        let y = if layers % 2 == 1 { y0 } else { y1 };
        let y = Array3::from_shape_vec((t, b, dirs * h_out), y).expect("sized above");
        let last = t % 2;
        let h_n = Array3::from_shape_fn((ld, b, h_out), |(idx, bb, j)| {
            hs[((idx * 2 + last) * b + bb) * h_out + j]
        });
        let c_n = (spec.cell == Cell::Lstm)
            .then(|| Array3::from_shape_vec((ld, b, h), cs).expect("sized above"));
        Ok(p.finish(y, h_n, c_n))
    }
}

impl Ctx<'_> {
    /// Thread `id`'s part of the forward, with the kernels of the model's instruction set.
    fn run(&self, id: usize) {
        let _guard = PoisonOnPanic(self.barrier);
        match self.m.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` is chosen only when the processor has AVX-512F, AVX2 and
            // FMA.
            Isa::Avx512 => unsafe { self.run_avx512(id) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2Fma` is chosen only when the processor has AVX2 and FMA.
            Isa::Avx2Fma => unsafe { self.run_avx2(id) },
            Isa::NativeFma => self.run_cell::<true, 8>(id),
            _ => self.run_cell::<false, 8>(id),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn run_avx512(&self, id: usize) {
        // 32 registers: 4 rows × 4 gates of accumulators for the LSTM (6 rows spill).
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<true, 16, 64, 4, 6>(id),
            Cell::Gru => self.run_team::<true, 16, 48, 6, 6>(id),
            Cell::RnnTanh | Cell::RnnRelu => self.run_team::<true, 16, 32, 6, 6>(id),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, id: usize) {
        self.run_cell::<true, 8>(id)
    }

    /// Tile widths and row blocks are constants of the kernels: one instance per cell, for
    /// 16 registers of `L` floats.
    #[inline(always)]
    fn run_cell<const FMA: bool, const L: usize>(&self, id: usize) {
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<FMA, L, 32, 2, 6>(id),
            Cell::Gru => self.run_team::<FMA, L, 24, 3, 6>(id),
            Cell::RnnTanh | Cell::RnnRelu => self.run_team::<FMA, L, 16, 6, 6>(id),
        }
    }

    /// Every layer: the input projection, then the steps, with barriers between phases.
    /// `L` is the vector width, `NC` the step tile's width, `MR` the rows per kernel call (and
    /// `PR` per call of the projection's kernel).
    #[inline(always)]
    fn run_team<
        const FMA: bool,
        const L: usize,
        const NC: usize,
        const MR: usize,
        const PR: usize,
    >(
        &self,
        id: usize,
    ) {
        let spec = &self.m.spec;
        let dirs = spec.num_directions();
        let mine = share(dirs * self.m.tiling.tiles, self.threads, id);
        let mine_proj = share(dirs * self.m.proj_tiling.tiles, self.threads, id);
        for layer in 0..spec.num_layers {
            let x = if layer == 0 {
                self.x0
            } else {
                let y = &self.y[(layer - 1) % 2];
                // SAFETY: the previous layer's output is complete (its last step ended with a
                // barrier) and this layer writes only `y[layer % 2]`.
                unsafe { y.slice(0, self.steps * self.batch * dirs * spec.hidden_out()) }
            };
            self.input_projection::<FMA, NC, MR>(layer, x, mine.clone());
            self.barrier.wait();
            for s in 0..self.steps {
                self.step::<FMA, L, NC, MR>(layer, s, mine.clone());
                self.barrier.wait();
                if spec.proj_size > 0 {
                    self.projection::<FMA, L, PR>(layer, s, mine_proj.clone());
                    self.barrier.wait();
                }
            }
        }
    }

    /// `Gx = X·W_ihᵀ + b` for the tiles `items` (of both directions), every row.
    #[inline(always)]
    fn input_projection<const FMA: bool, const NC: usize, const MR: usize>(
        &self,
        layer: usize,
        x: &[f32],
        items: std::ops::Range<usize>,
    ) {
        let m = self.m;
        let (tiles, dirs) = (m.tiling.tiles, m.spec.num_directions());
        let rows = self.steps * self.batch;
        let gx_width = tiles * NC;
        for start in (0..rows).step_by(ROW_BLOCK) {
            let block = start..(start + ROW_BLOCK).min(rows);
            for item in items.clone() {
                let (d, tile) = (item / tiles, item % tiles);
                let pd = &m.dirs[layer * dirs + d];
                let k = pd.input;
                let w = &pd.w_ih[tile * k * NC..][..k * NC];
                let bias: &[f32; NC] = pd.bias[tile * NC..][..NC].try_into().expect("NC");
                let base = d * rows * gx_width + tile * NC;
                product::<FMA, MR, NC>(
                    block.clone(),
                    |r| &x[r * k..][..k],
                    w,
                    |r, acc| {
                        // SAFETY: this tile's columns of `gx` for direction `d` are written by
                        // this thread only (it owns `item`), and read by nobody in this phase.
                        let out = unsafe { self.gx.slice_mut(base + r * gx_width, NC) };
                        for c in 0..NC {
                            out[c] = acc[c] + bias[c];
                        }
                    },
                );
            }
        }
    }

    /// Step `s` for the tiles `items`: `H_{t−1}·W_hhᵀ`, then the cell update in the epilogue.
    #[inline(always)]
    fn step<const FMA: bool, const L: usize, const NC: usize, const MR: usize>(
        &self,
        layer: usize,
        s: usize,
        items: std::ops::Range<usize>,
    ) {
        let m = self.m;
        let spec = &m.spec;
        let (tiles, dirs) = (m.tiling.tiles, spec.num_directions());
        let (b, h, h_out) = (self.batch, spec.hidden_size, spec.hidden_out());
        let rows = self.steps * b;
        let gx_width = tiles * NC;
        let y_width = dirs * h_out;
        let cur = s % 2;
        let y = &self.y[layer % 2];
        let projected = spec.proj_size > 0;
        for item in items {
            let (d, tile) = (item / tiles, item % tiles);
            let idx = layer * dirs + d;
            let pd = &m.dirs[idx];
            let w = &pd.w_hh[tile * h_out * NC..][..h_out * NC];
            let u0 = tile * m.tiling.units;
            let nu = m.tiling.units.min(h - u0);
            // SAFETY: slot `cur` of the hidden state is only read during a step.
            let h_prev = unsafe { self.h.slice((idx * 2 + cur) * b * h_out, b * h_out) };
            let next = (idx * 2 + 1 - cur) * b * h_out;
            product::<FMA, MR, NC>(
                0..b,
                |r| &h_prev[r * h_out..][..h_out],
                w,
                |r, acc| {
                    let len = self.lengths[r];
                    // The previous state of these units (without a projection, H_out = H).
                    let keep = || &h_prev[r * h_out + u0..][..nu];
                    if s >= len {
                        // This sequence has ended: its state carries over unchanged.
                        if !projected {
                            // SAFETY: these units of row `r` of the next hidden state belong
                            // to this thread's tile; nobody reads the next slot in this phase.
                            let next = unsafe { self.h.slice_mut(next + r * h_out + u0, nu) };
                            next.copy_from_slice(keep());
                        }
                        return;
                    }
                    let t = if d == 1 { len - 1 - s } else { s };
                    let row = t * b + r;
                    // SAFETY: `gx` was completed before the steps and is only read now.
                    let gx: &[f32; NC] = unsafe {
                        self.gx
                            .slice(d * rows * gx_width + row * gx_width + tile * NC, NC)
                    }
                    .try_into()
                    .expect("NC");
                    let mut out = [0.0f32; 32];
                    match spec.cell {
                        Cell::Lstm => {
                            // SAFETY: the cell state of these units of row `r` is read and
                            // written by this thread only.
                            let c = unsafe { self.c.slice_mut((idx * b + r) * h + u0, nu) };
                            let ph = &pd.peephole[tile * 3 * L..][..3 * L];
                            lstm_epilogue::<L, NC>(acc, gx, ph, c, &mut out);
                        }
                        Cell::Gru => {
                            let b_hn = &pd.b_hn[tile * L..][..L];
                            gru_epilogue::<L, NC>(acc, gx, b_hn, keep(), &mut out);
                        }
                        Cell::RnnTanh => rnn_epilogue(acc, gx, false, &mut out),
                        Cell::RnnRelu => rnn_epilogue(acc, gx, true, &mut out),
                    }
                    let out = &out[..nu];
                    if projected {
                        // SAFETY: these units of row `r` of `m` belong to this thread's tile;
                        // `m` is read only in the projection phase.
                        let dst = unsafe { self.m_buf.slice_mut((d * b + r) * h + u0, nu) };
                        dst.copy_from_slice(out);
                    } else {
                        // SAFETY: as for the carried state above; `y` of this layer is read
                        // only by the next layer, after a barrier.
                        unsafe {
                            self.h
                                .slice_mut(next + r * h_out + u0, nu)
                                .copy_from_slice(out);
                            y.slice_mut(row * y_width + d * h_out + u0, nu)
                                .copy_from_slice(out);
                        }
                    }
                },
            );
        }
    }

    /// Step `s` of an LSTM with a projection, for the projection tiles `items`:
    /// `h_t = m_t · W_hrᵀ`.
    #[inline(always)]
    fn projection<const FMA: bool, const L: usize, const PR: usize>(
        &self,
        layer: usize,
        s: usize,
        items: std::ops::Range<usize>,
    ) {
        // Const generic expressions are not stable: the tile is 2·L columns, at most 32.
        let nc = 2 * L;
        let m = self.m;
        let spec = &m.spec;
        let (tiles, dirs) = (m.proj_tiling.tiles, spec.num_directions());
        let (b, h, p) = (self.batch, spec.hidden_size, spec.proj_size);
        let y_width = dirs * p;
        let cur = s % 2;
        let y = &self.y[layer % 2];
        for item in items {
            let (d, tile) = (item / tiles, item % tiles);
            let idx = layer * dirs + d;
            let w = &m.dirs[idx].w_hr[tile * h * nc..][..h * nc];
            let u0 = tile * nc;
            let nu = nc.min(p - u0);
            // SAFETY: `m` was written in the step phase and is only read now; the current
            // hidden-state slot is only read.
            let (m_d, h_prev) = unsafe {
                (
                    self.m_buf.slice(d * b * h, b * h),
                    self.h.slice((idx * 2 + cur) * b * p, b * p),
                )
            };
            let next = (idx * 2 + 1 - cur) * b * p;
            let run = |f: &mut dyn FnMut(usize, &[f32])| {
                if L == 16 {
                    product::<FMA, PR, 32>(0..b, |r| &m_d[r * h..][..h], w, |r, acc| f(r, acc));
                } else {
                    product::<FMA, PR, 16>(0..b, |r| &m_d[r * h..][..h], w, |r, acc| f(r, acc));
                }
            };
            run(&mut |r, acc| {
                let len = self.lengths[r];
                // SAFETY: these columns of row `r` of the next hidden state belong to this
                // thread's projection tile; nobody reads the next slot in this phase.
                let dst = unsafe { self.h.slice_mut(next + r * p + u0, nu) };
                if s >= len {
                    dst.copy_from_slice(&h_prev[r * p + u0..][..nu]);
                    return;
                }
                dst.copy_from_slice(&acc[..nu]);
                let t = if d == 1 { len - 1 - s } else { s };
                // SAFETY: as above; `y` of this layer is read only by the next layer.
                unsafe { y.slice_mut((t * b + r) * y_width + d * p + u0, nu) }
                    .copy_from_slice(&acc[..nu]);
            });
        }
    }
}

/// LSTM: gates i, f, g, o of `L` units (`acc` = `h·W_hh` part, `gx` = input part and
/// biases, both `[4][L]`), peepholes `ph` `[3][L]`; updates the cell `c` (the tile's real
/// units) and writes `m_t` into `out`. The equations of [`super::cells::lstm`].
#[inline(always)]
fn lstm_epilogue<const L: usize, const NC: usize>(
    acc: &[f32; NC],
    gx: &[f32; NC],
    ph: &[f32],
    c: &mut [f32],
    out: &mut [f32; 32],
) {
    let mut c_prev = [0.0f32; L];
    c_prev[..c.len()].copy_from_slice(c);
    let mut c_new = [0.0f32; L];
    for j in 0..L {
        let cp = c_prev[j];
        let i = sigmoid(acc[j] + gx[j] + ph[j] * cp);
        let f = sigmoid(acc[L + j] + gx[L + j] + ph[L + j] * cp);
        let g = tanh(acc[2 * L + j] + gx[2 * L + j]);
        let cn = f * cp + i * g;
        let o = sigmoid(acc[3 * L + j] + gx[3 * L + j] + ph[2 * L + j] * cn);
        c_new[j] = cn;
        out[j] = o * tanh(cn);
    }
    let n = c.len();
    c.copy_from_slice(&c_new[..n]);
}

/// GRU: gates r, z, n of `L` units, `h_prev` the tile's real units. The equations of
/// [`super::cells::gru`].
#[inline(always)]
fn gru_epilogue<const L: usize, const NC: usize>(
    acc: &[f32; NC],
    gx: &[f32; NC],
    b_hn: &[f32],
    h_prev: &[f32],
    out: &mut [f32; 32],
) {
    let mut hp = [0.0f32; L];
    hp[..h_prev.len()].copy_from_slice(h_prev);
    for j in 0..L {
        let r = sigmoid(acc[j] + gx[j]);
        let z = sigmoid(acc[L + j] + gx[L + j]);
        let n = tanh(gx[2 * L + j] + r * (acc[2 * L + j] + b_hn[j]));
        out[j] = (1.0 - z) * n + z * hp[j];
    }
}

/// RNN: `tanh` or `relu` of `acc + gx` for the tile's `NC` units.
#[inline(always)]
fn rnn_epilogue<const NC: usize>(acc: &[f32; NC], gx: &[f32; NC], relu: bool, out: &mut [f32; 32]) {
    for j in 0..NC.min(32) {
        let a = acc[j] + gx[j];
        out[j] = if relu { a.max(0.0) } else { tanh(a) };
    }
}
