//! What a benchmark run does, from its arguments: repetitions, weight types and storages,
//! the GEMM ceiling's plan; and every step of it planned for the progress estimate, each with
//! a rough prior guess of its time that the measured steps then correct.

use wgpu_lstm::bench::{BenchShape, Repeat};
use wgpu_lstm::{CpuModel, GpuContext};

use super::ceiling::{self, CeilingPlan};
use super::progress::Progress;
use super::BenchArgs;
use crate::gpu_args::{Dtype, Storage};
use crate::DeviceChoice;

/// The settings of a benchmark run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often each forward runs.
    pub repeat: Repeat,
    /// How the GEMM ceiling is measured.
    pub ceiling: CeilingPlan,
    /// Every step kernel, not only the tuner's choice.
    pub exhaustive: bool,
    /// Whether the CPU runs.
    pub cpu: bool,
    /// Threads of the CPU engine.
    pub threads: usize,
    /// Weight types of each shape: on the GPU f32, f16 and i8, on the CPU f32 and i8.
    pub dtypes: Vec<Dtype>,
    /// Weight storages of each GPU shape.
    pub storages: Vec<Storage>,
}

impl Settings {
    /// The settings `args` ask for.
    pub fn new(args: &BenchArgs) -> Self {
        let repeat = if args.quick {
            Repeat::QUICK
        } else {
            Repeat::FULL
        };
        let ceiling = CeilingPlan {
            reps: if args.exhaustive && !args.quick {
                10
            } else {
                3
            },
            rounds: if args.exhaustive { 2 } else { 1 },
            both_storages: args.exhaustive,
            max_kernel_s: (!args.exhaustive).then_some(1.0),
        };
        let storages = match (&args.weights_storage[..], args.exhaustive) {
            ([], false) => vec![Storage::Auto],
            ([], true) => vec![Storage::Buffer, Storage::Texture],
            (given, _) => given.to_vec(),
        };
        Settings {
            repeat,
            ceiling,
            exhaustive: args.exhaustive,
            cpu: args.device != DeviceChoice::Gpu,
            threads: args.threads.unwrap_or_else(CpuModel::default_threads),
            dtypes: args.weights_dtype.clone(),
            storages,
        }
    }

    /// Every (weight type, storage) each GPU shape runs with, in order (int8 weights only in
    /// a buffer: they are never put in a texture).
    pub fn weight_types(&self) -> Vec<(Dtype, Storage)> {
        self.dtypes
            .iter()
            .flat_map(|&d| {
                self.storages
                    .iter()
                    .filter(move |&&s| d != Dtype::I8 || s != Storage::Texture)
                    .map(move |&s| (d, s))
            })
            .collect()
    }

    /// The weight types each CPU shape runs with, in order: f32 always (the baseline of the
    /// others), then i8 if asked for (f16 is a GPU storage type).
    pub fn cpu_types(&self) -> Vec<Dtype> {
        if !self.cpu {
            return Vec::new();
        }
        let mut types = vec![Dtype::F32];
        if self.dtypes.contains(&Dtype::I8) {
            types.push(Dtype::I8);
        }
        types
    }

    /// Plans every step of the run in `progress`, in the order `run_bench` takes them: the
    /// ceilings, then per shape the CPU and each adapter × weight type × storage, then the
    /// concurrency sections.
    pub fn plan(
        &self,
        progress: &mut Progress,
        shapes: &[BenchShape],
        contexts: &[GpuContext],
        concurrency: Option<&BenchShape>,
    ) {
        for ctx in contexts {
            let products = self.ceiling.products(ctx) as f64;
            let n = ceiling::N as f64;
            let speed = GpuGuess::of(ctx);
            progress.plan(
                format!(
                    "GEMM ceiling on {}: {}",
                    adapter(ctx),
                    ceiling::describe(ctx, self.ceiling)
                ),
                vec![format!("ceiling:{}", adapter(ctx)), adapter_group(ctx)],
                products * 2.0 * n * n * n / speed.flops,
            );
        }
        for shape in shapes {
            for dtype in self.cpu_types() {
                progress.plan(
                    format!(
                        "{}: cpu, {} threads{}",
                        describe(shape),
                        self.threads,
                        if dtype == Dtype::I8 { ", int8" } else { "" }
                    ),
                    vec!["lane:cpu".into()],
                    self.guess_cpu_s(shape),
                );
            }
            for ctx in contexts {
                let speed = GpuGuess::of(ctx);
                for (dtype, storage) in self.weight_types() {
                    let lane = format!(
                        "{}, {} weights{}",
                        adapter(ctx),
                        dtype.weights().name(),
                        match storage {
                            Storage::Auto => String::new(),
                            s => format!(" in a {}", storage_name(s)),
                        }
                    );
                    progress.plan(
                        format!(
                            "{}: {lane}{}",
                            describe(shape),
                            if self.exhaustive {
                                ", every step kernel"
                            } else {
                                ""
                            }
                        ),
                        vec![format!("lane:{lane}"), adapter_group(ctx), "gpu".into()],
                        self.guess_gpu_s(shape, speed),
                    );
                }
            }
        }
        if let Some(shape) = concurrency {
            let forwards = 8 * self.repeat.reps + 100;
            for ctx in contexts {
                progress.plan(
                    format!("concurrency on {}, {}", adapter(ctx), shape.name),
                    vec![
                        format!("concurrency:{}", adapter(ctx)),
                        "concurrency".into(),
                        adapter_group(ctx),
                    ],
                    forwards as f64 * GpuGuess::of(ctx).forward_s(shape),
                );
            }
        }
    }

