//! Weights repacked once per model into the layout the fast engine's products read.
//!
//! A product's output columns are cut into tiles of column vectors of `lanes` floats (one
//! vector register: 8 with AVX2, 16 with AVX-512); a tile's weights are stored K-major
//! (`[K][width]`), so the kernel reads one contiguous row of the tile per input feature. For
//! LSTM and GRU a tile holds `lanes` hidden units with all their gates, gate `g` of unit
//! `u0 + l` in column `g·lanes + l`: the thread that owns a tile has every gate of its units in
//! registers after the product and applies the cell update there. For an RNN (one gate) and
//! for the LSTM projection, a tile is `2·lanes` consecutive columns. Columns past the last
//! unit are zero.

use std::sync::Mutex;

use ndarray::ArrayView2;

use super::aligned::AlignedFloats;
use super::int8::{IntIsa, QuantMatrix};
use super::kernel::Isa;

use crate::spec::{Cell, RnnSpec};
use crate::weights::Weights;

/// How the output columns of one product are cut into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiling {
    /// Floats per column vector.
    pub lanes: usize,
    /// Gates per unit (1 for plain columns).
    pub gates: usize,
    /// Units (output features) per tile.
    pub units: usize,
    /// Columns per tile.
    pub width: usize,
    /// Tiles.
    pub tiles: usize,
}

impl Tiling {
    /// The step product of `spec`: a tile holds `lanes` units with all their gates (LSTM,
    /// GRU), or `2·lanes` units (RNN).
    pub(crate) fn step(spec: &RnnSpec, lanes: usize) -> Self {
        match spec.cell {
            Cell::Lstm => Tiling::gated(4, spec.hidden_size, lanes),
            Cell::Gru => Tiling::gated(3, spec.hidden_size, lanes),
            Cell::RnnTanh | Cell::RnnRelu => Tiling::plain(spec.hidden_size, lanes),
        }
    }

    fn gated(gates: usize, h: usize, lanes: usize) -> Self {
        Tiling {
            lanes,
            gates,
            units: lanes,
            width: gates * lanes,
            tiles: h.div_ceil(lanes),
        }
    }

    /// `n` plain output columns, `2·lanes` per tile.
    pub(crate) fn plain(n: usize, lanes: usize) -> Self {
        Tiling {
            lanes,
            gates: 1,
            units: 2 * lanes,
            width: 2 * lanes,
            tiles: n.div_ceil(2 * lanes),
        }
    }

    /// Tile and column of row `r` of a gate-major PyTorch weight with `units` rows per gate.
    fn place(&self, r: usize, units: usize) -> (usize, usize) {
        let (g, u) = (r / units, r % units);
        (u / self.units, g * self.units + u % self.units)
    }

    /// `w` (`[gates·units, K]`, PyTorch layout) as `[tiles][K][width]`.
    fn pack(&self, w: ArrayView2<'_, f32>, units: usize) -> Vec<f32> {
        let (rows, k) = w.dim();
        let mut out = vec![0.0f32; self.tiles * k * self.width];
        for r in 0..rows {
            let (tile, col) = self.place(r, units);
            for (kk, &v) in w.row(r).iter().enumerate() {
                out[(tile * k + kk) * self.width + col] = v;
            }
        }
        out
    }

    /// `w` as [`Tiling::pack`] places it, as eight-bit integers (see [`QuantMatrix`]).
    /// `given`: a quantized model's row scales (see [`QuantMatrix::pack`]).
    fn pack_quant(
        &self,
        w: ArrayView2<'_, f32>,
        given: Option<&[f32]>,
        units: usize,
    ) -> QuantMatrix {
        QuantMatrix::pack(self.tiles, self.width, w, given, |r| self.place(r, units))
    }

    /// A gate-major vector (`[gates·units]`) as `[tiles][width]`.
    fn pack_vector(&self, v: &[f32], units: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.tiles * self.width];
        for (r, &x) in v.iter().enumerate() {
            let (tile, col) = self.place(r, units);
            out[tile * self.width + col] = x;
        }
        out
    }
}

