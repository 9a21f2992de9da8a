//! Host side of `shaders/step/`: one fused recurrent time step (recurrent product of every
//! gate, activations, state update) for every direction of a layer, for every cell.
//!
//! The module is `step.wgsl` (parameters, gate math, the kernels' bodies), after a weight
//! reader (`shaders/weights/`), then `subgroup.wgsl` (the recurrent product through subgroup
//! shuffles) on devices with subgroups or `plain.wgsl` (the same product without them).

use bytemuck::{Pod, Zeroable};

use super::bindings::{dynamic_uniform, storage, WeightsBinding};
use super::cache::{Constant, Family, Specialization};
use super::weights::{with_reader, Reader};
use crate::activation::Activations;
use crate::spec::{Cell, RnnSpec};
use crate::weights::WeightsDtype;

/// Invocations per workgroup along weight columns (`WG` in the shader).
pub(crate) const WG: u32 = 64;
/// Most batch rows one invocation handles (`MAX_BT` in the shader).
pub(crate) const MAX_BATCH_TILE: usize = 8;
/// Batch rows per invocation where nothing chose a tile (and the batch up to which
/// `StepVariant::Auto` without a measurement means the whole-sequence kernel).
pub(crate) const DEFAULT_BATCH_TILE: usize = 4;
/// The batch tiles the tuner times (those up to the batch).
pub(crate) const BATCH_TILES: [usize; 4] = [1, 2, 4, 8];

/// Mirrors `StepParams` in the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct StepParams {
    pub batch: u32,
    pub steps: u32,
    pub step: u32,
    pub dirs: u32,
    pub hidden: u32,
    pub n4: u32,
    pub k0: u32,
    pub w0_offset: u32,
    pub wrec_offset: u32,
    pub ph_offset: u32,
    pub h0_offset: u32,
    pub state_offset: u32,
    /// Int8 weights: u32 index of the step-0 weights' scales (see
    /// [`LayerLayout::i8_scales`](crate::gpu::pack::LayerLayout::i8_scales)); unused otherwise.
    pub s0_offset: u32,
    /// Int8 weights: u32 index of the recurrent weights' scales.
    pub srec_offset: u32,
}

/// The `CELL` override value of a cell.
fn cell_id(cell: Cell) -> u32 {
    match cell {
        Cell::Lstm => 0,
        Cell::Gru => 1,
        Cell::RnnTanh => 2,
        Cell::RnnRelu => 3,
    }
}

/// Vec4 columns of the packed weights per direction: one per hidden unit for LSTM and GRU
/// (its gates), one per four hidden units for RNN.
pub(crate) fn columns(cell: Cell, hidden: usize) -> usize {
    match cell {
        Cell::Lstm | Cell::Gru => hidden,
        Cell::RnnTanh | Cell::RnnRelu => hidden.div_ceil(4),
    }
}

/// Batch rows per invocation for a batch of `batch` when `requested` rows are asked for (0:
/// the default, [`DEFAULT_BATCH_TILE`]): never more than the batch or [`MAX_BATCH_TILE`].
pub(crate) fn batch_tile(batch: usize, requested: usize) -> usize {
    let want = if requested == 0 {
        DEFAULT_BATCH_TILE
    } else {
        requested
    };
    want.min(batch).clamp(1, MAX_BATCH_TILE)
}

/// The tiles worth timing for a batch of `batch`: each of [`BATCH_TILES`] as it resolves for
/// this batch, without repeats.
pub(crate) fn tile_candidates(batch: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for t in BATCH_TILES.map(|t| batch_tile(batch, t)) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A tile's name in the tuner's records (`bt4`).
pub(crate) fn tile_name(tile: usize) -> &'static str {
    const NAMES: [&str; MAX_BATCH_TILE] = ["bt1", "bt2", "bt3", "bt4", "bt5", "bt6", "bt7", "bt8"];
    NAMES[tile.clamp(1, MAX_BATCH_TILE) - 1]
}

/// How a layer's time steps are dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StepVariant {
    /// One dispatch per time step (`main` in the shader): many workgroups per step, best for
    /// large batches and hidden sizes.
    Stepwise,
    /// One dispatch per layer (`sequence` in the shader): one workgroup per batch tile and
    /// direction walks every time step, best where per-dispatch cost dominates (small batches).
    Sequence,
    /// [`StepVariant::Stepwise`] with two neighbouring vec4 columns (hidden units) per invocation:
    /// each value of `h_{t−1}` loaded once feeds twice the multiply-adds, half as many
    /// invocations.
    StepwiseWide,
    /// [`StepVariant::Sequence`] with two vec4 columns per invocation.
    SequenceWide,
    /// One dispatch per time step, one workgroup per vec4 column (and batch tile, direction)
    /// whose 64 invocations split the sum over the hidden units and reduce it in workgroup
    /// memory (`split` in the shader): many more invocations per step, for small batches on
    /// GPUs with many cores.
    Split,
    /// [`StepVariant::StepwiseWide`] loading `h_{t−1}` once per 8 hidden units and sharing the
    /// values through subgroup broadcasts (`main_sg` in `shaders/step/subgroup.wgsl`; same
    /// bits). Only on devices with subgroup operations and subgroups of at least 8
    /// invocations ([`GpuContext::supports_subgroups`](crate::GpuContext::supports_subgroups));
    /// elsewhere it runs as [`StepVariant::StepwiseWide`].
    StepwiseWideSubgroup,
    /// Chosen by measurement: at the first forward of a shape class (cell, hidden size,
    /// layers, directions, batch and steps rounded up to powers of two) on a device, the
    /// input runs with each kernel and the faster is kept (see
    /// [`GpuContext::tuning`](crate::GpuContext::tuning)).
    #[default]
    Auto,
}

