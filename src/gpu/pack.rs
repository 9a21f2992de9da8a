//! Weights repacked for the kernels, once per model.
//!
//! The kernels read weights K-major in vec4 columns. For LSTM and GRU one vec4 column holds
//! the gates of one hidden unit (i, f, g, o or r, z, n, –), so the invocation that owns unit j
//! computes all of its gates with one load per input feature. For RNN (one gate) one vec4
//! column holds four consecutive hidden units.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

use crate::gpu::kernels::step;
use crate::quant::{self, QuantRows};
use crate::spec::{Cell, RnnSpec};
use crate::weights::Weights;

/// How the rows of a PyTorch weight map onto vec4 columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Columns {
    /// Row `g·H + j` (gate g ≤ 3 of unit j) goes to column `4j + g`: width `4H`.
    Gates,
    /// Row `j` goes to column `j`: width `4·⌈H/4⌉`.
    Units,
}

/// `w` (`[rows, K]`, PyTorch layout) as `[K, width]` row-major, zero where no row maps.
pub(crate) fn pack_columns(w: ArrayView2<'_, f32>, columns: Columns, h: usize) -> Vec<f32> {
    let (rows, k) = w.dim();
    let width = match columns {
        Columns::Gates => 4 * h,
        Columns::Units => 4 * h.div_ceil(4),
    };
    let mut out = vec![0.0f32; k * width];
    for r in 0..rows {
        let col = match columns {
            Columns::Gates => 4 * (r % h) + r / h,
            Columns::Units => r,
        };
        for kk in 0..k {
            out[kk * width + col] = w[[r, kk]];
        }
    }
    out
}

fn as_column(v: Array1<f32>) -> Array2<f32> {
    v.insert_axis(Axis(1))
}

/// Sizes and offsets of one layer's packed weights, both directions, computed from the spec
/// alone (so sizes can be checked before anything is packed). Sizes count vec4 elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerLayout {
    /// Input projection weights `[D, K, n4]`.
    pub w_ih: usize,
    /// Input projection bias `[D, n4]`.
    pub bias: usize,
    /// Step weights: step-0 `[D, H_out, n4]`, recurrent `[D, H, n4]` (projection only),
    /// peepholes `[D, H]` (peephole only).
    pub w_step: usize,
    /// Offset of the recurrent weights in the step weights (0 without a projection: the step-0
    /// weights serve every step).
    pub wrec_offset: usize,
    /// Offset of the peepholes in the step weights.
    pub ph_offset: usize,
    /// Projection `[D, H, ⌈P/4⌉]` and its zero bias `[D, ⌈P/4⌉]` (projection only).
    pub w_hr: Option<(usize, usize)>,
    /// Vec4 columns of one set of scales, `D·n4` (int8 weights: see
    /// [`LayerLayout::i8_scales`]).
    pub scales: usize,
}

impl LayerLayout {
    pub fn new(spec: &RnnSpec, layer: usize) -> Self {
        let d = spec.num_directions();
        let n4 = step::columns(spec.cell, spec.hidden_size);
        let h = spec.hidden_size;
        let step0 = d * spec.hidden_out() * n4;
        let (wrec_offset, recurrent) = if spec.proj_size > 0 {
            (step0, d * h * n4)
        } else {
            (0, 0)
        };
        let ph_offset = step0 + recurrent;
        let peepholes = if spec.peephole { d * h } else { 0 };
        LayerLayout {
            w_ih: d * spec.layer_input_size(layer) * n4,
            bias: d * n4,
            w_step: ph_offset + peepholes,
            wrec_offset,
            ph_offset,
            w_hr: (spec.proj_size > 0)
                .then(|| (d * h * proj_columns(spec), d * proj_columns(spec))),
            scales: d * n4,
        }
    }

    /// Int8 weights: the u32 indices of the step-0 and the recurrent weights' scales in the
    /// step buffer ([`pack_layer_i8`]). That buffer holds the integers first, one `u32` per
    /// vec4 (so the vec4 offsets above are its u32 indices), then the peepholes and the
    /// scales as float32 quads; without a projection both indices are the same.
    pub fn i8_scales(&self) -> (usize, usize) {
        let s0 = self.ph_offset + 4 * (self.w_step - self.ph_offset);
        let srec = if self.wrec_offset > 0 {
            s0 + 4 * self.scales
        } else {
            s0
        };
        (s0, srec)
    }
}

