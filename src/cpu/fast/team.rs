//! One thread's part of a fast forward: per layer the input projection, then the steps, each
//! phase split between the team's threads by tiles of output columns and ended by a barrier
//! (see [the engine](super)).

use super::epilogue::{copy_units, gru_epilogue, lstm_epilogue, rnn_epilogue};
use super::kernel::{product, Isa};
use super::pack::FastModel;
use super::pool::{next_item, share, ItemQueue, PoisonOnPanic, Shared, SpinBarrier};
use crate::spec::Cell;
use std::ops::Range;

/// Rows of the input projection computed against one tile before moving to the next tile
/// (so that these rows of `X` stay in cache while the tiles stream past).
const ROW_BLOCK: usize = 64;

/// Everything the threads of one forward share.
pub(super) struct Ctx<'a> {
    pub(super) m: &'a FastModel,
    pub(super) steps: usize,
    pub(super) batch: usize,
    pub(super) lengths: &'a [usize],
    /// Layer 0's input `[T·B, I]`.
    pub(super) x0: &'a [f32],
    /// Layer outputs `[T·B, D·H_out]`, layer `l` writing `y[l % 2]`.
    pub(super) y: [Shared<'a>; 2],
    /// Input projections `[D][T·B][tiles·width]`.
    pub(super) gx: Shared<'a>,
    /// Hidden states `[L·D][2][B][H_out]`: step `s` reads slot `s % 2` and writes the other.
    pub(super) h: Shared<'a>,
    /// Cell states `[L·D][B][H]`.
    pub(super) c: Shared<'a>,
    /// LSTM with a projection: `m_t = o ⊙ tanh(c_t)`, `[D][B][H]`.
    pub(super) m_buf: Shared<'a>,
    pub(super) barrier: &'a SpinBarrier,
    /// The items of a time step left to each thread.
    pub(super) queues: &'a [ItemQueue],
    /// Whether a thread that has done its items of a step takes those another thread has not
    /// started (long steps), or each keeps to its share (short steps, whose items last too
    /// little for taking one to pay for moving its weights to another core).
    pub(super) steal: bool,
    pub(super) threads: usize,
    /// The input projection runs inside each step's product (no `gx`) rather than for every
    /// step up front.
    pub(super) fused: bool,
    /// No initial hidden state was given: the first step's `H_{t−1}` is zero, and its
    /// recurrent product is skipped.
    pub(super) zero_h0: bool,
}