impl StepVariant {
    /// Every variant that names a kernel (all but `Auto`), the tuner's candidates.
    pub const ALL: [StepVariant; 6] = [
        StepVariant::Stepwise,
        StepVariant::Sequence,
        StepVariant::StepwiseWide,
        StepVariant::SequenceWide,
        StepVariant::Split,
        StepVariant::StepwiseWideSubgroup,
    ];

    /// Whether the kernel uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        self == StepVariant::StepwiseWideSubgroup
    }

    /// This variant where the device runs it; the variant without subgroups where it does not
    /// have them.
    pub(crate) fn on(self, subgroups: bool) -> StepVariant {
        match self {
            StepVariant::StepwiseWideSubgroup if !subgroups => StepVariant::StepwiseWide,
            v => v,
        }
    }

    /// Whether one dispatch walks every time step (`sequence`, `sequence-wide`).
    pub fn is_sequence(self) -> bool {
        matches!(self, StepVariant::Sequence | StepVariant::SequenceWide)
    }

    /// Vec4 columns per invocation (`CT` in the shader).
    pub fn columns(self) -> usize {
        match self {
            StepVariant::StepwiseWide
            | StepVariant::SequenceWide
            | StepVariant::StepwiseWideSubgroup => 2,
            _ => 1,
        }
    }

    /// The stepwise kernel with this variant's columns per invocation (where the
    /// whole-sequence one cannot run).
    pub(crate) fn stepwise(self) -> StepVariant {
        match self {
            StepVariant::SequenceWide => StepVariant::StepwiseWide,
            StepVariant::Sequence => StepVariant::Stepwise,
            v => v,
        }
    }

    /// The variant `Auto` stands for where nothing was measured (a stream's chunks, which
    /// cannot be run twice): the whole-sequence kernel when the batch fits one tile (≤ 4
    /// sequences), else the stepwise one.
    pub fn resolve(self, batch: usize) -> StepVariant {
        match self {
            StepVariant::Auto if batch <= DEFAULT_BATCH_TILE => StepVariant::Sequence,
            StepVariant::Auto => StepVariant::Stepwise,
            v => v,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            StepVariant::Stepwise => "stepwise",
            StepVariant::Sequence => "sequence",
            StepVariant::StepwiseWide => "stepwise-wide",
            StepVariant::SequenceWide => "sequence-wide",
            StepVariant::Split => "split",
            StepVariant::StepwiseWideSubgroup => "stepwise-wide-subgroup",
            StepVariant::Auto => "auto",
        }
    }
}

/// Invocations per workgroup of the whole-sequence kernel: enough to give each one column
/// where possible (64 to 256).
pub(crate) fn sequence_workgroup(spec: &RnnSpec) -> u32 {
    u32::try_from(columns(spec.cell, spec.hidden_size))
        .unwrap_or(u32::MAX)
        .next_power_of_two()
        .clamp(WG, 256)
}

/// Loop iterations one invocation of the whole-sequence kernel runs over `steps` steps (the
/// recurrent product dominates: H per column per step, plus the per-row loops).
pub(crate) fn sequence_loop_iterations(
    spec: &RnnSpec,
    batch: usize,
    tile: usize,
    steps: usize,
) -> u64 {
    let cols = columns(spec.cell, spec.hidden_size).div_ceil(sequence_workgroup(spec) as usize);
    let passes = if two_pass(spec) { 2 } else { 1 };
    let per_column = spec.hidden_size.max(spec.hidden_out()) + 4 * batch_tile(batch, tile) + 8;
    (steps * passes * (cols * per_column + 1)) as u64
}

/// Whether a step of `spec` runs in two passes: a GRU whose reset gate applies before its
/// linear part needs `r ⊙ h_{t−1}` of every unit before the product that uses it.
pub(crate) fn two_pass(spec: &RnnSpec) -> bool {
    spec.cell == Cell::Gru && !spec.linear_before_reset
}

