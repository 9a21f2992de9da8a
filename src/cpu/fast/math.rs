//! Branch-free float32 exp, sigmoid and tanh that the compiler vectorises over slices, with
//! errors at float32 rounding (a few ulp; ≤ 1.2e-7 absolute for σ and tanh).
//!
//! The fast engine's cell updates spend most of their time here: calling the C library's
//! `expf` element by element was the CPU path's largest cost. (The reference engine computes
//! σ and tanh from `f32::exp`, with [`Activation::apply`](crate::Activation::apply), so that
//! the oracle shares none of this code.)

// The polynomial coefficients are written as published (Cephes), digits beyond f32 included.
#![allow(clippy::excessive_precision)]

use super::kernel::madd;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding 1.5·2²³ rounds a float of magnitude < 2²² to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// `e^x` (Cephes' polynomial), saturating to 0 below −87 and to 2¹²⁸ (∞-free) above 88; its
/// multiply-adds fused (one rounding, half the latency) when `FMA`.
#[inline(always)]
pub(crate) fn exp_f<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<FMA>(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_451_9e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = madd::<FMA>(p, r, c);
    }
    let e = madd::<FMA>(p * r, r, r) + 1.0;
    // 2^n from the rounded integer in t's low bits.
    let bits = (t.to_bits() as i32 - 0x4B40_0000 + 127) << 23;
    e * f32::from_bits(bits as u32)
}

/// Logistic sigmoid `1 / (1 + e^{−x})` with [`exp_f`]; never NaN for finite `x`.
#[inline(always)]
pub(crate) fn sigmoid_f<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp_f::<FMA>(-x))
}

/// `tanh(x)`: Cephes' odd polynomial for |x| < 0.625, `1 − 2/(e^{2|x|} + 1)` beyond; its
/// multiply-adds fused when `FMA`.
#[inline(always)]
pub(crate) fn tanh_f<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3;
    for c in [
        2.063_908_9e-2,
        -5.373_971_6e-2,
        1.333_144_2e-1,
        -3.333_328_2e-1,
    ] {
        p = madd::<FMA>(p, z, c);
    }
    let small = madd::<FMA>(p * z, x, x);
    let large = (1.0 - 2.0 / (exp_f::<FMA>(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_standard_library() {
        // The variants without fused multiply-adds.
        let (sigmoid, tanh) = (sigmoid_f::<false>, tanh_f::<false>);
        let mut worst = [0.0f64; 3];
        let mut x = -30.0f32;
        while x < 30.0 {
            let e = f64::from(x).exp();
            worst[0] = worst[0].max(((f64::from(exp_f::<false>(x)) - e) / e).abs());
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            worst[1] = worst[1].max((f64::from(sigmoid(x)) - s).abs());
            worst[2] = worst[2].max((f64::from(tanh(x)) - f64::from(x).tanh()).abs());
            x += 0.001_7;
        }
        assert!(worst[0] < 4e-7, "exp relative error {}", worst[0]);
        assert!(worst[1] < 1.2e-7, "sigmoid error {}", worst[1]);
        assert!(worst[2] < 1.2e-7, "tanh error {}", worst[2]);
        for v in [f32::MAX, -f32::MAX, 1e30, -1e30, 100.0, -100.0] {
            assert!(sigmoid(v).is_finite() && tanh(v).is_finite(), "{v}");
        }
        assert_eq!(tanh(1e30), 1.0);
        assert!(sigmoid(-1e30) < 1e-37);
        assert!(exp_f::<false>(f32::NAN).is_nan() || sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn fused_variants_are_as_close() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(sigmoid_f::<true>(x)) - s).abs() < 1.2e-7, "{x}");
            assert!(
                (f64::from(tanh_f::<true>(x)) - f64::from(x).tanh()).abs() < 1.2e-7,
                "{x}"
            );
            let e = f64::from(x).exp();
            assert!(((f64::from(exp_f::<true>(x)) - e) / e).abs() < 4e-7, "{x}");
            x += 0.001_7;
        }
    }
}
