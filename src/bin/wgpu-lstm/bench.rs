//! `wgpu-lstm bench`: the GPU-versus-CPU benchmark.
//!
//! Runs the suite on every adapter wgpu finds and on the CPU. By default each GPU shape runs
//! as a user gets it (the step kernel, GEMM and batch tile the tuner chooses), with float32
//! and float16 weights; `--exhaustive` times every step kernel × weight type × storage. Every
//! GPU result is checked against the CPU; each adapter's GEMM ceiling is measured in the same
//! run; progress and the time left go to stderr; prints a table, and writes a JSON report and
//! a chart on request.

mod ceiling;
mod gpu;
mod plan;
mod progress;
mod table;

use std::path::PathBuf;

use wgpu_lstm::bench::{self, BenchShape};
use wgpu_lstm::{list_adapters, ContextOptions, CpuModel, Error, Forward, GpuContext, Weights};

use crate::concurrency;
use crate::gpu_args::{Dtype, GpuArgs, Storage};
use crate::memory::peak_bytes_of;
use crate::report::{AdapterRecord, CeilingRecord, Record, Report, TuningRecord};
use crate::DeviceChoice;
use gpu::{GpuPlan, ShapeRun};
use plan::Settings;
use progress::Progress;

/// `bench`'s arguments: the shapes, devices, repetitions and weight types to time, and where
/// to write the report.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Comma-separated shape names (default: the whole suite).
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
    /// Less time per forward: 1 warm-up, 3 timed runs and at least a tenth of a second timed
    /// (default: 2, 10 and half a second).
    #[arg(long)]
    pub quick: bool,
    /// Time every step kernel × weight type × storage (buffer and texture unless
    /// --weights-storage says), the fastest of each marked, and for the GEMM ceiling every
    /// GEMM kernel in both storages, 10 products (3 with --quick), best of two rounds. By
    /// default only the tuner's choice per shape runs, and the ceiling is one round of 3
    /// products per kernel (1 where a product takes over a third of a second) in the storage
    /// the device chose. Takes several times longer.
    #[arg(long)]
    pub exhaustive: bool,
    /// Which devices to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::All)]
    pub device: DeviceChoice,
    /// Backend and adapters to run (default: every adapter on every backend).
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Write every record (adapter info, FLOPs, repetitions, min/median/max) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw throughput per shape and device as a PNG chart here.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// The suite shape of the concurrency section (4 threads against 1 on one model, and
    /// the objects 100 forwards of random lengths create); `none` skips it.
    #[arg(long, value_name = "SHAPE", default_value = "edge")]
    pub concurrency_shape: String,
    /// Threads of the CPU engine (default: the cores this process may use).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Comma-separated weight types each shape runs with (f32: as given; f16: rounded to
    /// float16 on the GPU, f32 sums and states; i8: eight-bit integers with a scale per row,
    /// on the CPU products in int32 with activations quantized per step, on the GPU float32
    /// sums over the integers scaled once). The error of each against the CPU with f32
    /// weights is reported; the CPU always runs f32.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f16,i8")]
    pub weights_dtype: Vec<Dtype>,
    /// Comma-separated weight storages each GPU shape runs with (auto: measured on the
    /// device; buffer; texture). Default: auto, or buffer,texture with --exhaustive.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub weights_storage: Vec<Storage>,
}

