//! One time step of a fast forward, for the tiles a thread takes: the step's product, whose
//! epilogue applies the cell update to a tile's units while their gates are in registers and
//! stores the new states, then (LSTM with a projection) `h_t = W_hr m_t` (see [`super::team`]
//! for the phases around it).

use super::epilogue::{copy_units, gru_epilogue, lstm_epilogue, rnn_epilogue};
use super::int8::{product_i8, QuantBatch};
use super::kernel::product;
use super::pack::PackedDirection;
use super::pool::Shared;
use super::team::Ctx;
use crate::spec::{Cell, RnnSpec};

/// One tile of a time step: where its units, weights and states are, and the sizes of the
/// step (the locals of [`Ctx::step_items`] that its product's rows need).
struct StepTile<'a, const NC: usize> {
    spec: &'a RnnSpec,
    /// Its direction, and its index among the direction's tiles.
    d: usize,
    tile: usize,
    /// `layer · D + d`: the direction's weights `pd` and states.
    idx: usize,
    pd: &'a PackedDirection,
    /// Its first unit, and how many units it has (fewer than a full tile at the end).
    u0: usize,
    nu: usize,
    /// `H_{t−1}` of the direction, `[B][H_out]`, and how much of a row the product reads
    /// (nothing at the first step from a zero state).
    h_prev: &'a [f32],
    k_h: usize,
    /// Where `H_t` of the direction starts in [`Ctx::h`].
    next: usize,
    /// The tile's biases (the input part of the sums when the input projection is fused).
    bias: &'a [f32; NC],
    /// The layer's output.
    y: &'a Shared<'a>,
    /// `B`, `H`, `H_out`, the rows of a direction in `gx` (`chunk · B`), the widths of a row
    /// of `gx` and of `y`.
    b: usize,
    h: usize,
    h_out: usize,
    gx_rows: usize,
    gx_width: usize,
    y_width: usize,
    /// See [`Ctx::fused`].
    fused: bool,
    /// An LSTM with a projection: the step writes `m_t`, the projection `h_t`.
    projected: bool,
}

impl<const NC: usize> StepTile<'_, NC> {
    /// The previous state of the tile's units in row `r` (without a projection, H_out = H).
    #[inline(always)]
    fn keep(&self, r: usize) -> &[f32] {
        &self.h_prev[r * self.h_out + self.u0..][..self.nu]
    }
}

