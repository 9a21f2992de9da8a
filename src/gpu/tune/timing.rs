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

/// Times `reps` products of `params` with `kernel` on scratch operands, its weights of type
/// `dtype` in `storage` (the kernel's): one warm-up dispatch, then `reps` dispatches in one
/// pass and one submit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn time_gemm(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    kernel: &Kernel,
    params: &GemmParams,
    variant: GemmVariant,
    storage: WeightsStorage,
    dtype: WeightsDtype,
    reps: usize,
    timestamps: bool,
    max_workgroups: u32,
) -> Result<GemmTiming> {
    let workgroups = dispatch_size(params, variant, max_workgroups)?;
    device::scoped(device, "timing a gemm kernel", || {
        let operands = Operands::upload(device, queue, params, storage, dtype);
        let group = operands.bind_group(device, kernel);
        let stamps = timestamps.then(|| TimestampReadback::new(device));
        let timed = TimedPass {
            device,
            queue,
            kernel,
            group: &group,
            workgroups,
        };
        timed.submit(1, None)?;
        let (wall_s, submission) = timed.submit(reps.max(1), stamps.as_ref())?;
        let device_s = match &stamps {
            Some(s) => s.seconds(device, queue, submission)?,
            None => None,
        };
        Ok(GemmTiming { wall_s, device_s })
    })
}

/// The workgroups of one dispatch of `params` with `variant`, refused where a dimension
/// exceeds `max_workgroups` (the device's `max_compute_workgroups_per_dimension`).
fn dispatch_size(
    params: &GemmParams,
    variant: GemmVariant,
    max_workgroups: u32,
) -> Result<[u32; 3]> {
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
    Ok(groups.map(|g| u32::try_from(g).unwrap_or(u32::MAX)))
}

/// Scratch operands of a timed product, in the bindings' order: its parameters, the input
/// `a` `[m, k]`, the weights `[k, n]`, the bias `[n]` and the output `[m, n]`.
struct Operands {
    /// The [`GemmParams`] uniform.
    params: wgpu::Buffer,
    /// The left operand.
    a: wgpu::Buffer,
    /// The weights, in the storage being timed.
    w: WeightStore,
    /// The bias added to each row.
    bias: wgpu::Buffer,
    /// The product.
    out: wgpu::Buffer,
}

/// Scratch weights `[k, n4]` of type `dtype`, as many bytes as the kernels read (int8: the
/// integers, then a float32 quad of scales per column).
fn weight_bytes(k: usize, n4: usize, dtype: WeightsDtype) -> Vec<u8> {
    let scales = if dtype == WeightsDtype::I8 {
        16 * n4
    } else {
        0
    };
    let len = k * n4 * dtype.vec4_bytes() as usize + scales;
    let mut bytes = bytemuck::cast_slice::<f32, u8>(&fill(len.div_ceil(4))).to_vec();
    bytes.truncate(len);
    bytes
}

impl Operands {
    /// Operands for `params` filled with small repeating values (their values do not change
    /// the time), the weights of type `dtype` in `storage` (their bytes the same small values:
    /// what they mean as halves or integers does not change the time either; int8 weights
    /// with their scales after them).
    fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        params: &GemmParams,
        storage: WeightsStorage,
        dtype: WeightsDtype,
    ) -> Self {
        use wgpu::BufferUsages as U;
        let (m, k, n) = (params.m as usize, params.k as usize, 4 * params.n4 as usize);
        let filled = |label: &str, floats: usize| {
            device::upload(
                device,
                queue,
                label,
                bytemuck::cast_slice(&fill(floats)),
                U::STORAGE,
            )
        };
        Operands {
            params: device::upload(
                device,
                queue,
                "gemm params",
                bytemuck::bytes_of(params),
                U::UNIFORM,
            ),
            a: filled("gemm a", m * k),
            w: WeightStore::upload(
                device,
                queue,
                "gemm w",
                &weight_bytes(k, params.n4 as usize, dtype),
                dtype,
                storage,
            ),
            bias: filled("gemm bias", n),
            out: device::buffer(device, "gemm out", (m * n * 4) as u64, U::STORAGE),
        }
    }

    /// The bind group of these operands in `kernel`'s layout.
    fn bind_group(&self, device: &wgpu::Device, kernel: &Kernel) -> wgpu::BindGroup {
        let resources = [
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.params,
                offset: 0,
                size: std::num::NonZeroU64::new(std::mem::size_of::<GemmParams>() as u64),
            }),
            self.a.as_entire_binding(),
            self.w.binding(),
            self.bias.as_entire_binding(),
            self.out.as_entire_binding(),
        ];
        let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
            .into_iter()
            .zip(0u32..)
            .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("timed gemm"),
            layout: &kernel.layout,
            entries: &entries,
        })
    }
}

/// `floats` small values repeating every 17, in `[−0.08, 0.08]`.
fn fill(floats: usize) -> Vec<f32> {
    (0..floats)
        .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
        .collect()
}

/// The timestamp queries of a timed pass and the mappable buffer they are copied to.
struct TimestampReadback {
    /// The pass's start and end queries.
    queries: Timestamps,
    /// Where they are read back from.
    read: wgpu::Buffer,
}

impl TimestampReadback {
    /// Queries and a readback buffer on `device`.
    fn new(device: &wgpu::Device) -> Self {
        TimestampReadback {
            queries: Timestamps::new(device, "gemm timestamps"),
            read: device::buffer(
                device,
                "gemm timestamps readback",
                TIMESTAMP_BYTES,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        }
    }

    /// Seconds between the pass's timestamps once `submission` completes; `None` when the
    /// device wrote no positive interval.
    fn seconds(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        submission: wgpu::SubmissionIndex,
    ) -> Result<Option<f64>> {
        let words = device::read_back(device, &self.read, TIMESTAMP_BYTES, submission)?;
        let words: [u32; 4] = std::array::from_fn(|i| words[i].to_bits());
        let ms = device::elapsed_ms(words, queue.get_timestamp_period());
        Ok((ms > 0.0).then_some(ms / 1e3))
    }
}

/// One pass of a GEMM kernel bound to its operands, dispatched and waited for.
struct TimedPass<'a> {
    /// The device the pass runs on.
    device: &'a wgpu::Device,
    /// Its queue.
    queue: &'a wgpu::Queue,
    /// The GEMM kernel timed.
    kernel: &'a Kernel,
    /// The operands' bind group.
    group: &'a wgpu::BindGroup,
    /// Workgroups of one dispatch.
    workgroups: [u32; 3],
}

impl TimedPass<'_> {
    /// Records `count` dispatches in one pass (timed by `stamps` where given), submits it and
    /// waits: the wall seconds from submit to completion, and the submission.
    fn submit(
        &self,
        count: usize,
        stamps: Option<&TimestampReadback>,
    ) -> Result<(f64, wgpu::SubmissionIndex)> {
        let [x, y, z] = self.workgroups;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed gemm"),
                timestamp_writes: stamps.map(|s| s.queries.pass_writes()),
            });
            pass.set_pipeline(&self.kernel.pipeline);
            pass.set_bind_group(0, self.group, &[0]);
            for _ in 0..count {
                pass.dispatch_workgroups(x, y, z);
            }
        }
        if let Some(s) = stamps {
            s.queries.copy_to(&mut encoder, &s.read, 0);
        }
        let start = Instant::now();
        let submission = self.queue.submit([encoder.finish()]);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission.clone()),
                timeout: None,
            })
            .map_err(|e| device::gpu_error("timing a gemm kernel", e))?;
        Ok((start.elapsed().as_secs_f64(), submission))
    }
}