/// Runs the benchmark `args` ask for and prints its table.
pub fn run_bench(args: &BenchArgs) -> Result<(), Error> {
    let shapes = suite_shapes(&args.suite)?;
    let concurrency_shape = concurrency_shape(&args.concurrency_shape)?;
    let settings = Settings::new(args);
    let contexts = open_contexts(args)?;
    let mut progress = Progress::new();
    settings.plan(
        &mut progress,
        &shapes,
        &contexts,
        concurrency_shape.as_ref(),
    );

    let (ceilings, ceiling_gflops) = measure_ceilings(&contexts, &settings, &mut progress)?;
    let mut records: Vec<Record> = Vec::new();
    let mut failures = Vec::new();
    for shape in &shapes {
        run_shape(
            shape,
            &contexts,
            &ceiling_gflops,
            &settings,
            &mut progress,
            (&mut records, &mut failures),
        )?;
    }
    let mut concurrency = Vec::new();
    if let Some(shape) = &concurrency_shape {
        for ctx in &contexts {
            progress.next();
            concurrency.push(concurrency::measure(ctx, shape, 4 * settings.repeat.reps)?);
        }
    }
    progress.done();

    table::print_report(&ceilings, &records, settings.exhaustive);
    concurrency::print(&concurrency);
    let tuning = tuning_records(&contexts);
    table::print_tuning(&tuning);
    let report = Report {
        version: env!("CARGO_PKG_VERSION").to_string(),
        quick: args.quick,
        exhaustive: args.exhaustive,
        ceilings,
        records,
        concurrency,
        tuning,
    };
    write_report(args, &report)?;
    if !failures.is_empty() {
        return Err(Error::CheckFailed(format!(
            "{} GPU run(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(())
}

/// The suite shapes named by `--suite` (every one when none is named), in the suite's order.
fn suite_shapes(names: &[String]) -> Result<Vec<BenchShape>, Error> {
    let mut shapes = bench::default_suite();
    if names.is_empty() {
        return Ok(shapes);
    }
    for name in names {
        if !shapes.iter().any(|s| s.name == name) {
            let known: Vec<_> = shapes.iter().map(|s| s.name).collect();
            return Err(Error::InvalidInput(format!(
                "unknown suite shape `{name}` (known: {})",
                known.join(", ")
            )));
        }
    }
    shapes.retain(|s| names.iter().any(|n| n == s.name));
    Ok(shapes)
}

/// The shape `--concurrency-shape` names; `None` for `none`.
fn concurrency_shape(name: &str) -> Result<Option<BenchShape>, Error> {
    if name == "none" {
        return Ok(None);
    }
    bench::default_suite()
        .into_iter()
        .find(|s| s.name == name)
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidInput(format!("--concurrency-shape: unknown suite shape `{name}`"))
        })
}

/// A context on every adapter `--backend` and `--adapter` select (each adapter once); none
/// for `--device cpu`, and an error where a GPU is asked for and none is found.
fn open_contexts(args: &BenchArgs) -> Result<Vec<GpuContext>, Error> {
    let mut contexts = Vec::new();
    if args.device == DeviceChoice::Cpu {
        return Ok(contexts);
    }
    let mut seen = Vec::new();
    for a in list_adapters(args.gpu.backends()) {
        let key = (a.info.name.clone(), a.info.backend);
        if seen.contains(&key) || !args.gpu.matches(&a.info.name) {
            continue;
        }
        seen.push(key);
        contexts.push(GpuContext::new(&ContextOptions::for_adapter(&a.info))?);
    }
    if contexts.is_empty() {
        return Err(Error::NoAdapter {
            detail: args.gpu.describe(),
        });
    }
    Ok(contexts)
}

/// Every adapter's GEMM ceiling: the records of each kernel timed, and per adapter (in the
/// order of `contexts`) the best GFLOP/s.
fn measure_ceilings(
    contexts: &[GpuContext],
    settings: &Settings,
    progress: &mut Progress,
) -> Result<(Vec<CeilingRecord>, Vec<f64>), Error> {
    let mut records = Vec::new();
    let mut best = Vec::new();
    for ctx in contexts {
        progress.next();
        let (r, top) = ceiling::measure(ctx, settings.ceiling)?;
        records.extend(r);
        best.push(top);
    }
    Ok((records, best))
}

/// One shape on the CPU (unless `--device gpu`) and on every adapter with every weight type
/// and storage: its records, and a line in `failures` for each GPU run that failed (the others
/// go on). `ceiling_gflops` holds each adapter's GEMM ceiling.
fn run_shape(
    shape: &BenchShape,
    contexts: &[GpuContext],
    ceiling_gflops: &[f64],
    settings: &Settings,
    progress: &mut Progress,
    (records, failures): (&mut Vec<Record>, &mut Vec<String>),
) -> Result<(), Error> {
    let weights = Weights::random(&shape.spec, 1)?;
    let x = shape.input(2);
    let cpu = CpuModel::with_threads(weights.clone(), settings.threads)?;
    let run = ShapeRun::new(shape, &weights, &x, &cpu);
    let mut cpu_ms = None;
    for dtype in settings.cpu_types() {
        progress.next();
        let mut r = if dtype == Dtype::F32 {
            let r = cpu_record(shape, &cpu, &x, settings)?;
            cpu_ms = Some(r.median_ms);
            r
        } else {
            let model = cpu.clone().weights_dtype(dtype.weights())?;
            let mut r = cpu_record(shape, &model, &x, settings)?;
            let got = model.forward(&wgpu_lstm::Input::new(x.view()))?;
            r.max_abs_err = Some(wgpu_lstm::bench::check_against(&got, run.cpu_output()?)?.0);
            r.speedup_vs_cpu = cpu_ms.map(|c: f64| c / r.median_ms);
            r
        };
        r.weights = Some(dtype.weights().name().to_string());
        records.push(r);
    }
    for (ctx, &ceiling) in contexts.iter().zip(ceiling_gflops) {
        for (dtype, storage) in settings.weight_types() {
            progress.next();
            let plan = GpuPlan {
                repeat: settings.repeat,
                dtype,
                storage,
                exhaustive: settings.exhaustive,
            };
            match gpu::gpu_records(ctx, &run, plan) {
                Ok(rs) => records.extend(rs.into_iter().map(|mut r| {
                    r.speedup_vs_cpu = cpu_ms.map(|c| c / r.median_ms);
                    r.fraction_of_gemm = Some(r.gflops / ceiling);
                    r
                })),
                Err(e) => {
                    let info = ctx.adapter_info();
                    eprintln!("  {} ({:?}): FAILED: {e}", info.name, info.backend);
                    failures.push(format!(
                        "{} on {} ({:?}): {e}",
                        shape.name, info.name, info.backend
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `shape` timed on the CPU engine `cpu`, with the memory its last forward allocated.
fn cpu_record(
    shape: &BenchShape,
    cpu: &CpuModel,
    x: &ndarray::Array3<f32>,
    settings: &Settings,
) -> Result<Record, Error> {
    let mut peak = 0;
    let t = bench::time(settings.repeat, || {
        peak = peak_bytes_of(|| cpu.forward(&wgpu_lstm::Input::new(x.view())).map(|_| ()))?;
        Ok(())
    })?;
    // The engine and its instruction set, e.g. `fast avx2+fma`.
    let variant = format!("fast {}", cpu.kernel().unwrap_or("reference"));
    let mut r = Record::new(shape, "cpu", &variant, settings.repeat.warmup, &t);
    r.threads = Some(cpu.threads());
    r.peak_bytes = Some(peak);
    Ok(r)
}

/// The kernel variants every adapter's tuner chose, as report records.
fn tuning_records(contexts: &[GpuContext]) -> Vec<TuningRecord> {
    contexts
        .iter()
        .flat_map(|ctx| {
            let adapter = AdapterRecord::new(ctx.adapter_info());
            ctx.tuning()
                .into_iter()
                .map(move |t| TuningRecord::new(&adapter, &t))
        })
        .collect()
}

/// Writes the JSON report and the chart where `--json` and `--plot` ask.
fn write_report(args: &BenchArgs, report: &Report) -> Result<(), Error> {
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::encode(format!("`{}`", path.display()), e))?;
        wgpu_lstm::io::write_atomic(path, &text)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::chart::draw(path, report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
