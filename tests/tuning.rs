//! Kernel variants chosen by measurement: the tuner times every GEMM variant once per shape
//! class and device, reports what it chose and how long it took, honours a forced variant,
//! and remembers its choices in a cache file between contexts.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use ndarray::Array3;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    ContextOptions, CpuModel, Forward, ForwardOptions, GemmVariant, GpuContext, GpuModel, Input,
    RnnSpec, StepVariant, Weights, WeightsStorage,
};

/// The class suffix of a model whose weights live in a texture.
fn suffix(model: &GpuModel) -> &'static str {
    match model.weights_storage() {
        WeightsStorage::Texture => "-texture",
        _ => "",
    }
}

/// A fresh context on the test adapter, with `cache` as its tuning file.
fn context(cache: Option<std::path::PathBuf>) -> Option<GpuContext> {
    let info = gpu()?.adapter_info().clone();
    let options = ContextOptions {
        tune_cache: cache,
        ..ContextOptions::for_adapter(&info)
    };
    Some(GpuContext::new(&options).unwrap())
}

#[test]
fn auto_measures_once_per_class_and_reports() {
    let Some(ctx) = context(None) else { return };
    let sd = seed("auto_measures_once_per_class_and_reports", 81);
    let spec = RnnSpec::lstm(24, 40).layers(2);
    let w = Weights::random(&spec, sd).unwrap();
    let x: Array3<f32> = uniform(&mut rng(sd), (30, 3, 24), 1.0);
    let model = GpuModel::upload(&ctx, &w).unwrap();
    // The upload chose where the weights live; no kernel was chosen yet.
    assert!(ctx.tuning().iter().all(|r| r.family == "storage"));
    let (out, stats) = model
        .forward_with(&Input::new(x.view()), &ForwardOptions::default())
        .unwrap();
    assert_ne!(
        stats.gemm,
        GemmVariant::Auto,
        "the stats name the kernel that ran"
    );
    let expected = CpuModel::new(w).forward(&Input::new(x.view())).unwrap();
    assert_outputs_close("tuned forward", &expected, &out, Tolerance::GPU_VS_CPU);
    let records = ctx.tuning();
    let gemm: Vec<_> = records.iter().filter(|r| r.family == "gemm").collect();
    assert_eq!(gemm.len(), 1, "{records:?}");
    let r = gemm[0];
    eprintln!("{r:?}");
    assert_eq!(r.family, "gemm");
    // 30·3 rows, 24 inputs, 40 vec4 columns, rounded up; weights in a texture are a class of
    // their own.
    let class = format!("128x32x64{}", suffix(&model));
    assert_eq!(r.class, class);
    assert_eq!(r.chosen, stats.gemm.name());
    assert!(!r.from_cache);
    let names: Vec<&str> = r.candidates.iter().map(|c| c.0).collect();
    let runs = |v: &GemmVariant| v.runs_on(&ctx.limits(), ctx.supports_subgroups());
    let expected: Vec<&str> = GemmVariant::ALL
        .into_iter()
        .filter(runs)
        .map(GemmVariant::name)
        .collect();
    assert_eq!(names, expected);
    assert!(r.candidates.iter().all(|c| c.1 > 0.0 && c.1.is_finite()));
    assert!(r.spent_ms > 0.0);
    // The same class again (29 steps rounds to the same class), and a forced variant: no
    // new measurement.
    let x2: Array3<f32> = uniform(&mut rng(sd + 1), (29, 3, 24), 1.0);
    model.forward(&Input::new(x2.view())).unwrap();
    let forced = ForwardOptions::default().gemm(GemmVariant::Wide);
    let (_, s) = model.forward_with(&Input::new(x.view()), &forced).unwrap();
    assert_eq!(s.gemm, GemmVariant::Wide);
    assert_eq!(ctx.tuning().len(), records.len(), "nothing measured again");
}

/// The step kernel too: `StepVariant::Auto` runs the input with both kernels the first time a
/// shape class comes, keeps the faster, and says which ran; the results are those of the CPU.
#[test]
fn auto_step_kernel_is_measured_once_per_class() {
    let Some(ctx) = context(None) else { return };
    let sd = seed("auto_step_kernel_is_measured_once_per_class", 82);
    let spec = RnnSpec::gru(6, 33).bidirectional(true);
    let w = Weights::random(&spec, sd).unwrap();
    let model = GpuModel::upload(&ctx, &w).unwrap();
    let cpu = CpuModel::new(w);
    for (t, b) in [(20, 3), (17, 4), (20, 3)] {
        let x: Array3<f32> = uniform(&mut rng(sd + t as u64), (t, b, 6), 1.0);
        let (out, stats) = model
            .forward_with(&Input::new(x.view()), &ForwardOptions::default())
            .unwrap();
        let expected = cpu.forward(&Input::new(x.view())).unwrap();
        assert_outputs_close("auto step kernel", &expected, &out, Tolerance::GPU_VS_CPU);
        assert!(StepVariant::ALL.contains(&stats.variant), "{stats:?}");
    }
    let steps: Vec<_> = ctx
        .tuning()
        .into_iter()
        .filter(|r| r.family == "step")
        .collect();
    // (20, 3) and (17, 4) share a class: batch 4, steps 32.
    assert_eq!(steps.len(), 1, "{steps:?}");
    let class = format!("gru-h64-l1-d2-b4-t32{}", suffix(&model));
    assert_eq!(steps[0].class, class);
    let names: Vec<&str> = steps[0].candidates.iter().map(|c| c.0).collect();
    let expected: Vec<&str> = StepVariant::ALL
        .into_iter()
        .filter(|v| ctx.supports_subgroups() || !v.needs_subgroups())
        .map(StepVariant::name)
        .collect();
    assert_eq!(names, expected);
    eprintln!("{:?}", steps[0]);
}

#[test]
fn choices_survive_in_the_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tune.txt");
    let Some(first) = context(Some(path.clone())) else {
        return;
    };
    let spec = RnnSpec::gru(16, 20);
    let w = Weights::random(&spec, 5).unwrap();
    let x = Array3::<f32>::zeros((10, 2, 16));
    let model = GpuModel::upload(&first, &w).unwrap();
    let (_, stats) = model
        .forward_with(&Input::new(x.view()), &ForwardOptions::default())
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let gemm = format!("gemm\t32x16x32{}\t{}", suffix(&model), stats.gemm.name());
    assert!(text.contains(&gemm), "{text}");
    // Another context (another process, in effect) reads the choice instead of measuring.
    let second = context(Some(path.clone())).unwrap();
    let records = second.tuning();
    // Where the weights live, the GEMM, the step kernel and its tile.
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r.from_cache && r.candidates.is_empty()));
    let model = GpuModel::upload(&second, &w).unwrap();
    let (_, s) = model
        .forward_with(&Input::new(x.view()), &ForwardOptions::default())
        .unwrap();
    assert_eq!(
        (s.gemm, s.variant, s.batch_tile),
        (stats.gemm, stats.variant, stats.batch_tile)
    );
    assert_eq!(second.tuning().len(), 4, "nothing measured again");
    // A corrupt file is ignored, not an error.
    std::fs::write(&path, "garbage\n\u{0}\t\t\n").unwrap();
    let third = context(Some(path)).unwrap();
    assert!(third.tuning().is_empty());
}
