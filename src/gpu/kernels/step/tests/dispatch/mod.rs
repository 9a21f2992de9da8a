//! `shaders/step/` on a device, on its own: one layer's steps dispatched as the host dispatches
//! them (the [`Schedule`] of the layer: its step kernel, batch tile, workgroups and parameter
//! blocks; the pipelines `specialization` and `reset_specialization` name), on buffers built
//! here from the layouts `shaders/step/step.wgsl` documents, and every element of `m`, `c`
//! and `mn` checked against a host computation of the same steps in f64.
//!
//! Values. Weights are small integers (±1, ±2, at most 8 in absolute sum per packed lane, so
//! sparse for large hidden sizes), inputs `gx`, `h0`, `c0` and peepholes small integers.
//! - RNN-ReLU: every product, sum and `relu` is an integer below 2²⁴ (|h| ≤ 3 at step 0 grows
//!   at most ×8 + 3 per step: below 2·10⁵ after 5 steps), exact in float32 in any order: the
//!   kernel's results must equal the host's bit for bit.
//! - LSTM, GRU, RNN-tanh: σ and tanh are not exact, and float32 sums round. Each step is
//!   checked against the host's f64 step computed from the `h_{t−1}` the kernel itself wrote
//!   (read back from `m`, where the kernel reads it), so that rounding does not compound
//!   through the recurrence and a tight tolerance holds: `|got − want| ≤ 1e-5 · S`, where S
//!   is 1 plus the absolute values the step summed for that unit (|gx| and Σ|h·w| of its
//!   gates, the LSTM's |c| before and after, scaled by its peepholes, the GRU's |h_{t−1}|,
//!   Σ|(r ⊙ h)·w| of a two-pass GRU's candidate), a relative bound on the sums'
//!   rounding (≤ 9 terms of ≤ 2⁻²⁴ each) and σ/tanh's float32 error (≤ 4·10⁻⁶). An LSTM's
//!   cell state, updated on the host alone, adds its steps' bounds. A read of a wrong weight
//!   or state moves results by about |w·h|, typically 10⁻¹, orders of magnitude beyond the
//!   tolerance. Zeros past a sequence's end and untouched states are checked bit for bit.
//!
//! NaN everywhere the kernel must neither read nor write: the padding lanes of `gx` and of
//! the weights (RNN lanes past H, a GRU's fourth weight lane, the peepholes' fourth), `gx` at
//! time steps past each sequence's length, gaps before and between the step-0 weights, the
//! recurrent weights (with a projection) and the peepholes, before `h0`'s block and the
//! state blocks (`h0_offset`, `state_offset` as for a deeper layer) and after every buffer
//! (`lens` ends in `u32::MAX`). A read outside poisons a result; a write outside shows as a
//! number where NaN must stay (`c` of a GRU or RNN, `mn` of a sequence of length 0).
//!
//! Cases. A software adapter compiles a pipeline in about 1.4 s of CPU time (lavapipe, its
//! shader cache cold), so the cross product of the cell setups (RNN-ReLU, RNN-tanh, LSTM,
//! LSTM with peepholes and a projection, GRU, GRU with its reset gate before the linear part
//! — two passes per step), [`StepVariant::ALL`] and the batch tiles 1..=[`MAX_BATCH_TILE`]
//! (288 pipelines) is sampled: every setup with every variant, the tiles in rotation so that
//! every tile runs and each setup and each variant meets six of the eight (see [`sweep`]):
//! about 40 pipelines. Each variant runs as the host runs it here: the subgroup one only
//! where `supports_subgroups` (else its fallback), a whole-sequence kernel the loop budget
//! does not allow as its stepwise form. The cases on those pipelines take every hidden size
//! × batch × step count of the awkward lists, one and two directions (and one walking
//! backwards), lengths from 0 to the steps, f32 and f16 weights, in buffers and in textures.
//! What is not enumerated (directions, lengths, sizes, values, gaps, which tile meets which
//! variant) comes from a seeded RNG: the seed is printed, and `STEP_KERNEL_SEED=<seed>`
//! repeats a run.

mod case;
mod device;
mod host;

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gpu::context::{ContextOptions, GpuContext};
use crate::gpu::kernels::step::{self, StepVariant, MAX_BATCH_TILE};
use crate::gpu::options::WeightsStorage;
use crate::spec::Direction;
use crate::weights::WeightsDtype;
use case::{Case, DeviceInputs, Inputs, Setup};