/// One layer's weights for both directions, ready to upload, laid out as [`LayerLayout`] says.
#[derive(Debug)]
pub(crate) struct LayerPack {
    pub w_ih: Vec<f32>,
    /// For GRU the fourth lane carries `b_hn`.
    pub bias: Vec<f32>,
    pub w_step: Vec<f32>,
    pub w_hr: Option<Vec<f32>>,
}

/// Vec4 columns of the projection output: `⌈P/4⌉`.
pub(crate) fn proj_columns(spec: &RnnSpec) -> usize {
    spec.proj_size.div_ceil(4)
}

/// The columns a cell's weights map onto.
fn columns_of(cell: Cell) -> Columns {
    match cell {
        Cell::Lstm | Cell::Gru => Columns::Gates,
        Cell::RnnTanh | Cell::RnnRelu => Columns::Units,
    }
}

/// One layer's input-projection biases `[D, n4]`, float32 whatever the weights' type: `b_ih +
/// b_hh` per gate; for GRU the fourth lane carries `b_hn`.
pub(crate) fn pack_biases(spec: &RnnSpec, weights: &Weights, layer: usize) -> Vec<f32> {
    let h = spec.hidden_size;
    let mut bias = vec![];
    for d in 0..spec.num_directions() {
        let p = weights.get(layer, d);
        let (b_ih, b_hh) = (p.bias_ih(), p.bias_hh());
        let b = match spec.cell {
            // r and z take both biases; n takes b_in outside and b_hn inside r ⊙ (…).
            Cell::Gru => concatenate![
                Axis(0),
                &b_ih.slice(ndarray::s![..2 * h]) + &b_hh.slice(ndarray::s![..2 * h]),
                b_ih.slice(ndarray::s![2 * h..]),
                b_hh.slice(ndarray::s![2 * h..])
            ],
            _ => &b_ih + &b_hh,
        };
        bias.extend(pack_columns(as_column(b).view(), columns_of(spec.cell), h));
    }
    bias
}

pub(crate) fn pack_layer(spec: &RnnSpec, weights: &Weights, layer: usize) -> LayerPack {
    let h = spec.hidden_size;
    let columns = columns_of(spec.cell);
    let pack = |w: ArrayView2<'_, f32>| pack_columns(w, columns, h);
    let (mut w_ih, mut w0, mut wrec, mut ph, mut w_hr) = (vec![], vec![], vec![], vec![], vec![]);
    for d in 0..spec.num_directions() {
        let p = weights.get(layer, d);
        w_ih.extend(pack(p.w_ih.view()));
        w0.extend(pack(p.w_hh.view()));
        if let Some(hr) = &p.w_hr {
            // From step 1 on the kernel reads m_{t−1} (H features), and h_{t−1} = W_hr m_{t−1},
            // so the recurrent weights are W_hh · W_hr ([G·H, H]).
            wrec.extend(pack(p.w_hh.dot(hr).view()));
            w_hr.extend(pack_columns(hr.view(), Columns::Units, spec.proj_size));
        }
        if let Some(p_ph) = &p.w_ph {
            ph.extend(pack_columns(
                as_column(p_ph.clone()).view(),
                Columns::Gates,
                h,
            ));
        }
    }
    let mut w_step = w0;
    w_step.extend(wrec);
    w_step.extend(ph);
    LayerPack {
        w_ih,
        bias: pack_biases(spec, weights, layer),
        w_step,
        w_hr: (spec.proj_size > 0).then_some(w_hr),
    }
}

/// One layer's int8 weights for `shaders/weights/i8.wgsl`, as the bytes to upload: each
/// buffer holds its matrices' integers (four to a `u32`, lane 0 in the low byte, laid out as
/// [`LayerLayout`] counts vec4s), then float32 quads: the step buffer's peepholes, then the
/// scales of each matrix's vec4 columns (every direction's, one matrix after another).
#[derive(Debug)]
pub(crate) struct LayerPackI8 {
    pub w_ih: Vec<u8>,
    pub w_step: Vec<u8>,
    pub w_hr: Option<Vec<u8>>,
}

/// The integers (`[K, width]`) and the scales (`[width]`) of `w` quantized row by row
/// ([`quant::quantize_rows`]; `given`: a quantized model's scales), in vec4 columns.
fn pack_quantized(
    w: ArrayView2<'_, f32>,
    given: Option<&[f32]>,
    columns: Columns,
    h: usize,
) -> (Vec<f32>, Vec<f32>) {
    let QuantRows { q, scales } = quant::quantize_rows(w, given);
    (
        pack_columns(q.mapv(f32::from).view(), columns, h),
        pack_columns(as_column(Array1::from(scales)).view(), columns, h),
    )
}

