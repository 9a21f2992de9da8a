//! `wgpu-lstm bench`: the GPU-versus-CPU benchmark table.

use wgpu_lstm::bench::{self, BenchShape};
use wgpu_lstm::{ContextOptions, CpuModel, Error, GpuContext, GpuModel, Weights};

use crate::{BenchArgs, DeviceChoice};

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
    let (warmup, reps) = if args.quick { (1, 3) } else { (2, 10) };
    let gpu = if args.device != DeviceChoice::Cpu {
        let ctx = GpuContext::new(&ContextOptions::default())?;
        eprintln!(
            "gpu adapter: {} ({:?}, {:?})",
            ctx.adapter_info().name,
            ctx.adapter_info().device_type,
            ctx.adapter_info().backend
        );
        Some(ctx)
    } else {
        None
    };
    println!(
        "{:<7} {:<34} {:<10} {:>10} {:>9} {:>12} {:>8} {:>10} {:>9}",
        "shape",
        "device",
        "variant",
        "median ms",
        "GFLOP/s",
        "B·T/s",
        "vs CPU",
        "dispatches",
        "max err"
    );
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
        let cpu = CpuModel::new(weights.clone());
        let cpu_ms = if args.device != DeviceChoice::Gpu {
            let t = bench::measure(&cpu, &x, warmup, reps)?;
            print_row(shape, "cpu", "reference", t.median(), None, None, None);
            Some(t.median())
        } else {
            None
        };
        if let Some(ctx) = &gpu {
            let model = GpuModel::upload(ctx, &weights)?;
            let (err, ok) = bench::check(&model, &cpu, &x)?;
            if !ok {
                return Err(Error::Gpu {
                    during: format!("benchmark check of `{}`", shape.name),
                    message: format!("gpu result differs from the cpu reference by {err:e}"),
                });
            }
            let t = bench::measure(&model, &x, warmup, reps)?;
            let device = format!("gpu {}", ctx.adapter_info().name);
            print_row(
                shape,
                &device,
                "stepwise",
                t.median(),
                cpu_ms,
                Some(model.last_forward_dispatches()),
                Some(err),
            );
        }
    }
    Ok(())
}

fn print_row(
    shape: &BenchShape,
    device: &str,
    variant: &str,
    median_ms: f64,
    cpu_ms: Option<f64>,
    dispatches: Option<usize>,
    err: Option<f32>,
) {
    let gflops = shape.flops() / (median_ms * 1e-3) / 1e9;
    let seq_steps = (shape.batch * shape.steps) as f64 / (median_ms * 1e-3);
    let speedup = cpu_ms.map_or("-".to_string(), |c| format!("{:.2}x", c / median_ms));
    let dispatches = dispatches.map_or("-".to_string(), |d| d.to_string());
    let err = err.map_or("-".to_string(), |e| format!("{e:.1e}"));
    let device: String = device.chars().take(34).collect();
    println!(
        "{:<7} {:<34} {:<10} {:>10.3} {:>9.2} {:>12.0} {:>8} {:>10} {:>9}",
        shape.name, device, variant, median_ms, gflops, seq_steps, speedup, dispatches, err
    );
}