impl Ctx<'_> {
    /// Thread `id`'s part of the forward, with the kernels of the model's instruction set.
    pub(super) fn run(&self, id: usize) {
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
        let mut mine = share(dirs * self.m.tiling.tiles, self.threads, id);
        let mut mine_proj = share(dirs * self.m.proj_tiling.tiles, self.threads, id);
        // Waits at the barrier; false when the team went solo and this thread is not the one
        // that takes over every item.
        let sync = |mine: &mut Range<usize>, mine_proj: &mut Range<usize>| {
            self.barrier.wait();
            if self.barrier.solo() {
                if id != 0 {
                    return false;
                }
                *mine = 0..dirs * self.m.tiling.tiles;
                *mine_proj = 0..dirs * self.m.proj_tiling.tiles;
            }
            true
        };
        for layer in 0..spec.num_layers {
            let x = if layer == 0 {
                self.x0
            } else {
                let y = &self.y[(layer - 1) % 2];
                // SAFETY: the previous layer's output is complete (its last step ended with a
                // barrier) and this layer writes only `y[layer % 2]`.
                unsafe { y.slice(0, self.steps * self.batch * dirs * spec.hidden_out()) }
            };
            if !self.fused {
                self.input_projection::<FMA, NC, MR>(layer, x, mine.clone());
                if !sync(&mut mine, &mut mine_proj) {
                    return;
                }
            }
            for s in 0..self.steps {
                // At batch 1, odd steps walk the tiles backwards, and each tile from its last
                // `k` down (see `product`), so that a step begins with the weights the
                // previous one ended with, still in the nearest cache.
                let forwards = !self.zigzag(s);
                if self.steal {
                    self.queues[id].reset(mine.clone());
                    while let Some(item) = next_item(self.queues, id, forwards) {
                        self.step::<FMA, L, NC, MR>(layer, s, x, item..item + 1);
                    }
                } else if forwards {
                    self.step::<FMA, L, NC, MR>(layer, s, x, mine.clone());
                } else {
                    self.step::<FMA, L, NC, MR>(layer, s, x, mine.clone().rev());
                }
                if !sync(&mut mine, &mut mine_proj) {
                    return;
                }
                if spec.proj_size > 0 {
                    self.projection::<FMA, L, PR>(layer, s, mine_proj.clone());
                    if !sync(&mut mine, &mut mine_proj) {
                        return;
                    }
                }
            }
        }
    }

    /// Whether step `s` walks its weights backwards: the odd steps of a batch of one, whose
    /// products stream the weights from the cache (a larger batch reuses each tile for several
    /// rows, and gains nothing from it).
    #[inline(always)]
    fn zigzag(&self, s: usize) -> bool {
        self.batch == 1 && s % 2 == 1
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
        // A multiple of `MR`, so that only the last block can be short.
        let row_block = (ROW_BLOCK / MR).max(1) * MR;
        for start in (0..rows).step_by(row_block) {
            let block = start..(start + row_block).min(rows);
            for item in items.clone() {
                let (d, tile) = (item / tiles, item % tiles);
                let pd = &m.dirs[layer * dirs + d];
                let k = pd.input;
                let w = &pd.w_ih[tile * k * NC..][..k * NC];
                let bias: &[f32; NC] = pd.bias[tile * NC..][..NC].try_into().expect("NC");
                let base = d * rows * gx_width + tile * NC;
                product::<FMA, MR, NC, 0>(
                    block.clone(),
                    #[inline(always)]
                    |r| [&[], &x[r * k..][..k]],
                    [&[], w],
                    false,
                    #[inline(always)]
                    |r, acc, _| {
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

    /// Step `s` for the tiles `items`: `H_{t−1}·W_hhᵀ` (`X_t·W_ihᵀ + H_{t−1}·W_hhᵀ`, one
    /// running sum, when the input projection is fused), then the cell update in the epilogue.
    /// `x` is the layer's input.
    #[inline(always)]
    fn step<const FMA: bool, const L: usize, const NC: usize, const MR: usize>(
        &self,
        layer: usize,
        s: usize,
        x: &[f32],
        items: impl Iterator<Item = usize>,
    ) {
        // The GRU's n gate keeps its input part apart from its recurrent part.
        if self.fused && self.m.spec.cell == Cell::Gru {
            self.step_items::<FMA, L, NC, MR, L>(layer, s, x, items);
        } else {
            self.step_items::<FMA, L, NC, MR, 0>(layer, s, x, items);
        }
    }

    /// [`Self::step`], with the last `ASIDE` columns of the fused product's input part set
    /// aside (see [`product`]).
    #[inline(always)]
    fn step_items<
        const FMA: bool,
        const L: usize,
        const NC: usize,
        const MR: usize,
        const ASIDE: usize,
    >(
        &self,
        layer: usize,
        s: usize,
        x: &[f32],
        items: impl Iterator<Item = usize>,
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
        let fused = self.fused;
        let backwards = self.zigzag(s);
        for item in items {
            let (d, tile) = (item / tiles, item % tiles);
            let idx = layer * dirs + d;
            let pd = &m.dirs[idx];
            // The first step from a zero state adds nothing from `W_hh`: its `k` range is
            // empty (`0 · w` terms, each exactly zero for finite weights, left out).
            let k_h = if s == 0 && self.zero_h0 { 0 } else { h_out };
            let w = &pd.w_hh[tile * h_out * NC..][..k_h * NC];
            let u0 = tile * m.tiling.units;
            let nu = m.tiling.units.min(h - u0);
            // SAFETY: slot `cur` of the hidden state is only read during a step.
            let h_prev = unsafe { self.h.slice((idx * 2 + cur) * b * h_out, b * h_out) };
            let next = (idx * 2 + 1 - cur) * b * h_out;
            let k = pd.input;
            let w_x: &[f32] = if fused {
                &pd.w_ih[tile * k * NC..][..k * NC]
            } else {
                &[]
            };
            let bias: &[f32; NC] = pd.bias[tile * NC..][..NC].try_into().expect("NC");
            product::<FMA, MR, NC, ASIDE>(
                0..b,
                #[inline(always)]
                |r| {
                    let h_r = &h_prev[r * h_out..][..k_h];
                    if !fused {
                        return [&[], h_r];
                    }
                    // A finished sequence's row is computed on any input, and dropped.
                    let len = self.lengths[r];
                    let t = match (s < len, spec.reverses(d)) {
                        (false, _) => 0,
                        (true, true) => len - 1 - s,
                        (true, false) => s,
                    };
                    [&x[(t * b + r) * k..][..k], h_r]
                },
                [w_x, w],
                backwards,
                // `aside`: the GRU's n gate's input part when the input projection is fused.
                #[inline(always)]
                |r, acc, aside| {
                    let len = self.lengths[r];
                    // The previous state of these units (without a projection, H_out = H).
                    let keep = || &h_prev[r * h_out + u0..][..nu];
                    if s >= len {
                        // This sequence has ended: its state carries over unchanged.
                        if !projected {
                            // SAFETY: these units of row `r` of the next hidden state belong
                            // to this thread's tile; nobody reads the next slot in this phase.
                            let next = unsafe { self.h.slice_mut(next + r * h_out + u0, nu) };
                            copy_units::<L>(next, keep());
                        }
                        return;
                    }
                    let t = if spec.reverses(d) { len - 1 - s } else { s };
                    let row = t * b + r;
                    let gx: &[f32; NC] = if fused {
                        bias
                    } else {
                        // SAFETY: `gx` was completed before the steps and is only read now.
                        unsafe {
                            self.gx
                                .slice(d * rows * gx_width + row * gx_width + tile * NC, NC)
                        }
                        .try_into()
                        .expect("NC")
                    };
                    let mut out = [0.0f32; 32];
                    match spec.cell {
                        Cell::Lstm => {
                            // SAFETY: the cell state of these units of row `r` is read and
                            // written by this thread only.
                            let c = unsafe { self.c.slice_mut((idx * b + r) * h + u0, nu) };
                            let ph = &pd.peephole[tile * 3 * L..][..3 * L];
                            if spec.peephole {
                                lstm_epilogue::<FMA, L, NC, true>(acc, gx, ph, c, &mut out);
                            } else {
                                lstm_epilogue::<FMA, L, NC, false>(acc, gx, ph, c, &mut out);
                            }
                        }
                        Cell::Gru => {
                            let b_hn = &pd.b_hn[tile * L..][..L];
                            let mut gx = *gx;
                            for (g, x) in gx[NC - aside.len()..].iter_mut().zip(aside) {
                                *g += x;
                            }
                            gru_epilogue::<FMA, L, NC>(acc, &gx, b_hn, keep(), &mut out);
                        }
                        Cell::RnnTanh => rnn_epilogue::<FMA, NC>(acc, gx, false, &mut out),
                        Cell::RnnRelu => rnn_epilogue::<FMA, NC>(acc, gx, true, &mut out),
                    }
                    let out = &out[..nu];
                    if projected {
                        // SAFETY: these units of row `r` of `m` belong to this thread's tile;
                        // `m` is read only in the projection phase.
                        let dst = unsafe { self.m_buf.slice_mut((d * b + r) * h + u0, nu) };
                        copy_units::<L>(dst, out);
                    } else {
                        // SAFETY: as for the carried state above; `y` of this layer is read
                        // only by the next layer, after a barrier.
                        unsafe {
                            copy_units::<L>(self.h.slice_mut(next + r * h_out + u0, nu), out);
                            copy_units::<L>(y.slice_mut(row * y_width + d * h_out + u0, nu), out);
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
                    let a = |r: usize| [&[][..], &m_d[r * h..][..h]];
                    product::<FMA, PR, 32, 0>(0..b, a, [&[], w], false, |r, acc, _| f(r, acc));
                } else {
                    let a = |r: usize| [&[][..], &m_d[r * h..][..h]];
                    product::<FMA, PR, 16, 0>(0..b, a, [&[], w], false, |r, acc, _| f(r, acc));
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
                let t = if spec.reverses(d) { len - 1 - s } else { s };
                // SAFETY: as above; `y` of this layer is read only by the next layer.
                unsafe { y.slice_mut((t * b + r) * y_width + d * p + u0, nu) }
                    .copy_from_slice(&acc[..nu]);
            });
        }
    }
}
