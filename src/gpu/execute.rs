//! One forward on a workspace: upload the input and the schedule's parameter blocks, record
//! every dispatch into one compute pass, submit once, read back once.

use crate::error::Result;
use crate::gpu::device::{self, TIMESTAMP_BYTES};
use crate::gpu::kernels::cache::Kernel;
use crate::gpu::plan::Schedule;
use crate::gpu::workspace::{StateBuffers, Workspace};

/// How a forward starts its state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init<'a> {
    /// Upload `h0`/`c0` (zeros where `None`).
    Upload {
        h0: Option<&'a [f32]>,
        c0: Option<&'a [f32]>,
    },
    /// Continue from the state the previous forward on these state buffers left.
    Carry,
    /// A batcher's round: the rows' states gathered from a state table's slots before the
    /// first step, the final states scattered back after the last.
    Table(TableOps<'a>),
}

/// The two dispatches that tie a forward to a state table (`kernels::state`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableOps<'a> {
    pub gather: &'a Kernel,
    pub scatter: &'a Kernel,
    /// The table's slots and this workspace's `h0` and cell state.
    pub gather_group: &'a wgpu::BindGroup,
    /// The table's slots and this workspace's `h_n` and cell state.
    pub scatter_group: &'a wgpu::BindGroup,
    /// Workgroups of each dispatch.
    pub groups: u32,
    /// Whether the cell has a cell state; where not, the cell-state buffer (a two-pass GRU's
    /// scratch) is cleared as an upload without `c0` clears it.
    pub cell_state: bool,
}

/// The pipelines a schedule runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernels<'a> {
    pub gemm: &'a Kernel,
    pub step: &'a Kernel,
    /// The first pass of a two-pass step, run before each stepwise step.
    pub reset: Option<&'a Kernel>,
}

/// The host side of one forward.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    /// Input `[T, B, I]`, row-major.
    pub x: &'a [f32],
    /// Length of each sequence.
    pub lens: &'a [u32],
    pub init: Init<'a>,
    /// Read `h_n` and `c_n` back after `y`.
    pub read_states: bool,
    /// Time the compute pass with timestamp queries (where the workspace has them).
    pub timing: bool,
}

/// What a forward read back.
#[derive(Debug)]
pub(crate) struct Readout {
    /// `y`, then (with `read_states`) `h_n` and `c_n`, each row-major and packed for the
    /// schedule's extent.
    pub data: Vec<f32>,
    /// Device time of the compute pass, when timed.
    pub device_ms: Option<f64>,
}