impl Ctx<'_> {
    /// Step `s` for the tiles `items`: `H_{t−1}·W_hhᵀ` (`X_t·W_ihᵀ + H_{t−1}·W_hhᵀ`, one
    /// running sum, when the input projection is fused), then the cell update in the epilogue.
    /// `x` is the layer's input; `qh` (eight-bit weights) the quantized `H_{t−1}` of every
    /// direction (see [`Ctx::quantize_states`]).
    #[inline(always)]
    pub(super) fn step<
        const FMA: bool,
        const L: usize,
        const NC: usize,
        const MR: usize,
        const I8: bool,
    >(
        &self,
        layer: usize,
        s: usize,
        x: &[f32],
        qh: &QuantBatch,
        items: impl Iterator<Item = usize>,
    ) {
        // The GRU's n gate keeps its input part apart from its recurrent part.
        if self.fused && self.m.spec.cell == Cell::Gru {
            self.step_items::<FMA, L, NC, MR, L, I8>(layer, s, x, qh, items);
        } else {
            self.step_items::<FMA, L, NC, MR, 0, I8>(layer, s, x, qh, items);
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
        const I8: bool,
    >(
        &self,
        layer: usize,
        s: usize,
        x: &[f32],
        qh: &QuantBatch,
        items: impl Iterator<Item = usize>,
    ) {
        let m = self.m;
        let spec = &m.spec;
        let (tiles, dirs) = (m.tiling.tiles, spec.num_directions());
        let (b, h, h_out) = (self.batch, spec.hidden_size, spec.hidden_out());
        let cur = s % 2;
        let fused = self.fused;
        let backwards = self.zigzag(s);
        for item in items {
            let (d, tile) = (item / tiles, item % tiles);
            let idx = layer * dirs + d;
            let pd = &m.dirs[idx];
            // The first step from a zero state adds nothing from `W_hh`: its `k` range is
            // empty (`0 · w` terms, each exactly zero for finite weights, left out).
            let k_h = if s == 0 && self.zero_h0 { 0 } else { h_out };
            let u0 = tile * m.tiling.units;
            let at = StepTile {
                spec,
                d,
                tile,
                idx,
                pd,
                u0,
                nu: m.tiling.units.min(h - u0),
                // SAFETY: slot `cur` of the hidden state is only read during a step.
                h_prev: unsafe { self.h.slice((idx * 2 + cur) * b * h_out, b * h_out) },
                k_h,
                next: (idx * 2 + 1 - cur) * b * h_out,
                bias: pd.bias[tile * NC..][..NC].try_into().expect("NC"),
                y: &self.y[layer % 2],
                b,
                h,
                h_out,
                gx_rows: self.chunk * b,
                gx_width: tiles * NC,
                y_width: dirs * h_out,
                fused,
                projected: spec.proj_size > 0,
            };
            let live = self.live_rows(s);
            if !at.projected {
                for r in live..b {
                    // SAFETY: as in `step_epilogue`, for a row that has ended.
                    let next = unsafe { self.h.slice_mut(at.next + r * h_out + u0, at.nu) };
                    copy_units::<L>(next, at.keep(r));
                }
            }
            if I8 {
                // Not fused: the input part is in `gx`, nothing is set aside. (A first step
                // from a zero state multiplies quantized zeros.)
                let Some(q) = &pd.quant else { continue };
                let none = [0.0f32; ASIDE];
                product_i8::<NC>(
                    m.int_isa,
                    0..live,
                    #[inline(always)]
                    |r| qh.row(d * b + r),
                    q.w_hh.tile(tile),
                    #[inline(always)]
                    |r, acc| self.step_epilogue::<FMA, L, NC, ASIDE>(&at, s, r, acc, &none),
                );
                continue;
            }
            let w = &pd.w_hh[tile * h_out * NC..][..k_h * NC];
            let k = pd.input;
            let w_x: &[f32] = if fused {
                &pd.w_ih[tile * k * NC..][..k * NC]
            } else {
                &[]
            };
            product::<FMA, MR, NC, ASIDE>(
                0..live,
                #[inline(always)]
                |r| self.step_inputs(&at, s, x, r),
                [w_x, w],
                backwards,
                #[inline(always)]
                |r, acc, aside| self.step_epilogue::<FMA, L, NC, ASIDE>(&at, s, r, acc, aside),
            );
        }
    }

    /// The rows step `s` computes: where the lengths do not increase down the batch, those
    /// before the first that has ended (the rest only carry their state over); else all.
    #[inline(always)]
    fn live_rows(&self, s: usize) -> usize {
        if self.descending {
            self.lengths.partition_point(|&len| len > s)
        } else {
            self.batch
        }
    }

    /// Row `r`'s operands in a step's product: its `H_{t−1}`, after its input `x_t` (`x` is
    /// the layer's input) when the input projection is fused.
    #[inline(always)]
    fn step_inputs<'x, const NC: usize>(
        &self,
        at: &StepTile<'x, NC>,
        s: usize,
        x: &'x [f32],
        r: usize,
    ) -> [&'x [f32]; 2] {
        let h_r = &at.h_prev[r * at.h_out..][..at.k_h];
        if !at.fused {
            return [&[], h_r];
        }
        // A finished sequence's row is computed on any input, and dropped.
        let len = self.lengths[r];
        let t = match (s < len, at.spec.reverses(at.d)) {
            (false, _) => 0,
            (true, true) => len - 1 - s,
            (true, false) => s,
        };
        let k = at.pd.input;
        [&x[(t * at.b + r) * k..][..k], h_r]
    }

    /// Row `r`'s epilogue of a step's product (`acc`; `aside`, the GRU's n gate's input part
    /// when the input projection is fused): the cell update of the tile's units, stored as the
    /// row's new state and output. A sequence that has ended keeps its state.
    #[inline(always)]
    fn step_epilogue<const FMA: bool, const L: usize, const NC: usize, const ASIDE: usize>(
        &self,
        at: &StepTile<'_, NC>,
        s: usize,
        r: usize,
        acc: &[f32; NC],
        aside: &[f32; ASIDE],
    ) {
        let len = self.lengths[r];
        if s >= len {
            // This sequence has ended: its state carries over unchanged.
            if !at.projected {
                // SAFETY: these units of row `r` of the next hidden state belong to this
                // thread's tile; nobody reads the next slot in this phase.
                let next = unsafe { self.h.slice_mut(at.next + r * at.h_out + at.u0, at.nu) };
                copy_units::<L>(next, at.keep(r));
            }
            return;
        }
        let t = if at.spec.reverses(at.d) {
            len - 1 - s
        } else {
            s
        };
        let row = t * at.b + r;
        let gx: &[f32; NC] = if at.fused {
            at.bias
        } else {
            // Row `r` of step `s` of the chunk (see `Ctx::gx`).
            let gx_row = (s % self.chunk) * at.b + r;
            // SAFETY: the chunk's `gx` was completed before its steps and is only read now.
            unsafe {
                self.gx.slice(
                    (at.d * at.gx_rows + gx_row) * at.gx_width + at.tile * NC,
                    NC,
                )
            }
            .try_into()
            .expect("NC")
        };
        let out = self.cell_update::<FMA, L, NC, ASIDE>(at, r, acc, gx, aside);
        self.store_units::<L, NC>(at, r, row, &out[..at.nu]);
    }

    /// The cell update of the tile's units in row `r` (see [`super::epilogue`]) from the
    /// product `acc` and the input part `gx` (and `aside`, see [`Self::step_epilogue`]): their
    /// `m_t`, which is `h_t` without a projection. An LSTM's cell state is updated in place.
    #[inline(always)]
    fn cell_update<const FMA: bool, const L: usize, const NC: usize, const ASIDE: usize>(
        &self,
        at: &StepTile<'_, NC>,
        r: usize,
        acc: &[f32; NC],
        gx: &[f32; NC],
        aside: &[f32; ASIDE],
    ) -> [f32; 32] {
        let (pd, tile) = (at.pd, at.tile);
        let mut out = [0.0f32; 32];
        match at.spec.cell {
            Cell::Lstm => {
                // SAFETY: the cell state of these units of row `r` is read and written by this
                // thread only.
                let c = unsafe { self.c.slice_mut((at.idx * at.b + r) * at.h + at.u0, at.nu) };
                let ph = &pd.peephole[tile * 3 * L..][..3 * L];
                if at.spec.peephole {
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
                gru_epilogue::<FMA, L, NC>(acc, &gx, b_hn, at.keep(r), &mut out);
            }
            Cell::RnnTanh => rnn_epilogue::<FMA, NC>(acc, gx, false, &mut out),
            Cell::RnnRelu => rnn_epilogue::<FMA, NC>(acc, gx, true, &mut out),
        }
        out
    }

    /// Stores `out`, the new `m_t` of the tile's units in row `r` (row `row` of the layer's
    /// output): into `m` for the projection, else as `h_t` into the next hidden state and the
    /// layer's output.
    #[inline(always)]
    fn store_units<const L: usize, const NC: usize>(
        &self,
        at: &StepTile<'_, NC>,
        r: usize,
        row: usize,
        out: &[f32],
    ) {
        if at.projected {
            // SAFETY: these units of row `r` of `m` belong to this thread's tile; `m` is read
            // only in the projection phase.
            let dst = unsafe {
                self.m_buf
                    .slice_mut((at.d * at.b + r) * at.h + at.u0, at.nu)
            };
            copy_units::<L>(dst, out);
        } else {
            let (next, y) = (at.next + r * at.h_out, row * at.y_width + at.d * at.h_out);
            // SAFETY: these units of row `r` of the next hidden state belong to this thread's
            // tile, and nobody reads the next slot in this phase; `y` of this layer is read
            // only by the next layer, after a barrier.
            unsafe {
                copy_units::<L>(self.h.slice_mut(next + at.u0, at.nu), out);
                copy_units::<L>(at.y.slice_mut(y + at.u0, at.nu), out);
            }
        }
    }

    /// Step `s` of an LSTM with a projection, for the projection tiles `items`:
    /// `h_t = m_t · W_hrᵀ` (eight-bit weights: `qm` is `m_t` quantized, see
    /// [`Ctx::quantize_projected`]).
    #[inline(always)]
    pub(super) fn projection<const FMA: bool, const L: usize, const PR: usize, const I8: bool>(
        &self,
        layer: usize,
        s: usize,
        qm: &QuantBatch,
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
            let pd = &m.dirs[idx];
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
            let live = self.live_rows(s);
            for r in live..b {
                // SAFETY: as below, for a row that has ended.
                unsafe { self.h.slice_mut(next + r * p + u0, nu) }
                    .copy_from_slice(&h_prev[r * p + u0..][..nu]);
            }
            let run = |f: &mut dyn FnMut(usize, &[f32])| {
                if I8 {
                    let Some(w_hr) = pd.quant.as_ref().and_then(|q| q.w_hr.as_ref()) else {
                        return;
                    };
                    // Tiles of `L` units: `2L` columns here.
                    let a = |r: usize| qm.row(d * b + r);
                    if L == 16 {
                        product_i8::<32>(m.int_isa, 0..live, a, w_hr.tile(tile), |r, acc| {
                            f(r, acc)
                        });
                    } else {
                        product_i8::<16>(m.int_isa, 0..live, a, w_hr.tile(tile), |r, acc| {
                            f(r, acc)
                        });
                    }
                    return;
                }
                let w = &pd.w_hr[tile * h * nc..][..h * nc];
                let a = |r: usize| [&[][..], &m_d[r * h..][..h]];
                if L == 16 {
                    product::<FMA, PR, 32, 0>(0..live, a, [&[], w], false, |r, acc, _| f(r, acc));
                } else {
                    product::<FMA, PR, 16, 0>(0..live, a, [&[], w], false, |r, acc, _| f(r, acc));
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
