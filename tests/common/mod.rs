//! Helpers shared by the integration tests: the GPU context, seeds, random tensors, and the
//! comparison that reports the worst element.
#![allow(dead_code)]

#[cfg(feature = "serve")]
pub mod http;

use std::io::Write;
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
            // Straight to stderr, past the test harness's capture, so CI logs show it.
            let _ = writeln!(
                std::io::stderr(),
                "gpu tests run on adapter `{}` ({:?}, {:?} backend)",
                i.name,
                i.device_type,
                i.backend
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

/// One model of every cell and option a weight type must serve: LSTM (plain, peephole with
/// two layers, bidirectional), GRU (two layers; ONNX's reset before the product), RNN tanh
/// and relu (reverse).
pub fn every_cell_specs() -> [wgpu_lstm::RnnSpec; 7] {
    use wgpu_lstm::{Cell, Direction, RnnSpec};
    [
        RnnSpec::lstm(13, 40),
        RnnSpec::lstm(7, 33).peephole(true).layers(2),
        RnnSpec::lstm(5, 64).direction(Direction::Bidirectional),
        RnnSpec::gru(9, 47).layers(2),
        RnnSpec::gru(9, 20).linear_before_reset(false),
        RnnSpec::new(Cell::RnnTanh, 6, 35),
        RnnSpec::new(Cell::RnnRelu, 6, 18).direction(Direction::Reverse),
    ]
}

/// One seeded random GPU-vs-CPU configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub spec: wgpu_lstm::RnnSpec,
    pub batch: usize,
    pub steps: usize,
    /// Give random h0 (and c0 for an LSTM).
    pub with_state: bool,
    pub batch_first: bool,
    /// Give random per-sequence lengths in 1..=steps.
    pub with_lengths: bool,
    pub seed: u64,
}

/// Runs `cfg` on the CPU and on the GPU with the step variant its seed draws (GPU buffers
/// poisoned with NaN first), asserts the outputs equal within [`Tolerance::GPU_VS_CPU`] and the
/// dispatch count, prints one line, and returns the worst absolute error.
#[track_caller]
pub fn check_config(ctx: &GpuContext, what: &str, cfg: &Config) -> f32 {
    use wgpu_lstm::{CpuModel, Forward, ForwardOptions, GpuModel, Input, StepVariant, Weights};
    let mut r = rng(cfg.seed);
    let spec = &cfg.spec;
    let weights = Weights::random(spec, cfg.seed).unwrap();
    let (t, b, i) = (cfg.steps, cfg.batch, spec.input_size);
    let ld = spec.num_layers * spec.num_directions();
    let x: ndarray::Array3<f32> = if cfg.batch_first {
        uniform(&mut r, (b, t, i), 1.0)
    } else {
        uniform(&mut r, (t, b, i), 1.0)
    };
    let h0: ndarray::Array3<f32> = uniform(&mut r, (ld, b, spec.hidden_out()), 1.0);
    let c0: ndarray::Array3<f32> = uniform(&mut r, (ld, b, spec.hidden_size), 2.0);
    let lengths: Vec<usize> = (0..b).map(|_| r.random_range(1..=t)).collect();
    let mut input = Input::new(x.view()).batch_first(cfg.batch_first);
    if cfg.with_state {
        input = input.h0(h0.view());
        if spec.cell.has_cell_state() {
            input = input.c0(c0.view());
        }
    }
    if cfg.with_lengths {
        input = input.lengths(&lengths);
    }
    let expected = CpuModel::new(weights.clone()).forward(&input).unwrap();
    let model = GpuModel::upload(ctx, &weights).unwrap();
    let what = format!("{what} {cfg:?}");
    let proj_gemms = if spec.proj_size > 0 { 2 } else { 0 };
    let mut err = 0.0f32;
    // One step variant per configuration, drawn by its seed: across the suites every variant
    // meets configurations of every size (each variant with every batch tile is checked
    // against a host model on its own in `kernels::step`'s tests, and end to end in
    // `variants::every_batch_tile_matches_the_cpu`). From NaN-poisoned buffers (debug builds
    // fill a workspace with NaN before every forward). The whole-sequence kernel falls back
    // to the stepwise one where the driver's loop budget is too small for it.
    let variant = StepVariant::ALL[(cfg.seed % StepVariant::ALL.len() as u64) as usize];
    {
        let options = ForwardOptions::default().variant(variant);
        let (actual, stats) = model.forward_with(&input, &options).unwrap();
        let ran = stats.variant;
        let what = format!("{what} {variant:?} (ran {ran:?})");
        err = err.max(assert_outputs_close(
            &what,
            &expected,
            &actual,
            Tolerance::GPU_VS_CPU,
        ));
        // A GRU with the reset gate before its linear part runs two passes per stepwise step.
        let passes = if spec.cell == wgpu_lstm::Cell::Gru && !spec.linear_before_reset {
            2
        } else {
            1
        };
        let dispatches = if ran.is_sequence() {
            spec.num_layers * (2 + proj_gemms)
        } else {
            spec.num_layers * (passes * t + 1 + proj_gemms)
        };
        assert_eq!(stats.dispatches, dispatches, "{what}: dispatches");
        assert_eq!(stats.submits, 1, "{what}: submits");
    }
    eprintln!(
        "  {} H={:3} P={} I={:3} B={b:2} T={t:3} L={} D={} bias={} peephole={} state={} lengths={} batch_first={} {}  max |gpu-cpu| = {err:.2e}",
        spec.cell.name(),
        spec.hidden_size,
        spec.proj_size,
        i,
        spec.num_layers,
        spec.num_directions(),
        spec.bias,
        spec.peephole,
        cfg.with_state,
        cfg.with_lengths,
        cfg.batch_first,
        variant.name()
    );
    err
}

