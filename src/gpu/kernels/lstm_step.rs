//! Host side of `shaders/lstm_step.wgsl`: one fused LSTM time step (recurrent product of all
//! four gates, activations, c/h update) for every direction of a layer.

use bytemuck::{Pod, Zeroable};

use super::{div_ceil, dynamic_uniform, storage, Family, Specialization};

/// Invocations per workgroup along hidden units (`WG` in the shader).
pub(crate) const WG: u32 = 64;
/// Most batch rows one invocation handles (`MAX_BT` in the shader).
pub(crate) const MAX_BATCH_TILE: usize = 4;

/// Mirrors `StepParams` in the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct StepParams {
    pub batch: u32,
    pub hidden: u32,
    pub steps: u32,
    pub step: u32,
    pub dirs: u32,
    pub state_offset: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Batch rows per invocation for a batch of `batch`: as many as fit, up to [`MAX_BATCH_TILE`].
pub(crate) fn batch_tile(batch: usize) -> usize {
    batch.clamp(1, MAX_BATCH_TILE)
}

pub(crate) fn specialization(batch_tile: usize) -> Specialization {
    Specialization {
        family: Family::LstmStep,
        constants: vec![("WG", WG), ("BT", batch_tile as u32)],
    }
}

/// Workgroups of one step.
pub(crate) fn workgroups(hidden: usize, batch: usize, dirs: usize) -> [usize; 3] {
    [
        div_ceil(hidden, WG as usize),
        div_ceil(batch, batch_tile(batch)),
        dirs,
    ]
}

/// Bindings: params (dynamic uniform), gx, whh, h0, y, c, hn.
pub(crate) fn layout_entries() -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        dynamic_uniform::<StepParams>(0),
        storage(1, true),
        storage(2, true),
        storage(3, true),
        storage(4, false),
        storage(5, false),
        storage(6, false),
    ]
}