/// Runs `schedule` on `ws` for `job`.
pub(crate) fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    ws: &Workspace,
    schedule: &Schedule,
    kernels: Kernels<'_>,
    job: Job<'_>,
) -> Result<Readout> {
    let sizes = schedule.sizes;
    let st = &ws.state;
    device::scoped(device, "forward", || {
        if cfg!(debug_assertions) {
            // Debug builds (the tests) prove that every element read back was written by
            // this forward's kernels.
            ws.poison(queue, !matches!(job.init, Init::Carry));
        }
        queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(job.x));
        queue.write_buffer(&ws.lens, 0, bytemuck::cast_slice(job.lens));
        queue.write_buffer(&ws.params, 0, &schedule.params);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        match job.init {
            Init::Upload { h0, c0 } => {
                for (buf, data) in [(&st.h0, h0), (&st.c, c0)] {
                    match data {
                        Some(d) => queue.write_buffer(buf, 0, bytemuck::cast_slice(d)),
                        None => encoder.clear_buffer(buf, 0, None),
                    }
                }
            }
            Init::Carry => encoder.copy_buffer_to_buffer(&st.hn, 0, &st.h0, 0, sizes.h),
            Init::Table(t) if !t.cell_state => encoder.clear_buffer(&st.c, 0, None),
            Init::Table(_) => {}
        }
        let timestamps = ws.timestamps.as_ref().filter(|_| job.timing);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: timestamps.map(|t| t.pass_writes()),
            });
            let table = match job.init {
                Init::Table(t) => Some(t),
                _ => None,
            };
            if let Some(t) = table {
                pass.set_pipeline(&t.gather.pipeline);
                pass.set_bind_group(0, t.gather_group, &[]);
                pass.dispatch_workgroups(t.groups, 1, 1);
            }
            encode(&mut pass, ws, schedule, kernels);
            if let Some(t) = table {
                pass.set_pipeline(&t.scatter.pipeline);
                pass.set_bind_group(0, t.scatter_group, &[]);
                pass.dispatch_workgroups(t.groups, 1, 1);
            }
        }
        encoder.copy_buffer_to_buffer(ws.final_y(), 0, &ws.staging, 0, sizes.y);
        if job.read_states {
            encoder.copy_buffer_to_buffer(&st.hn, 0, &ws.staging, sizes.y, sizes.h);
            encoder.copy_buffer_to_buffer(&st.c, 0, &ws.staging, sizes.y + sizes.h, sizes.c);
        }
        let total = sizes.readback(job.read_states);
        if let Some(t) = timestamps {
            t.copy_to(&mut encoder, &ws.staging, total);
        }
        let submission = queue.submit([encoder.finish()]);
        let read = total
            + if timestamps.is_some() {
                TIMESTAMP_BYTES
            } else {
                0
            };
        let mut data = device::read_back(device, &ws.staging, read, submission)?;
        let device_ms = timestamps.map(|_| {
            let words = data.split_off((total / 4) as usize);
            let words: [u32; 4] = std::array::from_fn(|i| words[i].to_bits());
            device::elapsed_ms(words, queue.get_timestamp_period())
        });
        Ok(Readout { data, device_ms })
    })
}

/// Records every dispatch of `schedule` into `pass`.
fn encode(
    pass: &mut wgpu::ComputePass<'_>,
    ws: &Workspace,
    schedule: &Schedule,
    kernels: Kernels<'_>,
) {
    for (groups, layer) in ws.layers.iter().zip(&schedule.layers) {
        let [x, y, z] = layer.input.groups;
        pass.set_pipeline(&kernels.gemm.pipeline);
        pass.set_bind_group(0, &groups.input, &[layer.input.offset]);
        pass.dispatch_workgroups(x, y, z);
        pass.set_pipeline(&kernels.step.pipeline);
        for step in &layer.steps {
            let [x, y, z] = step.groups;
            pass.set_bind_group(0, &groups.step, &[step.offset]);
            if let Some(reset) = kernels.reset {
                pass.set_pipeline(&reset.pipeline);
                pass.dispatch_workgroups(x, y, z);
                pass.set_pipeline(&kernels.step.pipeline);
            }
            pass.dispatch_workgroups(x, y, z);
        }
        if let (Some(bind), Some(dispatches)) = (&groups.proj, &layer.proj) {
            pass.set_pipeline(&kernels.gemm.pipeline);
            for (group, d) in bind.both().into_iter().zip(dispatches.both()) {
                let [x, y, z] = d.groups;
                pass.set_bind_group(0, group, &[d.offset]);
                pass.dispatch_workgroups(x, y, z);
            }
        }
    }
}

/// Reads `h_n` and `c_n` of `state` back through `staging` (at least as large as both).
pub(crate) fn read_state(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    state: &StateBuffers,
    staging: &wgpu::Buffer,
) -> Result<Vec<f32>> {
    device::scoped(device, "state readback", || {
        let (h, c) = (state.hn.size(), state.c.size());
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("state readback"),
        });
        encoder.copy_buffer_to_buffer(&state.hn, 0, staging, 0, h);
        encoder.copy_buffer_to_buffer(&state.c, 0, staging, h, c);
        let submission = queue.submit([encoder.finish()]);
        device::read_back(device, staging, h + c, submission)
    })
}