    /// A guess of the seconds `shape` takes on the CPU: its warm-up and timed runs.
    fn guess_cpu_s(&self, shape: &BenchShape) -> f64 {
        self.timed_s(shape.flops() / GUESS_CPU_FLOPS)
    }

    /// A guess of the seconds one GPU step on `shape` takes: the CPU result it is checked
    /// against, its warm-up and timed runs, and the tuner's trials (every step kernel and
    /// batch tile, and the GEMMs, on the first weight type: about 8 forwards, 4 a step on
    /// average) or, exhaustive, every step kernel timed.
    fn guess_gpu_s(&self, shape: &BenchShape, speed: GpuGuess) -> f64 {
        let forward = speed.forward_s(shape);
        let cpu_check = shape.flops() / GUESS_CPU_FLOPS;
        if self.exhaustive {
            6.0 * (self.timed_s(forward) + forward) + cpu_check
        } else {
            self.timed_s(forward) + 4.0 * forward + cpu_check
        }
    }

    /// Seconds of the warm-up and timed runs of a forward of `forward` seconds under
    /// `self.repeat`.
    fn timed_s(&self, forward: f64) -> f64 {
        let r = self.repeat;
        let min = r.min_time.as_secs_f64();
        let warmup = if r.warmup == 0 {
            0.0
        } else {
            (r.warmup as f64 * forward).max(min / 5.0)
        };
        warmup + (r.reps.max(1) as f64 * forward).max(min)
    }
}

/// Guessed FLOP/s of the CPU engine.
const GUESS_CPU_FLOPS: f64 = 10e9;

/// A guess of an adapter's speed before anything is measured on it (the measured steps
/// correct it).
#[derive(Debug, Clone, Copy)]
struct GpuGuess {
    /// FLOP/s on the suite's forwards and the GEMM ceiling.
    flops: f64,
    /// Seconds per dispatched time step and layer.
    step_s: f64,
}

impl GpuGuess {
    /// A software adapter (lavapipe, llvmpipe, WARP) runs on the CPU's cores; any other is
    /// a GPU.
    fn of(ctx: &GpuContext) -> Self {
        if ctx.adapter_info().device_type == wgpu::DeviceType::Cpu {
            GpuGuess {
                flops: 8e9,
                step_s: 1e-4,
            }
        } else {
            GpuGuess {
                flops: 500e9,
                step_s: 2e-5,
            }
        }
    }

    /// One GPU forward's seconds on `shape`: its arithmetic, or where more, one dispatch per
    /// time step and layer.
    fn forward_s(self, shape: &BenchShape) -> f64 {
        let serial = (shape.steps * shape.spec.num_layers) as f64;
        (shape.flops() / self.flops).max(serial * self.step_s)
    }
}

/// `edge (lstm in=40 hidden=128 layers=1 batch=1 steps=100)`: a shape for the progress line.
fn describe(shape: &BenchShape) -> String {
    format!(
        "{} ({} in={} hidden={} layers={}{} batch={} steps={})",
        shape.name,
        shape.spec.cell.name(),
        shape.spec.input_size,
        shape.spec.hidden_size,
        shape.spec.num_layers,
        if shape.spec.bidirectional {
            " bidir"
        } else {
            ""
        },
        shape.batch,
        shape.steps
    )
}

/// `vulkan llvmpipe (LLVM …)`: an adapter for the progress line.
fn adapter(ctx: &GpuContext) -> String {
    let info = ctx.adapter_info();
    format!(
        "{} {}",
        format!("{:?}", info.backend).to_lowercase(),
        info.name
    )
}

/// The progress group of every step on `ctx`'s adapter.
fn adapter_group(ctx: &GpuContext) -> String {
    format!("adapter:{}", adapter(ctx))
}

/// `buffer` or `texture`.
fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::Auto => "auto",
        Storage::Buffer => "buffer",
        Storage::Texture => "texture",
    }
}
