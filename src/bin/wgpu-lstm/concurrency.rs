//! The benchmark's concurrency section: one model shared by several threads. Measures the
//! throughput of 4 threads against 1 on the same forwards, and the GPU objects a stream of
//! forwards of random lengths creates (bounded by the model's workspace pool, not by the
//! number of distinct lengths).

use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};
use wgpu_lstm::bench::BenchShape;
use wgpu_lstm::{Error, Forward, GpuContext, GpuModel, Input, Weights};

use crate::report::{live_objects, AdapterRecord, ConcurrencyRecord};

/// Threads of the concurrent measurement.
pub const THREADS: usize = 4;
/// Forwards of random lengths in the object count.
const RANDOM_FORWARDS: usize = 100;

/// Measures `shape` on `ctx`: `forwards` forwards on 1 thread, then the same on 4 threads.
pub fn measure(
    ctx: &GpuContext,
    shape: &BenchShape,
    forwards: usize,
) -> Result<ConcurrencyRecord, Error> {
    let weights = Weights::random(&shape.spec, 1)?;
    let x = shape.input(2);
    let model = GpuModel::upload(ctx, &weights)?;
    let forward = || model.forward(&Input::new(x.view())).map(|_| ());
    forward()?; // warm-up: pipelines and the workspace
    let start = Instant::now();
    for _ in 0..forwards {
        forward()?;
    }
    let one = forwards as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|k| {
                let forward = &forward;
                scope.spawn(move || (k..forwards).step_by(THREADS).try_for_each(|_| forward()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("a benchmark thread panicked".into())))
            })
            .collect()
    });
    let four = forwards as f64 / start.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;

    // A fresh model, forwards of random lengths: what do they create?
    let model = GpuModel::upload(ctx, &weights)?;
    let mut rng = StdRng::seed_from_u64(3);
    let lengths: Vec<usize> = (0..RANDOM_FORWARDS)
        .map(|_| rng.random_range(1..=shape.steps))
        .collect();
    let before = live_objects(ctx);
    for &t in &lengths {
        let xt = x.slice(ndarray::s![..t, .., ..]);
        model.forward(&Input::new(xt))?;
    }
    let objects_created = live_objects(ctx) - before;
    let mut distinct = lengths.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Ok(ConcurrencyRecord {
        adapter: AdapterRecord::new(ctx.adapter_info()),
        shape: shape.name.to_string(),
        forwards,
        one_thread_per_s: one,
        four_threads_per_s: four,
        speedup: four / one,
        random_forwards: RANDOM_FORWARDS,
        distinct_lengths: distinct.len(),
        objects_created,
        workspaces_created: model.workspaces_created(),
    })
}

/// Prints the section's table.
pub fn print(records: &[ConcurrencyRecord]) {
    if records.is_empty() {
        return;
    }
    println!(
        "one model shared by threads ({THREADS} threads against 1; {RANDOM_FORWARDS} forwards of random lengths on a fresh model):"
    );
    println!(
        "{:<30} {:<6} {:>12} {:>12} {:>8} {:>9} {:>8} {:>11}",
        "device",
        "shape",
        "1 thread/s",
        "4 threads/s",
        "speedup",
        "lengths",
        "objects",
        "workspaces"
    );
    for r in records {
        let device = format!("{} {}", r.adapter.backend.to_lowercase(), r.adapter.name);
        let device: String = device.chars().take(30).collect();
        println!(
            "{:<30} {:<6} {:>12.1} {:>12.1} {:>7.2}x {:>9} {:>8} {:>11}",
            device,
            r.shape,
            r.one_thread_per_s,
            r.four_threads_per_s,
            r.speedup,
            r.distinct_lengths,
            r.objects_created,
            r.workspaces_created
        );
    }
}
