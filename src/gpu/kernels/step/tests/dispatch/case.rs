//! A case of the step kernel tests: the cell setup, sizes and lengths, and its inputs built
//! in the kernel's layouts, NaN in every padding lane and gap.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Key, LANE_WEIGHT_SUM, TAIL};
use crate::gpu::kernels::step;
use crate::gpu::options::WeightsStorage;
use crate::spec::{Cell, Direction, RnnSpec};
use crate::weights::WeightsDtype;

/// A cell with the options that change what the kernel indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setup {
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
    pub(super) const ALL: [Setup; 6] = [
        Setup::RnnRelu,
        Setup::RnnTanh,
        Setup::Lstm,
        Setup::LstmPeepholeProjection,
        Setup::Gru,
        Setup::GruResetBefore,
    ];

    pub(super) fn spec(self, hidden: usize, direction: Direction) -> RnnSpec {
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
pub(super) struct Case {
    pub(super) setup: Setup,
    pub(super) direction: Direction,
    pub(super) hidden: usize,
    pub(super) batch: usize,
    pub(super) steps: usize,
    pub(super) lens: Vec<u32>,
    pub(super) dtype: WeightsDtype,
    pub(super) storage: WeightsStorage,
    /// Seeds the values and the gaps.
    pub(super) values: u64,
}

impl Case {
    /// A case of `key`'s pipeline with these sizes, random lengths (one sequence of every
    /// batch but one in four single sequences runs every step, the others 0 to all of them)
    /// and `direction` where the pipeline allows it (a reverse-only direction is a pipeline
    /// constant; forward and bidirectional share theirs).
    pub(super) fn random(
        rng: &mut StdRng,
        key: Key,
        hidden: usize,
        batch: usize,
        steps: usize,
    ) -> Case {
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

    pub(super) fn spec(&self) -> RnnSpec {
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
pub(super) struct Inputs {
    pub(super) spec: RnnSpec,
    pub(super) dirs: usize,
    pub(super) h: usize,
    pub(super) k0: usize,
    pub(super) n4: usize,
    /// `[D, T, B, n4·4]`, NaN at `t ≥ lens[b]`.
    pub(super) gx: Vec<f32>,
    /// Step-0 weights `[D, k0, n4·4]`.
    pub(super) w0: Vec<f32>,
    /// Recurrent weights `[D, H, n4·4]` with a projection (else `w0` serves every step).
    pub(super) wrec: Option<Vec<f32>>,
    /// Peepholes `[D, H, 4]`: (p_i, p_f, p_o, NaN).
    pub(super) ph: Option<Vec<f32>>,
    /// `[D, B, k0]`.
    pub(super) h0: Vec<f32>,
    /// `[D, B, H]`.
    pub(super) c0: Vec<f32>,
    /// NaN gaps: vec4s before `w0`, before the recurrent weights, before the peepholes;
    /// floats before `h0`'s block and before the state blocks.
    pub(super) gap_w0: usize,
    pub(super) gap_wrec: usize,
    pub(super) gap_ph: usize,
    pub(super) gap_h0: usize,
    pub(super) gap_state: usize,
}

impl Inputs {
    pub(super) fn new(case: &Case) -> Inputs {
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
pub(super) struct DeviceInputs {
    pub(super) gx: Vec<f32>,
    pub(super) w: Vec<f32>,
    pub(super) h0: Vec<f32>,
    pub(super) c: Vec<f32>,
    pub(super) mn: Vec<f32>,
    pub(super) m: Vec<f32>,
    pub(super) lens: Vec<u32>,
    pub(super) w0_offset: u32,
    pub(super) wrec_offset: u32,
    pub(super) ph_offset: u32,
}

impl DeviceInputs {
    pub(super) fn new(case: &Case, inp: &Inputs) -> DeviceInputs {
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