/// Hidden sizes, batches and step counts of the awkward-size sweep.
const HIDDEN: [usize; 7] = [1, 3, 5, 17, 33, 65, 129];
const BATCH: [usize; 4] = [1, 3, 7, 9];
const STEPS: [usize; 3] = [1, 2, 5];
/// Tolerance of the non-exact cells, relative to the size of what a step sums (see above).
const TOL: f64 = 1e-5;
/// Largest sum of |w| over k of one packed weight lane.
const LANE_WEIGHT_SUM: i32 = 8;
/// NaN elements (vec4s for `gx` and the weights) after every buffer.
const TAIL: usize = 3;

/// The test binary's context. Without an adapter the tests fail where `CI` is set and say
/// loudly that they did not run otherwise.
fn context() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            let i = ctx.adapter_info();
            eprintln!(
                "step kernel tests run on `{}` ({:?} backend, subgroup kernels: {})",
                i.name,
                i.backend,
                ctx.supports_subgroups()
            );
            Some(ctx)
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set and no adapter: {e}"),
        Err(e) => {
            eprintln!("WARNING: STEP KERNEL TESTS NOT RUN (no adapter): {e}");
            None
        }
    })
    .as_ref()
}

/// The run's seed: `STEP_KERNEL_SEED`, else a fresh one; printed once.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = match std::env::var("STEP_KERNEL_SEED") {
            Ok(s) => s
                .trim()
                .parse()
                .expect("STEP_KERNEL_SEED: an unsigned integer"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        };
        eprintln!("step kernel tests: seed {seed} (STEP_KERNEL_SEED={seed} repeats this run)");
        seed
    })
}

