//! The fast CPU engine.
//!
//! Weights are packed once ([`pack`]). A forward runs as one team of threads for its
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
//! the same way whatever the number of threads, and whichever thread computes it: results are
//! bit-identical at any thread count. A step's tiles start out shared evenly; in a long step a
//! thread that has done its own takes the last ones of a thread that has not (see
//! [`pool::ItemQueue`]). Nothing is allocated inside the step loop.

mod aligned;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod epilogue;
mod int8;
mod kernel;
mod math;
mod pack;
mod pool;
mod step;
mod team;

use ndarray::Array3;
use std::borrow::Cow;

use crate::error::Result;
use crate::spec::Cell;
use crate::tensor::{Input, Output, Prepared};
use aligned::AlignedFloats;
pub(super) use pack::FastModel;
use pack::Scratch;
use pool::{ItemQueue, Shared, SpinBarrier};
use team::Ctx;

/// Batches from this size on run the input projection inside each step's product, as one
/// running sum with the recurrent part: the weights' rows are loaded once for `MR` batch rows,
/// and no buffer of projections is written and read back. Smaller batches project a chunk of
/// steps at a time ([`PROJECTION_ROWS`]) just before those steps, so that a step streams only
/// `W_hh`: at batch 8 and 16 (the suite's `bidir` and `deep`) streaming `W_ih` in every step
/// too cost 10–40 % (AVX-512 and AVX2 kernels alike), at batch 64 the fused product is 3–5 %
/// faster. (The GRU's n gate keeps its input part apart from its recurrent part,
/// `r ⊙ (W_hn h + b_hn)`: the fused product sets it aside, see [`kernel::product`].)
const FUSE_MIN_BATCH: usize = 32;

/// Rows (steps × batch) whose input projections are computed together when they are not
/// fused: at least one step; 128 rows of a 1024-column layer are 512 KiB, which the threads'
/// second-level caches share.
const PROJECTION_ROWS: usize = 128;

/// Multiply-adds per thread of a time step below which a team whose threads had to yield at
/// [`SOLO_AFTER_YIELDS`] barriers (a busy machine: they did not all run at once) hands the rest
/// of the forward to one thread.
pub(crate) const SHORT_STEP_WORK: usize = 200_000;

/// Yields at the barriers after which a team with short steps goes solo.
const SOLO_AFTER_YIELDS: usize = 2;

impl FastModel {
    /// The forward on `threads` threads of `pool` (on the calling thread when `pool` is `None`
    /// or `threads` is 1), and whether its team went solo (see [`SpinBarrier::solo`]).
    pub(crate) fn forward(
        &self,
        input: &Input<'_>,
        pool: Option<&rayon::ThreadPool>,
        threads: usize,
    ) -> Result<(Output, bool)> {
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
        let mut scratch = self
            .scratch
            .try_lock()
            .map(|mut cached| std::mem::take(&mut *cached))
            .unwrap_or_default();
        // Layer `l` writes `y[l % 2]`: the last layer the output returned, a fresh buffer; the
        // others (if any) the scratch one, zeroed as a fresh one would be.
        let y_len = rows * dirs * h_out;
        let mut out = vec![0.0f32; y_len];
        let mut between = std::mem::take(&mut scratch.y);
        between.clear();
        between.resize(if layers > 1 { y_len } else { 0 }, 0.0);
        let (y0, y1) = if layers % 2 == 1 {
            (&mut out, &mut between)
        } else {
            (&mut between, &mut out)
        };
        // Every element of `gx` is written by the input projection before it is read.
        let mut gx = std::mem::take(&mut scratch.gx);
        // Eight-bit weights always project the input up front (one quantization of each row
        // of `X`, and two sums that keep their own scales).
        let fused = b >= FUSE_MIN_BATCH && !self.int8;
        let chunk = (PROJECTION_ROWS / b).clamp(1, t.max(1));
        let gx_len = if fused {
            0
        } else {
            dirs * chunk * b * self.tiling.tiles * self.tiling.width
        };
        gx.resize(gx_len);
        // The states in cache-line-aligned storage, as the weights: the cell updates load and
        // store them 16 units at a time.
        let mut hs = AlignedFloats::zeroed(ld * 2 * b * h_out);
        let mut cs = AlignedFloats::zeroed(if spec.cell == Cell::Lstm {
            ld * b * h
        } else {
            0
        });
        let mut m_buf = AlignedFloats::zeroed(if spec.proj_size > 0 { dirs * b * h } else { 0 });
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
        // Short steps are lost entirely when a partner thread waits for a time slice: after a
        // few such waits thread 0 finishes the forward alone.
        let short = self.step_work(b) < SHORT_STEP_WORK * threads;
        let barrier = SpinBarrier::new(threads, if short { SOLO_AFTER_YIELDS } else { usize::MAX });
        let queues: Vec<ItemQueue> = (0..threads).map(|_| ItemQueue::default()).collect();
        let cx = Ctx {
            m: self,
            steps: t,
            batch: b,
            lengths: &lengths,
            descending: lengths.windows(2).all(|w| w[0] >= w[1]),
            x0: &x0,
            y: [Shared::new(y0), Shared::new(y1)],
            gx: Shared::new(&mut gx),
            chunk,
            h: Shared::new(&mut hs),
            c: Shared::new(&mut cs),
            m_buf: Shared::new(&mut m_buf),
            barrier: &barrier,
            queues: &queues,
            steal: threads > 1 && !short,
            threads,
            fused,
            zero_h0: p.h0.is_none(),
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

        let y = Array3::from_shape_vec((t, b, dirs * h_out), out).expect("sized above");
        let last = t % 2;
        let h_n = Array3::from_shape_fn((ld, b, h_out), |(idx, bb, j)| {
            hs[((idx * 2 + last) * b + bb) * h_out + j]
        });
        let c_n = (spec.cell == Cell::Lstm)
            .then(|| Array3::from_shape_vec((ld, b, h), cs.to_vec()).expect("sized above"));
        if let Ok(mut cached) = self.scratch.try_lock() {
            if cached.gx.capacity() + cached.y.capacity() < gx.capacity() + between.capacity() {
                *cached = Scratch { gx, y: between };
            }
        }
        Ok((p.finish(y, h_n, c_n), barrier.solo()))
    }
}
