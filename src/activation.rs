//! The activation functions of a recurrent cell, as ONNX's `LSTM`, `GRU` and `RNN` operators
//! name them, and the per-direction choice of them ([`Activations`]).
//!
//! PyTorch's cells use fixed functions (LSTM σ, tanh, tanh; GRU σ, tanh; RNN tanh or relu);
//! ONNX lets each direction choose its own, with parameters `alpha` and `beta`. Every function
//! here is finite for every finite input (σ, tanh and softplus are computed from `e^{−|x|}`,
//! which cannot overflow); `Affine`, `LeakyRelu` and `ScaledTanh` can only overflow when
//! their parameters scale a finite input past `f32::MAX`.

use crate::error::{Error, Result};

/// One activation function, with its parameters.
///
/// ```
/// use wgpu_lstm::Activation;
/// assert_eq!(Activation::HardSigmoid { alpha: 0.2, beta: 0.5 }.apply(1.0), 0.7);
/// assert_eq!(Activation::from_onnx("LeakyRelu", None, None)?, Activation::LeakyRelu { alpha: 0.01 });
/// assert!(Activation::Softplus.apply(1e30).is_finite());
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `clamp(alpha·x + beta, 0, 1)` (ONNX defaults alpha 0.2, beta 0.5).
    HardSigmoid {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
        /// The offset or inner scale `beta` (ONNX's `activation_beta`).
        beta: f32,
    },
    /// `x` for `x ≥ 0`, else `alpha·x` (ONNX default alpha 0.01).
    LeakyRelu {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
    },
    /// `x` for `x > alpha`, else 0 (ONNX default alpha 1.0).
    ThresholdedRelu {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
    },
    /// `alpha·tanh(beta·x)` (no defaults: both must be given).
    ScaledTanh {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
        /// The offset or inner scale `beta` (ONNX's `activation_beta`).
        beta: f32,
    },
    /// `alpha·x + beta` (defaults alpha 1.0, beta 0.0, as ONNX's former `Affine` operator).
    Affine {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
        /// The offset or inner scale `beta` (ONNX's `activation_beta`).
        beta: f32,
    },
    /// `x` for `x ≥ 0`, else `alpha·(e^x − 1)` (ONNX default alpha 1.0).
    Elu {
        /// The scale `alpha` (ONNX's `activation_alpha`).
        alpha: f32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// ONNX's names of the activation functions, in the order of [`Activation::code`].
pub const ONNX_NAMES: [&str; 11] = [
    "Sigmoid",
    "Tanh",
    "Relu",
    "HardSigmoid",
    "LeakyRelu",
    "ThresholdedRelu",
    "ScaledTanh",
    "Affine",
    "Elu",
    "Softsign",
    "Softplus",
];

impl Activation {
    /// Each function once, with ONNX's default parameters (ScaledTanh, which has none, with
    /// alpha 1.5 and beta 0.7).
    pub fn examples() -> [Activation; 11] {
        ONNX_NAMES.map(|name| {
            Activation::from_onnx(name, None, None).unwrap_or(Activation::ScaledTanh {
                alpha: 1.5,
                beta: 0.7,
            })
        })
    }

    /// ONNX's name of the function (`"HardSigmoid"`, …).
    pub fn name(self) -> &'static str {
        ONNX_NAMES[self.code() as usize]
    }

    /// The function's number: its index in the table of ONNX names (and the kernels' `ACT_*`
    /// codes).
    pub fn code(self) -> u32 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Tanh => 1,
            Activation::Relu => 2,
            Activation::HardSigmoid { .. } => 3,
            Activation::LeakyRelu { .. } => 4,
            Activation::ThresholdedRelu { .. } => 5,
            Activation::ScaledTanh { .. } => 6,
            Activation::Affine { .. } => 7,
            Activation::Elu { .. } => 8,
            Activation::Softsign => 9,
            Activation::Softplus => 10,
        }
    }

    /// The parameters `(alpha, beta)`, 0 where the function has none.
    pub fn params(self) -> (f32, f32) {
        match self {
            Activation::HardSigmoid { alpha, beta }
            | Activation::ScaledTanh { alpha, beta }
            | Activation::Affine { alpha, beta } => (alpha, beta),
            Activation::LeakyRelu { alpha }
            | Activation::ThresholdedRelu { alpha }
            | Activation::Elu { alpha } => (alpha, 0.0),
            _ => (0.0, 0.0),
        }
    }

    /// Which of `alpha` and `beta` the ONNX function takes.
    pub fn takes(name: &str) -> Option<(bool, bool)> {
        let code = ONNX_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))?;
        Some(match code {
            3 | 6 | 7 => (true, true),
            4 | 5 | 8 => (true, false),
            _ => (false, false),
        })
    }

    /// The function ONNX names `name` (any case), with `alpha` / `beta` where it takes them and
    /// ONNX's defaults where they are `None`. `ScaledTanh` has no defaults.
    pub fn from_onnx(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Activation> {
        let code = ONNX_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "`{name}` is not an ONNX activation ({})",
                    ONNX_NAMES.join(", ")
                ))
            })?;
        let need = |v: Option<f32>, what: &str| {
            v.ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "activation ScaledTanh needs `{what}` (it has no default)"
                ))
            })
        };
        let act = match code {
            0 => Activation::Sigmoid,
            1 => Activation::Tanh,
            2 => Activation::Relu,
            3 => Activation::HardSigmoid {
                alpha: alpha.unwrap_or(0.2),
                beta: beta.unwrap_or(0.5),
            },
            4 => Activation::LeakyRelu {
                alpha: alpha.unwrap_or(0.01),
            },
            5 => Activation::ThresholdedRelu {
                alpha: alpha.unwrap_or(1.0),
            },
            6 => Activation::ScaledTanh {
                alpha: need(alpha, "alpha")?,
                beta: need(beta, "beta")?,
            },
            7 => Activation::Affine {
                alpha: alpha.unwrap_or(1.0),
                beta: beta.unwrap_or(0.0),
            },
            8 => Activation::Elu {
                alpha: alpha.unwrap_or(1.0),
            },
            9 => Activation::Softsign,
            _ => Activation::Softplus,
        };
        act.check()?;
        Ok(act)
    }

    /// Checks that the parameters are finite.
    pub fn check(self) -> Result<()> {
        let (a, b) = self.params();
        if a.is_finite() && b.is_finite() {
            Ok(())
        } else {
            Err(Error::InvalidSpec(format!(
                "activation {} has a parameter that is not finite (alpha {a}, beta {b})",
                self.name()
            )))
        }
    }

    /// The function at `x`.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Relu => x.max(0.0),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { alpha, beta } => alpha * tanh(beta * x),
            Activation::Affine { alpha, beta } => alpha * x + beta,
            Activation::Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * (x.exp() - 1.0)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        }
    }
}