/// One test's RNG: the run's seed and the test's salt.
fn rng(salt: u64) -> StdRng {
    StdRng::seed_from_u64(seed() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs `case` with `variant` on batch tiles of `tile` rows and checks every element of every
/// output.
fn check(ctx: &GpuContext, case: &Case, variant: StepVariant, tile: usize) {
    let inp = Inputs::new(case);
    let dev = DeviceInputs::new(case, &inp);
    let out = device::run(ctx, case, &inp, &dev, variant, tile);
    let want = host::expected(case, &inp, &out.m);
    let mut failures = Vec::new();
    for (name, want, got) in [
        ("m", &want[0], &out.m),
        ("c", &want[1], &out.c),
        ("mn", &want[2], &out.mn),
    ] {
        assert_eq!(want.len(), got.len(), "{name}");
        for (i, (w, &g)) in want.iter().zip(got).enumerate() {
            if !w.holds(g) {
                failures.push((w.order(), name, i, *w, g));
            }
        }
    }
    let Some(&(_, name, i, w, g)) = failures.iter().min_by_key(|f| f.0) else {
        return;
    };
    let (h, dh, b_n) = (inp.h, inp.dirs * inp.h, case.batch);
    let state = inp.gap_state..inp.gap_state + inp.dirs * b_n * h;
    let at = if name == "m" && i < case.steps * b_n * dh {
        let (t, b, d, u) = (i / (b_n * dh), i / dh % b_n, i % dh / h, i % h);
        format!("m[t {t}, b {b}, d {d}, unit {u}]")
    } else if name != "m" && state.contains(&i) {
        let j = i - state.start;
        let (d, b, u) = (j / (b_n * h), j / h % b_n, j % h);
        format!("{name}[d {d}, b {b}, unit {u}]")
    } else {
        format!("{name}[{i}] (outside the result)")
    };
    panic!(
        "seed {}: {case:?}, requested {requested} ({ran} with batch tile {tile} ran): \
         {n} wrong elements, the first {at}: want {w:?}, got {g}",
        seed(),
        requested = variant.name(),
        ran = out.variant.name(),
        tile = out.tile,
        n = failures.len(),
    );
}

/// A pipeline of the sweep: what its specialisation follows.
#[derive(Debug, Clone, Copy)]
struct Key {
    setup: Setup,
    variant: StepVariant,
    /// The batch tile asked for (the cases' batches are at least as large).
    tile: usize,
    /// Reverse (one direction walking backwards: its own pipeline), or either of the others.
    direction: Direction,
    /// A hidden size: the whole-sequence kernel's workgroup follows it.
    hidden: usize,
}

impl Key {
    /// Whether a case of `hidden` units runs on this key's pipeline.
    fn takes(&self, hidden: usize) -> bool {
        let wg = |h| step::sequence_workgroup(&self.setup.spec(h, self.direction));
        !self.variant.is_sequence() || wg(hidden) == wg(self.hidden)
    }

    /// A random hidden size of the awkward list this key's pipeline takes.
    fn hidden(&self, rng: &mut StdRng) -> usize {
        let takes: Vec<usize> = HIDDEN.into_iter().filter(|&h| self.takes(h)).collect();
        pick(rng, &takes)
    }
}

/// Every setup × every variant once, the batch tiles assigned in rotation from a random start
/// (each variant and each setup meets six of the eight tiles), each with a random direction
/// and hidden size: 36 pipelines (and the first passes of the two-pass GRU's four stepwise
/// variants), shared by every test here.
fn sweep() -> Vec<Key> {
    const DIRECTIONS: [Direction; 3] = [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ];
    let mut rng = rng(0);
    let start = rng.random_range(0..MAX_BATCH_TILE);
    let mut keys = Vec::new();
    for (s, setup) in Setup::ALL.into_iter().enumerate() {
        for (v, variant) in StepVariant::ALL.into_iter().enumerate() {
            keys.push(Key {
                setup,
                variant,
                tile: (start + s + 3 * v) % MAX_BATCH_TILE + 1,
                direction: pick(&mut rng, &DIRECTIONS),
                hidden: pick(&mut rng, &HIDDEN),
            });
        }
    }
    keys
}

/// A random element of `items`.
fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// A random batch of the awkward list that holds `tile` rows (so that the tile is `tile`).
fn batch_for(rng: &mut StdRng, tile: usize) -> usize {
    let fits: Vec<usize> = BATCH.into_iter().filter(|&b| b >= tile).collect();
    pick(rng, &fits)
}

/// Every pipeline of the sweep — every setup with every variant, every batch tile — on 9
/// sequences (the last tile partial for every tile but 1), then on two more batches it
/// holds, hidden sizes and steps drawn from the awkward lists.
#[test]
fn every_cell_with_every_variant() {
    let Some(ctx) = context() else { return };
    let mut rng = rng(1);
    for key in sweep() {
        let more = [batch_for(&mut rng, key.tile), batch_for(&mut rng, key.tile)];
        for batch in [9].into_iter().chain(more) {
            let (hidden, steps) = (key.hidden(&mut rng), pick(&mut rng, &STEPS));
            let case = Case::random(&mut rng, key, hidden, batch, steps);
            check(ctx, &case, key.variant, key.tile);
        }
    }
}

/// Every hidden size × batch × step count of the awkward lists, each on a pipeline of the
/// sweep drawn among those that take it (its tile no larger than the batch, the hidden
/// size its whole-sequence workgroup's).
#[test]
fn awkward_sizes() {
    let Some(ctx) = context() else { return };
    let mut rng = rng(2);
    let keys = sweep();
    for hidden in HIDDEN {
        for batch in BATCH {
            for steps in STEPS {
                let fits = |k: &&Key| k.tile <= batch && k.takes(hidden);
                let takes: Vec<Key> = keys.iter().filter(fits).copied().collect();
                let key = pick(&mut rng, &takes);
                let case = Case::random(&mut rng, key, hidden, batch, steps);
                check(ctx, &case, key.variant, key.tile);
            }
        }
    }
}

/// f16 weights (small integers: exact) and weights bound as a texture (`rgba32float` and
/// `rgba16float`), each on a pipeline of the sweep drawn.
#[test]
fn weight_types_and_storage() {
    let Some(ctx) = context() else { return };
    let mut rng = rng(3);
    let keys = sweep();
    for (dtype, storage) in [
        (WeightsDtype::F16, WeightsStorage::Buffer),
        (WeightsDtype::F32, WeightsStorage::Texture),
        (WeightsDtype::F16, WeightsStorage::Texture),
    ] {
        let key = pick(&mut rng, &keys);
        let more = [batch_for(&mut rng, key.tile), batch_for(&mut rng, key.tile)];
        for batch in [9].into_iter().chain(more) {
            let (hidden, steps) = (key.hidden(&mut rng), pick(&mut rng, &STEPS));
            let case = Case {
                dtype,
                storage,
                ..Case::random(&mut rng, key, hidden, batch, steps)
            };
            check(ctx, &case, key.variant, key.tile);
        }
    }
}
