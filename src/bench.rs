//! The GPU-versus-CPU benchmark: named shapes, timing, and the checks that go with it.
//!
//! Every GPU result timed here is also compared with the CPU reference, so a fast wrong
//! kernel cannot produce a good-looking table.

use std::time::Instant;

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
    check_output(&model.forward(&Input::new(x.view()))?, reference, x)
}

/// Worst absolute error of an output `a` computed on `x` against `reference`'s on `x`, and
/// whether it is within [`Tolerance::GPU_VS_CPU`].
pub fn check_output(a: &Output, reference: &dyn Forward, x: &Array3<f32>) -> Result<(f32, bool)> {
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
