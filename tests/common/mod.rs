//! Helpers shared by the integration tests: the GPU context, seeds, random tensors, and the
//! comparison that reports the worst element.
#![allow(dead_code)]

use std::sync::OnceLock;

use ndarray::{Array, ArrayD, Dimension, ShapeBuilder};
use rand::{rngs::StdRng, Rng, SeedableRng};
use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::{ContextOptions, GpuContext, Output};

/// The GPU context of this test binary, created once.
///
/// Without an adapter: when `CI` is set the test fails (CI must run the GPU tests on a real
/// adapter, the software Vulkan driver at least); otherwise it returns `None` after printing
/// loudly that the GPU half of the test did not run.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            let i = ctx.adapter_info();
            eprintln!(
                "gpu tests run on adapter `{}` ({:?}, {:?} backend)",
                i.name, i.device_type, i.backend
            );
            Some(ctx)
        }
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set and no GPU adapter was found: {e}");
            }
            eprintln!("WARNING: GPU PART NOT RUN (no adapter; set CI=1 to make this fail): {e}");
            None
        }
    })
    .as_ref()
}

/// The seed of a test: `WGPU_LSTM_SEED` when set (to reproduce a failure), else `default`.
/// Always printed.
pub fn seed(test: &str, default: u64) -> u64 {
    let s = std::env::var("WGPU_LSTM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("{test}: seed {s} (rerun with WGPU_LSTM_SEED={s})");
    s
}

/// A tensor of `shape` uniform in `[-scale, scale]`.
pub fn uniform<Sh, D>(rng: &mut StdRng, shape: Sh, scale: f32) -> Array<f32, D>
where
    D: Dimension,
    Sh: ShapeBuilder<Dim = D>,
{
    Array::from_shape_simple_fn(shape, || rng.random_range(-scale..=scale))
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Asserts `actual` within `tol` of `expected`, naming the tensor and the worst element;
/// returns the worst absolute error.
#[track_caller]
pub fn assert_close(
    what: &str,
    expected: &ArrayD<f32>,
    actual: &ArrayD<f32>,
    tol: Tolerance,
) -> f32 {
    let c = compare(expected.view(), actual.view(), tol).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(c.ok(), "{what}: {c}");
    assert!(
        actual.iter().all(|v| v.is_finite()),
        "{what}: non-finite values in the result"
    );
    c.max_abs_err
}

/// Asserts two outputs close on y, h_n and c_n; returns the worst absolute error.
#[track_caller]
pub fn assert_outputs_close(what: &str, expected: &Output, actual: &Output, tol: Tolerance) -> f32 {
    let mut worst = assert_close(&format!("{what}: y"), &expected.y, &actual.y, tol);
    worst = worst.max(assert_close(
        &format!("{what}: h_n"),
        &expected.h_n,
        &actual.h_n,
        tol,
    ));
    match (&expected.c_n, &actual.c_n) {
        (Some(e), Some(a)) => {
            worst = worst.max(assert_close(&format!("{what}: c_n"), e, a, tol));
        }
        (None, None) => {}
        _ => panic!("{what}: c_n present in only one output"),
    }
    worst
}
