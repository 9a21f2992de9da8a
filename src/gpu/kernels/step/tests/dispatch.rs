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

use std::num::NonZeroU64;
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gpu::context::{ContextOptions, GpuContext};
use crate::gpu::device;
use crate::gpu::kernels::cache::Specialization;
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::kernels::step::{self, StepParams, StepVariant, MAX_BATCH_TILE};
use crate::gpu::options::WeightsStorage;
use crate::gpu::plan::{Extent, Limits, Schedule};
use crate::gpu::weights::WeightStore;
use crate::spec::{Cell, Direction, RnnSpec};
use crate::weights::WeightsDtype;

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

/// A cell with the options that change what the kernel indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Integer sums, exact: bit for bit.
    RnnRelu,
    RnnTanh,
    Lstm,
    /// Peepholes, and a projection (where H > 1): `h0` has P = H/2 features read with the
    /// step-0 weights, later steps read the H features of `m` with the recurrent weights.
    LstmPeepholeProjection,
    /// PyTorch's GRU: the reset gate after the linear part, one pass per step.
    Gru,
    /// ONNX's default GRU: the reset gate before the linear part, two passes per step.
    GruResetBefore,
}

impl Setup {
    const ALL: [Setup; 6] = [
        Setup::RnnRelu,
        Setup::RnnTanh,
        Setup::Lstm,
        Setup::LstmPeepholeProjection,
        Setup::Gru,
        Setup::GruResetBefore,
    ];

    fn spec(self, hidden: usize, direction: Direction) -> RnnSpec {
        let cell = match self {
            Setup::RnnRelu => Cell::RnnRelu,
            Setup::RnnTanh => Cell::RnnTanh,
            Setup::Lstm | Setup::LstmPeepholeProjection => Cell::Lstm,
            Setup::Gru | Setup::GruResetBefore => Cell::Gru,
        };
        let spec = RnnSpec::new(cell, 1, hidden).direction(direction);
        match self {
            Setup::LstmPeepholeProjection => spec.peephole(true).proj_size(hidden / 2),
            Setup::GruResetBefore => spec.linear_before_reset(false),
            _ => spec,
        }
    }
}

/// One layer's steps.
#[derive(Debug, Clone)]
struct Case {
    setup: Setup,
    direction: Direction,
    hidden: usize,
    batch: usize,
    steps: usize,
    lens: Vec<u32>,
    dtype: WeightsDtype,
    storage: WeightsStorage,
    /// Seeds the values and the gaps.
    values: u64,
}

impl Case {
    /// A case of `key`'s pipeline with these sizes, random lengths (one sequence of every
    /// batch but one in four single sequences runs every step, the others 0 to all of them)
    /// and `direction` where the pipeline allows it (a reverse-only direction is a pipeline
    /// constant; forward and bidirectional share theirs).
    fn random(rng: &mut StdRng, key: Key, hidden: usize, batch: usize, steps: usize) -> Case {
        let direction = match key.direction {
            Direction::Reverse => Direction::Reverse,
            _ if rng.random() => Direction::Forward,
            _ => Direction::Bidirectional,
        };
        let full = rng.random_range(0..batch);
        let lens = (0..batch)
            .map(|b| {
                if b == full && (batch > 1 || rng.random_bool(0.75)) {
                    steps as u32
                } else {
                    rng.random_range(0..=steps as u32)
                }
            })
            .collect();
        Case {
            setup: key.setup,
            direction,
            hidden,
            batch,
            steps,
            lens,
            dtype: WeightsDtype::F32,
            storage: WeightsStorage::Buffer,
            values: rng.random(),
        }
    }

    fn spec(&self) -> RnnSpec {
        self.setup.spec(self.hidden, self.direction)
    }
}

/// Whether lane `lane` of packed column `col` holds a weight (else it is padding).
fn weight_lane(cell: Cell, h: usize, col: usize, lane: usize) -> bool {
    match cell {
        Cell::Lstm => true,
        Cell::Gru => lane < 3,
        Cell::RnnTanh | Cell::RnnRelu => 4 * col + lane < h,
    }
}

