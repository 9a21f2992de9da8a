//! A model's weights on the device: repacked for the kernels ([`pack`]) and uploaded once.

use crate::error::Result;
use crate::gpu::device;
use crate::gpu::kernels::weights::TEXTURE_WIDTH;
use crate::gpu::options::WeightsStorage;
use crate::gpu::pack::{self, LayerLayout};
use crate::gpu::plan::Limits;
use crate::weights::Weights;
use crate::weights::WeightsDtype;

/// Bytes of a vec4 of f32 (biases are float32 whatever the weights' type).
const VEC4: u64 = 16;

/// One weight matrix on the device, where [`WeightsStorage`] says.
#[derive(Debug)]
pub(crate) enum WeightStore {
    Buffer(wgpu::Buffer),
    Texture(wgpu::TextureView),
}

impl WeightStore {
    /// The resource bound at binding 2 of the kernels reading it.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        match self {
            WeightStore::Buffer(b) => b.as_entire_binding(),
            WeightStore::Texture(v) => wgpu::BindingResource::TextureView(v),
        }
    }

    /// `bytes` (packed vec4s of `dtype`, as the buffer kernels read them) uploaded to `storage`
    /// (`Auto` is not a storage: it uploads a buffer).
    pub fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        label: &str,
        bytes: &[u8],
        dtype: WeightsDtype,
        storage: WeightsStorage,
    ) -> Self {
        if storage != WeightsStorage::Texture {
            return WeightStore::Buffer(device::upload(
                device,
                queue,
                label,
                bytes,
                wgpu::BufferUsages::STORAGE,
            ));
        }
        let texel = dtype.vec4_bytes() as usize;
        let height = texture_rows(bytes.len() / texel);
        let row_bytes = TEXTURE_WIDTH as usize * texel;
        let mut data = bytes.to_vec();
        data.resize(height as usize * row_bytes, 0);
        let size = wgpu::Extent3d {
            width: TEXTURE_WIDTH,
            height,
            depth_or_array_layers: 1,
        };
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: match dtype {
                WeightsDtype::F32 => wgpu::TextureFormat::Rgba32Float,
                WeightsDtype::F16 => wgpu::TextureFormat::Rgba16Float,
                WeightsDtype::I8 => unreachable!("int8 weights are always in a buffer"),
            },
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        queue.write_texture(
            texture.as_image_copy(),
            &data,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes as u32),
                rows_per_image: Some(height),
            },
            size,
        );
        WeightStore::Texture(texture.create_view(&Default::default()))
    }
}

/// Rows of a weights texture holding `vec4s` packed vec4s (at least one).
fn texture_rows(vec4s: usize) -> u32 {
    u32::try_from(vec4s.div_ceil(TEXTURE_WIDTH as usize).max(1)).unwrap_or(u32::MAX)
}

/// Whether matrices of up to `vec4s` packed vec4s fit a weights texture on a device with
/// these limits.
pub(crate) fn fits_texture(vec4s: usize, limits: &wgpu::Limits) -> bool {
    let max = limits.max_texture_dimension_2d;
    TEXTURE_WIDTH <= max && texture_rows(vec4s) <= max
}

/// The weights of one layer, both directions one after another, laid out as [`LayerLayout`]
/// says.
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    /// Input projection weights.
    pub w_ih: WeightStore,
    /// Input projection bias.
    pub bias: wgpu::Buffer,
    /// Step weights: step-0, recurrent (projection only), peepholes (peephole only).
    pub w_step: WeightStore,
    /// Projection weights and a zero bias for its GEMM (projection only).
    pub w_hr: Option<Projection>,
}

/// The projection of an LSTM with `proj_size`: weights and the zero bias its GEMM adds.
#[derive(Debug)]
pub(crate) struct Projection {
    pub weights: WeightStore,
    pub zero_bias: wgpu::Buffer,
}

/// Every layer's weight buffers.
#[derive(Debug)]
pub(crate) struct DeviceWeights {
    pub layers: Vec<LayerBuffers>,
    /// The type of the weights (not the biases).
    pub dtype: WeightsDtype,
    /// Where the weights (not the biases) live: `Buffer` or `Texture`.
    pub storage: WeightsStorage,
}

