//! A model on the GPU: weights repacked and uploaded once, per-shape workspaces (buffers and
//! bind groups) cached, and a forward that records every dispatch into one command encoder.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, Array3};
use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::gemm::{self, GemmParams};
use crate::gpu::kernels::lstm_step::{self, StepParams};
use crate::gpu::kernels::Kernel;
use crate::spec::RnnSpec;
use crate::tensor::{Input, Output, Prepared};
use crate::weights::Weights;
use crate::Forward;

/// How many input shapes (steps × batch) keep their buffers and bind groups between forwards.
const WORKSPACE_CACHE: usize = 4;

/// Weight buffers of one layer, both directions packed one after another.
#[derive(Debug)]
struct LayerParams {
    /// `[D, in, H]` of vec4 (gates i, f, g, o of unit j together).
    w_ih: wgpu::Buffer,
    /// `[D, H, H]` of vec4.
    w_hh: wgpu::Buffer,
    /// `[D, H]` of vec4: `b_ih + b_hh` (zeros without biases).
    bias: wgpu::Buffer,
}

/// Buffers and bind groups for one input shape.
#[derive(Debug)]
struct Workspace {
    steps: usize,
    batch: usize,
    /// Input sequence `[T, B, I]`.
    x: wgpu::Buffer,
    /// Layer outputs `[T, B, D·H]`, ping-ponged between layers.
    ys: [wgpu::Buffer; 2],
    /// Input projections of one layer `[D, T, B, H]` of vec4.
    gx: wgpu::Buffer,
    /// `h0` `[L·D, B, H]`.
    h0: wgpu::Buffer,
    /// Cell state, updated in place; ends as `c_n` `[L·D, B, H]`.
    c: wgpu::Buffer,
    /// `h_n` `[L·D, B, H]`.
    hn: wgpu::Buffer,
    /// One parameter block per dispatch, `stride` bytes apart.
    _params: wgpu::Buffer,
    stride: u64,
    /// `y`, `h_n`, `c_n` copied here for the one readback.
    staging: wgpu::Buffer,
    step_kernel: Arc<Kernel>,
    layers: Vec<LayerGroups>,
}

#[derive(Debug)]
struct LayerGroups {
    gemm: wgpu::BindGroup,
    gemm_params: GemmParams,
    step: wgpu::BindGroup,
}

impl Workspace {
    fn y_bytes(&self, spec: &RnnSpec) -> u64 {
        (self.steps * self.batch * spec.output_size() * 4) as u64
    }

    fn state_bytes(&self, spec: &RnnSpec) -> u64 {
        (spec.num_layers * spec.num_directions() * self.batch * spec.hidden_size * 4) as u64
    }

    /// Dynamic offset of dispatch `i` of layer `layer` (0: projection, 1 + s: step s).
    fn offset(&self, layer: usize, i: usize) -> u32 {
        ((layer * (self.steps + 1) + i) as u64 * self.stride) as u32
    }

    fn final_y(&self, spec: &RnnSpec) -> &wgpu::Buffer {
        &self.ys[(spec.num_layers - 1) % 2]
    }
}

/// A model uploaded to a GPU. Create it once with [`GpuModel::upload`] and call
/// [`Forward::forward`] as often as needed; it can be shared between threads.
///
/// ```no_run
/// use ndarray::Array3;
/// use wgpu_lstm::{ContextOptions, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights};
/// let ctx = GpuContext::new(&ContextOptions::default())?;
/// let weights = Weights::random(&RnnSpec::lstm(40, 128).layers(2), 0)?;
/// let model = GpuModel::upload(&ctx, &weights)?;
/// let x = Array3::<f32>::zeros((100, 8, 40)); // [T, B, I]
/// let out = model.forward(&Input::new(x.view()))?;
/// assert_eq!(out.y.shape(), &[100, 8, 128]);
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug)]
pub struct GpuModel {
    ctx: GpuContext,
    spec: RnnSpec,
    layers: Vec<LayerParams>,
    gemm: Arc<Kernel>,
    workspaces: Mutex<Vec<Workspace>>,
    last_dispatches: AtomicUsize,
}

