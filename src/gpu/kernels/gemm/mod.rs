//! Host side of `shaders/gemm/`: `out[z] = a[z] · w[z] + bias[z]` with the weights in vec4
//! columns.
//!
//! Used for the hoisted input projection of every layer (z = direction), for the output
//! projection of an LSTM with `proj_size`, and, with zero bias, as the plain matrix product
//! that measures an adapter's ceiling.
//!
//! The module is `gemm.wgsl`, after a weight reader (`shaders/weights/`), then, on devices
//! with subgroups, `subgroup.wgsl` (the `wide4` product sharing `a` through broadcasts).

use bytemuck::{Pod, Zeroable};

use super::bindings::{dynamic_uniform, param, storage, WeightsBinding};
use super::cache::{Family, Specialization};
use super::weights::{with_reader, Reader};
use crate::error::Result;
use crate::weights::WeightsDtype;

/// Invocations per workgroup along vec4 columns (`WG_X` in the shader).
pub(crate) const WG_X: u32 = 16;
/// Invocations per workgroup along row tiles (`WG_Y` in the shader).
pub(crate) const WG_Y: u32 = 4;
/// Rows per invocation (`TM` in the shader).
pub(crate) const ROWS_PER_INVOCATION: usize = 4;

/// Mirrors `GemmParams` in the shader. Offsets and strides of `a` and `out` count f32
/// elements, those of `w` and `bias` vec4 elements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct GemmParams {
    pub m: u32,
    pub k: u32,
    pub n4: u32,
    pub n_valid: u32,
    pub a_offset: u32,
    pub a_stride: u32,
    pub a_batch: u32,
    pub w_batch: u32,
    pub bias_batch: u32,
    pub out_offset: u32,
    pub out_stride: u32,
    pub out_batch: u32,
    /// Int8 weights: u32 index, in the weights' buffer, of the columns' scales (after the
    /// integers of every z); unused otherwise.
    pub scale_offset: u32,
}

impl GemmParams {
    /// Dense products `[m, k] · [k, 4·n4]`, `a` shared by every z, `w`/`bias`/`out` packed one
    /// z after another, every column stored.
    pub fn dense(m: usize, k: usize, n4: usize) -> Result<Self> {
        Ok(GemmParams {
            m: param("rows", m)?,
            k: param("inner dimension", k)?,
            n4: param("columns", n4)?,
            n_valid: param("columns", 4 * n4)?,
            a_offset: 0,
            a_stride: param("row stride", k)?,
            a_batch: 0,
            w_batch: param("weight stride", k * n4)?,
            bias_batch: param("columns", n4)?,
            out_offset: 0,
            out_stride: param("row stride", 4 * n4)?,
            out_batch: param("output stride", m * 4 * n4)?,
            scale_offset: 0,
        })
    }

    /// Workgroups to dispatch for `z` products with `variant`.
    pub fn workgroups(&self, z: usize, variant: GemmVariant) -> [usize; 3] {
        let columns = (self.n4 as usize).div_ceil(variant.columns_per_invocation());
        let [wg_x, wg_y] = variant.workgroup();
        [
            columns.div_ceil(wg_x as usize),
            (self.m as usize)
                .div_ceil(variant.rows_per_invocation())
                .div_ceil(wg_y as usize),
            z,
        ]
    }
}

/// The GEMM kernels of `shaders/gemm/`: what one invocation computes. Every variant gives
/// the same sums in the same order (bit-identical results); they differ in speed by device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GemmVariant {
    /// Chosen by measurement: at the first forward with products of a shape class on a
    /// device, each variant is timed and the fastest kept (see
    /// [`GpuContext::tuning`](crate::GpuContext::tuning)).
    #[default]
    Auto,
    /// 4 rows × one vec4 column per invocation (`main`).
    Rows4,
    /// 4 rows × two vec4 columns per invocation (`wide`): each `a` load feeds twice the
    /// multiply-adds.
    Wide,
    /// 4 rows × four vec4 columns per invocation (`wide4`).
    Wide4,
    /// 8 rows × two vec4 columns per invocation (`block` with BR = 8, BC = 2).
    Tall2,
    /// 4 rows × one vec4 column per invocation, 16 × 16 invocations per workgroup staging
    /// 16-deep slices of both operands in workgroup memory (`tiled`): the classic shape for
    /// real GPUs. Needs 256 invocations and 8 KiB of workgroup memory per workgroup.
    Tiled,
    /// [`GemmVariant::Wide4`] loading `a` once per 8 inner elements and sharing the values
    /// through subgroup broadcasts (`wide4_sg` in `shaders/gemm/subgroup.wgsl`; same bits).
    /// Only on devices with subgroup operations and subgroups of at least 8 invocations
    /// ([`GpuContext::supports_subgroups`](crate::GpuContext::supports_subgroups)).
    Wide4Subgroup,
}

