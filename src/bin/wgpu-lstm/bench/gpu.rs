//! One shape's forwards on one adapter with one weight type and storage: each result checked
//! against the CPU, then timed. By default the forward a user gets (the step kernel, GEMM and
//! batch tile the tuner chooses); with `--exhaustive`, every step kernel.

use std::cell::OnceCell;

use ndarray::Array3;
use wgpu_lstm::bench::{self, BenchShape, Repeat};
use wgpu_lstm::{
    CpuModel, Error, Forward, ForwardOptions, GpuContext, GpuModel, Input, Output, StepVariant,
    Weights, WeightsStorage,
};

use crate::gpu_args::{Dtype, Storage};
use crate::memory::peak_bytes_of;
use crate::report::{live_objects, AdapterRecord, Record};

/// A shape's weights and input, and the CPU results the GPU's are checked against (each
/// computed once, on first use, for every adapter and weight type).
pub struct ShapeRun<'a> {
    /// The shape.
    pub shape: &'a BenchShape,
    /// Its weights (float32).
    pub weights: &'a Weights,
    /// Its input `[T, B, I]`.
    pub x: &'a Array3<f32>,
    /// The CPU engine on `weights`.
    pub cpu: &'a CpuModel,
    /// `cpu`'s output on `x`.
    cpu_out: OnceCell<Output>,
    /// The reference engine's output on `weights` as float16 and as int8 store them.
    f16_out: OnceCell<Output>,
    i8_out: OnceCell<Output>,
}

impl<'a> ShapeRun<'a> {
    /// `shape` with its `weights`, input `x` and CPU engine.
    pub fn new(
        shape: &'a BenchShape,
        weights: &'a Weights,
        x: &'a Array3<f32>,
        cpu: &'a CpuModel,
    ) -> Self {
        ShapeRun {
            shape,
            weights,
            x,
            cpu,
            cpu_out: OnceCell::new(),
            f16_out: OnceCell::new(),
            i8_out: OnceCell::new(),
        }
    }

    /// The CPU's output with float32 weights.
    pub fn cpu_output(&self) -> Result<&Output, Error> {
        if let Some(out) = self.cpu_out.get() {
            return Ok(out);
        }
        let out = self.cpu.forward(&Input::new(self.x.view()))?;
        Ok(self.cpu_out.get_or_init(|| out))
    }

    /// The reference engine's output on the weights rounded as `dtype` stores them (the CPU's
    /// output for float32).
    fn rounded_output(&self, dtype: Dtype) -> Result<&Output, Error> {
        let cell = match dtype {
            Dtype::F32 => return self.cpu_output(),
            Dtype::F16 => &self.f16_out,
            Dtype::I8 => &self.i8_out,
        };
        if let Some(out) = cell.get() {
            return Ok(out);
        }
        let rounded = CpuModel::reference(self.weights.rounded(dtype.weights()));
        let out = rounded.forward(&Input::new(self.x.view()))?;
        Ok(cell.get_or_init(|| out))
    }

    /// A GPU result's worst error against the CPU with float32 weights, and whether it is
    /// within tolerance of the CPU on the same rounded weights.
    fn check(&self, got: &Output, dtype: Dtype) -> Result<(f32, bool), Error> {
        let (err, ok) = bench::check_against(got, self.cpu_output()?)?;
        if dtype == Dtype::F32 {
            return Ok((err, ok));
        }
        Ok((
            err,
            bench::check_against(got, self.rounded_output(dtype)?)?.1,
        ))
    }
}

/// What one GPU step of the benchmark runs.
#[derive(Debug, Clone, Copy)]
pub struct GpuPlan {
    /// How often each forward runs.
    pub repeat: Repeat,
    /// How the weights are stored.
    pub dtype: Dtype,
    /// Where they are kept.
    pub storage: Storage,
    /// Every step kernel (the fastest marked chosen), not only the tuner's choice.
    pub exhaustive: bool,
}

/// `run`'s shape on `ctx` as `plan` says: one record per step kernel timed, each checked
/// against the CPU (float16 weights against the reference engine on the same rounded
/// weights, their error reported against the float32 CPU result).
pub fn gpu_records(
    ctx: &GpuContext,
    run: &ShapeRun<'_>,
    plan: GpuPlan,
) -> Result<Vec<Record>, Error> {
    let model = GpuModel::upload_with(ctx, run.weights, &plan.dtype.upload(plan.storage))?;
    let variants = if plan.exhaustive {
        StepVariant::ALL.to_vec()
    } else {
        vec![StepVariant::Auto]
    };
    let mut out: Vec<Record> = Vec::new();
    for variant in variants {
        if let Some(r) = time_variant(ctx, &model, run, plan, variant)? {
            out.push(r);
        }
    }
    if plan.exhaustive {
        let best = out
            .iter()
            .map(|r| r.median_ms)
            .fold(f64::INFINITY, f64::min);
        for r in &mut out {
            r.chosen = r.median_ms == best;
        }
    }
    Ok(out)
}

/// One step kernel (`StepVariant::Auto`: the tuner's choice) checked and timed; `None` where the
/// device cannot run it (it ran another).
fn time_variant(
    ctx: &GpuContext,
    model: &GpuModel,
    run: &ShapeRun<'_>,
    plan: GpuPlan,
    variant: StepVariant,
) -> Result<Option<Record>, Error> {
    let info = ctx.adapter_info();
    let options = ForwardOptions::default().variant(variant).timing(true);
    let input = Input::new(run.x.view());
    let forward = || model.forward_with(&input, &options);
    let (got, stats) = forward()?;
    let (err, ok) = run.check(&got, plan.dtype)?;
    if variant != StepVariant::Auto && stats.variant != variant {
        eprintln!(
            "  {} ({:?}): {} kernel not possible here, skipped",
            info.name,
            info.backend,
            variant.name()
        );
        return Ok(None);
    }
    if !ok {
        return Err(Error::CheckFailed(format!(
            "{} kernel: result differs from the cpu reference by {err:e}",
            stats.variant.name()
        )));
    }
    // The checked forward was the first warm-up run.
    for _ in 1..plan.repeat.warmup {
        forward()?;
    }
    let before = live_objects(ctx);
    let mut device_ms = Vec::new();
    let mut peak = 0;
    let repeat = Repeat {
        warmup: 0,
        ..plan.repeat
    };
    let t = bench::time(repeat, || {
        let mut ms = None;
        peak = peak_bytes_of(|| {
            ms = forward()?.1.device_ms;
            Ok(())
        })?;
        device_ms.extend(ms);
        Ok(())
    })?;
    let mut r = Record::new(
        run.shape,
        "gpu",
        stats.variant.name(),
        plan.repeat.warmup,
        &t,
    );
    r.objects_created_in_timed_loop = Some(live_objects(ctx) - before);
    r.adapter = Some(AdapterRecord::new(info));
    r.weights = Some(match model.weights_storage() {
        WeightsStorage::Texture => format!("{} texture", plan.dtype.weights().name()),
        _ => plan.dtype.weights().name().to_string(),
    });
    device_ms.sort_by(f64::total_cmp);
    r.device_ms = (!device_ms.is_empty()).then(|| bench::Timings { runs_ms: device_ms }.median());
    r.dispatches = Some(stats.dispatches);
    r.submits = Some(stats.submits);
    r.gemm = Some(stats.gemm.name().to_string());
    r.batch_tile = Some(stats.batch_tile);
    r.max_abs_err = Some(err);
    r.peak_bytes = Some(peak);
    Ok(Some(r))
}
