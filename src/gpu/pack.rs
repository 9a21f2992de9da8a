//! Weights repacked for the kernels, once per model.
//!
//! The kernels read weights K-major in vec4 columns. For LSTM and GRU one vec4 column holds
//! the gates of one hidden unit (i, f, g, o or r, z, n, –), so the invocation that owns unit j
//! computes all of its gates with one load per input feature. For RNN (one gate) one vec4
//! column holds four consecutive hidden units.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

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

/// One layer's weights for both directions, ready to upload.
#[derive(Debug)]
pub(crate) struct LayerPack {
    /// Input projection weights `[D, in, 4·n4]`.
    pub w_ih: Vec<f32>,
    /// Input projection bias `[D, 4·n4]` (for GRU the fourth lane carries `b_hn`).
    pub bias: Vec<f32>,
    /// Step weights: step-0 `[D, H_out, 4·n4]`, then (projection only) recurrent
    /// `[D, H, 4·n4]`, then (peephole only) `[D, 4H]`.
    pub w_step: Vec<f32>,
    /// Vec4 offsets of the recurrent weights and the peepholes in `w_step`.
    pub wrec_offset: usize,
    pub ph_offset: usize,
    /// Projection `[D, H, 4·⌈P/4⌉]`.
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
    let wrec_offset = if wrec.is_empty() { 0 } else { w0.len() / 4 };
    let ph_offset = (w0.len() + wrec.len()) / 4;
    let mut w_step = w0;
    w_step.extend(wrec);
    w_step.extend(ph);
    LayerPack {
        w_ih,
        bias,
        w_step,
        wrec_offset,
        ph_offset,
        w_hr: (spec.proj_size > 0).then_some(w_hr),
    }
}
