//! The cell equations, one batch row at a time.
//!
//! Each function takes the input part `gx = W_ih x + b_ih` and the recurrent part
//! `gh = W_hh h_{t−1} + b_hh` of the pre-activations of one batch row, gate-major as in
//! PyTorch (`[G·H]`), and updates the row's state. [`Gates`] holds the options ONNX adds to
//! PyTorch's equations: the activation functions `f`, `g`, `h`, the `clip` of every
//! pre-activation, LSTM `input_forget`; with PyTorch's options they are PyTorch's equations.
//!
//! The activation functions are [`Activation::apply`](crate::Activation::apply)'s: σ and tanh
//! from `f32::exp`, none of the fast engine's code.

use ndarray::{ArrayView1, ArrayViewMut1};

use crate::activation::Activations;
use crate::spec::RnnSpec;

/// A row of a standard-layout array as a slice (rows of the arrays the CPU path makes are
/// contiguous), so that the loops below vectorise.
fn slice<'a>(v: &'a ArrayView1<'_, f32>) -> &'a [f32] {
    v.as_slice().expect("contiguous row")
}

/// The gate options of one direction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gates {
    act: Activations,
    clip: f32,
    input_forget: bool,
}

impl Gates {
    /// Direction `d`'s options in `spec`.
    pub(crate) fn of(spec: &RnnSpec, d: usize) -> Gates {
        Gates {
            act: spec.activations_of(d),
            clip: spec.clip.unwrap_or(f32::INFINITY),
            input_forget: spec.input_forget,
        }
    }

    /// A pre-activation, clipped.
    #[inline]
    fn pre(&self, x: f32) -> f32 {
        x.clamp(-self.clip, self.clip)
    }

    fn f(&self, x: f32) -> f32 {
        self.act.f.apply(self.pre(x))
    }

    fn g(&self, x: f32) -> f32 {
        self.act.g.apply(self.pre(x))
    }
}

/// LSTM, gates i, f, g, o, with peepholes `p = [p_i, p_f, p_o]` (`[3H]`, zeros for none);
/// with PyTorch's options (`f` = σ, `g` = `h` = tanh, no clip):
///
/// ```text
/// i = f(gx_i + gh_i + p_i ⊙ c_{t−1})      f = f(gx_f + gh_f + p_f ⊙ c_{t−1})   (1 − i with input_forget)
/// g = g(gx_g + gh_g)
/// c_t = f ⊙ c_{t−1} + i ⊙ g
/// o = f(gx_o + gh_o + p_o ⊙ c_t)
/// m_t = o ⊙ h(c_t)
/// ```
///
/// Every argument of `f` and `g` is clipped. Updates `c` in place and writes `m_t` (which is
/// `h_t` without a projection).
pub(crate) fn lstm(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    p: &[f32],
    gates: &Gates,
    mut c: ArrayViewMut1<'_, f32>,
    mut m: ArrayViewMut1<'_, f32>,
) {
    let h = c.len();
    let (gx, gh) = (slice(&gx), slice(&gh));
    let c = c.as_slice_mut().expect("contiguous row");
    let m = m.as_slice_mut().expect("contiguous row");
    for j in 0..h {
        let c_prev = c[j];
        let i = gates.f(gx[j] + gh[j] + p[j] * c_prev);
        let f = if gates.input_forget {
            1.0 - i
        } else {
            gates.f(gx[h + j] + gh[h + j] + p[h + j] * c_prev)
        };
        let g = gates.g(gx[2 * h + j] + gh[2 * h + j]);
        let c_new = f * c_prev + i * g;
        let o = gates.f(gx[3 * h + j] + gh[3 * h + j] + p[2 * h + j] * c_new);
        c[j] = c_new;
        m[j] = o * gates.act.h.apply(c_new);
    }
}

/// GRU, gates r, z, n (with PyTorch's options `f` = σ, `g` = tanh, no clip):
///
/// ```text
/// r = f(gx_r + gh_r)     z = f(gx_z + gh_z)
/// n = g(gx_n + r ⊙ gh_n)          (gh_n = W_hn h_{t−1} + b_hn; `reset_after`)
/// n = g(gx_n + gh_n)              (gh_n = W_hn (r ⊙ h_{t−1}) + b_hn, computed by the caller)
/// h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
/// ```
pub(crate) fn gru(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    gates: &Gates,
    reset_after: bool,
    mut h: ArrayViewMut1<'_, f32>,
) {
    let n_h = h.len();
    let (gx, gh) = (slice(&gx), slice(&gh));
    let h = h.as_slice_mut().expect("contiguous row");
    for j in 0..n_h {
        let r = gates.f(gx[j] + gh[j]);
        let z = gates.f(gx[n_h + j] + gh[n_h + j]);
        let recurrent = if reset_after {
            r * gh[2 * n_h + j]
        } else {
            gh[2 * n_h + j]
        };
        let n = gates.g(gx[2 * n_h + j] + recurrent);
        h[j] = (1.0 - z) * n + z * h[j];
    }
}

/// The reset gate of a GRU row, `r = f(gx_r + gh_r)`, times the previous state: `r ⊙ h_{t−1}`
/// (the input of `W_hn` when the reset comes before the linear part).
pub(crate) fn gru_reset(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    gates: &Gates,
    h: ArrayView1<'_, f32>,
    mut out: ArrayViewMut1<'_, f32>,
) {
    let (gx, gh, h) = (slice(&gx), slice(&gh), slice(&h));
    let out = out.as_slice_mut().expect("contiguous row");
    for j in 0..out.len() {
        out[j] = gates.f(gx[j] + gh[j]) * h[j];
    }
}

/// Vanilla RNN: `h_t = f(gx + gh)` (PyTorch: tanh or relu).
pub(crate) fn rnn(
    gx: ArrayView1<'_, f32>,
    gh: ArrayView1<'_, f32>,
    gates: &Gates,
    mut h: ArrayViewMut1<'_, f32>,
) {
    let (gx, gh) = (slice(&gx), slice(&gh));
    let h = h.as_slice_mut().expect("contiguous row");
    for ((h, &x), &r) in h.iter_mut().zip(gx).zip(gh) {
        *h = gates.f(x + r);
    }
}
