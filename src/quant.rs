//! The eight-bit scheme of [`WeightsDtype::I8`](crate::WeightsDtype::I8), shared by every
//! engine that runs it.
//!
//! - **Weights**: each row of `W_ih`, `W_hh` and `W_hr` (one output of a gate: a column of
//!   the product) gets its own scale, `s = max|w| / 127`, and is stored as the integers
//!   `q = round(w / s)` in −127..=127 (symmetric, zero point 0: onnxruntime's
//!   `quantize_dynamic` with `per_channel=True`). Biases and peepholes stay float32.
//! - **Activations** (a layer's input `x_t`, the state `h_{t−1}`, an LSTM's `m_t` before the
//!   projection): quantized on the fly, **each row of a batch on its own** (a sequence's
//!   results do not depend on the sequences batched with it), asymmetrically over the row's
//!   range widened to include zero: `scale = (max − min) / 127`, `zp = round(−min / scale)`,
//!   `q = clamp(round(a / scale) + zp, 0, 127)` — **seven bits**, so that a pair of products
//!   `q_a·q_w` fits the signed 16 bits of AVX2's `vpmaddubsw` (2·127·127 = 32258) and no
//!   instruction set saturates: every engine computes the same integer sums.
//! - **Products**: `Σ_k q_a[k]·q_w[k]` in int32, exactly (inputs of up to 66 000 features),
//!   then `(Σ − zp·Σ_k q_w[k]) · scale_a · s_w` in float32; biases, activations, cell and
//!   state updates in float32.
//!
//! A row with a NaN or an infinity is quantized with a NaN scale: its products are NaN, as a
//! float32 product would be.

use ndarray::{Array2, ArrayView2};

/// The largest weight integer: ±127 (−128 is never used, so the weights are symmetric).
pub(crate) const WEIGHT_MAX: f32 = 127.0;

/// The largest activation integer: seven bits, so that two products of an activation and a
/// weight fit a signed 16-bit sum.
pub(crate) const ACTIVATION_MAX: f32 = 127.0;

/// Longest sum of products the int32 accumulators hold exactly: `K · 127 · 127 · 2 < 2³¹`
/// (the sum and the zero point's correction).
pub(crate) const MAX_K: usize = (i32::MAX as usize) / (127 * 127 * 2);

/// A weight matrix `[rows, K]` quantized row by row: the integers and one scale per row.
#[derive(Debug, Clone)]
pub(crate) struct QuantRows {
    pub(crate) q: Array2<i8>,
    pub(crate) scales: Vec<f32>,
}

/// Quantizes each row of `w` with its own symmetric scale (see the [module](self) docs). A
/// row of zeros gets scale 0 (all its integers 0).
///
/// `given`, one scale per row, are the scales a quantized model came with (its weights are
/// integers times them): a row keeps its given scale when every `w / s` rounds into
/// −127..=127 — the model's own integers, exactly — and gets its own scale otherwise.
pub(crate) fn quantize_rows(w: ArrayView2<'_, f32>, given: Option<&[f32]>) -> QuantRows {
    let (rows, k) = w.dim();
    let mut q = Array2::<i8>::zeros((rows, k));
    let mut scales = Vec::with_capacity(rows);
    for (r, (row, mut out)) in w.rows().into_iter().zip(q.rows_mut()).enumerate() {
        let max = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let fits = |s: f32| s > 0.0 && s.is_finite() && (max / s).round_ties_even() <= WEIGHT_MAX;
        let scale = match given.map(|g| g[r]) {
            Some(s) if fits(s) => s,
            _ => max / WEIGHT_MAX,
        };
        scales.push(scale);
        if scale > 0.0 && scale.is_finite() {
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (v / scale).round_ties_even().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8;
            }
        }
    }
    QuantRows { q, scales }
}

/// `w` as the eight-bit weights represent it: each row's integers times its scale (`given`:
/// see [`quantize_rows`]).
pub(crate) fn dequantized(w: ArrayView2<'_, f32>, given: Option<&[f32]>) -> Array2<f32> {
    let QuantRows { q, scales } = quantize_rows(w, given);
    let mut out = q.mapv(f32::from);
    for (mut row, s) in out.rows_mut().into_iter().zip(scales) {
        row.mapv_inplace(|v| v * s);
    }
    out
}

/// 1.5·2²³: added to a float of magnitude below 2²², it leaves the nearest integer (ties to
/// even) in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// `x` rounded to the nearest integer, ties to even, for `|x| < 2²²` (here at most 128):
/// adding and taking away 1.5·2²³ leaves the integer part in the mantissa. Plain float
/// arithmetic, which every target vectorises, where `round_ties_even` calls the C library
/// without SSE4.1.
#[inline(always)]
fn round(x: f32) -> f32 {
    (x + MAGIC) - MAGIC
}

/// `x`, an integer in 0..=255 held in a float, as a byte: its bits after adding 1.5·2²³ (see
/// [`round`]). Plain integer arithmetic that vectorises, where `x as u8` (saturating) is a
/// scalar conversion per element.
#[inline(always)]
fn small_int(x: f32) -> u8 {
    ((x + MAGIC).to_bits() & 0xFF) as u8
}

/// `lanes` reduced by `f`, each step folding the upper half onto the lower.
#[inline(always)]
fn fold_lanes<const N: usize>(mut lanes: [f32; N], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut n = N;
    while n > 1 {
        n /= 2;
        for j in 0..n {
            lanes[j] = f(lanes[j], lanes[j + n]);
        }
    }
    lanes[0]
}

