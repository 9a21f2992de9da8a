//! `wgpu-lstm bench`: the GPU-versus-CPU benchmark.
//!
//! Runs the suite on every adapter wgpu finds and on the CPU; for each GPU it times both step
//! kernels (stepwise and whole-sequence) and keeps the faster; checks every GPU result against
//! the CPU; measures each adapter's GEMM ceiling in the same run; prints a table, and writes
//! a JSON report and a chart on request.

use std::path::PathBuf;

use wgpu_lstm::bench::{self, BenchShape, Repeat};

use crate::concurrency;
use crate::memory::peak_bytes_of;
use crate::report::{live_objects, AdapterRecord, CeilingRecord, Record, Report, TuningRecord};
use wgpu_lstm::{
    gemm_ceiling, list_adapters, ContextOptions, CpuModel, Error, Forward, ForwardOptions,
    GemmVariant, GpuContext, GpuModel, StepVariant, Weights, WeightsStorage,
};

use crate::gpu_args::{Dtype, GpuArgs, Storage};
use crate::DeviceChoice;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Comma-separated shape names (default: the whole suite).
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
    /// Fewer repetitions: 1 warm-up, 3 timed runs and a tenth of a second timed (default: 2,
    /// 10 and half a second).
    #[arg(long)]
    pub quick: bool,
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
    /// Comma-separated weight types each GPU shape runs with (f32: as given; f16: rounded to
    /// float16 on the device, f32 sums and states; its error against f32 is reported).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f16")]
    pub weights_dtype: Vec<Dtype>,
    /// Comma-separated weight storages each GPU shape runs with (auto: measured on the
    /// device; buffer; texture). The GEMM ceiling times every variant in both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "auto")]
    pub weights_storage: Vec<Storage>,
}

