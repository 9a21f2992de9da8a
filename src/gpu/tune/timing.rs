//! Timing one GEMM kernel on scratch operands: what the tuner compares GEMM variants and
//! weight storages by, and what the GEMM ceiling reports.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::device::{self, Timestamps, TIMESTAMP_BYTES};
use crate::gpu::kernels::cache::Kernel;
use crate::gpu::kernels::gemm::{GemmParams, GemmVariant};
use crate::gpu::options::WeightsStorage;
use crate::gpu::weights::WeightStore;
use crate::weights::WeightsDtype;

/// Wall and device time of a timed GEMM run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmTiming {
    /// Seconds from submit to completion.
    pub wall_s: f64,
    /// Seconds of the compute pass from timestamp queries, where the device has them.
    pub device_s: Option<f64>,
}

/// Times `reps` products of `params` with `kernel` on scratch operands, its float32 weights in
/// `storage` (the kernel's): one warm-up dispatch, then `reps` dispatches in one pass and one
/// submit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn time_gemm(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    kernel: &Kernel,
    params: &GemmParams,
    variant: GemmVariant,
    storage: WeightsStorage,
    reps: usize,
    timestamps: bool,
    max_workgroups: u32,
) -> Result<GemmTiming> {
    let groups = params.workgroups(1, variant);
    if let Some(&g) = groups.iter().find(|&&g| g > max_workgroups as usize) {
        return Err(Error::ExceedsLimit {
            what: format!(
                "a timed {}×{}×{} product",
                params.m,
                params.k,
                4 * params.n4
            ),
            limit: "max_compute_workgroups_per_dimension",
            needed: g as u64,
            allowed: u64::from(max_workgroups),
        });
    }
    let [x, y, z] = groups.map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    device::scoped(device, "timing a gemm kernel", || {
        use wgpu::BufferUsages as U;
        let (m, k, n) = (params.m as usize, params.k as usize, 4 * params.n4 as usize);
        let fill = |floats: usize| -> Vec<f32> {
            (0..floats)
                .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
                .collect()
        };
        let filled = |label: &str, floats: usize| {
            let data = fill(floats);
            device::upload(
                device,
                queue,
                label,
                bytemuck::cast_slice(&data),
                U::STORAGE,
            )
        };
        let (a, bias) = (filled("gemm a", m * k), filled("gemm bias", n));
        let w = WeightStore::upload(
            device,
            queue,
            "gemm w",
            bytemuck::cast_slice(&fill(k * n)),
            WeightsDtype::F32,
            storage,
        );
        let out = device::buffer(device, "gemm out", (m * n * 4) as u64, U::STORAGE);
        let uniform = device::upload(
            device,
            queue,
            "gemm params",
            bytemuck::bytes_of(params),
            U::UNIFORM,
        );
        let resources = [
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset: 0,
                size: std::num::NonZeroU64::new(std::mem::size_of::<GemmParams>() as u64),
            }),
            a.as_entire_binding(),
            w.binding(),
            bias.as_entire_binding(),
            out.as_entire_binding(),
        ];
        let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
            .into_iter()
            .zip(0u32..)
            .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("timed gemm"),
            layout: &kernel.layout,
            entries: &entries,
        });
        let stamps = timestamps.then(|| {
            let read = device::buffer(
                device,
                "gemm timestamps readback",
                TIMESTAMP_BYTES,
                U::MAP_READ | U::COPY_DST,
            );
            (Timestamps::new(device, "gemm timestamps"), read)
        });
        let run = |count: usize, timed: bool| -> Result<(f64, wgpu::SubmissionIndex)> {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed gemm"),
                    timestamp_writes: stamps
                        .as_ref()
                        .filter(|_| timed)
                        .map(|(t, _)| t.pass_writes()),
                });
                pass.set_pipeline(&kernel.pipeline);
                pass.set_bind_group(0, &group, &[0]);
                for _ in 0..count {
                    pass.dispatch_workgroups(x, y, z);
                }
            }
            if let (true, Some((t, read))) = (timed, &stamps) {
                t.copy_to(&mut encoder, read, 0);
            }
            let start = Instant::now();
            let submission = queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(submission.clone()),
                    timeout: None,
                })
                .map_err(|e| device::gpu_error("timing a gemm kernel", e))?;
            Ok((start.elapsed().as_secs_f64(), submission))
        };
        run(1, false)?;
        let (wall_s, submission) = run(reps.max(1), true)?;
        let device_s = match &stamps {
            Some((_, read)) => {
                let words = device::read_back(device, read, TIMESTAMP_BYTES, submission)?;
                let words: [u32; 4] = std::array::from_fn(|i| words[i].to_bits());
                let ms = device::elapsed_ms(words, queue.get_timestamp_period());
                (ms > 0.0).then_some(ms / 1e3)
            }
            None => None,
        };
        Ok(GemmTiming { wall_s, device_s })
    })
}