/// `w` (`[G·H, K]`, gate-major rows as in PyTorch) repacked to `[K, H, G]`: for each input
/// feature k, the G gates of hidden unit j sit together.
fn pack_gates(w: &Array2<f32>, gates: usize) -> Vec<f32> {
    let (rows, k) = w.dim();
    let h = rows / gates;
    let mut out = vec![0.0f32; rows * k];
    for ((row, kk), &v) in w.indexed_iter() {
        let (g, j) = (row / h, row % h);
        out[(kk * h + j) * gates + g] = v;
    }
    out
}

fn gpu_error(during: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu {
        during: during.to_string(),
        message: e.to_string(),
    }
}

/// Runs `f` inside validation and out-of-memory error scopes and turns what they catch into
/// [`Error::Gpu`].
fn scoped<T>(device: &wgpu::Device, during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = f();
    let v = pollster::block_on(validation.pop());
    let o = pollster::block_on(oom.pop());
    if let Some(e) = v.or(o) {
        return Err(gpu_error(during, e));
    }
    result
}

impl GpuModel {
    /// Repacks the weights for the kernels and uploads them; compiles the pipelines on first use
    /// of the context.
    pub fn upload(ctx: &GpuContext, weights: &Weights) -> Result<Self> {
        let spec = weights.spec().clone();
        let device = ctx.device();
        let gates = spec.cell.gates();
        let gemm = ctx.kernel(&gemm::specialization())?;
        let layers = scoped(device, "weight upload", || {
            let mut layers = Vec::new();
            for layer in 0..spec.num_layers {
                let (mut w_ih, mut w_hh, mut bias) = (Vec::new(), Vec::new(), Vec::new());
                for d in 0..spec.num_directions() {
                    let p = weights.get(layer, d);
                    w_ih.extend(pack_gates(&p.w_ih, gates));
                    w_hh.extend(pack_gates(&p.w_hh, gates));
                    let b = p.combined_bias().insert_axis(ndarray::Axis(1));
                    bias.extend(pack_gates(&b, gates));
                }
                let limits = ctx.limits();
                let buffer = |name: &str, data: &[f32]| -> Result<wgpu::Buffer> {
                    let label = format!("{name} of layer {layer}");
                    check_size(&limits, &label, (data.len() * 4) as u64)?;
                    Ok(
                        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&label),
                            contents: bytemuck::cast_slice(data),
                            usage: wgpu::BufferUsages::STORAGE,
                        }),
                    )
                };
                layers.push(LayerParams {
                    w_ih: buffer("weight_ih", &w_ih)?,
                    w_hh: buffer("weight_hh", &w_hh)?,
                    bias: buffer("bias", &bias)?,
                });
            }
            Ok(layers)
        })?;
        Ok(GpuModel {
            ctx: ctx.clone(),
            spec,
            layers,
            gemm,
            workspaces: Mutex::new(Vec::new()),
            last_dispatches: AtomicUsize::new(0),
        })
    }

    /// The model description.
    pub fn spec(&self) -> &RnnSpec {
        &self.spec
    }

    /// The context the model lives on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Compute dispatches recorded by the most recent forward (0 before the first): one input
    /// projection per layer plus one fused step per layer and time step.
    pub fn last_forward_dispatches(&self) -> usize {
        self.last_dispatches.load(Ordering::Relaxed)
    }

    /// Fills every internal buffer of the workspace for `steps` × `batch` (creating it if
    /// needed) with `value`. Tests use NaN here to prove that each output element the GPU
    /// returns was written by the kernels of the forward, not left over.
    pub fn poison_workspace(&self, steps: usize, batch: usize, value: f32) -> Result<()> {
        let mut cache = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        let ws = self.workspace(&mut cache, steps, batch)?;
        let queue = self.ctx.queue();
        let bufs = [&ws.ys[0], &ws.ys[1], &ws.gx, &ws.c, &ws.hn, &ws.staging];
        for b in bufs {
            let fill = vec![value; (b.size() / 4) as usize];
            queue.write_buffer(b, 0, bytemuck::cast_slice(&fill));
        }
        queue.submit([]);
        Ok(())
    }

    /// The workspace for `steps` × `batch`, created on first use and kept most-recent-last.
    fn workspace<'c>(
        &self,
        cache: &'c mut Vec<Workspace>,
        steps: usize,
        batch: usize,
    ) -> Result<&'c Workspace> {
        if let Some(i) = cache
            .iter()
            .position(|w| w.steps == steps && w.batch == batch)
        {
            let ws = cache.remove(i);
            cache.push(ws);
        } else {
            let ws = scoped(self.ctx.device(), "workspace allocation", || {
                self.create_workspace(steps, batch)
            })?;
            if cache.len() >= WORKSPACE_CACHE {
                cache.remove(0);
            }
            cache.push(ws);
        }
        Ok(cache.last().expect("just pushed"))
    }

    fn create_workspace(&self, steps: usize, batch: usize) -> Result<Workspace> {
        let spec = &self.spec;
        let device = self.ctx.device();
        let limits = self.ctx.limits();
        let (l, d, h) = (spec.num_layers, spec.num_directions(), spec.hidden_size);
        let f = 4u64;
        use wgpu::BufferUsages as U;
        let buffer = |label: &str, bytes: u64, usage: U| -> Result<wgpu::Buffer> {
            check_size(&limits, label, bytes)?;
            Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            }))
        };
        let y_bytes = (steps * batch * d * h) as u64 * f;
        let state_bytes = (l * d * batch * h) as u64 * f;
        let x = buffer(
            "input x",
            (steps * batch * spec.input_size) as u64 * f,
            U::STORAGE | U::COPY_DST,
        )?;
        let y_usage = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        let ys = [
            buffer("layer output (even layers)", y_bytes, y_usage)?,
            buffer("layer output (odd layers)", y_bytes, y_usage)?,
        ];
        let gx = buffer(
            "input projection",
            (d * steps * batch * spec.gate_rows()) as u64 * f,
            U::STORAGE | U::COPY_DST,
        )?;
        let state_usage = U::STORAGE | U::COPY_DST | U::COPY_SRC;
        let h0 = buffer("h0", state_bytes, state_usage)?;
        let c = buffer("cell state", state_bytes, state_usage)?;
        let hn = buffer("h_n", state_bytes, state_usage)?;
        let staging = buffer(
            "readback",
            y_bytes + 2 * state_bytes,
            U::MAP_READ | U::COPY_DST,
        )?;

        // One parameter block per dispatch: [projection, step 0, …, step T−1] per layer.
        let stride = u64::from(limits.min_uniform_buffer_offset_alignment)
            .max(std::mem::size_of::<GemmParams>() as u64)
            .max(std::mem::size_of::<StepParams>() as u64);
        let blocks = l * (steps + 1);
        let mut param_bytes = vec![0u8; blocks * stride as usize];
        let mut gemm_params = Vec::new();
        for layer in 0..l {
            let base = layer * (steps + 1) * stride as usize;
            let gp = GemmParams::new(steps * batch, spec.layer_input_size(layer), h);
            gemm_params.push(gp);
            param_bytes[base..base + std::mem::size_of::<GemmParams>()]
                .copy_from_slice(bytemuck::bytes_of(&gp));
            for s in 0..steps {
                let sp = StepParams {
                    batch: batch as u32,
                    hidden: h as u32,
                    steps: steps as u32,
                    step: s as u32,
                    dirs: d as u32,
                    state_offset: (layer * d * batch * h) as u32,
                    _pad0: 0,
                    _pad1: 0,
                };
                let o = base + (1 + s) * stride as usize;
                param_bytes[o..o + std::mem::size_of::<StepParams>()]
                    .copy_from_slice(bytemuck::bytes_of(&sp));
            }
        }
        check_size(&limits, "parameter blocks", param_bytes.len() as u64)?;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dispatch parameters"),
            contents: &param_bytes,
            usage: U::UNIFORM,
        });

        // Dispatch sizes must fit the workgroup-count limit.
        let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
        let mut dims = vec![lstm_step::workgroups(h, batch, d)];
        dims.extend(gemm_params.iter().map(|g| g.workgroups(d)));
        for dim in dims {
            for n in dim {
                if n as u64 > max_groups {
                    return Err(Error::ExceedsLimit {
                        what: format!("a dispatch for {steps} steps × batch {batch}"),
                        limit: "max_compute_workgroups_per_dimension",
                        needed: n as u64,
                        allowed: max_groups,
                    });
                }
            }
        }

        let step_kernel = self
            .ctx
            .kernel(&lstm_step::specialization(lstm_step::batch_tile(batch)))?;
        let uniform = |size: usize| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &params,
                offset: 0,
                size: NonZeroU64::new(size as u64),
            })
        };
        let mut layers = Vec::new();
        for (layer, (lp, gp)) in self.layers.iter().zip(gemm_params).enumerate() {
            let input = if layer == 0 { &x } else { &ys[(layer - 1) % 2] };
            let output = &ys[layer % 2];
            let gemm = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("gemm layer {layer}")),
                layout: &self.gemm.layout,
                entries: &entries(vec![
                    uniform(std::mem::size_of::<GemmParams>()),
                    input.as_entire_binding(),
                    lp.w_ih.as_entire_binding(),
                    lp.bias.as_entire_binding(),
                    gx.as_entire_binding(),
                ]),
            });
            let step = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("lstm_step layer {layer}")),
                layout: &step_kernel.layout,
                entries: &entries(vec![
                    uniform(std::mem::size_of::<StepParams>()),
                    gx.as_entire_binding(),
                    lp.w_hh.as_entire_binding(),
                    h0.as_entire_binding(),
                    output.as_entire_binding(),
                    c.as_entire_binding(),
                    hn.as_entire_binding(),
                ]),
            });
            layers.push(LayerGroups {
                gemm,
                gemm_params: gp,
                step,
            });
        }
        Ok(Workspace {
            steps,
            batch,
            x,
            ys,
            gx,
            h0,
            c,
            hn,
            _params: params,
            stride,
            staging,
            step_kernel,
            layers,
        })
    }

    /// Records every dispatch of one forward into `encoder`, in one compute pass; returns how
    /// many it recorded.
    fn encode(&self, ws: &Workspace, encoder: &mut wgpu::CommandEncoder) -> usize {
        let d = self.spec.num_directions();
        let step_groups = lstm_step::workgroups(self.spec.hidden_size, ws.batch, d);
        let mut dispatches = 0;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("lstm forward"),
            timestamp_writes: None,
        });
        let mut dispatch = |pass: &mut wgpu::ComputePass<'_>, [x, y, z]: [usize; 3]| {
            pass.dispatch_workgroups(x as u32, y as u32, z as u32);
            dispatches += 1;
        };
        for (layer, groups) in ws.layers.iter().enumerate() {
            pass.set_pipeline(&self.gemm.pipeline);
            pass.set_bind_group(0, &groups.gemm, &[ws.offset(layer, 0)]);
            dispatch(&mut pass, groups.gemm_params.workgroups(d));
            pass.set_pipeline(&ws.step_kernel.pipeline);
            for s in 0..ws.steps {
                pass.set_bind_group(0, &groups.step, &[ws.offset(layer, 1 + s)]);
                dispatch(&mut pass, step_groups);
            }
        }
        drop(pass);
        dispatches
    }

    fn run(&self, p: &Prepared<'_>) -> Result<Output> {
        let spec = &self.spec;
        let device = self.ctx.device();
        let queue = self.ctx.queue();
        let mut cache = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        let ws = self.workspace(&mut cache, p.steps, p.batch)?;
        let (y_bytes, state_bytes) = (ws.y_bytes(spec), ws.state_bytes(spec));
        let data = scoped(device, "forward", || {
            queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(contiguous(&p.x)));
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lstm forward"),
            });
            for (buf, init) in [(&ws.h0, &p.h0), (&ws.c, &p.c0)] {
                match init {
                    Some(a) => queue.write_buffer(buf, 0, bytemuck::cast_slice(contiguous(a))),
                    None => encoder.clear_buffer(buf, 0, None),
                }
            }
            let n = self.encode(ws, &mut encoder);
            self.last_dispatches.store(n, Ordering::Relaxed);
            encoder.copy_buffer_to_buffer(ws.final_y(spec), 0, &ws.staging, 0, y_bytes);
            encoder.copy_buffer_to_buffer(&ws.hn, 0, &ws.staging, y_bytes, state_bytes);
            encoder.copy_buffer_to_buffer(
                &ws.c,
                0,
                &ws.staging,
                y_bytes + state_bytes,
                state_bytes,
            );
            queue.submit([encoder.finish()]);
            read_back(device, &ws.staging)
        })?;
        let (t, b, ld) = (p.steps, p.batch, spec.num_layers * spec.num_directions());
        let (yl, sl) = ((y_bytes / 4) as usize, (state_bytes / 4) as usize);
        let shape_err = |e: ndarray::ShapeError| gpu_error("readback", e);
        let y = Array3::from_shape_vec((t, b, spec.output_size()), data[..yl].to_vec())
            .map_err(shape_err)?;
        let h_n = Array3::from_shape_vec((ld, b, spec.hidden_size), data[yl..yl + sl].to_vec())
            .map_err(shape_err)?;
        let c_n = Array3::from_shape_vec((ld, b, spec.hidden_size), data[yl + sl..].to_vec())
            .map_err(shape_err)?;
        Ok(p.finish(y, h_n, spec.cell.has_cell_state().then_some(c_n)))
    }
}