/// Whether lane `lane` of column `col` of `gx` is read (a GRU's fourth lane carries b_hn).
fn gx_lane(cell: Cell, h: usize, col: usize, lane: usize) -> bool {
    match cell {
        Cell::Lstm | Cell::Gru => true,
        Cell::RnnTanh | Cell::RnnRelu => 4 * col + lane < h,
    }
}

/// A small integer in `-r..=r` as f32.
fn int(rng: &mut StdRng, r: i32) -> f32 {
    rng.random_range(-r..=r) as f32
}

/// The inputs of one case in the kernel's layouts (without gaps), NaN in every padding lane.
struct Inputs {
    spec: RnnSpec,
    dirs: usize,
    h: usize,
    k0: usize,
    n4: usize,
    /// `[D, T, B, n4·4]`, NaN at `t ≥ lens[b]`.
    gx: Vec<f32>,
    /// Step-0 weights `[D, k0, n4·4]`.
    w0: Vec<f32>,
    /// Recurrent weights `[D, H, n4·4]` with a projection (else `w0` serves every step).
    wrec: Option<Vec<f32>>,
    /// Peepholes `[D, H, 4]`: (p_i, p_f, p_o, NaN).
    ph: Option<Vec<f32>>,
    /// `[D, B, k0]`.
    h0: Vec<f32>,
    /// `[D, B, H]`.
    c0: Vec<f32>,
    /// NaN gaps: vec4s before `w0`, before the recurrent weights, before the peepholes;
    /// floats before `h0`'s block and before the state blocks.
    gap_w0: usize,
    gap_wrec: usize,
    gap_ph: usize,
    gap_h0: usize,
    gap_state: usize,
}

impl Inputs {
    fn new(case: &Case) -> Inputs {
        let spec = case.spec();
        let mut rng = StdRng::seed_from_u64(case.values);
        let (dirs, t_n, b_n, h) = (
            spec.num_directions(),
            case.steps,
            case.batch,
            spec.hidden_size,
        );
        let k0 = spec.hidden_out();
        let n4 = step::columns(spec.cell, h);
        let cell = spec.cell;
        let mut gx = vec![f32::NAN; dirs * t_n * b_n * n4 * 4];
        for d in 0..dirs {
            for t in 0..t_n {
                for (b, &len) in case.lens.iter().enumerate() {
                    if t >= len as usize {
                        continue;
                    }
                    for col in 0..n4 {
                        for lane in (0..4).filter(|&l| gx_lane(cell, h, col, l)) {
                            gx[(((d * t_n + t) * b_n + b) * n4 + col) * 4 + lane] =
                                int(&mut rng, 3);
                        }
                    }
                }
            }
        }
        let mut weights = |k: usize| {
            let mut w = vec![f32::NAN; dirs * k * n4 * 4];
            let p = (3.0 / k as f64).min(1.0);
            for d in 0..dirs {
                for col in 0..n4 {
                    for lane in (0..4).filter(|&l| weight_lane(cell, h, col, l)) {
                        let mut left = LANE_WEIGHT_SUM;
                        for kk in 0..k {
                            let mut v: i32 = 0;
                            if rng.random_bool(p) {
                                v = rng.random_range(1..=2) * if rng.random() { 1 } else { -1 };
                                if v.abs() > left {
                                    v = 0;
                                }
                                left -= v.abs();
                            }
                            w[((d * k + kk) * n4 + col) * 4 + lane] = v as f32;
                        }
                    }
                }
            }
            w
        };
        let w0 = weights(k0);
        let wrec = (spec.proj_size > 0).then(|| weights(h));
        let ph = spec.peephole.then(|| {
            let mut ph = vec![f32::NAN; dirs * h * 4];
            for (i, v) in ph.iter_mut().enumerate() {
                if i % 4 < 3 {
                    *v = int(&mut rng, 1);
                }
            }
            ph
        });
        let h0 = (0..dirs * b_n * k0).map(|_| int(&mut rng, 3)).collect();
        let c0 = (0..dirs * b_n * h).map(|_| int(&mut rng, 3)).collect();
        Inputs {
            gap_w0: rng.random_range(0..=3),
            gap_wrec: rng.random_range(0..=3),
            gap_ph: rng.random_range(0..=3),
            gap_h0: rng.random_range(0..=dirs * b_n * k0),
            gap_state: rng.random_range(0..=dirs * b_n * h),
            spec,
            dirs,
            h,
            k0,
            n4,
            gx,
            w0,
            wrec,
            ph,
            h0,
            c0,
        }
    }
}