/// One layer and direction, packed.
#[derive(Debug, Clone)]
pub(crate) struct PackedDirection {
    /// Input features of this layer.
    pub input: usize,
    /// `W_ih` as `[tiles][input][width]`.
    pub w_ih: AlignedFloats,
    /// `W_hh` as `[tiles][H_out][width]`.
    pub w_hh: AlignedFloats,
    /// The bias added to the input projection, `[tiles][width]`: `b_ih + b_hh`, except the
    /// GRU's n gate, which gets `b_in` only.
    pub bias: AlignedFloats,
    /// GRU: `b_hn` `[tiles][lanes]`, added to the recurrent part of n before `r ⊙ ·`.
    pub b_hn: AlignedFloats,
    /// LSTM: peepholes `[tiles][3][lanes]` (i, f, o), zeros without peepholes.
    pub peephole: AlignedFloats,
    /// LSTM with a projection: `W_hr` as `[P tiles][H][2·lanes]`.
    pub w_hr: AlignedFloats,
    /// Eight-bit weights: the three matrices as integers, in place of the float32 ones
    /// (which are then empty).
    pub quant: Option<QuantDirection>,
}

/// One layer and direction's weight matrices as eight-bit integers (see [`super::int8`]).
#[derive(Debug, Clone)]
pub(crate) struct QuantDirection {
    pub w_ih: QuantMatrix,
    pub w_hh: QuantMatrix,
    /// LSTM with a projection.
    pub w_hr: Option<QuantMatrix>,
}

/// Packs every layer and direction of `weights` for vectors of `lanes` floats, indexed
/// `layer · D + direction`; the weight matrices as eight-bit integers when `int8`.
pub(crate) fn pack(weights: &Weights, lanes: usize, int8: bool) -> Vec<PackedDirection> {
    let spec = weights.spec();
    let h = spec.hidden_size;
    let tiling = Tiling::step(spec, lanes);
    let mut out = Vec::new();
    for layer in 0..spec.num_layers {
        for d in 0..spec.num_directions() {
            let p = weights.get(layer, d);
            let (b_ih, b_hh) = (p.bias_ih(), p.bias_hh());
            let mut bias: Vec<f32> = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
            let mut b_hn = Vec::new();
            if spec.cell == Cell::Gru {
                bias[2 * h..].copy_from_slice(&b_ih.as_slice().expect("a vector")[2 * h..]);
                let n_tiling = Tiling {
                    width: lanes,
                    ..tiling
                };
                b_hn = n_tiling.pack_vector(&b_hh.as_slice().expect("a vector")[2 * h..], h);
            }
            let peephole = match (&p.w_ph, spec.cell) {
                (Some(ph), _) => Tiling {
                    gates: 3,
                    width: 3 * lanes,
                    ..tiling
                }
                .pack_vector(ph.as_slice().expect("a vector"), h),
                (None, Cell::Lstm) => vec![0.0; tiling.tiles * 3 * lanes],
                (None, _) => Vec::new(),
            };
            let proj = Tiling::plain(spec.proj_size, lanes);
            let mut packed = PackedDirection {
                input: spec.layer_input_size(layer),
                w_ih: AlignedFloats::default(),
                w_hh: AlignedFloats::default(),
                bias: tiling.pack_vector(&bias, h).into(),
                b_hn: b_hn.into(),
                peephole: peephole.into(),
                w_hr: AlignedFloats::default(),
                quant: None,
            };
            if int8 {
                let given = weights.row_scales(out.len());
                packed.quant = Some(QuantDirection {
                    w_ih: tiling.pack_quant(p.w_ih.view(), given.map(|g| &g.w_ih[..]), h),
                    w_hh: tiling.pack_quant(p.w_hh.view(), given.map(|g| &g.w_hh[..]), h),
                    w_hr: p
                        .w_hr
                        .as_ref()
                        .map(|w| proj.pack_quant(w.view(), None, spec.proj_size)),
                });
            } else {
                packed.w_ih = tiling.pack(p.w_ih.view(), h).into();
                packed.w_hh = tiling.pack(p.w_hh.view(), h).into();
                if let Some(w) = &p.w_hr {
                    packed.w_hr = proj.pack(w.view(), spec.proj_size).into();
                }
            }
            out.push(packed);
        }
    }
    out
}

