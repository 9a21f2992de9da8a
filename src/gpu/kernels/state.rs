//! The state-table family (`shaders/state/state.wgsl`): a batcher's round gathers its rows'
//! states from their slots of a device-resident table into the forward's state buffers, and
//! scatters the final states back, with no readback in between.

use super::bindings::{storage, WeightsBinding};
use super::cache::{Family, Specialization};
use crate::weights::WeightsDtype;

/// Threads per workgroup (`WG` in the WGSL).
pub(crate) const WORKGROUP: u32 = 64;

/// The most workgroups one gather or scatter dispatches; the invocations stride over every
/// element beyond them.
const MAX_GROUPS: u32 = 1024;

/// `StateParams` of `state.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StateParams {
    /// Rows of the round.
    pub rows: u32,
    /// Layers × directions.
    pub ld: u32,
    /// Width of a hidden state (H, or the projection size).
    pub width_h: u32,
    /// Width of a cell state (H for an LSTM, else 0).
    pub width_c: u32,
}

impl StateParams {
    /// Workgroups of a gather or scatter with these parameters.
    pub fn groups(&self) -> u32 {
        let elements = self.ld * self.rows * self.width_h.max(self.width_c);
        elements.div_ceil(WORKGROUP).clamp(1, MAX_GROUPS)
    }
}

/// Which way a dispatch copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Table slots → the forward's `h0` and cell state.
    Gather,
    /// The forward's `h_n` and cell state → table slots.
    Scatter,
}

/// The pipeline of a gather or a scatter.
pub(crate) fn specialization(direction: Direction) -> Specialization {
    Specialization {
        family: &FAMILY,
        weights: WeightsDtype::F32,
        storage: WeightsBinding::Buffer,
        subgroups: false,
        entry: match direction {
            Direction::Gather => "gather",
            Direction::Scatter => "scatter",
        },
        constants: Vec::new(),
    }
}

/// The state-table family.
pub(crate) static FAMILY: Family = Family {
    name: "state",
    source,
    layout: layout_entries,
};

/// The family's one module (it reads no weights and uses no subgroups).
fn source(_: WeightsDtype, _: WeightsBinding, _: bool) -> &'static str {
    include_str!("../../../shaders/state/state.wgsl")
}

/// Bindings: params (uniform), slots, table_h, table_c, state_h, state_c.
fn layout_entries(_: WeightsBinding) -> Vec<wgpu::BindGroupLayoutEntry> {
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: std::num::NonZeroU64::new(std::mem::size_of::<StateParams>() as u64),
        },
        count: None,
    };
    let mut entries = vec![uniform, storage(1, true)];
    entries.extend((2..6).map(|b| storage(b, false)));
    entries
}

#[cfg(test)]
mod tests {
    use super::super::contract::{fields, Shader};
    use super::*;

    /// `StateParams` and the workgroup size agree with `state.wgsl`; both entry points exist.
    #[test]
    fn params_and_constants_match_the_wgsl() {
        let shader = Shader::parse(
            "state/state.wgsl",
            source(WeightsDtype::F32, WeightsBinding::Buffer, false),
        );
        let size = std::mem::size_of::<StateParams>();
        let params = fields!(StateParams: rows, ld, width_h, width_c);
        shader.check_struct("StateParams", size, params);
        assert_eq!(shader.constant("WG"), f64::from(WORKGROUP));
        for direction in [Direction::Gather, Direction::Scatter] {
            shader.entry_point(specialization(direction).entry);
        }
    }

    #[test]
    fn groups_cover_the_larger_state_and_stay_bounded() {
        let p = StateParams {
            rows: 3,
            ld: 2,
            width_h: 5,
            width_c: 7,
        };
        assert_eq!(p.groups(), 1);
        let big = StateParams {
            rows: 1000,
            ld: 8,
            width_h: 1024,
            width_c: 1024,
        };
        assert_eq!(big.groups(), MAX_GROUPS);
    }
}