impl DeviceWeights {
    /// Checks every weight buffer against the limits, then repacks and uploads layer by layer,
    /// the weights as `dtype` in `storage` (biases as float32 buffers). A texture is used only
    /// where every weight matrix fits one (see [`fits_texture`]); a buffer otherwise.
    pub fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        limits: &Limits,
        weights: &Weights,
        dtype: WeightsDtype,
        storage: WeightsStorage,
    ) -> Result<Self> {
        let spec = weights.spec();
        let layouts: Vec<LayerLayout> = (0..spec.num_layers)
            .map(|l| LayerLayout::new(spec, l))
            .collect();
        for (layer, l) in layouts.iter().enumerate() {
            let (w_hr, zero) = l.w_hr.unwrap_or((0, 0));
            let w = dtype.vec4_bytes();
            // Int8: each matrix's scales (a float32 quad per column) after its integers, and
            // the peepholes as float32 quads (see `pack::pack_layer_i8`).
            let int8 = dtype == WeightsDtype::I8;
            let scales = |columns: usize| if int8 { columns as u64 * VEC4 } else { 0 };
            let step = if int8 {
                (l.i8_scales().1 + 4 * l.scales) as u64 * 4
            } else {
                l.w_step as u64 * w
            };
            for (name, bytes) in [
                ("weight_ih", l.w_ih as u64 * w + scales(l.scales)),
                ("bias", l.bias as u64 * VEC4),
                ("step weights", step),
                ("weight_hr", w_hr as u64 * w + scales(zero)),
                ("projection bias", zero as u64 * VEC4),
            ] {
                limits.check_buffer(&format!("{name} of layer {layer}"), bytes)?;
            }
        }
        let largest = layouts
            .iter()
            .flat_map(|l| [l.w_ih, l.w_step, l.w_hr.map_or(0, |(w, _)| w)])
            .max()
            .unwrap_or(0);
        let storage = match storage {
            WeightsStorage::Texture
                if dtype != WeightsDtype::I8 && fits_texture(largest, &device.limits()) =>
            {
                WeightsStorage::Texture
            }
            _ => WeightsStorage::Buffer,
        };
        let buffer = |label: String, data: &[u8]| {
            device::upload(device, queue, &label, data, wgpu::BufferUsages::STORAGE)
        };
        let store = |label: String, data: &[u8]| {
            WeightStore::upload(device, queue, &label, data, dtype, storage)
        };
        let floats = |data: &[f32]| bytemuck::cast_slice::<f32, u8>(data).to_vec();
        // Weights in the model's type: float16 halves, two to a u32, little-endian, as
        // `unpack2x16float` reads them (the low half first).
        let weights_bytes = |data: &[f32]| match dtype {
            WeightsDtype::F32 => floats(data),
            WeightsDtype::F16 => data
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            WeightsDtype::I8 => unreachable!("int8 weights are packed by pack_layer_i8"),
        };
        let layers = layouts
            .iter()
            .enumerate()
            .map(|(layer, l)| {
                if dtype == WeightsDtype::I8 {
                    return upload_i8(device, queue, limits, weights, layer, l);
                }
                let packed = pack::pack_layer(spec, weights, layer);
                Ok(LayerBuffers {
                    w_ih: store(
                        format!("weight_ih of layer {layer}"),
                        &weights_bytes(&packed.w_ih),
                    ),
                    bias: buffer(format!("bias of layer {layer}"), &floats(&packed.bias)),
                    w_step: store(
                        format!("step weights of layer {layer}"),
                        &weights_bytes(&packed.w_step),
                    ),
                    w_hr: packed
                        .w_hr
                        .as_ref()
                        .zip(l.w_hr)
                        .map(|(w, (_, zero))| Projection {
                            weights: store(
                                format!("weight_hr of layer {layer}"),
                                &weights_bytes(w),
                            ),
                            zero_bias: buffer(
                                format!("projection bias of layer {layer}"),
                                &floats(&vec![0.0; 4 * zero]),
                            ),
                        }),
                })
            })
            .collect::<Result<_>>()?;
        Ok(DeviceWeights {
            layers,
            dtype,
            storage,
        })
    }
}

/// Layer `layer`'s int8 weights (integers and scales, [`pack::pack_layer_i8`]) checked against
/// the limits and uploaded to buffers, its biases as float32.
fn upload_i8(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    limits: &Limits,
    weights: &Weights,
    layer: usize,
    l: &LayerLayout,
) -> Result<LayerBuffers> {
    let spec = weights.spec();
    let packed = pack::pack_layer_i8(spec, weights, layer);
    let floats = pack::pack_biases(spec, weights, layer);
    let buffer = |label: String, data: &[u8]| -> Result<wgpu::Buffer> {
        limits.check_buffer(&label, data.len() as u64)?;
        Ok(device::upload(
            device,
            queue,
            &label,
            data,
            wgpu::BufferUsages::STORAGE,
        ))
    };
    let w_hr = match (&packed.w_hr, l.w_hr) {
        (Some(w), Some((_, zero))) => Some(Projection {
            weights: WeightStore::Buffer(buffer(format!("weight_hr of layer {layer}"), w)?),
            zero_bias: buffer(
                format!("projection bias of layer {layer}"),
                bytemuck::cast_slice(&vec![0.0f32; 4 * zero]),
            )?,
        }),
        _ => None,
    };
    Ok(LayerBuffers {
        w_ih: WeightStore::Buffer(buffer(format!("weight_ih of layer {layer}"), &packed.w_ih)?),
        bias: buffer(
            format!("bias of layer {layer}"),
            bytemuck::cast_slice(&floats),
        )?,
        w_step: WeightStore::Buffer(buffer(
            format!("step weights of layer {layer}"),
            &packed.w_step,
        )?),
        w_hr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textures_hold_what_their_rows_can() {
        let limits = wgpu::Limits {
            max_texture_dimension_2d: 8192,
            ..wgpu::Limits::default()
        };
        assert_eq!(texture_rows(0), 1);
        assert_eq!(texture_rows(4096), 1);
        assert_eq!(texture_rows(4097), 2);
        assert!(fits_texture(4096 * 8192, &limits));
        assert!(!fits_texture(4096 * 8192 + 1, &limits));
        let small = wgpu::Limits {
            max_texture_dimension_2d: 2048,
            ..wgpu::Limits::default()
        };
        assert!(
            !fits_texture(1, &small),
            "narrower than a row of the layout"
        );
    }
}