/// σ(x) from `e^{−|x|}`: never overflows. The CPU reference engine's σ (the fast engine has
/// its own polynomial, `src/cpu/fast/math.rs`, and the GPU its WGSL).
fn sigmoid(x: f32) -> f32 {
    let e = (-x.abs()).exp();
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

/// tanh(x) from `e^{−2|x|}`: never overflows (and `tanh(±∞) = ±1`). The CPU reference
/// engine's tanh, as [`sigmoid`] is its σ.
fn tanh(x: f32) -> f32 {
    let e = (-2.0 * x.abs()).exp();
    let t = (1.0 - e) / (1.0 + e);
    if x >= 0.0 {
        t
    } else {
        -t
    }
}

/// The activation functions of one direction of a cell, in ONNX's roles:
///
/// | cell | `f` | `g` | `h` |
/// |---|---|---|---|
/// | LSTM | gates i, f, o | cell input | cell output (`o ⊙ h(c)`) |
/// | GRU | gates z, r | candidate n | — |
/// | RNN | the cell | — | — |
///
/// Roles a cell does not have are ignored. [`Activations::of`] gives a cell's own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activations {
    /// The gates' function (LSTM i, f, o; GRU z, r; the RNN cell's).
    pub f: Activation,
    /// The cell input's (LSTM) or candidate's (GRU) function.
    pub g: Activation,
    /// The cell output's function (LSTM: `h = o ⊙ h(c)`).
    pub h: Activation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_everywhere_and_matching_the_definitions() {
        let all = Activation::examples();
        for a in all {
            for x in [
                -f32::MAX,
                -1e30,
                -88.0,
                -1.0,
                0.0,
                1.0,
                88.0,
                1e30,
                f32::MAX,
            ] {
                assert!(a.apply(x).is_finite(), "{a:?}({x}) = {}", a.apply(x));
            }
            assert_eq!(
                Activation::from_onnx(a.name(), None, None).is_ok(),
                a.code() != 6
            );
        }
        // Hand-computed values.
        let close = |a: f32, b: f64| assert!((f64::from(a) - b).abs() < 1e-6, "{a} vs {b}");
        close(Activation::Sigmoid.apply(1.0), 0.731_058_578_6);
        close(Activation::Tanh.apply(-0.5), -0.462_117_157_3);
        close(Activation::Softplus.apply(0.0), std::f64::consts::LN_2);
        close(Activation::Softplus.apply(100.0), 100.0);
        close(Activation::Softsign.apply(-3.0), -0.75);
        close(
            Activation::Elu { alpha: 2.0 }.apply(-1.0),
            2.0 * ((-1f64).exp() - 1.0),
        );
        close(Activation::ThresholdedRelu { alpha: 1.0 }.apply(1.0), 0.0);
        close(Activation::ThresholdedRelu { alpha: 1.0 }.apply(1.5), 1.5);
        close(
            Activation::ScaledTanh {
                alpha: 2.0,
                beta: 0.5,
            }
            .apply(1.0),
            2.0 * 0.5f64.tanh(),
        );
        close(Activation::LeakyRelu { alpha: 0.1 }.apply(-2.0), -0.2);
        close(
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }
            .apply(-5.0),
            0.0,
        );
    }

    /// σ and tanh, the reference engine's, are within float32 rounding of the exact values.
    #[test]
    fn sigmoid_and_tanh_within_float32_rounding() {
        let mut worst = [0.0f64; 2];
        let mut x = -30.0f32;
        while x < 30.0 {
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            worst[0] = worst[0].max((f64::from(sigmoid(x)) - s).abs());
            worst[1] = worst[1].max((f64::from(tanh(x)) - f64::from(x).tanh()).abs());
            x += 0.001_7;
        }
        assert!(worst[0] < 1.2e-7, "sigmoid error {}", worst[0]);
        assert!(worst[1] < 1.2e-7, "tanh error {}", worst[1]);
    }

    #[test]
    fn onnx_names_any_case_and_defaults() {
        assert_eq!(
            Activation::from_onnx("hardsigmoid", Some(0.3), None).unwrap(),
            Activation::HardSigmoid {
                alpha: 0.3,
                beta: 0.5
            }
        );
        let e = Activation::from_onnx("Swish", None, None).unwrap_err();
        assert!(e.to_string().contains("not an ONNX activation"), "{e}");
        let e = Activation::from_onnx("ScaledTanh", Some(1.0), None).unwrap_err();
        assert!(e.to_string().contains("beta"), "{e}");
        assert!(Activation::from_onnx("Elu", Some(f32::NAN), None).is_err());
    }
}
