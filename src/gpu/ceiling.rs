//! The adapter's ceiling: a large plain matrix product with the crate's own GEMM kernel
//! (`shaders/gemm.wgsl`), so that each recurrent-layer figure can be read as a fraction of it.

use std::num::NonZeroU64;
use std::time::Instant;

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::device::{self, Timestamps, TIMESTAMP_BYTES};
use crate::gpu::kernels::gemm::{self, GemmParams, GemmVariant};

/// The measured throughput of `reps` products `[n, n] · [n, n]` recorded in one submit.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmCeiling {
    /// Matrix size.
    pub n: usize,
    /// Products timed.
    pub reps: usize,
    /// GFLOP/s from the wall time of the submit (waiting for the device included).
    pub gflops: f64,
    /// GFLOP/s from timestamp queries, where the device has them.
    pub device_gflops: Option<f64>,
}

/// Runs the GEMM kernel `variant` on `n × n × n` products: one warm-up, then `reps` in one
/// submit.
pub fn gemm_ceiling(
    ctx: &GpuContext,
    n: usize,
    reps: usize,
    variant: GemmVariant,
) -> Result<GemmCeiling> {
    let _device = ctx.exclusive();
    let device = ctx.device();
    let queue = ctx.queue();
    let kernel = ctx.kernel(&gemm::specialization(variant))?;
    let n = n.next_multiple_of(4).max(4);
    let reps = reps.max(1);
    let params = GemmParams::dense(n, n, n / 4)?;
    let storage = |label: &str, floats: usize| {
        let b = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let fill: Vec<f32> = (0..floats)
            .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
            .collect();
        queue.write_buffer(&b, 0, bytemuck::cast_slice(&fill));
        b
    };
    let (a, w, bias, out) = (
        storage("gemm a", n * n),
        storage("gemm w", n * n),
        storage("gemm bias", n),
        storage("gemm out", n * n),
    );
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gemm params"),
        size: std::mem::size_of::<GemmParams>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("gemm ceiling"),
        layout: &kernel.layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniform,
                    offset: 0,
                    size: NonZeroU64::new(std::mem::size_of::<GemmParams>() as u64),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: a.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: w.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: bias.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: out.as_entire_binding(),
            },
        ],
    });
    let timing = ctx.supports_timestamps().then(|| {
        let read = device::buffer(
            device,
            "gemm timestamps readback",
            TIMESTAMP_BYTES,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        (Timestamps::new(device, "gemm timestamps"), read)
    });
    let groups = params.workgroups(1, variant);
    let [x, y, z] = groups.map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    let allowed = ctx.limits().max_compute_workgroups_per_dimension;
    if let Some(&g) = groups.iter().find(|&&g| g > allowed as usize) {
        return Err(crate::error::Error::ExceedsLimit {
            what: format!("the {n}³ gemm ceiling"),
            limit: "max_compute_workgroups_per_dimension",
            needed: g as u64,
            allowed: u64::from(allowed),
        });
    }
    let run = |count: usize, timed: bool| -> Result<f64> {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gemm ceiling"),
                timestamp_writes: timing
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
        if let (true, Some((t, read))) = (timed, &timing) {
            t.copy_to(&mut encoder, read, 0);
        }
        let start = Instant::now();
        queue.submit([encoder.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| device::gpu_error("gemm ceiling", e))?;
        Ok(start.elapsed().as_secs_f64())
    };
    run(1, false)?;
    let seconds = run(reps, true)?;
    let flops = 2.0 * (n as f64).powi(3) * reps as f64;
    let device_gflops = match &timing {
        Some((_, read)) => {
            let (tx, rx) = std::sync::mpsc::channel();
            read.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| device::gpu_error("gemm ceiling", e))?;
            let ok = rx.recv().map(|r| r.is_ok()).unwrap_or(false);
            let ticks = if ok {
                let view = read
                    .get_mapped_range(..)
                    .map_err(|e| device::gpu_error("gemm ceiling", e))?;
                let t: &[u64] = bytemuck::cast_slice(&view);
                Some(t[1].saturating_sub(t[0]))
            } else {
                None
            };
            read.unmap();
            ticks
                .filter(|&t| t > 0)
                .map(|t| flops / (t as f64 * f64::from(queue.get_timestamp_period())))
        }
        None => None,
    };
    Ok(GemmCeiling {
        n,
        reps,
        gflops: flops / seconds / 1e9,
        device_gflops,
    })
}
