//! The cell equations, one batch row at a time, PyTorch semantics.
//!
//! Each function takes the input part `gx = W_ih x + b_ih` and the recurrent part
//! `gh = W_hh h_{t−1} + b_hh` of the pre-activations of one batch row, gate-major as in
//! PyTorch (`[G·H]`), and updates the row's state.

use ndarray::{ArrayView1, ArrayViewMut1};

use super::math::{sigmoid, tanh};

/// A row of a standard-layout array as a slice (rows of the arrays the CPU path makes are
/// contiguous), so that the loops below vectorise.
fn slice<'a>(v: &'a ArrayView1<'_, f32>) -> &'a [f32] {
    v.as_slice().expect("contiguous row")
}

/// LSTM, gates i, f, g, o, with peepholes `p = [p_i, p_f, p_o]` (`[3H]`, zeros for none):
///
/// ```text
/// i = σ(gx_i + gh_i + p_i ⊙ c_{t−1})      f = σ(gx_f + gh_f + p_f ⊙ c_{t−1})
/// g = tanh(gx_g + gh_g)
/// c_t = f ⊙ c_{t−1} + i ⊙ g
/// o = σ(gx_o + gh_o + p_o ⊙ c_t)
/// m_t = o ⊙ tanh(c_t)
/// ```
///
/// Updates `c` in place and writes `m_t` (which is `h_t` without a projection).
pub(crate) fn lstm(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    p: &[f32],
    mut c: ArrayViewMut1<'_, f32>,
    mut m: ArrayViewMut1<'_, f32>,
) {
    let h = c.len();
    let (gx, gh) = (slice(&gx), slice(&gh));
    let c = c.as_slice_mut().expect("contiguous row");
    let m = m.as_slice_mut().expect("contiguous row");
    for j in 0..h {
        let c_prev = c[j];
        let i = sigmoid(gx[j] + gh[j] + p[j] * c_prev);
        let f = sigmoid(gx[h + j] + gh[h + j] + p[h + j] * c_prev);
        let g = tanh(gx[2 * h + j] + gh[2 * h + j]);
        let c_new = f * c_prev + i * g;
        let o = sigmoid(gx[3 * h + j] + gh[3 * h + j] + p[2 * h + j] * c_new);
        c[j] = c_new;
        m[j] = o * tanh(c_new);
    }
}

/// GRU, gates r, z, n:
///
/// ```text
/// r = σ(gx_r + gh_r)     z = σ(gx_z + gh_z)
/// n = tanh(gx_n + r ⊙ gh_n)          (gh_n = W_hn h_{t−1} + b_hn)
/// h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
/// ```
pub(crate) fn gru(gx: ArrayView1<'_, f32>, gh: ArrayView1<'_, f32>, mut h: ArrayViewMut1<'_, f32>) {
    let n_h = h.len();
    let (gx, gh) = (slice(&gx), slice(&gh));
    let h = h.as_slice_mut().expect("contiguous row");
    for j in 0..n_h {
        let r = sigmoid(gx[j] + gh[j]);
        let z = sigmoid(gx[n_h + j] + gh[n_h + j]);
        let n = tanh(gx[2 * n_h + j] + r * gh[2 * n_h + j]);
        h[j] = (1.0 - z) * n + z * h[j];
    }
}

/// Vanilla RNN: `h_t = tanh(gx + gh)`, or `relu(gx + gh)` when `relu`.
pub(crate) fn rnn(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    relu: bool,
    mut h: ArrayViewMut1<'_, f32>,
) {
    let (gx, gh) = (slice(&gx), slice(&gh));
    let h = h.as_slice_mut().expect("contiguous row");
    for ((h, &x), &r) in h.iter_mut().zip(gx).zip(gh) {
        let a = x + r;
        *h = if relu { a.max(0.0) } else { tanh(a) };
    }
}
