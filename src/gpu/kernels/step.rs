//! Host side of `shaders/step.wgsl`: one fused recurrent time step (recurrent product of
//! every gate, activations, state update) for every direction of a layer, for every cell.

use bytemuck::{Pod, Zeroable};

use super::{div_ceil, dynamic_uniform, storage, Family, Specialization};
use crate::spec::{Cell, RnnSpec};

/// Invocations per workgroup along weight columns (`WG` in the shader).
pub(crate) const WG: u32 = 64;
/// Most batch rows one invocation handles (`MAX_BT` in the shader).
pub(crate) const MAX_BATCH_TILE: usize = 4;

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
        Cell::RnnTanh | Cell::RnnRelu => div_ceil(hidden, 4),
    }
}

/// Batch rows per invocation for a batch of `batch`: as many as fit, up to [`MAX_BATCH_TILE`].
pub(crate) fn batch_tile(batch: usize) -> usize {
    batch.clamp(1, MAX_BATCH_TILE)
}

pub(crate) fn specialization(spec: &RnnSpec, batch: usize) -> Specialization {
    Specialization {
        family: Family::Step,
        constants: vec![
            ("WG", WG),
            ("BT", batch_tile(batch) as u32),
            ("CELL", cell_id(spec.cell)),
            ("PEEPHOLE", u32::from(spec.peephole)),
        ],
    }
}

/// Workgroups of one step.
pub(crate) fn workgroups(spec: &RnnSpec, batch: usize) -> [usize; 3] {
    [
        div_ceil(columns(spec.cell, spec.hidden_size), WG as usize),
        div_ceil(batch, batch_tile(batch)),
        spec.num_directions(),
    ]
}

/// Bindings: params (dynamic uniform), gx, weights, h0, m, c, mn, lens.
pub(crate) fn layout_entries() -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        dynamic_uniform::<StepParams>(0),
        storage(1, true),
        storage(2, true),
        storage(3, true),
        storage(4, false),
        storage(5, false),
        storage(6, false),
        storage(7, true),
    ]
}