/// The buffers as the kernel binds them, gaps and tails included, and the offsets of
/// `StepParams` that locate what is inside.
struct DeviceInputs {
    gx: Vec<f32>,
    w: Vec<f32>,
    h0: Vec<f32>,
    c: Vec<f32>,
    mn: Vec<f32>,
    m: Vec<f32>,
    lens: Vec<u32>,
    w0_offset: u32,
    wrec_offset: u32,
    ph_offset: u32,
}

impl DeviceInputs {
    fn new(case: &Case, inp: &Inputs) -> DeviceInputs {
        let nan = |n: usize| vec![f32::NAN; n];
        let mut gx = inp.gx.clone();
        gx.extend(nan(4 * TAIL));
        let vec4s = |w: &Vec<f32>| (w.len() / 4) as u32;
        let mut w = nan(4 * inp.gap_w0);
        let w0_offset = vec4s(&w);
        w.extend(&inp.w0);
        let mut wrec_offset = w0_offset;
        if let Some(wrec) = &inp.wrec {
            w.extend(nan(4 * inp.gap_wrec));
            wrec_offset = vec4s(&w);
            w.extend(wrec);
        }
        w.extend(nan(4 * inp.gap_ph));
        // Without peepholes: the tail's offset (never read).
        let ph_offset = vec4s(&w);
        if let Some(ph) = &inp.ph {
            w.extend(ph);
        }
        w.extend(nan(4 * TAIL));
        let mut h0 = nan(inp.gap_h0);
        h0.extend(&inp.h0);
        h0.extend(nan(TAIL));
        let block = inp.dirs * case.batch * inp.h;
        let mut c = nan(inp.gap_state);
        if inp.spec.cell == Cell::Lstm {
            c.extend(&inp.c0);
        } else {
            c.extend(nan(block));
        }
        c.extend(nan(TAIL));
        let mut lens = case.lens.clone();
        lens.extend([u32::MAX; TAIL]);
        DeviceInputs {
            gx,
            w,
            h0,
            mn: nan(c.len()),
            c,
            m: nan(case.steps * case.batch * inp.dirs * inp.h + TAIL),
            lens,
            w0_offset,
            wrec_offset,
            ph_offset,
        }
    }
}

/// What one run read back, and what ran.
struct Outputs {
    m: Vec<f32>,
    c: Vec<f32>,
    mn: Vec<f32>,
    variant: StepVariant,
    tile: usize,
}