impl Forward for GpuModel {
    fn forward(&self, input: &Input<'_>) -> Result<Output> {
        let p = Prepared::new(&self.spec, input)?;
        self.run(&p)
    }
}

/// The elements of a standard-layout array as a slice.
fn contiguous<'a>(a: &'a ndarray::CowArray<'_, f32, ndarray::Ix3>) -> &'a [f32] {
    a.as_slice().expect("prepared arrays are standard layout")
}

/// Maps `staging`, waits for the GPU, and copies its contents out.
fn read_back(device: &wgpu::Device, staging: &wgpu::Buffer) -> Result<Vec<f32>> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu_error("forward (waiting for the device)", e))?;
    rx.recv()
        .map_err(|e| gpu_error("readback", e))?
        .map_err(|e| gpu_error("readback", e))?;
    let data = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| gpu_error("readback", e))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    Ok(data)
}

/// Bind-group entries numbered 0, 1, 2… in the order given.
fn entries(resources: Vec<wgpu::BindingResource<'_>>) -> Vec<wgpu::BindGroupEntry<'_>> {
    resources
        .into_iter()
        .enumerate()
        .map(|(i, resource)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource,
        })
        .collect()
}

/// Checks a buffer of `bytes` against the device's buffer-size limits.
fn check_size(limits: &wgpu::Limits, what: &str, bytes: u64) -> Result<()> {
    for (limit, allowed) in [
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size,
        ),
    ] {
        if bytes > allowed {
            return Err(Error::ExceedsLimit {
                what: what.to_string(),
                limit,
                needed: bytes,
                allowed,
            });
        }
    }
    Ok(())
}
