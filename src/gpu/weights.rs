//! A model's weights on the device: repacked for the kernels ([`pack`]) and uploaded once.

use crate::error::Result;
use crate::gpu::device;
use crate::gpu::kernels::WeightsDtype;
use crate::gpu::pack::{self, LayerLayout};
use crate::gpu::plan::Limits;
use crate::weights::Weights;

/// Bytes of a vec4 of f32 (biases are float32 whatever the weights' type).
const VEC4: u64 = 16;

/// The weight buffers of one layer, both directions one after another, laid out as
/// [`LayerLayout`] says.
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    /// Input projection weights.
    pub w_ih: wgpu::Buffer,
    /// Input projection bias.
    pub bias: wgpu::Buffer,
    /// Step weights: step-0, recurrent (projection only), peepholes (peephole only).
    pub w_step: wgpu::Buffer,
    /// Projection weights and a zero bias for its GEMM (projection only).
    pub w_hr: Option<Projection>,
}

/// The projection of an LSTM with `proj_size`: weights and the zero bias its GEMM adds.
#[derive(Debug)]
pub(crate) struct Projection {
    pub weights: wgpu::Buffer,
    pub zero_bias: wgpu::Buffer,
}

/// Every layer's weight buffers.
#[derive(Debug)]
pub(crate) struct DeviceWeights {
    pub layers: Vec<LayerBuffers>,
    /// How the weights (not the biases) are stored.
    pub dtype: WeightsDtype,
}

impl DeviceWeights {
    /// Checks every weight buffer against the limits, then repacks and uploads layer by layer,
    /// the weights as `dtype` (biases as float32).
    pub fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        limits: &Limits,
        weights: &Weights,
        dtype: WeightsDtype,
    ) -> Result<Self> {
        let spec = weights.spec();
        let layouts: Vec<LayerLayout> = (0..spec.num_layers)
            .map(|l| LayerLayout::new(spec, l))
            .collect();
        for (layer, l) in layouts.iter().enumerate() {
            let (w_hr, zero) = l.w_hr.unwrap_or((0, 0));
            let w = dtype.vec4_bytes();
            for (name, bytes) in [
                ("weight_ih", l.w_ih as u64 * w),
                ("bias", l.bias as u64 * VEC4),
                ("step weights", l.w_step as u64 * w),
                ("weight_hr", w_hr as u64 * w),
                ("projection bias", zero as u64 * VEC4),
            ] {
                limits.check_buffer(&format!("{name} of layer {layer}"), bytes)?;
            }
        }
        let storage = |label: String, data: &[u8]| {
            device::upload(device, queue, &label, data, wgpu::BufferUsages::STORAGE)
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
        };
        let layers = layouts
            .iter()
            .enumerate()
            .map(|(layer, l)| {
                let packed = pack::pack_layer(spec, weights, layer);
                LayerBuffers {
                    w_ih: storage(
                        format!("weight_ih of layer {layer}"),
                        &weights_bytes(&packed.w_ih),
                    ),
                    bias: storage(format!("bias of layer {layer}"), &floats(&packed.bias)),
                    w_step: storage(
                        format!("step weights of layer {layer}"),
                        &weights_bytes(&packed.w_step),
                    ),
                    w_hr: packed
                        .w_hr
                        .as_ref()
                        .zip(l.w_hr)
                        .map(|(w, (_, zero))| Projection {
                            weights: storage(
                                format!("weight_hr of layer {layer}"),
                                &weights_bytes(w),
                            ),
                            zero_bias: storage(
                                format!("projection bias of layer {layer}"),
                                &floats(&vec![0.0; 4 * zero]),
                            ),
                        }),
                }
            })
            .collect();
        Ok(DeviceWeights { layers, dtype })
    }
}