/// Runs the layer's steps as the host would for `requested` and `tile`, on `dev`'s buffers.
fn run(
    ctx: &GpuContext,
    case: &Case,
    inp: &Inputs,
    dev: &DeviceInputs,
    requested: StepVariant,
    tile: usize,
) -> Outputs {
    // One thread at a time where the backend needs it (GL), as a model's forward.
    let _turn = ctx.exclusive();
    let spec = &inp.spec;
    let limits = Limits::new(&ctx.limits(), ctx.loop_budget(), ctx.supports_subgroups());
    let extent = Extent::new(case.steps, case.batch);
    let schedule =
        Schedule::new(spec, &limits, extent, (requested, tile), GemmVariant::Rows4).unwrap();
    let (variant, bt) = (schedule.variant, schedule.batch_tile);
    assert_eq!(bt, step::batch_tile(case.batch, tile));
    let kernel = |s: Specialization| {
        ctx.kernel(&s.weights(case.dtype).storage(case.storage.binding()))
            .unwrap()
    };
    let step_kernel = kernel(step::specialization(spec, case.batch, bt, variant));
    let reset_kernel = step::reset_specialization(spec, case.batch, bt, variant).map(kernel);
    assert_eq!(reset_kernel.is_some(), schedule.reset_pass);
    // The schedule's blocks, with the offsets of the buffers built here (gaps before every
    // part) in place of the layer's own.
    let steps = &schedule.layers[0].steps;
    assert_eq!(
        steps.len(),
        if variant.is_sequence() { 1 } else { case.steps }
    );
    let mut params = schedule.params.clone();
    let size = std::mem::size_of::<StepParams>();
    for (s, dispatch) in steps.iter().enumerate() {
        let at = dispatch.offset as usize;
        let mut p: StepParams = bytemuck::pod_read_unaligned(&params[at..at + size]);
        let u = |v: usize| u32::try_from(v).unwrap();
        let want = [case.batch, case.steps, s, inp.dirs, inp.h, inp.n4, inp.k0].map(u);
        let got = [p.batch, p.steps, p.step, p.dirs, p.hidden, p.n4, p.k0];
        assert_eq!(got, want, "the schedule's step parameters");
        p.w0_offset = dev.w0_offset;
        p.wrec_offset = dev.wrec_offset;
        p.ph_offset = dev.ph_offset;
        p.h0_offset = u(inp.gap_h0);
        p.state_offset = u(inp.gap_state);
        params[at..at + size].copy_from_slice(bytemuck::bytes_of(&p));
    }

    let (device, queue) = (ctx.device(), ctx.queue());
    use wgpu::BufferUsages as U;
    let input = |label, data: &[u8]| device::upload(device, queue, label, data, U::STORAGE);
    let output = |label, data: &[f32]| {
        let bytes = bytemuck::cast_slice(data);
        device::upload(device, queue, label, bytes, U::STORAGE | U::COPY_SRC)
    };
    let uniform = device::upload(device, queue, "params", &params, U::UNIFORM);
    let gx = input("gx", bytemuck::cast_slice(&dev.gx));
    let w_bytes: Vec<u8> = match case.dtype {
        WeightsDtype::F32 => bytemuck::cast_slice(&dev.w).to_vec(),
        WeightsDtype::F16 => dev
            .w
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    };
    let w = WeightStore::upload(device, queue, "w", &w_bytes, case.dtype, case.storage);
    let h0 = input("h0", bytemuck::cast_slice(&dev.h0));
    let m = output("m", &dev.m);
    let c = output("c", &dev.c);
    let mn = output("mn", &dev.mn);
    let lens = input("lens", bytemuck::cast_slice(&dev.lens));
    let resources = [
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &uniform,
            offset: 0,
            size: NonZeroU64::new(size as u64),
        }),
        gx.as_entire_binding(),
        w.binding(),
        h0.as_entire_binding(),
        m.as_entire_binding(),
        c.as_entire_binding(),
        mn.as_entire_binding(),
        lens.as_entire_binding(),
    ];
    let entries: Vec<_> = resources
        .into_iter()
        .zip(0u32..)
        .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("step test"),
        layout: &step_kernel.layout,
        entries: &entries,
    });
    let bytes = |v: &Vec<f32>| (v.len() * 4) as u64;
    let (mb, cb, nb) = (bytes(&dev.m), bytes(&dev.c), bytes(&dev.mn));
    let staging = device::buffer(device, "staging", mb + cb + nb, U::MAP_READ | U::COPY_DST);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&step_kernel.pipeline);
        for dispatch in steps {
            let [x, y, z] = dispatch.groups;
            pass.set_bind_group(0, &group, &[dispatch.offset]);
            if let Some(reset) = &reset_kernel {
                pass.set_pipeline(&reset.pipeline);
                pass.dispatch_workgroups(x, y, z);
                pass.set_pipeline(&step_kernel.pipeline);
            }
            pass.dispatch_workgroups(x, y, z);
        }
    }
    encoder.copy_buffer_to_buffer(&m, 0, &staging, 0, mb);
    encoder.copy_buffer_to_buffer(&c, 0, &staging, mb, cb);
    encoder.copy_buffer_to_buffer(&mn, 0, &staging, mb + cb, nb);
    let submission = queue.submit([encoder.finish()]);
    let mut all = device::read_back(device, &staging, mb + cb + nb, submission).unwrap();
    let mn_out = all.split_off(((mb + cb) / 4) as usize);
    let c_out = all.split_off((mb / 4) as usize);
    Outputs {
        m: all,
        c: c_out,
        mn: mn_out,
        variant,
        tile: bt,
    }
}

