//! A model's weights on the device: repacked for the kernels ([`pack`]) and uploaded once.

use crate::error::Result;
use crate::gpu::device;
use crate::gpu::pack::{self, LayerLayout};
use crate::gpu::plan::Limits;
use crate::weights::Weights;

/// Bytes of a vec4 of f32.
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
}

impl DeviceWeights {
    /// Checks every weight buffer against the limits, then repacks and uploads layer by layer.
    pub fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        limits: &Limits,
        weights: &Weights,
    ) -> Result<Self> {
        let spec = weights.spec();
        let layouts: Vec<LayerLayout> = (0..spec.num_layers)
            .map(|l| LayerLayout::new(spec, l))
            .collect();
        for (layer, l) in layouts.iter().enumerate() {
            let (w_hr, zero) = l.w_hr.unwrap_or((0, 0));
            for (name, vec4s) in [
                ("weight_ih", l.w_ih),
                ("bias", l.bias),
                ("step weights", l.w_step),
                ("weight_hr", w_hr),
                ("projection bias", zero),
            ] {
                limits.check_buffer(&format!("{name} of layer {layer}"), vec4s as u64 * VEC4)?;
            }
        }
        let storage = |label: String, data: &[f32]| {
            device::upload(
                device,
                queue,
                &label,
                bytemuck::cast_slice(data),
                wgpu::BufferUsages::STORAGE,
            )
        };
        let layers = layouts
            .iter()
            .enumerate()
            .map(|(layer, l)| {
                let packed = pack::pack_layer(spec, weights, layer);
                LayerBuffers {
                    w_ih: storage(format!("weight_ih of layer {layer}"), &packed.w_ih),
                    bias: storage(format!("bias of layer {layer}"), &packed.bias),
                    w_step: storage(format!("step weights of layer {layer}"), &packed.w_step),
                    w_hr: packed
                        .w_hr
                        .as_ref()
                        .zip(l.w_hr)
                        .map(|(w, (_, zero))| Projection {
                            weights: storage(format!("weight_hr of layer {layer}"), w),
                            zero_bias: storage(
                                format!("projection bias of layer {layer}"),
                                &vec![0.0; 4 * zero],
                            ),
                        }),
                }
            })
            .collect();
        Ok(DeviceWeights { layers })
    }
}
