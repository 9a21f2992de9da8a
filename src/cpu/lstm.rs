//! LSTM on the CPU, PyTorch semantics.
//!
//! For each layer and direction, with gate rows i, f, g, o of `W_ih`, `W_hh`, `b = b_ih + b_hh`:
//!
//! ```text
//! Gx   = X · W_ihᵀ + b                      all T·B rows at once (hoisted)
//! for t (forward: 0..T, reverse: T−1..0):
//!   a  = Gx[t] + h_{t−1} · W_hhᵀ            [B, 4H]
//!   i  = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
//!   c_t = f ⊙ c_{t−1} + i ⊙ g
//!   h_t = o ⊙ tanh(c_t)
//! ```

use ndarray::{s, Array2, Array3, ArrayView2, Axis};

use super::{input_projection, sigmoid, Direction};
use crate::weights::DirectionWeights;

/// Runs one layer in one direction over `x` (`[T·B, in]`, time-major rows), starting from and
/// updating the states `h`, `c` (`[B, H]`), and writing `h_t` into `y[t, :, offset..offset+H]`.
pub(super) fn run_direction(
    w: &DirectionWeights,
    x: ArrayView2<'_, f32>,
    dir: Direction,
    h: &mut Array2<f32>,
    c: &mut Array2<f32>,
    y: &mut Array3<f32>,
) {
    let (steps, batch, _) = y.dim();
    let hid = h.ncols();
    let gx = input_projection(x, &w.w_ih, &w.combined_bias());
    let mut a = Array2::<f32>::zeros((batch, 4 * hid));
    for s in 0..steps {
        let t = dir.time(s, steps);
        a.assign(&gx.slice(s![t * batch..(t + 1) * batch, ..]));
        ndarray::linalg::general_mat_mul(1.0, &*h, &w.w_hh.t(), 1.0, &mut a);
        for (bi, row) in a.axis_iter(Axis(0)).enumerate() {
            for j in 0..hid {
                let i_g = sigmoid(row[j]);
                let f_g = sigmoid(row[hid + j]);
                let g_g = row[2 * hid + j].tanh();
                let o_g = sigmoid(row[3 * hid + j]);
                let c_new = f_g * c[[bi, j]] + i_g * g_g;
                c[[bi, j]] = c_new;
                h[[bi, j]] = o_g * c_new.tanh();
            }
        }
        y.slice_mut(s![t, .., dir.out_offset..dir.out_offset + hid])
            .assign(h);
    }
}
