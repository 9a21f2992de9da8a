//! The benchmark's report: one record per shape × device × variant, the adapters' GEMM
//! ceilings and concurrency figures, serialised as JSON; and the GPU object count they use.

use serde::Serialize;
use wgpu_lstm::bench::{BenchShape, Timings};
use wgpu_lstm::GpuContext;

/// One timed shape on one device and kernel variant: a row of the table and a record of the
/// JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Shape name.
    pub shape: String,
    /// `lstm`, `gru`, …
    pub cell: String,
    /// Input features.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Two directions.
    pub bidirectional: bool,
    /// Batch.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
    /// `cpu` or `gpu`.
    pub device: String,
    /// The adapter, for GPU records.
    pub adapter: Option<AdapterRecord>,
    /// `fast` (CPU), or the GPU step kernel that ran (`stepwise`, `sequence-wide`, …).
    pub variant: String,
    /// Whether this is the forward a user gets: the tuner's choice (with `--exhaustive`, the
    /// fastest step kernel of its device and weight type); always true for the CPU.
    pub chosen: bool,
    /// Floating-point operations of one forward.
    pub flops: f64,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs.
    pub reps: usize,
    /// Fastest run, end to end (for the GPU: input upload, compute, readback).
    pub min_ms: f64,
    /// Median run, end to end.
    pub median_ms: f64,
    /// Slowest run, end to end.
    pub max_ms: f64,
    /// Median device time of the compute pass from timestamp queries, where available.
    pub device_ms: Option<f64>,
    /// `flops / median`.
    pub gflops: f64,
    /// Sequences × steps per second.
    pub batch_steps_per_s: f64,
    /// CPU median / this median.
    pub speedup_vs_cpu: Option<f64>,
    /// This record's GFLOP/s over the adapter's GEMM ceiling from the same run.
    pub fraction_of_gemm: Option<f64>,
    /// Compute dispatches of one forward.
    pub dispatches: Option<usize>,
    /// Queue submits of one forward.
    pub submits: Option<usize>,
    /// Change in live GPU buffers, bind groups and pipelines over the timed runs (0: nothing
    /// was created in the timed loop).
    pub objects_created_in_timed_loop: Option<i64>,
    /// Worst |GPU − CPU| over y, h_n and c_n.
    pub max_abs_err: Option<f32>,
    /// The GEMM kernel the GPU forward ran.
    pub gemm: Option<String>,
    /// Batch rows per invocation of the GPU step kernel.
    pub batch_tile: Option<usize>,
    /// How the GPU stored the weights (`f32`, `f16`, followed by ` texture` when in a
    /// texture); `max_abs_err` is against the CPU with float32 weights either way.
    pub weights: Option<String>,
    /// Threads of the CPU engine.
    pub threads: Option<usize>,
    /// Peak host memory allocated during one forward (above what was allocated before it),
    /// in bytes, where the caller measures it (the `wgpu-lstm` binary counts its allocations).
    /// For the GPU this is host memory only, not device buffers.
    pub peak_bytes: Option<u64>,
}

/// What identifies an adapter in a report.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterRecord {
    /// Adapter name.
    pub name: String,
    /// Backend.
    pub backend: String,
    /// Device type.
    pub device_type: String,
    /// Driver and its version.
    pub driver: String,
}

