//! Element-wise comparison of results, reporting the worst element.
//!
//! Used by the tests (GPU against CPU) and by the benchmark, which checks every GPU result it
//! times against the CPU reference.

use approx::RelativeEq;
use ndarray::ArrayViewD;

use crate::error::{Error, Result};

/// `|actual − expected| ≤ max(abs, rel · max(|actual|, |expected|))`, as in `approx::relative_eq!`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub abs: f32,
    /// Relative tolerance.
    pub rel: f32,
}

impl Tolerance {
    /// GPU against CPU after many steps and layers. Sums taken in a different order and
    /// exp-based activations differ by float32 rounding: the worst seen over the 54 test
    /// configurations (up to 300 steps × 3 layers, hidden 257) is 1.2e-6 on the software
    /// Vulkan adapter. 2e-5 leaves room for drivers with less exact `exp` while still
    /// catching any wrong formula, gate order or index (those give errors of order 0.1).
    pub const GPU_VS_CPU: Tolerance = Tolerance {
        abs: 2e-5,
        rel: 2e-5,
    };
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Largest `|actual − expected|` (infinite when an element is NaN in one and not the other).
    pub max_abs_err: f32,
    /// Index of that element.
    pub worst_index: Vec<usize>,
    /// The expected value there.
    pub expected: f32,
    /// The actual value there.
    pub actual: f32,
    /// Elements outside the tolerance.
    pub failures: usize,
    /// Elements compared.
    pub len: usize,
}

impl Comparison {
    /// Whether every element is within the tolerance.
    pub fn ok(&self) -> bool {
        self.failures == 0
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} elements outside tolerance; worst at {:?}: expected {}, got {} (|diff| = {:e})",
            self.failures, self.len, self.worst_index, self.expected, self.actual, self.max_abs_err
        )
    }
}

/// Compares two arrays of the same shape element by element.
pub fn compare(
    expected: ArrayViewD<'_, f32>,
    actual: ArrayViewD<'_, f32>,
    tol: Tolerance,
) -> Result<Comparison> {
    if expected.shape() != actual.shape() {
        return Err(Error::shape("actual", expected.shape(), actual.shape()));
    }
    let mut c = Comparison {
        max_abs_err: 0.0,
        worst_index: vec![0; expected.ndim()],
        expected: f32::NAN,
        actual: f32::NAN,
        failures: 0,
        len: expected.len(),
    };
    let mut first = true;
    for ((idx, &e), &a) in expected.indexed_iter().zip(actual.iter()) {
        let both_nan = e.is_nan() && a.is_nan();
        let err = if both_nan || a == e {
            0.0
        } else if e.is_nan() || a.is_nan() {
            f32::INFINITY
        } else {
            (a - e).abs()
        };
        let within = both_nan || a.relative_eq(&e, tol.abs, tol.rel);
        if !within {
            c.failures += 1;
        }
        if first || err > c.max_abs_err || (err.is_nan() && !c.max_abs_err.is_nan()) {
            first = false;
            c.max_abs_err = err;
            c.worst_index = ndarray::Dimension::slice(&idx).to_vec();
            c.expected = e;
            c.actual = a;
        }
    }
    Ok(c)
}