/// Integers held exactly in `f32`s, then float32 values, as the bytes of one int8 buffer.
fn i8_bytes(integers: &[f32], floats: &[f32]) -> Vec<u8> {
    let mut out: Vec<u8> = integers.iter().map(|&v| v as i8 as u8).collect();
    out.extend(floats.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// [`pack_layer`] for int8 weights: every matrix quantized row by row as
/// [`Weights::rounded`] describes (a quantized model's own integers and scales kept). With a
/// projection, the recurrent weights `W_hh·W_hr` are the product of the two matrices as int8
/// represents them, quantized again row by row.
pub(crate) fn pack_layer_i8(spec: &RnnSpec, weights: &Weights, layer: usize) -> LayerPackI8 {
    let h = spec.hidden_size;
    let columns = columns_of(spec.cell);
    let d_count = spec.num_directions();
    let (mut ih, mut ih_s, mut step_q, mut rec_q, mut ph, mut s0, mut srec, mut hr, mut hr_s) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for d in 0..d_count {
        let p = weights.get(layer, d);
        let given = weights.row_scales(layer * d_count + d);
        let (q, s) = pack_quantized(p.w_ih.view(), given.map(|g| &g.w_ih[..]), columns, h);
        ih.extend(q);
        ih_s.extend(s);
        let given_hh = given.map(|g| &g.w_hh[..]);
        let (q, s) = pack_quantized(p.w_hh.view(), given_hh, columns, h);
        step_q.extend(q);
        s0.extend(s);
        if let Some(w_hr) = &p.w_hr {
            let product = quant::dequantized(p.w_hh.view(), given_hh)
                .dot(&quant::dequantized(w_hr.view(), None));
            let (q, s) = pack_quantized(product.view(), None, columns, h);
            rec_q.extend(q);
            srec.extend(s);
            let (q, s) = pack_quantized(w_hr.view(), None, Columns::Units, spec.proj_size);
            hr.extend(q);
            hr_s.extend(s);
        }
        if let Some(p_ph) = &p.w_ph {
            ph.extend(pack_columns(
                as_column(p_ph.clone()).view(),
                Columns::Gates,
                h,
            ));
        }
    }
    step_q.extend(rec_q);
    ph.extend(s0);
    ph.extend(srec);
    LayerPackI8 {
        w_ih: i8_bytes(&ih, &ih_s),
        w_step: i8_bytes(&step_q, &ph),
        w_hr: (spec.proj_size > 0).then(|| i8_bytes(&hr, &hr_s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Cell;

    /// The layout computed from the spec describes exactly what packing produces.
    #[test]
    fn layout_matches_packed_sizes() {
        for cell in Cell::ALL {
            for (proj, peephole) in [(0, false), (3, false), (0, true), (3, true)] {
                if (proj > 0 || peephole) && cell != Cell::Lstm {
                    continue;
                }
                for bidirectional in [false, true] {
                    let spec = RnnSpec::new(cell, 5, 7)
                        .layers(2)
                        .bidirectional(bidirectional)
                        .proj_size(proj)
                        .peephole(peephole);
                    let weights = Weights::random(&spec, 1).unwrap();
                    for layer in 0..2 {
                        let l = LayerLayout::new(&spec, layer);
                        let p = pack_layer(&spec, &weights, layer);
                        let what = format!("{spec:?} layer {layer}");
                        assert_eq!(p.w_ih.len(), 4 * l.w_ih, "{what}");
                        assert_eq!(p.bias.len(), 4 * l.bias, "{what}");
                        assert_eq!(p.w_step.len(), 4 * l.w_step, "{what}");
                        assert_eq!(p.w_hr.as_ref().map(|w| w.len()), l.w_hr.map(|w| 4 * w.0));
                        let i8 = pack_layer_i8(&spec, &weights, layer);
                        let (_, srec) = l.i8_scales();
                        assert_eq!(i8.w_ih.len(), 4 * l.w_ih + 16 * l.scales, "{what}");
                        assert_eq!(i8.w_step.len(), 4 * srec + 16 * l.scales, "{what}");
                        assert_eq!(
                            i8.w_hr.as_ref().map(|w| w.len()),
                            l.w_hr.map(|(w, zero)| 4 * w + 16 * zero)
                        );
                        if peephole {
                            // The peepholes of the first direction start at ph_offset.
                            let ph = weights.get(layer, 0).w_ph.as_ref().unwrap();
                            assert_eq!(p.w_step[4 * l.ph_offset], ph[0], "{what}");
                        }
                    }
                }
            }
        }
    }
}