/// What one element of an output buffer must hold after the run.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Not written: NaN as before.
    Nan,
    /// A two-pass GRU's scratch (r ⊙ h_{t−1} in `c`): anything.
    Any,
    /// `value` within `tol` (bit for bit where `tol` is 0), written at step `step` or, for
    /// the final states, after it.
    Value { value: f64, tol: f64, step: usize },
}

impl Want {
    fn holds(self, got: f32) -> bool {
        match self {
            Want::Nan => got.is_nan(),
            Want::Any => true,
            Want::Value {
                value, tol: 0.0, ..
            } => got.to_bits() == (value as f32).to_bits(),
            Want::Value { value, tol, .. } => (f64::from(got) - value).abs() <= tol,
        }
    }

    /// Where a failure of this element sorts: the earliest step first, writes outside last.
    fn order(self) -> usize {
        match self {
            Want::Value { step, .. } => step,
            _ => usize::MAX,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The expected contents of `m`, `c` and `mn` after the run, each step computed in f64 from
/// the `h_{t−1}` the kernel wrote in `gpu_m` (from the host's own for the exact cell).
fn expected(case: &Case, inp: &Inputs, gpu_m: &[f32]) -> [Vec<Want>; 3] {
    let spec = &inp.spec;
    let (dirs, h, k0, n4) = (inp.dirs, inp.h, inp.k0, inp.n4);
    let (t_n, b_n) = (case.steps, case.batch);
    let dh = dirs * h;
    let cols = n4 * 4;
    let exact = case.setup == Setup::RnnRelu;
    let mut m = vec![Want::Nan; t_n * b_n * dh + TAIL];
    let mut c = vec![Want::Nan; inp.gap_state + dirs * b_n * h + TAIL];
    let mut mn = c.clone();
    for d in 0..dirs {
        let w_rec = inp.wrec.as_ref().unwrap_or(&inp.w0);
        // Σ_k v[k] · w[d][k][·] and Σ_k |v[k] · w[d][k][·]| of every packed lane.
        let product = |v: &[f64], w: &[f32]| {
            let (mut acc, mut mag) = (vec![0.0; cols], vec![0.0; cols]);
            for (k, &x) in v.iter().enumerate() {
                let row = &w[(d * v.len() + k) * cols..][..cols];
                for (i, &wv) in row.iter().enumerate() {
                    acc[i] += x * f64::from(wv);
                    mag[i] += (x * f64::from(wv)).abs();
                }
            }
            (acc, mag)
        };
        for b in 0..b_n {
            let len = case.lens[b] as usize;
            let st = inp.gap_state + (d * b_n + b) * h;
            let out = |t: usize| (t * b_n + b) * dh + d * h;
            let h0: Vec<f64> = inp.h0[(d * b_n + b) * k0..][..k0]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let mut cs: Vec<f64> = inp.c0[(d * b_n + b) * h..][..h]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let mut c_tol = vec![0.0; h];
            let mut host_h = h0.clone();
            let mut last: Option<(Vec<f64>, Vec<f64>)> = None;
            for s in 0..t_n {
                if s >= len {
                    for u in 0..h {
                        m[out(s) + u] = Want::Value {
                            value: 0.0,
                            tol: 0.0,
                            step: s,
                        };
                    }
                    continue;
                }
                let t = if spec.reverses(d) { len - 1 - s } else { s };
                let (prev, w): (Vec<f64>, &[f32]) = if s == 0 {
                    (h0.clone(), &inp.w0)
                } else if exact {
                    (host_h.clone(), w_rec)
                } else {
                    let tp = if spec.reverses(d) { t + 1 } else { t - 1 };
                    let prev = gpu_m[out(tp)..][..h].iter().map(|&v| f64::from(v));
                    (prev.collect(), w_rec)
                };
                let (acc, mag) = product(&prev, w);
                let g = |i: usize| f64::from(inp.gx[((d * t_n + t) * b_n + b) * cols + i]);
                let mut hs = vec![0.0; h];
                let mut tols = vec![0.0; h];
                match spec.cell {
                    Cell::RnnRelu | Cell::RnnTanh => {
                        for u in 0..h {
                            let x = g(u) + acc[u];
                            if exact {
                                hs[u] = x.max(0.0);
                            } else {
                                hs[u] = x.tanh();
                                tols[u] = TOL * (1.0 + g(u).abs() + mag[u]);
                            }
                        }
                    }
                    Cell::Lstm => {
                        for j in 0..h {
                            let a = |l: usize| g(4 * j + l) + acc[4 * j + l];
                            let p = |l: usize| {
                                inp.ph
                                    .as_ref()
                                    .map_or(0.0, |ph| f64::from(ph[(d * h + j) * 4 + l]))
                            };
                            let cp = cs[j];
                            let i = sigmoid(a(0) + p(0) * cp);
                            let f = sigmoid(a(1) + p(1) * cp);
                            let cn = f * cp + i * a(2).tanh();
                            let o = sigmoid(a(3) + p(2) * cn);
                            hs[j] = o * cn.tanh();
                            let sum: f64 =
                                (0..4).map(|l| g(4 * j + l).abs() + mag[4 * j + l]).sum();
                            let peep = 1.0 + p(0).abs() + p(1).abs() + p(2).abs();
                            let step_tol = TOL * (1.0 + sum + (cp.abs() + cn.abs()) * peep);
                            cs[j] = cn;
                            c_tol[j] += step_tol;
                            tols[j] = c_tol[j] + step_tol;
                        }
                    }
                    Cell::Gru => {
                        // Two passes: the product of the candidate runs over r ⊙ h_{t−1}
                        // with the recurrent weights.
                        let reset_before = !spec.linear_before_reset;
                        let (rh_acc, rh_mag) = if reset_before {
                            let rh: Vec<f64> = (0..h)
                                .map(|k| sigmoid(g(4 * k) + acc[4 * k]) * prev[k])
                                .collect();
                            product(&rh, w_rec)
                        } else {
                            (vec![0.0; cols], vec![0.0; cols])
                        };
                        for j in 0..h {
                            let r = sigmoid(g(4 * j) + acc[4 * j]);
                            let z = sigmoid(g(4 * j + 1) + acc[4 * j + 1]);
                            let (n, n_mag) = if reset_before {
                                let x = g(4 * j + 2) + rh_acc[4 * j + 2] + g(4 * j + 3);
                                (x.tanh(), rh_mag[4 * j + 2] + mag[4 * j + 2])
                            } else {
                                let x = g(4 * j + 2) + r * (acc[4 * j + 2] + g(4 * j + 3));
                                (x.tanh(), mag[4 * j + 2])
                            };
                            hs[j] = (1.0 - z) * n + z * prev[j];
                            let sum: f64 = (0..4).map(|l| g(4 * j + l).abs()).sum::<f64>()
                                + mag[4 * j]
                                + mag[4 * j + 1]
                                + n_mag;
                            tols[j] = TOL * (1.0 + sum + prev[j].abs());
                        }
                    }
                }
                for u in 0..h {
                    m[out(t) + u] = Want::Value {
                        value: hs[u],
                        tol: tols[u],
                        step: s,
                    };
                }
                host_h = hs.clone();
                last = Some((hs, tols));
            }
            let step = len.max(1) - 1;
            if let Some((hs, tols)) = last {
                for u in 0..h {
                    mn[st + u] = Want::Value {
                        value: hs[u],
                        tol: tols[u],
                        step,
                    };
                }
            }
            for u in 0..h {
                c[st + u] = match case.setup {
                    Setup::Lstm | Setup::LstmPeepholeProjection => Want::Value {
                        value: cs[u],
                        tol: c_tol[u],
                        step,
                    },
                    Setup::GruResetBefore if len > 0 => Want::Any,
                    _ => Want::Nan,
                };
            }
        }
    }
    [m, c, mn]
}

/// Runs `case` with `variant` on batch tiles of `tile` rows and checks every element of every
/// output.
fn check(ctx: &GpuContext, case: &Case, variant: StepVariant, tile: usize) {
    let inp = Inputs::new(case);
    let dev = DeviceInputs::new(case, &inp);
    let out = run(ctx, case, &inp, &dev, variant, tile);
    let want = expected(case, &inp, &out.m);
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
