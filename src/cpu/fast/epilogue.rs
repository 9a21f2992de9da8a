//! The cell updates applied in the step product's epilogue, on one tile of hidden units while
//! their gates are still in registers: the equations of [`crate::cpu::reference::cells`], with σ and tanh
//! from the polynomials of [`super::math`].

use super::math::{sigmoid_f, tanh_f};

/// `dst.copy_from_slice(&src[..dst.len()])`, with a constant length in the common case of a
/// full tile of `N` units: a few vector moves instead of a call to `memcpy`.
#[inline(always)]
pub(super) fn copy_units<const N: usize>(dst: &mut [f32], src: &[f32]) {
    if dst.len() == N {
        dst.copy_from_slice(&src[..N]);
    } else {
        let n = dst.len();
        dst.copy_from_slice(&src[..n]);
    }
}

/// LSTM: gates i, f, g, o of `L` units (`acc` = `h·W_hh` part, `gx` = input part and
/// biases, both `[4][L]`), peepholes `ph` `[3][L]` (read only when `PEEP`: without them the
/// o gate does not wait for the new cell, a shorter chain of dependent operations for a
/// batch of one, and the same bits, since those terms are zeros there); updates the cell
/// `c` (the tile's real units) and writes `m_t` into `out`. The equations of
/// [`crate::cpu::reference::cells::lstm`].
#[inline(always)]
pub(super) fn lstm_epilogue<const FMA: bool, const L: usize, const NC: usize, const PEEP: bool>(
    acc: &[f32; NC],
    gx: &[f32; NC],
    ph: &[f32],
    c: &mut [f32],
    out: &mut [f32; 32],
) {
    let mut c_prev = [0.0f32; L];
    copy_units::<L>(&mut c_prev[..c.len()], c);
    let mut c_new = [0.0f32; L];
    for j in 0..L {
        let cp = c_prev[j];
        let peep = |p: usize, c: f32| if PEEP { ph[p] * c } else { -0.0 };
        let i = sigmoid_f::<FMA>(acc[j] + gx[j] + peep(j, cp));
        let f = sigmoid_f::<FMA>(acc[L + j] + gx[L + j] + peep(L + j, cp));
        let g = tanh_f::<FMA>(acc[2 * L + j] + gx[2 * L + j]);
        let cn = f * cp + i * g;
        let o = sigmoid_f::<FMA>(acc[3 * L + j] + gx[3 * L + j] + peep(2 * L + j, cn));
        c_new[j] = cn;
        out[j] = o * tanh_f::<FMA>(cn);
    }
    copy_units::<L>(c, &c_new);
}

/// GRU: gates r, z, n of `L` units, `h_prev` the tile's real units. The equations of
/// [`crate::cpu::reference::cells::gru`].
#[inline(always)]
pub(super) fn gru_epilogue<const FMA: bool, const L: usize, const NC: usize>(
    acc: &[f32; NC],
    gx: &[f32; NC],
    b_hn: &[f32],
    h_prev: &[f32],
    out: &mut [f32; 32],
) {
    let mut hp = [0.0f32; L];
    copy_units::<L>(&mut hp[..h_prev.len()], h_prev);
    for j in 0..L {
        let r = sigmoid_f::<FMA>(acc[j] + gx[j]);
        let z = sigmoid_f::<FMA>(acc[L + j] + gx[L + j]);
        let n = tanh_f::<FMA>(gx[2 * L + j] + r * (acc[2 * L + j] + b_hn[j]));
        out[j] = (1.0 - z) * n + z * hp[j];
    }
}

/// RNN: `tanh` or `relu` of `acc + gx` for the tile's `NC` units.
#[inline(always)]
pub(super) fn rnn_epilogue<const FMA: bool, const NC: usize>(
    acc: &[f32; NC],
    gx: &[f32; NC],
    relu: bool,
    out: &mut [f32; 32],
) {
    for j in 0..NC.min(32) {
        let a = acc[j] + gx[j];
        out[j] = if relu { a.max(0.0) } else { tanh_f::<FMA>(a) };
    }
}