/// One row of activations quantized: `a ≈ (q − zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowScale {
    pub(crate) scale: f32,
    pub(crate) zero_point: i32,
}

/// Quantizes `a` into `q` (seven bits, see the [module](self) docs); `q` may be longer than
/// `a`: the rest is filled with the zero point (products with zero weights).
#[inline(always)]
pub(crate) fn quantize_activations(a: &[f32], q: &mut [u8]) -> RowScale {
    // 32 lanes side by side, which the compiler keeps in vector registers: independent
    // chains of minima and maxima, rather than one waiting on the latency of the last.
    const LANES: usize = 32;
    let (mut lo, mut hi, mut bad) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
    let (chunks, rest) = a.as_chunks::<LANES>();
    let mut take = |j: usize, v: f32| {
        lo[j] = if v < lo[j] { v } else { lo[j] };
        hi[j] = if v > hi[j] { v } else { hi[j] };
        // NaN for a NaN or an infinity, 0 otherwise.
        bad[j] += v * 0.0;
    };
    for c in chunks {
        for (j, &v) in c.iter().enumerate() {
            take(j, v);
        }
    }
    for (j, &v) in rest.iter().enumerate() {
        take(j, v);
    }
    // Halves folded onto each other (vector operations), not 32 scalar steps per row.
    let lo = fold_lanes(lo, |a, b| if b < a { b } else { a });
    let hi = fold_lanes(hi, |a, b| if b > a { b } else { a });
    let bad = fold_lanes(bad, |a, b| a + b);
    // Each bound divided first: `hi − lo` overflows for ranges beyond ±1.7e38.
    let scale = hi / ACTIVATION_MAX - lo / ACTIVATION_MAX;
    if bad.is_nan() || !scale.is_finite() {
        q.fill(0);
        return RowScale {
            scale: f32::NAN,
            zero_point: 0,
        };
    }
    if scale == 0.0 {
        q.fill(0);
        return RowScale {
            scale: 0.0,
            zero_point: 0,
        };
    }
    let inv = 1.0 / scale;
    let zp = round(-lo * inv).clamp(0.0, ACTIVATION_MAX);
    for (o, &v) in q.iter_mut().zip(a) {
        *o = small_int((round(v * inv) + zp).clamp(0.0, ACTIVATION_MAX));
    }
    q[a.len()..].fill(zp as u8);
    RowScale {
        scale,
        zero_point: zp as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn weights_by_hand() {
        // Row 0: max 2.54 → scale 0.02; 1.0 → 50, −2.54 → −127, 0.011 → 0.55 → 1.
        let w = array![[1.0f32, -2.54, 0.011], [0.0, 0.0, 0.0]];
        let QuantRows { q, scales } = quantize_rows(w.view(), None);
        assert!((scales[0] - 0.02).abs() < 1e-9);
        assert_eq!(q.row(0).to_vec(), vec![50, -127, 1]);
        assert_eq!((scales[1], q.row(1).to_vec()), (0.0, vec![0, 0, 0]));
        let d = dequantized(w.view(), None);
        assert!((d[[0, 1]] + 2.54).abs() < 1e-6 && (d[[0, 2]] - 0.02).abs() < 1e-6);
    }

    #[test]
    fn given_scales_keep_a_models_integers() {
        // A model's row: integers [3, −5, 0] with scale 0.1 (its largest is 5, not 127).
        let s = 0.1f32;
        let w = array![[3.0 * s, -5.0 * s, 0.0], [1.0, 2.0, 3.0]];
        let QuantRows { q, scales } = quantize_rows(w.view(), Some(&[s, 1e-3]));
        assert_eq!((q.row(0).to_vec(), scales[0]), (vec![3, -5, 0], s));
        // Row 1's given scale would need integers up to 3000: the row's own scale instead.
        assert_eq!(q.row(1).to_vec(), vec![42, 85, 127]);
        assert!((scales[1] - 3.0 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn activations_by_hand() {
        // Range [−0.5, 0.77] → scale 0.01, zero point 50: −0.5 → 0, 0.77 → 127, 0.031 → 53.
        let a = [-0.5f32, 0.77, 0.031];
        let mut q = [9u8; 5];
        let s = quantize_activations(&a, &mut q);
        assert!((s.scale - 0.01).abs() < 1e-8, "{s:?}");
        assert_eq!(s.zero_point, 50);
        assert_eq!(q, [0, 127, 53, 50, 50]);
        // Positive only: the range starts at zero.
        let s = quantize_activations(&[2.54, 1.27], &mut q[..2]);
        assert_eq!((s.zero_point, q[0], q[1]), (0, 127, 64));
        // Zeros, and a NaN.
        let s = quantize_activations(&[0.0, 0.0], &mut q[..2]);
        assert_eq!((s.scale, s.zero_point, q[0]), (0.0, 0, 0));
        assert!(quantize_activations(&[1.0, f32::NAN], &mut q[..2])
            .scale
            .is_nan());
        assert!(quantize_activations(&[1.0, f32::INFINITY], &mut q[..2])
            .scale
            .is_nan());
    }

    #[test]
    fn error_within_half_a_step() {
        let a: Vec<f32> = (0..100)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 0.7)
            .collect();
        let mut q = vec![0u8; 100];
        let s = quantize_activations(&a, &mut q);
        for (&v, &qi) in a.iter().zip(&q) {
            let back = (f32::from(qi) - s.zero_point as f32) * s.scale;
            assert!((back - v).abs() <= 0.5 * s.scale * 1.0001, "{v} {back}");
        }
    }
}
