//! criterion benches of one forward per suite shape, GPU and CPU side by side.
//!
//! `cargo bench --bench forward` (set `WGPU_BACKEND` to pick a backend). Without an adapter the
//! GPU entries are left out with a message; the CPU entries always run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_lstm::bench::default_suite;
use wgpu_lstm::{ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, Weights};

fn forward(c: &mut Criterion) {
    let ctx = match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            eprintln!("no GPU entries: {e}");
            None
        }
    };
    for shape in default_suite() {
        let weights = Weights::random(&shape.spec, 1).expect("valid suite spec");
        let x = shape.input(2);
        let mut group = c.benchmark_group(shape.name);
        group.sample_size(10);
        group.throughput(Throughput::Elements((shape.batch * shape.steps) as u64));
        let cpu = CpuModel::new(weights.clone());
        group.bench_function(BenchmarkId::new("cpu", shape.name), |b| {
            b.iter(|| cpu.forward(&Input::new(x.view())).expect("cpu forward"))
        });
        if let Some(ctx) = &ctx {
            let gpu = GpuModel::upload(ctx, &weights).expect("upload");
            group.bench_function(BenchmarkId::new("gpu", shape.name), |b| {
                b.iter(|| gpu.forward(&Input::new(x.view())).expect("gpu forward"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
