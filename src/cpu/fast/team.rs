//! One thread's part of a fast forward: per layer the input projection, then the steps (one
//! step's work in [`super::step`]), each phase split between the team's threads by tiles of
//! output columns and ended by a barrier (see [the engine](super)).

use super::int8::{product_i8, QuantBatch};
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
    /// The lengths do not increase down the batch: a step leaves out the rows that have
    /// ended (see [`Ctx::live_rows`]).
    pub(super) descending: bool,
    /// Layer 0's input `[T·B, I]`.
    pub(super) x0: &'a [f32],
    /// Layer outputs `[T·B, D·H_out]`, layer `l` writing `y[l % 2]`.
    pub(super) y: [Shared<'a>; 2],
    /// Input projections of a chunk of steps, `[D][chunk][B][tiles·width]`: row `r` of step
    /// `s` at `s % chunk`, whichever time step it reads (a reverse direction's step `s` is
    /// time step `len_r − 1 − s`).
    pub(super) gx: Shared<'a>,
    /// Steps whose input projections are computed together, just before the first of them (a
    /// buffer that stays in cache, not all `T` steps' written to memory and read back).
    pub(super) chunk: usize,
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
            // FMA, and for eight-bit weights only with AVX-512 VNNI (`IntIsa::float_isa`).
            Isa::Avx512 if self.m.int8 => unsafe { self.run_avx512_i8(id) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx512 => unsafe { self.run_avx512(id) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2Fma` is chosen only when the processor has AVX2 and FMA (and
            // for eight-bit weights on AVX-512 cores, which have both).
            Isa::Avx2Fma if self.m.int8 => unsafe { self.run_avx2_i8(id) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2Fma => unsafe { self.run_avx2(id) },
            // Eight-bit weights elsewhere: the portable integer loop, unfused float updates.
            _ if self.m.int8 => self.run_cell::<false, 8, true>(id),
            // (Chosen only on AArch64: not compiled elsewhere.)
            #[cfg(target_arch = "aarch64")]
            Isa::NativeFma => self.run_cell::<true, 8, false>(id),
            _ => self.run_cell::<false, 8, false>(id),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2_i8(&self, id: usize) {
        self.run_cell::<true, 8, true>(id)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vnni,avx2,fma")]
    fn run_avx512_i8(&self, id: usize) {
        // Tiles of 16 units, as the float32 weights'; the products choose their row blocks.
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<true, 16, 64, 4, 6, true>(id),
            Cell::Gru => self.run_team::<true, 16, 48, 6, 6, true>(id),
            Cell::RnnTanh | Cell::RnnRelu => self.run_team::<true, 16, 32, 6, 6, true>(id),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn run_avx512(&self, id: usize) {
        // 32 registers: 4 rows × 4 gates of accumulators for the LSTM (6 rows spill).
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<true, 16, 64, 4, 6, false>(id),
            Cell::Gru => self.run_team::<true, 16, 48, 6, 6, false>(id),
            Cell::RnnTanh | Cell::RnnRelu => self.run_team::<true, 16, 32, 6, 6, false>(id),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, id: usize) {
        // The LSTM's 3-row block is hand-scheduled (see `super::avx2`); the others are
        // `run_cell`'s.
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<true, 8, 32, 3, 6, false>(id),
            _ => self.run_cell::<true, 8, false>(id),
        }
    }

    /// Tile widths and row blocks are constants of the kernels: one instance per cell, for
    /// 16 registers of `L` floats (`I8`: eight-bit weights, whose products choose their own
    /// row blocks).
    #[inline(always)]
    fn run_cell<const FMA: bool, const L: usize, const I8: bool>(&self, id: usize) {
        match self.m.spec.cell {
            Cell::Lstm => self.run_team::<FMA, L, 32, 2, 6, I8>(id),
            Cell::Gru => self.run_team::<FMA, L, 24, 3, 6, I8>(id),
            Cell::RnnTanh | Cell::RnnRelu => self.run_team::<FMA, L, 16, 6, 6, I8>(id),
        }
    }

    /// Every layer: the input projection, then the steps, with barriers between phases.
    /// `L` is the vector width, `NC` the step tile's width, `MR` the rows per kernel call (and
    /// `PR` per call of the projection's kernel); `I8`: the model's weights are eight-bit.
    #[inline(always)]
    fn run_team<
        const FMA: bool,
        const L: usize,
        const NC: usize,
        const MR: usize,
        const PR: usize,
        const I8: bool,
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
        // Eight-bit weights: this thread's quantized rows of the product at hand.
        let mut qa = QuantBatch::default();
        // One thread runs a bidirectional layer's directions one after the other, so that its
        // steps stream one direction's weights rather than both (twice the cache: 2.9× the
        // time of one direction instead of 2× on the suite's `bidir` layer); a team
        // interleaves them, its threads holding mostly different directions' tiles.
        let (tiles, proj_tiles) = (self.m.tiling.tiles, self.m.proj_tiling.tiles);
        let passes = if self.threads == 1 { dirs } else { 1 };
        for layer in 0..spec.num_layers {
            let x = if layer == 0 {
                self.x0
            } else {
                let y = &self.y[(layer - 1) % 2];
                // SAFETY: the previous layer's output is complete (its last step ended with a
                // barrier) and this layer writes only `y[layer % 2]`.
                unsafe { y.slice(0, self.steps * self.batch * dirs * spec.hidden_out()) }
            };
            for pass in 0..passes {
                if passes > 1 {
                    mine = pass * tiles..(pass + 1) * tiles;
                    mine_proj = pass * proj_tiles..(pass + 1) * proj_tiles;
                }
                for s in 0..self.steps {
                    if !self.fused && s % self.chunk == 0 {
                        let chunk = s..(s + self.chunk).min(self.steps);
                        self.input_projection::<FMA, NC, MR, I8>(
                            layer,
                            x,
                            chunk,
                            mine.clone(),
                            &mut qa,
                        );
                        if !sync(&mut mine, &mut mine_proj) {
                            return;
                        }
                    }
                    // At batch 1, odd steps walk the tiles backwards, and each tile from its last
                    // `k` down (see `product`), so that a step begins with the weights the
                    // previous one ended with, still in the nearest cache.
                    let forwards = !self.zigzag(s);
                    if I8 {
                        let active = if passes > 1 { pass..pass + 1 } else { 0..dirs };
                        self.quantize_states(layer, s, active, &mut qa);
                    }
                    if self.steal {
                        self.queues[id].reset(mine.clone());
                        while let Some(item) = next_item(self.queues, id, forwards) {
                            self.step::<FMA, L, NC, MR, I8>(layer, s, x, &qa, item..item + 1);
                        }
                    } else if forwards {
                        self.step::<FMA, L, NC, MR, I8>(layer, s, x, &qa, mine.clone());
                    } else {
                        self.step::<FMA, L, NC, MR, I8>(layer, s, x, &qa, mine.clone().rev());
                    }
                    if !sync(&mut mine, &mut mine_proj) {
                        return;
                    }
                    if spec.proj_size > 0 {
                        if I8 {
                            self.quantize_projected(&mut qa);
                        }
                        self.projection::<FMA, L, PR, I8>(layer, s, &qa, mine_proj.clone());
                        if !sync(&mut mine, &mut mine_proj) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Whether step `s` walks its weights backwards: the odd steps of a batch of one, whose
    /// products stream the weights from the cache (a larger batch reuses each tile for several
    /// rows, and gains nothing from it).
    #[inline(always)]
    pub(super) fn zigzag(&self, s: usize) -> bool {
        self.batch == 1 && s % 2 == 1
    }

    /// Eight-bit weights: `H_{t−1}` of step `s`, every row of the directions `active` of
    /// `layer`, quantized into `qa` (row `d · B + r`).
    #[inline(always)]
    fn quantize_states(&self, layer: usize, s: usize, active: Range<usize>, qa: &mut QuantBatch) {
        let (b, h_out, dirs) = (
            self.batch,
            self.m.spec.hidden_out(),
            self.m.spec.num_directions(),
        );
        let cur = s % 2;
        qa.quantize(dirs * b, h_out, |i| {
            let (d, r) = (i / b, i % b);
            if !active.contains(&d) {
                return &[];
            }
            let idx = layer * dirs + d;
            // SAFETY: slot `cur` of the hidden state is only read during a step.
            unsafe { self.h.slice(((idx * 2 + cur) * b + r) * h_out, h_out) }
        });
    }

    /// Eight-bit weights: every row of `m_t` (row `d · B + r`) quantized into `qa`, for the
    /// projection.
    #[inline(always)]
    fn quantize_projected(&self, qa: &mut QuantBatch) {
        let (b, h, dirs) = (
            self.batch,
            self.m.spec.hidden_size,
            self.m.spec.num_directions(),
        );
        qa.quantize(dirs * b, h, |i| {
            // SAFETY: `m` was written in the step phase and is only read now.
            unsafe { self.m_buf.slice(i * h, h) }
        });
    }

    /// `Gx = X·W_ihᵀ + b` for the steps `chunk` and the tiles `items` (of both directions),
    /// every row, into [`Ctx::gx`] (eight-bit weights: each block of rows quantized into `qa`
    /// first). A row that has ended projects a row of `X` nobody reads.
    #[inline(always)]
    fn input_projection<const FMA: bool, const NC: usize, const MR: usize, const I8: bool>(
        &self,
        layer: usize,
        x: &[f32],
        chunk: Range<usize>,
        items: Range<usize>,
        qa: &mut QuantBatch,
    ) {
        let m = self.m;
        let (tiles, dirs, b) = (m.tiling.tiles, m.spec.num_directions(), self.batch);
        let rows = chunk.len() * b;
        let gx_width = tiles * NC;
        // A multiple of `MR`, so that only the last block can be short.
        let row_block = (ROW_BLOCK / MR).max(1) * MR;
        let k = m.spec.layer_input_size(layer);
        for d in 0..dirs {
            let mine = items.start.max(d * tiles)..items.end.min((d + 1) * tiles);
            if mine.is_empty() {
                continue;
            }
            // Row `i` of the chunk: row `r` of `X` at the time step of step `s`.
            let x_row = |i: usize| {
                let (s, r) = (chunk.start + i / b, i % b);
                let t = if m.spec.reverses(d) {
                    self.lengths[r].saturating_sub(s + 1)
                } else {
                    s
                };
                &x[(t * b + r) * k..][..k]
            };
            for start in (0..rows).step_by(row_block) {
                let block = start..(start + row_block).min(rows);
                if I8 {
                    qa.quantize(block.len(), k, |i| x_row(start + i));
                }
                let quantized: &QuantBatch = qa;
                for item in mine.clone() {
                    let tile = item % tiles;
                    let pd = &m.dirs[layer * dirs + d];
                    let bias: &[f32; NC] = pd.bias[tile * NC..][..NC].try_into().expect("NC");
                    let base = d * self.chunk * b * gx_width + tile * NC;
                    if I8 {
                        let Some(q) = &pd.quant else { continue };
                        product_i8::<NC>(
                            m.int_isa,
                            block.clone(),
                            #[inline(always)]
                            |r| quantized.row(r - start),
                            q.w_ih.tile(tile),
                            #[inline(always)]
                            |r, acc| self.store_gx(base + r * gx_width, acc, bias),
                        );
                        continue;
                    }
                    let w = &pd.w_ih[tile * k * NC..][..k * NC];
                    product::<FMA, MR, NC, 0>(
                        block.clone(),
                        #[inline(always)]
                        |r| [&[], x_row(r)],
                        [&[], w],
                        false,
                        #[inline(always)]
                        |r, acc, _| self.store_gx(base + r * gx_width, acc, bias),
                    );
                }
            }
        }
    }

    /// `acc + bias` into `gx` at `at`: one row of a tile of the input projection.
    #[inline(always)]
    fn store_gx<const NC: usize>(&self, at: usize, acc: &[f32; NC], bias: &[f32; NC]) {
        // SAFETY: this tile's columns of `gx` are written by the thread that owns the tile,
        // and read by nobody in the input projection's phase.
        let out = unsafe { self.gx.slice_mut(at, NC) };
        for c in 0..NC {
            out[c] = acc[c] + bias[c];
        }
    }
}
