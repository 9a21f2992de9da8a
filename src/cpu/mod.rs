//! The CPU path: a readable forward on the host with `ndarray`.
//!
//! It is the reference the GPU results are tested against, the fallback where no adapter
//! exists, and the baseline of the benchmark.

mod lstm;

use ndarray::{s, Array2, Array3, ArrayView2};

use crate::error::Result;
use crate::spec::Cell;
use crate::tensor::{Input, Output, Prepared};
use crate::weights::Weights;
use crate::Forward;

/// A model that runs on the CPU.
///
/// ```
/// use ndarray::Array3;
/// use wgpu_lstm::{CpuModel, Forward, Input, RnnSpec, Weights};
/// let spec = RnnSpec::lstm(3, 5).layers(2);
/// let model = CpuModel::new(Weights::random(&spec, 7)?);
/// let x = Array3::<f32>::ones((4, 2, 3)); // [T, B, I]
/// let out = model.forward(&Input::new(x.view()))?;
/// assert_eq!(out.y.shape(), &[4, 2, 5]);
/// assert_eq!(out.h_n.shape(), &[2, 2, 5]);
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CpuModel {
    weights: Weights,
}

impl CpuModel {
    /// Wraps host weights; nothing is copied or repacked.
    pub fn new(weights: Weights) -> Self {
        CpuModel { weights }
    }

    /// The weights this model runs.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }
}

impl Forward for CpuModel {
    fn forward(&self, input: &Input<'_>) -> Result<Output> {
        let spec = self.weights.spec();
        let p = Prepared::new(spec, input)?;
        let (t, b) = (p.steps, p.batch);
        let (h, dirs) = (spec.hidden_size, spec.num_directions());
        let ld = spec.num_layers * dirs;
        let mut h_n = Array3::<f32>::zeros((ld, b, h));
        let mut c_n = Array3::<f32>::zeros((ld, b, h));
        let mut layer_in = p.x.to_owned();
        for layer in 0..spec.num_layers {
            let mut y = Array3::<f32>::zeros((t, b, dirs * h));
            for d in 0..dirs {
                let idx = layer * dirs + d;
                let h0 = p.h0.as_ref().map(|a| a.slice(s![idx, .., ..]).to_owned());
                let c0 = p.c0.as_ref().map(|a| a.slice(s![idx, .., ..]).to_owned());
                let mut hs = h0.unwrap_or_else(|| Array2::zeros((b, h)));
                let mut cs = c0.unwrap_or_else(|| Array2::zeros((b, h)));
                let x2 = layer_in
                    .view()
                    .into_shape_with_order((t * b, layer_in.dim().2))
                    .expect("layer input is contiguous");
                let dir = Direction {
                    reverse: d == 1,
                    out_offset: d * h,
                };
                match spec.cell {
                    Cell::Lstm => lstm::run_direction(
                        self.weights.get(layer, d),
                        x2,
                        dir,
                        &mut hs,
                        &mut cs,
                        &mut y,
                    ),
                }
                h_n.slice_mut(s![idx, .., ..]).assign(&hs);
                c_n.slice_mut(s![idx, .., ..]).assign(&cs);
            }
            layer_in = y;
        }
        let c_n = spec.cell.has_cell_state().then_some(c_n);
        Ok(p.finish(layer_in, h_n, c_n))
    }
}

/// Which way one direction walks the sequence, and where its features go in `y`.
#[derive(Debug, Clone, Copy)]
struct Direction {
    reverse: bool,
    /// First feature of this direction in the layer output (`d · H`).
    out_offset: usize,
}

impl Direction {
    /// The time index processed at step `s` of `steps`.
    fn time(self, s: usize, steps: usize) -> usize {
        if self.reverse {
            steps - 1 - s
        } else {
            s
        }
    }
}

/// `x · wᵀ + bias` for all rows of `x` at once: the hoisted input projection.
fn input_projection(
    x: ArrayView2<'_, f32>,
    w: &Array2<f32>,
    bias: &ndarray::Array1<f32>,
) -> Array2<f32> {
    let mut gx = Array2::from_shape_fn((x.nrows(), w.nrows()), |(_, j)| bias[j]);
    ndarray::linalg::general_mat_mul(1.0, &x, &w.t(), 1.0, &mut gx);
    gx
}

/// Logistic sigmoid `1 / (1 + e^{−x})`; saturates to 0 or 1 without NaN for any finite `x`.
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