impl GemmVariant {
    /// Every kernel (every variant but [`GemmVariant::Auto`]).
    pub const ALL: [GemmVariant; 6] = [
        GemmVariant::Rows4,
        GemmVariant::Wide,
        GemmVariant::Wide4,
        GemmVariant::Tall2,
        GemmVariant::Tiled,
        GemmVariant::Wide4Subgroup,
    ];

    /// Whether a device with `limits`, and subgroups where `subgroups`
    /// ([`GpuContext::supports_subgroups`](crate::GpuContext::supports_subgroups)), can run
    /// this kernel (its workgroup size, workgroup memory and subgroup operations).
    pub fn runs_on(self, limits: &wgpu::Limits, subgroups: bool) -> bool {
        let [x, y] = self.workgroup();
        let memory = if self == GemmVariant::Tiled { 8192 } else { 0 };
        limits.max_compute_workgroup_size_x >= x
            && limits.max_compute_workgroup_size_y >= y
            && limits.max_compute_invocations_per_workgroup >= x * y
            && limits.max_compute_workgroup_storage_size >= memory
            && (subgroups || !self.needs_subgroups())
    }

    /// Whether the kernel uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        self == GemmVariant::Wide4Subgroup
    }

    /// This variant where the device runs it; the variant without subgroups where it does not
    /// have them.
    pub(crate) fn on(self, subgroups: bool) -> GemmVariant {
        match self {
            GemmVariant::Wide4Subgroup if !subgroups => GemmVariant::Wide4,
            v => v,
        }
    }

    /// Invocations per workgroup along columns and rows.
    pub(crate) fn workgroup(self) -> [u32; 2] {
        match self {
            GemmVariant::Tiled => [16, 16],
            // Subgroup builtins need a one-dimensional workgroup.
            GemmVariant::Wide4Subgroup => [WG_X * WG_Y, 1],
            _ => [WG_X, WG_Y],
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            GemmVariant::Auto => "auto",
            GemmVariant::Rows4 => "rows4",
            GemmVariant::Wide => "wide",
            GemmVariant::Wide4 => "wide4",
            GemmVariant::Tall2 => "tall2",
            GemmVariant::Tiled => "tiled",
            GemmVariant::Wide4Subgroup => "wide4-subgroup",
        }
    }

    fn entry(self) -> &'static str {
        match self {
            // `Auto` reaches a kernel only where nothing chose for it: the first kernel.
            GemmVariant::Auto | GemmVariant::Rows4 => "main",
            GemmVariant::Wide => "wide",
            GemmVariant::Wide4 => "wide4",
            GemmVariant::Tall2 => "block",
            GemmVariant::Tiled => "tiled",
            GemmVariant::Wide4Subgroup => "wide4_sg",
        }
    }

    /// Rows one invocation computes.
    pub(crate) fn rows_per_invocation(self) -> usize {
        match self {
            GemmVariant::Tall2 => 8,
            _ => ROWS_PER_INVOCATION,
        }
    }

    /// Vec4 columns one invocation computes.
    pub(crate) fn columns_per_invocation(self) -> usize {
        match self {
            GemmVariant::Auto | GemmVariant::Rows4 | GemmVariant::Tiled => 1,
            GemmVariant::Wide => 2,
            GemmVariant::Wide4 | GemmVariant::Wide4Subgroup => 4,
            GemmVariant::Tall2 => 2,
        }
    }
}

/// The pipeline of `variant`, reading float32 weights from a buffer.
pub(crate) fn specialization(variant: GemmVariant) -> Specialization {
    let mut constants = vec![("WG_X", WG_X.into()), ("WG_Y", WG_Y.into())];
    if variant.entry() == "block" {
        constants.push(("BR", (variant.rows_per_invocation() as u32).into()));
        constants.push(("BC", (variant.columns_per_invocation() as u32).into()));
    }
    Specialization {
        family: &FAMILY,
        weights: WeightsDtype::F32,
        storage: WeightsBinding::Buffer,
        subgroups: variant.needs_subgroups(),
        entry: variant.entry(),
        constants,
    }
}

/// The GEMM family.
pub(crate) static FAMILY: Family = Family {
    name: "gemm",
    source,
    layout: layout_entries,
};

/// The GEMM module for weights of type `dtype` bound as `binding`, with the subgroup kernels
/// where `subgroups`.
fn source(dtype: WeightsDtype, binding: WeightsBinding, subgroups: bool) -> &'static str {
    let reader = Reader::of(dtype, binding);
    if subgroups {
        with_reader!(reader, "gemm/gemm.wgsl", "gemm/subgroup.wgsl")
    } else {
        with_reader!(reader, "gemm/gemm.wgsl")
    }
}

/// Bindings: params (dynamic uniform), a, w, bias, out.
fn layout_entries(weights: WeightsBinding) -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        dynamic_uniform::<GemmParams>(0),
        storage(1, true),
        weights.entry(2),
        storage(3, true),
        storage(4, false),
    ]
}

#[cfg(test)]
mod tests;