pub fn run_bench(args: &BenchArgs) -> Result<(), Error> {
    let mut shapes = bench::default_suite();
    if !args.suite.is_empty() {
        for name in &args.suite {
            if !shapes.iter().any(|s| s.name == name) {
                let known: Vec<_> = shapes.iter().map(|s| s.name).collect();
                return Err(Error::InvalidInput(format!(
                    "unknown suite shape `{name}` (known: {})",
                    known.join(", ")
                )));
            }
        }
        shapes.retain(|s| args.suite.iter().any(|n| n == s.name));
    }
    let (repeat, gemm_reps) = if args.quick {
        (Repeat::QUICK, 3)
    } else {
        (Repeat::FULL, 10)
    };
    let threads = args.threads.unwrap_or_else(CpuModel::default_threads);

    let mut contexts = Vec::new();
    if args.device != DeviceChoice::Cpu {
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
    }

    // Every GEMM variant on every adapter, in alternating rounds (the machine's speed
    // drifts); each variant keeps its best round. An adapter's ceiling is its best variant.
    let mut ceilings: Vec<CeilingRecord> = Vec::new();
    let mut best_gflops = Vec::new();
    for ctx in &contexts {
        let info = ctx.adapter_info();
        let limits = ctx.limits();
        let variants: Vec<GemmVariant> = GemmVariant::ALL
            .into_iter()
            .filter(|v| v.runs_on(&limits, ctx.supports_subgroups()))
            .collect();
        eprintln!(
            "gemm ceiling on {} ({:?}): 1024×1024×1024 × {gemm_reps}, variants {}…",
            info.name,
            info.backend,
            variants
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let kernels: Vec<(GemmVariant, WeightsStorage)> = WeightsStorage::CHOICES
            .into_iter()
            .flat_map(|s| variants.iter().map(move |&v| (v, s)))
            .collect();
        let mut best: Vec<Option<wgpu_lstm::gpu::GemmCeiling>> = vec![None; kernels.len()];
        for _round in 0..2 {
            for (i, &(variant, storage)) in kernels.iter().enumerate() {
                let c = gemm_ceiling(ctx, 1024, gemm_reps, variant, storage)?;
                if best[i].as_ref().is_none_or(|b| c.gflops > b.gflops) {
                    best[i] = Some(c);
                }
            }
        }
        let mut top = 0.0f64;
        for (&(variant, storage), c) in kernels.iter().zip(best.into_iter().flatten()) {
            top = top.max(c.gflops);
            let name = match storage {
                WeightsStorage::Texture => format!("{}+texture", variant.name()),
                _ => variant.name().to_string(),
            };
            ceilings.push(CeilingRecord {
                adapter: AdapterRecord::new(info),
                variant: name,
                n: c.n,
                reps: c.reps,
                gflops: c.gflops,
                device_gflops: c.device_gflops,
            });
        }
        best_gflops.push(top);
    }

    let concurrency_shape = match args.concurrency_shape.as_str() {
        "none" => None,
        name => Some(
            bench::default_suite()
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "--concurrency-shape: unknown suite shape `{name}`"
                    ))
                })?,
        ),
    };
    let mut records: Vec<Record> = Vec::new();
    let mut failures = Vec::new();
    for (n, shape) in shapes.iter().enumerate() {
        eprintln!(
            "[{}/{}] {}: {} in={} hidden={} layers={} bidir={} batch={} steps={}",
            n + 1,
            shapes.len(),
            shape.name,
            shape.spec.cell.name(),
            shape.spec.input_size,
            shape.spec.hidden_size,
            shape.spec.num_layers,
            shape.spec.bidirectional,
            shape.batch,
            shape.steps
        );
        let weights = Weights::random(&shape.spec, 1)?;
        let x = shape.input(2);
        let cpu = CpuModel::with_threads(weights.clone(), threads)?;
        let cpu_ms = if args.device != DeviceChoice::Gpu {
            eprintln!(
                "  cpu ({} threads, {})…",
                cpu.threads(),
                cpu.kernel().unwrap_or("-")
            );
            let t = bench::measure(&cpu, &x, repeat)?;
            let mut r = Record::new(shape, "cpu", "fast", repeat.warmup, &t);
            r.threads = Some(cpu.threads());
            r.peak_bytes = Some(peak_bytes_of(|| {
                cpu.forward(&wgpu_lstm::Input::new(x.view())).map(|_| ())
            })?);
            records.push(r);
            Some(t.median())
        } else {
            None
        };
        let types = |c| {
            args.weights_dtype
                .iter()
                .flat_map(move |&d| args.weights_storage.iter().map(move |&s| (c, d, s)))
        };
        for ((ctx, &ceiling), dtype, storage) in contexts.iter().zip(&best_gflops).flat_map(types) {
            let info = ctx.adapter_info();
            match gpu_records(ctx, shape, &weights, &cpu, &x, repeat, (dtype, storage)) {
                Ok(mut rs) => {
                    for r in &mut rs {
                        r.speedup_vs_cpu = cpu_ms.map(|c| c / r.median_ms);
                        r.fraction_of_gemm = Some(r.gflops / ceiling);
                    }
                    records.extend(rs);
                }
                Err(e) => {
                    eprintln!("  {} ({:?}): FAILED: {e}", info.name, info.backend);
                    failures.push(format!(
                        "{} on {} ({:?}): {e}",
                        shape.name, info.name, info.backend
                    ));
                }
            }
        }
    }

    let mut concurrency = Vec::new();
    if let Some(shape) = &concurrency_shape {
        for ctx in &contexts {
            let info = ctx.adapter_info();
            eprintln!(
                "concurrency on {} ({:?}), {}…",
                info.name, info.backend, shape.name
            );
            concurrency.push(concurrency::measure(ctx, shape, 4 * repeat.reps)?);
        }
    }

    print_report(&ceilings, &records);
    concurrency::print(&concurrency);
    let tuning: Vec<TuningRecord> = contexts
        .iter()
        .flat_map(|ctx| {
            let adapter = AdapterRecord::new(ctx.adapter_info());
            ctx.tuning()
                .into_iter()
                .map(move |t| TuningRecord::new(&adapter, &t))
        })
        .collect();
    print_tuning(&tuning);
    let report = Report {
        version: env!("CARGO_PKG_VERSION").to_string(),
        quick: args.quick,
        ceilings,
        records,
        concurrency,
        tuning,
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::encode(format!("`{}`", path.display()), e))?;
        wgpu_lstm::io::write_atomic(path, &text)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::chart::draw(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        return Err(Error::CheckFailed(format!(
            "{} GPU run(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(())
}

/// Every step kernel of `shape` on `ctx` with weights stored as `dtype` in `storage`, each checked against
/// the CPU and timed; the faster one is marked chosen. Float16 weights are checked against the
/// reference engine on the same rounded weights, and their error reported against `cpu`'s
/// float32 ones.
fn gpu_records(
    ctx: &GpuContext,
    shape: &BenchShape,
    weights: &Weights,
    cpu: &CpuModel,
    x: &ndarray::Array3<f32>,
    repeat: Repeat,
    (dtype, storage): (Dtype, Storage),
) -> Result<Vec<Record>, Error> {
    let info = ctx.adapter_info();
    let model = GpuModel::upload_with(ctx, weights, &dtype.upload(storage))?;
    let rounded =
        (dtype != Dtype::F32).then(|| CpuModel::reference(weights.rounded(dtype.weights())));
    let mut out: Vec<Record> = Vec::new();
    for variant in StepVariant::ALL {
        let options = ForwardOptions::default().variant(variant).timing(true);
        let input = wgpu_lstm::Input::new(x.view());
        let forward = || model.forward_with(&input, &options);
        let (got, stats) = forward()?;
        let (err, ok) = match &rounded {
            None => bench::check_output(&got, cpu, x)?,
            Some(exact) => (
                bench::check_output(&got, cpu, x)?.0,
                bench::check_output(&got, exact, x)?.1,
            ),
        };
        if stats.variant != variant {
            eprintln!(
                "  {} ({:?}): {} kernel not possible here, skipped",
                info.name,
                info.backend,
                variant.name()
            );
            continue;
        }
        if !ok {
            return Err(Error::CheckFailed(format!(
                "{} kernel: result differs from the cpu reference by {err:e}",
                variant.name()
            )));
        }
        eprintln!("  {} ({:?}) {}…", info.name, info.backend, variant.name());
        for _ in 0..repeat.warmup {
            forward()?;
        }
        let before = live_objects(ctx);
        let mut device_ms = Vec::new();
        let t = bench::time(
            Repeat {
                warmup: 0,
                ..repeat
            },
            || {
                device_ms.extend(forward()?.1.device_ms);
                Ok(())
            },
        )?;
        let mut r = Record::new(shape, "gpu", variant.name(), repeat.warmup, &t);
        r.adapter = Some(AdapterRecord::new(info));
        r.weights = Some(match model.weights_storage() {
            WeightsStorage::Texture => format!("{} texture", dtype.weights().name()),
            _ => dtype.weights().name().to_string(),
        });
        device_ms.sort_by(f64::total_cmp);
        r.device_ms =
            (!device_ms.is_empty()).then(|| bench::Timings { runs_ms: device_ms }.median());
        r.dispatches = Some(stats.dispatches);
        r.submits = Some(stats.submits);
        r.gemm = Some(stats.gemm.name().to_string());
        r.batch_tile = Some(stats.batch_tile);
        r.objects_created_in_timed_loop = Some(live_objects(ctx) - before);
        r.max_abs_err = Some(err);
        r.peak_bytes = Some(peak_bytes_of(|| {
            model.forward(&wgpu_lstm::Input::new(x.view())).map(|_| ())
        })?);
        out.push(r);
    }
    let best = out
        .iter()
        .map(|r| r.median_ms)
        .fold(f64::INFINITY, f64::min);
    for r in &mut out {
        r.chosen = r.median_ms == best;
    }
    Ok(out)
}

/// The kernel variants each adapter chose by measurement, and the time that took.
fn print_tuning(tuning: &[TuningRecord]) {
    if tuning.is_empty() {
        return;
    }
    println!("kernel variants chosen by measurement (ms per product of the class's timed shape):");
    for t in tuning {
        let candidates: Vec<String> = t
            .candidates
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.3}"))
            .collect();
        println!(
            "  {} {}: {} {}: {} [{}] (spent {:.0} ms{})",
            t.adapter.backend.to_lowercase(),
            t.adapter.name,
            t.family,
            t.class,
            t.chosen,
            candidates.join(", "),
            t.spent_ms,
            if t.from_cache {
                ", from the cache file"
            } else {
                ""
            }
        );
    }
    let spent: f64 = tuning.iter().map(|t| t.spent_ms).sum();
    println!("  time spent choosing: {spent:.0} ms in all");
}

fn print_report(ceilings: &[CeilingRecord], records: &[Record]) {
    for c in ceilings {
        let dev = c
            .device_gflops
            .map_or(String::new(), |g| format!(" (device time: {g:.2})"));
        println!(
            "GEMM ceiling, {} ({}), {}: {n}×{n}×{n}: {:.2} GFLOP/s{dev}",
            c.adapter.name,
            c.adapter.backend,
            c.variant,
            c.gflops,
            n = c.n
        );
    }
    println!(
        "{:<6} {:<30} {:<18} {:>10} {:>9} {:>10} {:>8} {:>7} {:>10} {:>8} {:>6} {:>5} {:>8}",
        "shape",
        "device",
        "variant",
        "median ms",
        "peak MiB",
        "device ms",
        "GFLOP/s",
        "%GEMM",
        "B·T/s",
        "vs CPU",
        "disp",
        "objs",
        "max err"
    );
    for r in records {
        let device = match &r.adapter {
            Some(a) => format!("{} {}", a.backend.to_lowercase(), a.name),
            None => format!("cpu {} threads", r.threads.unwrap_or(1)),
        };
        let device: String = device.chars().take(30).collect();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<6} {:<30} {:<18} {:>10.3} {:>9} {:>10} {:>8.2} {:>7} {:>10.0} {:>8} {:>6} {:>5} {:>8}",
            r.shape,
            device,
            format!(
                "{}{}{}{}",
                r.variant,
                r.batch_tile.map_or(String::new(), |t| format!(" bt{t}")),
                r.weights
                    .as_deref()
                    .filter(|w| *w != "f32")
                    .map_or(String::new(), |w| format!(" {w}")),
                if r.chosen && r.adapter.is_some() {
                    "*"
                } else {
                    ""
                }
            ),
            r.median_ms,
            opt(r.peak_bytes.map(|b| format!("{:.2}", b as f64 / (1 << 20) as f64))),
            opt(r.device_ms.map(|v| format!("{v:.3}"))),
            r.gflops,
            opt(r.fraction_of_gemm.map(|f| format!("{:.0}%", f * 100.0))),
            r.batch_steps_per_s,
            opt(r.speedup_vs_cpu.map(|s| format!("{s:.2}x"))),
            opt(r.dispatches.map(|d| d.to_string())),
            opt(r.objects_created_in_timed_loop.map(|d| d.to_string())),
            opt(r.max_abs_err.map(|e| format!("{e:.1e}"))),
        );
    }
    println!("(* the faster GPU kernel of each shape and adapter; objs: GPU objects created in the timed loop;");
    println!(" peak MiB: host memory allocated during one forward, GPU buffers not included)");
}