impl AdapterRecord {
    /// From wgpu's adapter info.
    pub fn new(info: &wgpu::AdapterInfo) -> Self {
        AdapterRecord {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

/// An adapter's GEMM ceiling in a report.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingRecord {
    /// The adapter.
    pub adapter: AdapterRecord,
    /// The GEMM kernel variant.
    pub variant: String,
    /// Matrix size of the `n × n × n` products.
    pub n: usize,
    /// Products timed in one submit.
    pub reps: usize,
    /// GFLOP/s from wall time.
    pub gflops: f64,
    /// GFLOP/s from timestamps, where available.
    pub device_gflops: Option<f64>,
}

/// A whole benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The crate version.
    pub version: String,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Whether `--exhaustive` was given (every step kernel, not only the tuner's choice).
    pub exhaustive: bool,
    /// GEMM ceilings, one per adapter.
    pub ceilings: Vec<CeilingRecord>,
    /// One record per shape × device × variant.
    pub records: Vec<Record>,
    /// One model shared by threads, per adapter.
    pub concurrency: Vec<ConcurrencyRecord>,
    /// Kernel variants chosen by measurement, per adapter.
    pub tuning: Vec<TuningRecord>,
}

/// One kernel-variant choice of an adapter's tuner.
#[derive(Debug, Clone, Serialize)]
pub struct TuningRecord {
    /// The adapter.
    pub adapter: AdapterRecord,
    /// Kernel family.
    pub family: String,
    /// Shape class (rows × inner dimension × vec4 columns, powers of two).
    pub class: String,
    /// The variant chosen.
    pub chosen: String,
    /// Each candidate and its time per product in milliseconds.
    pub candidates: Vec<(String, f64)>,
    /// Time spent choosing, in milliseconds.
    pub spent_ms: f64,
    /// Read from the cache file instead of measured.
    pub from_cache: bool,
}

impl TuningRecord {
    pub fn new(adapter: &AdapterRecord, t: &wgpu_lstm::TuneRecord) -> Self {
        TuningRecord {
            adapter: adapter.clone(),
            family: t.family.to_string(),
            class: t.class.clone(),
            chosen: t.chosen.to_string(),
            candidates: t
                .candidates
                .iter()
                .map(|(n, ms)| (n.to_string(), *ms))
                .collect(),
            spent_ms: t.spent_ms,
            from_cache: t.from_cache,
        }
    }
}

impl Record {
    /// A record of `shape` with timings `t`, the throughput fields derived.
    pub fn new(
        shape: &BenchShape,
        device: &str,
        variant: &str,
        warmup: usize,
        t: &Timings,
    ) -> Self {
        let median = t.median();
        Record {
            shape: shape.name.to_string(),
            cell: shape.spec.cell.name().to_string(),
            input: shape.spec.input_size,
            hidden: shape.spec.hidden_size,
            layers: shape.spec.num_layers,
            bidirectional: shape.spec.bidirectional,
            batch: shape.batch,
            steps: shape.steps,
            device: device.to_string(),
            adapter: None,
            variant: variant.to_string(),
            chosen: true,
            flops: shape.flops(),
            warmup,
            reps: t.runs_ms.len(),
            min_ms: t.min(),
            median_ms: median,
            max_ms: t.max(),
            device_ms: None,
            gflops: shape.flops() / (median * 1e-3) / 1e9,
            batch_steps_per_s: (shape.batch * shape.steps) as f64 / (median * 1e-3),
            speedup_vs_cpu: None,
            fraction_of_gemm: None,
            dispatches: None,
            submits: None,
            objects_created_in_timed_loop: None,
            max_abs_err: None,
            gemm: None,
            batch_tile: None,
            weights: None,
            threads: None,
            peak_bytes: None,
        }
    }
}

/// One adapter's concurrency figures.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyRecord {
    /// The adapter.
    pub adapter: AdapterRecord,
    /// The suite shape the forwards run.
    pub shape: String,
    /// Forwards timed at each thread count.
    pub forwards: usize,
    /// Forwards per second, one thread.
    pub one_thread_per_s: f64,
    /// Forwards per second, 4 threads on the same model.
    pub four_threads_per_s: f64,
    /// `four_threads_per_s / one_thread_per_s`.
    pub speedup: f64,
    /// Forwards of random lengths in `1..=steps` on a fresh model.
    pub random_forwards: usize,
    /// Distinct input lengths among them.
    pub distinct_lengths: usize,
    /// Live GPU buffers, bind groups and pipelines created over those forwards (pipelines
    /// compiled on first use included).
    pub objects_created: i64,
    /// Workspaces the model created over those forwards.
    pub workspaces_created: usize,
}

/// Live GPU buffers + bind groups + compute pipelines (process-wide wgpu counters).
pub fn live_objects(ctx: &GpuContext) -> i64 {
    let c = ctx.device().get_internal_counters().hal;
    (c.buffers.read() + c.bind_groups.read() + c.compute_pipelines.read()) as i64
}