/// A forward's buffers that do not outlive it.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The input projections `[D][T·B][tiles·width]` (when not fused into the steps).
    pub(super) gx: AlignedFloats,
    /// The output of every layer but the last, `[T·B][D·H_out]` (the layers take turns with
    /// the returned output).
    pub(super) y: Vec<f32>,
}

/// A model packed for the fast engine.
#[derive(Debug)]
pub(crate) struct FastModel {
    pub(super) spec: RnnSpec,
    /// The step product's tiles.
    pub(super) tiling: Tiling,
    /// The LSTM projection's tiles.
    pub(super) proj_tiling: Tiling,
    /// Every layer and direction, `layer · D + direction`.
    pub(super) dirs: Vec<PackedDirection>,
    pub(super) isa: Isa,
    /// The weight matrices are eight-bit integers ([`PackedDirection::quant`]).
    pub(super) int8: bool,
    /// The integer products' instructions (eight-bit weights).
    pub(super) int_isa: IntIsa,
    /// The working buffers of the last forward, reused by the next one (they are the largest
    /// buffers of a forward; allocating them afresh costs a page fault per 4 KiB). A forward
    /// that finds them taken by a concurrent one allocates its own.
    pub(super) scratch: Mutex<Scratch>,
}

impl FastModel {
    /// Whether the fast engine computes `spec`: PyTorch's gate equations, in either direction.
    pub(crate) fn computes(spec: &RnnSpec) -> bool {
        spec.plain_gates()
    }

    /// `weights` packed, as float32 or (`int8`) as eight-bit integers.
    pub(crate) fn new(weights: &Weights, int8: bool) -> Self {
        let spec = weights.spec().clone();
        let mut isa = Isa::detect();
        let int_isa = IntIsa::detect(isa);
        if int8 {
            isa = int_isa.float_isa(isa);
        }
        let lanes = isa.lanes();
        FastModel {
            tiling: Tiling::step(&spec, lanes),
            proj_tiling: Tiling::plain(spec.proj_size, lanes),
            dirs: pack(weights, lanes, int8),
            int8,
            int_isa,
            isa,
            spec,
            scratch: Mutex::default(),
        }
    }

    /// The instruction set the kernels run with.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether the weight matrices are eight-bit integers.
    pub(crate) fn int8(&self) -> bool {
        self.int8
    }

    /// The integer products' instructions (meaningful with eight-bit weights).
    pub(crate) fn int_isa(&self) -> IntIsa {
        self.int_isa
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn a_units_gates_share_a_tile() {
        const LANES: usize = 8;
        // LSTM, H = 9: rows g·9 + u; unit 8 is the first unit of tile 1.
        let t = Tiling::gated(4, 9, LANES);
        assert_eq!(t.tiles, 2);
        assert_eq!(t.place(0, 9), (0, 0));
        assert_eq!(t.place(9 + 3, 9), (0, LANES + 3));
        assert_eq!(t.place(3 * 9 + 8, 9), (1, 3 * LANES));
        let w = Array2::from_shape_fn((36, 2), |(r, k)| (r * 10 + k) as f32);
        let p = t.pack(w.view(), 9);
        assert_eq!(p.len(), 2 * 2 * 32);
        // Tile 1, k = 1, column 3·LANES (gate o of unit 8): row 35.
        assert_eq!(p[(2 + 1) * 32 + 3 * LANES], 351.0);
        // Padding (unit 9 of tile 1 does not exist) stays zero.
        assert_eq!(p[(2 + 1) * 32 + 1], 0.0);
    }
}
