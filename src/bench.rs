//! The GPU-versus-CPU benchmark: named shapes, timing, and the checks that go with it.
//!
//! Every GPU result timed here is also compared with the CPU reference, so a fast wrong
//! kernel cannot produce a good-looking table.

use std::time::{Duration, Instant};

use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::compare::{compare, Tolerance};
use crate::error::Result;
use crate::spec::RnnSpec;
use crate::tensor::{Forward, Input, Output};

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

/// How many times a measurement runs what it times.
///
/// A forward of a fraction of a millisecond is timed over hundreds of runs, so that one
/// interruption of a shared machine, or a cold cache in the first runs, does not move its
/// median; a forward of a second is timed `reps` times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeat {
    /// Untimed runs first: at least this many, and when it is not zero, on for at least a
    /// fifth of `min_time`.
    pub warmup: usize,
    /// Timed runs: at least this many (and at least 1), then on until `min_time` has passed
    /// in timed runs, at most [`Repeat::MAX_RUNS`].
    pub reps: usize,
    /// The least time spent in timed runs.
    pub min_time: Duration,
}

impl Repeat {
    /// The most timed runs, whatever `min_time` asks for.
    pub const MAX_RUNS: usize = 10_000;
    /// `bench`'s default: 2 warm-up runs, 10 timed, at least half a second timed (hundreds of
    /// runs for a sub-millisecond forward).
    pub const FULL: Repeat = Repeat {
        warmup: 2,
        reps: 10,
        min_time: Duration::from_millis(500),
    };
    /// `bench --quick`: 1 warm-up run, 3 timed, at least a tenth of a second timed.
    pub const QUICK: Repeat = Repeat {
        warmup: 1,
        reps: 3,
        min_time: Duration::from_millis(100),
    };
}

/// Runs `f` as `repeat` says: untimed warm-up runs, then timed runs.
///
/// ```
/// use std::time::Duration;
/// use wgpu_lstm::bench::{time, Repeat};
///
/// let repeat = Repeat { warmup: 1, reps: 5, min_time: Duration::from_millis(2) };
/// let t = time(repeat, || Ok(())).unwrap();
/// assert!(t.runs_ms.len() >= 5 && t.min() <= t.median());
/// ```
pub fn time(repeat: Repeat, mut f: impl FnMut() -> Result<()>) -> Result<Timings> {
    let start = Instant::now();
    let mut done = 0;
    while done < repeat.warmup || (done > 0 && start.elapsed() < repeat.min_time / 5) {
        f()?;
        done += 1;
    }
    let mut runs_ms = Vec::with_capacity(repeat.reps.max(1));
    let mut timed = Duration::ZERO;
    while runs_ms.len() < repeat.reps.max(1)
        || (timed < repeat.min_time && runs_ms.len() < Repeat::MAX_RUNS)
    {
        let start = Instant::now();
        f()?;
        let run = start.elapsed();
        timed += run;
        runs_ms.push(run.as_secs_f64() * 1e3);
    }
    runs_ms.sort_by(f64::total_cmp);
    Ok(Timings { runs_ms })
}

/// One measured forward: end to end (input upload, compute, readback) for the GPU.
pub fn measure(model: &dyn Forward, x: &Array3<f32>, repeat: Repeat) -> Result<Timings> {
    time(repeat, || model.forward(&Input::new(x.view())).map(|_| ()))
}

/// Worst absolute error of `model` against `reference` on `x` over y, h_n and c_n, and whether
/// it is within [`Tolerance::GPU_VS_CPU`].
pub fn check(model: &dyn Forward, reference: &dyn Forward, x: &Array3<f32>) -> Result<(f32, bool)> {
    check_output(&model.forward(&Input::new(x.view()))?, reference, x)
}

/// Worst absolute error of an output `a` computed on `x` against `reference`'s on `x`, and
/// whether it is within [`Tolerance::GPU_VS_CPU`].
pub fn check_output(a: &Output, reference: &dyn Forward, x: &Array3<f32>) -> Result<(f32, bool)> {
    check_against(a, &reference.forward(&Input::new(x.view()))?)
}

/// Worst absolute error of an output `a` against an `expected` one over y, h_n and c_n, and
/// whether it is within [`Tolerance::GPU_VS_CPU`] (for comparing several results with one
/// reference forward).
pub fn check_against(a: &Output, expected: &Output) -> Result<(f32, bool)> {
    let e = expected;
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
