//! The GPU-versus-CPU benchmark: named shapes, timing, and the checks that go with it.
//!
//! Every GPU result timed here is also compared with the CPU reference, so a fast wrong
//! kernel cannot produce a good-looking table.

use std::time::Instant;

use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::compare::{compare, Tolerance};
use crate::error::Result;
use crate::{Forward, Input, RnnSpec};

/// One benchmark shape.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchShape {
    /// Short name, used by `--suite`.
    pub name: &'static str,
    /// The model.
    pub spec: RnnSpec,
    /// Batch size.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
}

impl BenchShape {
    /// Floating-point operations of one forward.
    pub fn flops(&self) -> f64 {
        self.spec.forward_flops(self.steps, self.batch)
    }

    /// A seeded random input `[T, B, I]` in `[−1, 1]`.
    pub fn input(&self, seed: u64) -> Array3<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array3::from_shape_simple_fn((self.steps, self.batch, self.spec.input_size), || {
            rng.random_range(-1.0f32..=1.0)
        })
    }
}

/// The default suite: a batch-1 edge model, a batched layer, a deep stack, a bidirectional
/// stack, a batched GRU.
pub fn default_suite() -> Vec<BenchShape> {
    vec![
        BenchShape {
            name: "edge",
            spec: RnnSpec::lstm(40, 128),
            batch: 1,
            steps: 100,
        },
        BenchShape {
            name: "batch",
            spec: RnnSpec::lstm(128, 256),
            batch: 64,
            steps: 50,
        },
        BenchShape {
            name: "deep",
            spec: RnnSpec::lstm(512, 512).layers(2),
            batch: 16,
            steps: 50,
        },
        BenchShape {
            name: "bidir",
            spec: RnnSpec::lstm(80, 256).layers(2).bidirectional(true),
            batch: 8,
            steps: 200,
        },
        BenchShape {
            name: "gru",
            spec: RnnSpec::gru(128, 256),
            batch: 64,
            steps: 50,
        },
    ]
}

/// Timings of repeated runs, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// Every timed run, sorted ascending.
    pub runs_ms: Vec<f64>,
}

impl Timings {
    /// Fastest run.
    pub fn min(&self) -> f64 {
        self.runs_ms[0]
    }
    /// Median run.
    pub fn median(&self) -> f64 {
        let n = self.runs_ms.len();
        if n % 2 == 1 {
            self.runs_ms[n / 2]
        } else {
            0.5 * (self.runs_ms[n / 2 - 1] + self.runs_ms[n / 2])
        }
    }
    /// Slowest run.
    pub fn max(&self) -> f64 {
        self.runs_ms[self.runs_ms.len() - 1]
    }
}

/// Runs `f` `warmup` times untimed, then `reps` (at least 1) times timed.
pub fn time(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timings> {
    for _ in 0..warmup {
        f()?;
    }
    let mut runs_ms = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        runs_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    runs_ms.sort_by(f64::total_cmp);
    Ok(Timings { runs_ms })
}

/// One measured forward: end to end (input upload, compute, readback) for the GPU.
pub fn measure(
    model: &dyn Forward,
    x: &Array3<f32>,
    warmup: usize,
    reps: usize,
) -> Result<Timings> {
    time(warmup, reps, || {
        model.forward(&Input::new(x.view())).map(|_| ())
    })
}

/// Worst absolute error of `model` against `reference` on `x` over y, h_n and c_n, and whether
/// it is within [`Tolerance::GPU_VS_CPU`].
pub fn check(model: &dyn Forward, reference: &dyn Forward, x: &Array3<f32>) -> Result<(f32, bool)> {
    let a = model.forward(&Input::new(x.view()))?;
    let e = reference.forward(&Input::new(x.view()))?;
    let mut worst = 0.0f32;
    let mut ok = true;
    let pairs = [(&e.y, &a.y), (&e.h_n, &a.h_n)];
    let cn = e.c_n.as_ref().zip(a.c_n.as_ref());
    for (ev, av) in pairs.into_iter().chain(cn) {
        let c = compare(ev.view(), av.view(), Tolerance::GPU_VS_CPU)?;
        worst = worst.max(c.max_abs_err);
        ok &= c.ok();
    }
    Ok((worst, ok))
}

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
    /// `fast` or `reference` (CPU), `stepwise` or `sequence` (GPU).
    pub variant: String,
    /// Whether this variant is the faster one of its device (always true for the CPU).
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
    /// GEMM ceilings, one per adapter.
    pub ceilings: Vec<CeilingRecord>,
    /// One record per shape × device × variant.
    pub records: Vec<Record>,
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
            threads: None,
            peak_bytes: None,
        }
    }
}
