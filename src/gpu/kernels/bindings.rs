//! Bind-group layout entries and kernel parameters shared by every kernel family.

use std::num::NonZeroU64;

use crate::error::{Error, Result};

/// Where a kernel reads its weights (binding 2 of every family): the resolved form of
/// [`WeightsStorage`](crate::WeightsStorage), which the kernels never see as `Auto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) enum WeightsBinding {
    /// A read-only storage buffer of packed vec4s (float32, or float16 pairs in `u32`s).
    #[default]
    Buffer,
    /// A 2D texture read with `textureLoad` (`shaders/weights/texture.wgsl`).
    Texture,
}

impl WeightsBinding {
    /// The layout entry of the weights at `binding`.
    pub fn entry(self, binding: u32) -> wgpu::BindGroupLayoutEntry {
        match self {
            WeightsBinding::Texture => wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            },
            WeightsBinding::Buffer => storage(binding, true),
        }
    }
}

/// A storage-buffer binding visible to compute.
pub(crate) fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A uniform binding with a dynamic offset, holding one `T` per dispatch.
pub(crate) fn dynamic_uniform<T>(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: NonZeroU64::new(std::mem::size_of::<T>() as u64),
        },
        count: None,
    }
}

/// `value` as a `u32` kernel parameter, or the limit it exceeds (never a silent truncation).
pub(crate) fn param(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::ExceedsLimit {
        what: what.to_string(),
        limit: "u32 kernel parameter",
        needed: value as u64,
        allowed: u64::from(u32::MAX),
    })
}