/// The `override` values of ONNX's gate options in `spec` that differ from the shader's
/// defaults (PyTorch's equations), so that a plain model's pipelines stay the same.
fn gate_constants(spec: &RnnSpec) -> Vec<(&'static str, Constant)> {
    let mut out: Vec<(&'static str, Constant)> = Vec::new();
    let reversed = if spec.reverse { 1 } else { 2 };
    if reversed != 2 {
        out.push(("REVERSED", reversed.into()));
    }
    if let Some(clip) = spec.clip.filter(|c| c.is_finite()) {
        out.push(("CLIP", clip.into()));
    }
    if spec.input_forget {
        out.push(("INPUT_FORGET", true.into()));
    }
    if !spec.linear_before_reset {
        out.push(("RESET_AFTER", false.into()));
    }
    // The shader's defaults: f = σ, g = h = tanh, no parameters.
    let shader = Activations::of(Cell::Lstm);
    const NAMES: [[(&str, &str, &str); 3]; 2] = [
        [
            ("ACT_F0", "A_F0", "B_F0"),
            ("ACT_G0", "A_G0", "B_G0"),
            ("ACT_H0", "A_H0", "B_H0"),
        ],
        [
            ("ACT_F1", "A_F1", "B_F1"),
            ("ACT_G1", "A_G1", "B_G1"),
            ("ACT_H1", "A_H1", "B_H1"),
        ],
    ];
    for (d, names) in NAMES.iter().enumerate().take(spec.num_directions()) {
        let acts = spec.activations_of(d);
        for ((code, alpha, beta), (a, default)) in
            names
                .iter()
                .zip([(acts.f, shader.f), (acts.g, shader.g), (acts.h, shader.h)])
        {
            if a.code() != default.code() {
                out.push((code, a.code().into()));
            }
            let (av, bv) = a.params();
            if av != 0.0 {
                out.push((alpha, av.into()));
            }
            if bv != 0.0 {
                out.push((beta, bv.into()));
            }
        }
    }
    out
}

pub(crate) fn specialization(
    spec: &RnnSpec,
    batch: usize,
    tile: usize,
    variant: StepVariant,
) -> Specialization {
    let variant = variant.resolve(batch);
    let (entry, wg) = match variant {
        v if v.is_sequence() => ("sequence", sequence_workgroup(spec)),
        StepVariant::Split => ("split", WG),
        StepVariant::StepwiseWideSubgroup => ("main_sg", WG),
        _ => ("main", WG),
    };
    let mut constants = vec![
        ("WG", wg.into()),
        ("BT", (batch_tile(batch, tile) as u32).into()),
        ("CELL", cell_id(spec.cell).into()),
        ("PEEPHOLE", spec.peephole.into()),
    ];
    if variant.columns() != 1 {
        constants.push(("CT", (variant.columns() as u32).into()));
    }
    if variant.needs_subgroups() {
        constants.push(("SUBGROUP_PRODUCT", true.into()));
    }
    constants.extend(gate_constants(spec));
    Specialization {
        family: &FAMILY,
        weights: WeightsDtype::F32,
        storage: WeightsBinding::Buffer,
        subgroups: variant.needs_subgroups(),
        entry,
        constants,
    }
}

/// The first pass of a two-pass step (see [`two_pass`]), dispatched before each stepwise
/// step; `None` where steps run in one pass (the whole-sequence kernel runs both passes
/// itself).
pub(crate) fn reset_specialization(
    spec: &RnnSpec,
    batch: usize,
    tile: usize,
    variant: StepVariant,
) -> Option<Specialization> {
    let variant = variant.resolve(batch);
    (two_pass(spec) && !variant.is_sequence()).then(|| Specialization {
        entry: match variant {
            StepVariant::Split => "split_reset",
            StepVariant::StepwiseWideSubgroup => "reset_sg",
            _ => "reset",
        },
        ..specialization(spec, batch, tile, variant)
    })
}

/// Workgroups of one step (stepwise) or of a whole layer (sequence).
pub(crate) fn workgroups(
    spec: &RnnSpec,
    batch: usize,
    tile: usize,
    variant: StepVariant,
) -> [usize; 3] {
    let variant = variant.resolve(batch);
    let cols = columns(spec.cell, spec.hidden_size);
    let x = match variant {
        v if v.is_sequence() => 1,
        StepVariant::Split => cols,
        v => cols.div_ceil(WG as usize * v.columns()),
    };
    [
        x,
        batch.div_ceil(batch_tile(batch, tile)),
        spec.num_directions(),
    ]
}

/// The step family.
pub(crate) static FAMILY: Family = Family {
    name: "step",
    source,
    layout: layout_entries,
};

/// The step module for weights of type `dtype` bound as `binding`, with the subgroup product
/// where `subgroups`.
fn source(dtype: WeightsDtype, binding: WeightsBinding, subgroups: bool) -> &'static str {
    let reader = Reader::of(dtype, binding);
    if subgroups {
        with_reader!(
            reader,
            "step/step.wgsl",
            "step/cell.wgsl",
            "step/subgroup.wgsl"
        )
    } else {
        with_reader!(
            reader,
            "step/step.wgsl",
            "step/cell.wgsl",
            "step/plain.wgsl"
        )
    }
}

/// Bindings: params (dynamic uniform), gx, weights, h0, m, c, mn, lens.
fn layout_entries(weights: WeightsBinding) -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        dynamic_uniform::<StepParams>(0),
        storage(1, true),
        weights.entry(2),
        storage(3, true),
        storage(4, false),
        storage(5, false),
        storage(6, false),
        storage(7, true),
    ]
}

#[cfg(test)]
mod tests;