/// The bytes of a `.npy` file with the given `descr` (e.g. `<f8`), shape text (e.g. `(2, 3)`)
/// and raw data, for tests that need files the library itself never writes.
pub fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// The CPU model and, when an adapter exists, the GPU model of the same weights.
pub fn models(weights: &wgpu_lstm::Weights) -> Vec<(&'static str, Box<dyn wgpu_lstm::Forward>)> {
    let mut out: Vec<(&'static str, Box<dyn wgpu_lstm::Forward>)> =
        vec![("cpu", Box::new(wgpu_lstm::CpuModel::new(weights.clone())))];
    if let Some(ctx) = gpu() {
        out.push((
            "gpu",
            Box::new(wgpu_lstm::GpuModel::upload(ctx, weights).unwrap()),
        ));
    }
    out
}

/// The ONNX fixtures' case folders (`tests/onnx/fixtures/<group>/<case>`, each with its
/// `case.json`), sorted.
pub fn onnx_fixture_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/fixtures");
    let mut out = Vec::new();
    for group in std::fs::read_dir(&root).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir() {
            continue;
        }
        for case in std::fs::read_dir(&group).unwrap() {
            let case = case.unwrap().path();
            if case.join("case.json").exists() {
                out.push(case);
            }
        }
    }
    out.sort();
    out
}

/// What a model gives for one sequence `x` `[T, I]` from `h0`/`c0` `[L·D, ·]` alone: one
/// forward of batch 1 on the CPU's reference engine; `y`, `h_n`, and `c_n` for an LSTM, in the
/// unbatched layout.
pub fn alone(
    weights: &wgpu_lstm::Weights,
    x: &ndarray::Array2<f32>,
    h0: Option<&ndarray::Array2<f32>>,
    c0: Option<&ndarray::Array2<f32>>,
) -> (
    ndarray::Array2<f32>,
    ndarray::Array2<f32>,
    Option<ndarray::Array2<f32>>,
) {
    use ndarray::Axis;
    use wgpu_lstm::Forward;
    let model = wgpu_lstm::CpuModel::reference(weights.clone());
    let h0 = h0.map(|h| h.view().insert_axis(Axis(1)).to_owned());
    let c0 = c0.map(|c| c.view().insert_axis(Axis(1)).to_owned());
    let mut input = wgpu_lstm::Input::new(x.view().insert_axis(Axis(1)));
    if let Some(h0) = &h0 {
        input = input.h0(h0.view());
    }
    if let Some(c0) = &c0 {
        input = input.c0(c0.view());
    }
    let out = model.forward(&input).unwrap();
    let squeeze = |a: ArrayD<f32>| {
        a.into_dimensionality::<ndarray::Ix3>()
            .unwrap()
            .index_axis(Axis(1), 0)
            .to_owned()
    };
    (squeeze(out.y), squeeze(out.h_n), out.c_n.map(squeeze))
}

/// A random spec of every cell and option the fast CPU engine runs: cell, hidden size (1, 3,
/// 8, 17, 40 or 129), input size 1..=40, 1–3 layers, bidirectional, biases, and for an LSTM
/// peepholes and a projection.
pub fn random_fast_spec(r: &mut StdRng) -> wgpu_lstm::RnnSpec {
    use wgpu_lstm::{Cell, RnnSpec};
    const CELLS: [Cell; 4] = [Cell::Lstm, Cell::Gru, Cell::RnnTanh, Cell::RnnRelu];
    const HIDDEN: [usize; 6] = [1, 3, 8, 17, 40, 129];
    let cell = CELLS[r.random_range(0..CELLS.len())];
    let hidden = HIDDEN[r.random_range(0..HIDDEN.len())];
    let input = r.random_range(1..=40);
    let mut spec = RnnSpec::new(cell, input, hidden)
        .layers(r.random_range(1..=3))
        .bidirectional(r.random_bool(0.4))
        .bias(r.random_bool(0.8));
    if cell == Cell::Lstm {
        spec = spec.peephole(r.random_bool(0.4));
        if hidden > 1 && r.random_bool(0.4) {
            spec = spec.proj_size(r.random_range(1..hidden));
        }
    }
    spec
}
