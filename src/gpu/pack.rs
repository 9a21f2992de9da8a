//! Weights repacked for the kernels, once per model.
//!
//! The kernels read weights K-major in vec4 columns. For LSTM and GRU one vec4 column holds
//! the gates of one hidden unit (i, f, g, o or r, z, n, –), so the invocation that owns unit j
//! computes all of its gates with one load per input feature. For RNN (one gate) one vec4
//! column holds four consecutive hidden units.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

use crate::gpu::kernels::step;
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
        }
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

pub(crate) fn pack_layer(spec: &RnnSpec, weights: &Weights, layer: usize) -> LayerPack {
    let h = spec.hidden_size;
    let columns = match spec.cell {
        Cell::Lstm | Cell::Gru => Columns::Gates,
        Cell::RnnTanh | Cell::RnnRelu => Columns::Units,
    };
    let pack = |w: ArrayView2<'_, f32>| pack_columns(w, columns, h);
    let (mut w_ih, mut bias, mut w0, mut wrec, mut ph, mut w_hr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in 0..spec.num_directions() {
        let p = weights.get(layer, d);
        w_ih.extend(pack(p.w_ih.view()));
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
        bias.extend(pack(as_column(b).view()));
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
        bias,
        w_step,
        w_hr: (spec.proj_size > 0).then_some(w_hr),
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
