//! A model on the GPU: weights repacked and uploaded once, per-shape workspaces (buffers and
//! bind groups) cached, and a forward that records every dispatch into one command encoder.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::Array3;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::gemm::{self, GemmParams};
use crate::gpu::kernels::step::{self, StepParams, Variant};
use crate::gpu::kernels::Kernel;
use crate::gpu::pack;
use crate::spec::RnnSpec;
use crate::tensor::{Input, Output, Prepared};
use crate::weights::Weights;
use crate::Forward;

/// Bytes of the two pass timestamps read back after a timed forward.
const TIMESTAMP_BYTES: u64 = 16;

/// How many input shapes (steps × batch) keep their buffers and bind groups between forwards.
const WORKSPACE_CACHE: usize = 4;

/// Weight buffers of one layer, both directions packed one after another (see [`pack`]).
#[derive(Debug)]
struct LayerParams {
    /// Input projection weights `[D, in, n4]` of vec4.
    w_ih: wgpu::Buffer,
    /// Input projection bias `[D, n4]` of vec4.
    bias: wgpu::Buffer,
    /// Step weights: step-0, recurrent (projection only), peepholes (peephole only).
    w_step: wgpu::Buffer,
    wrec_offset: u32,
    ph_offset: u32,
    /// Projection `[D, H, ⌈P/4⌉]` of vec4, and a zero bias for its GEMM.
    w_hr: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

/// Buffers and bind groups for one input shape.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) steps: usize,
    batch: usize,
    /// Input sequence `[T, B, I]`.
    x: wgpu::Buffer,
    /// Layer outputs `[T, B, D·H_out]`, ping-ponged between layers.
    ys: [wgpu::Buffer; 2],
    /// Input projections of one layer `[D, T, B, n4]` of vec4.
    gx: wgpu::Buffer,
    /// `h0`, cell state and `h_n`.
    state: StateBuffers,
    /// Sequence lengths `[B]` (u32).
    lens: wgpu::Buffer,
    /// With a projection: step outputs `m` `[T, B, D·H]` and their final values `[L·D, B, H]`.
    proj: Option<[wgpu::Buffer; 2]>,
    /// One parameter block per dispatch, `stride` bytes apart (kept alive with its bind groups).
    _params: wgpu::Buffer,
    stride: u64,
    /// `y`, `h_n`, `c_n` (and the pass's two timestamps) copied here for the one readback.
    pub(crate) staging: wgpu::Buffer,
    /// Timestamp queries around the forward's compute pass, where the device has them.
    timing: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    /// The step pipelines: stepwise and whole-sequence (they share one bind-group layout).
    step_kernels: [Arc<Kernel>; 2],
    layers: Vec<LayerGroups>,
}

/// The recurrent state on the device. A forward reads `h0` at its first step, updates `c` in
/// place and leaves the final hidden state in `hn`; a stream keeps these between chunks.
#[derive(Debug, Clone)]
pub(crate) struct StateBuffers {
    /// `h0` `[L·D, B, H_out]`.
    pub h0: wgpu::Buffer,
    /// Cell state, updated in place; ends as `c_n` `[L·D, B, H]`.
    pub c: wgpu::Buffer,
    /// `h_n` `[L·D, B, H_out]`.
    pub hn: wgpu::Buffer,
}

/// How a forward starts its state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init<'a> {
    /// Upload `h0`/`c0` (zeros where `None`).
    Upload {
        h0: Option<&'a [f32]>,
        c0: Option<&'a [f32]>,
    },
    /// Continue from the state the previous forward on these buffers left.
    Carry,
}

/// The dispatches of one layer: input projection, steps, and (projection only) the GEMMs that
/// project the step outputs and the final states.
#[derive(Debug)]
struct LayerGroups {
    gemm: (wgpu::BindGroup, GemmParams),
    step: wgpu::BindGroup,
    proj: Option<[(wgpu::BindGroup, GemmParams); 2]>,
}

/// Parameter blocks per layer: input projection, T steps, two projection GEMMs.
fn blocks_per_layer(steps: usize) -> usize {
    steps + 3
}

impl Workspace {
    fn y_bytes(&self, spec: &RnnSpec) -> u64 {
        (self.steps * self.batch * spec.output_size() * 4) as u64
    }

    fn h_bytes(&self, spec: &RnnSpec) -> u64 {
        (spec.num_layers * spec.num_directions() * self.batch * spec.hidden_out() * 4) as u64
    }

    fn c_bytes(&self, spec: &RnnSpec) -> u64 {
        (spec.num_layers * spec.num_directions() * self.batch * spec.hidden_size * 4) as u64
    }

    /// Dynamic offset of block `i` of layer `layer` (0: input projection, 1 + s: step s,
    /// T + 1 and T + 2: projection GEMMs).
    fn offset(&self, layer: usize, i: usize) -> u32 {
        ((layer * blocks_per_layer(self.steps) + i) as u64 * self.stride) as u32
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
    variant: Mutex<Variant>,
    last_variant: Mutex<Variant>,
    timing: std::sync::atomic::AtomicBool,
    last_device_ms: Mutex<Option<f64>>,
}

pub(crate) fn gpu_error(during: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu {
        during: during.to_string(),
        message: one_line(&e.to_string()),
    }
}

/// wgpu's multi-line messages joined into one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
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
        let gemm = ctx.kernel(&gemm::specialization())?;
        let limits = ctx.limits();
        // Check the largest weight buffers before repacking anything on the host.
        let cols = 4 * step::columns(spec.cell, spec.hidden_size) as u64;
        for layer in 0..spec.num_layers {
            let d = spec.num_directions() as u64;
            let k = spec.layer_input_size(layer) as u64;
            let what = format!("weights of layer {layer}");
            check_size(&limits, &what, d * k * cols * 4)?;
            let recurrent_rows = spec.hidden_out()
                + if spec.proj_size > 0 {
                    spec.hidden_size
                } else {
                    0
                };
            let peepholes = if spec.peephole {
                4 * spec.hidden_size
            } else {
                0
            } as u64;
            check_size(
                &limits,
                &what,
                d * (recurrent_rows as u64 * cols + peepholes) * 4,
            )?;
        }
        let layers = scoped(device, "weight upload", || {
            let mut layers = Vec::new();
            for layer in 0..spec.num_layers {
                let packed = pack::pack_layer(&spec, weights, layer);
                let buffer = |name: &str, data: &[f32]| -> Result<wgpu::Buffer> {
                    let label = format!("{name} of layer {layer}");
                    check_size(&limits, &label, (data.len() * 4) as u64)?;
                    Ok(upload_buffer(
                        ctx,
                        &label,
                        bytemuck::cast_slice(data),
                        wgpu::BufferUsages::STORAGE,
                    ))
                };
                let w_hr = match &packed.w_hr {
                    Some(w) => {
                        let zeros =
                            vec![0.0f32; 4 * spec.num_directions() * pack::proj_columns(&spec)];
                        Some((buffer("weight_hr", w)?, buffer("projection bias", &zeros)?))
                    }
                    None => None,
                };
                layers.push(LayerParams {
                    w_ih: buffer("weight_ih", &packed.w_ih)?,
                    bias: buffer("bias", &packed.bias)?,
                    w_step: buffer("step weights", &packed.w_step)?,
                    wrec_offset: packed.wrec_offset as u32,
                    ph_offset: packed.ph_offset as u32,
                    w_hr,
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
            variant: Mutex::new(Variant::Auto),
            last_variant: Mutex::new(Variant::Auto),
            timing: std::sync::atomic::AtomicBool::new(false),
            last_device_ms: Mutex::new(None),
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

    /// Chooses how the time steps are dispatched (default [`Variant::Auto`]); both variants give
    /// the same results.
    pub fn set_variant(&self, variant: Variant) {
        *self.variant.lock().unwrap_or_else(|e| e.into_inner()) = variant;
    }

    /// The variant set with [`GpuModel::set_variant`]; `.resolve(batch)` tells which kernel a
    /// forward of `batch` sequences runs.
    pub fn variant(&self) -> Variant {
        *self.variant.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compute dispatches recorded by the most recent forward (0 before the first): per layer
    /// one input projection and one fused step per time step, plus two projection GEMMs for an
    /// LSTM with `proj_size`.
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
        let mut bufs = vec![
            &ws.ys[0],
            &ws.ys[1],
            &ws.gx,
            &ws.state.c,
            &ws.state.hn,
            &ws.staging,
        ];
        if let Some(p) = &ws.proj {
            bufs.extend(p);
        }
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
        cached(
            cache,
            WORKSPACE_CACHE,
            |w| w.steps == steps && w.batch == batch,
            || self.create_workspace(steps, batch, None),
        )
    }

    /// Buffers for the state of `batch` sequences.
    pub(crate) fn create_state(&self, batch: usize) -> Result<StateBuffers> {
        scoped(self.ctx.device(), "state allocation", || {
            let spec = &self.spec;
            let ld = (spec.num_layers * spec.num_directions() * batch) as u64;
            let h_bytes = ld * spec.hidden_out() as u64 * 4;
            let c_bytes = ld * spec.hidden_size as u64 * 4;
            let limits = self.ctx.limits();
            let usage = wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST;
            let buffer = |label: &str, size: u64| -> Result<wgpu::Buffer> {
                check_size(&limits, label, size)?;
                Ok(self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                }))
            };
            Ok(StateBuffers {
                h0: buffer("h0", h_bytes)?,
                c: buffer("cell state", c_bytes)?,
                hn: buffer("h_n", h_bytes)?,
            })
        })
    }

    /// Buffers and bind groups for `steps` × `batch`, on `state` (new buffers when `None`).
    pub(crate) fn create_workspace(
        &self,
        steps: usize,
        batch: usize,
        state: Option<StateBuffers>,
    ) -> Result<Workspace> {
        let state = match state {
            Some(s) => s,
            None => self.create_state(batch)?,
        };
        scoped(self.ctx.device(), "workspace allocation", || {
            self.build_workspace(steps, batch, state)
        })
    }

    fn build_workspace(
        &self,
        steps: usize,
        batch: usize,
        state: StateBuffers,
    ) -> Result<Workspace> {
        let spec = &self.spec;
        let device = self.ctx.device();
        let limits = self.ctx.limits();
        let (l, d, h, h_out) = (
            spec.num_layers,
            spec.num_directions(),
            spec.hidden_size,
            spec.hidden_out(),
        );
        let n4 = step::columns(spec.cell, h);
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
        let y_bytes = (steps * batch * d * h_out) as u64 * f;
        let h_bytes = (l * d * batch * h_out) as u64 * f;
        let c_bytes = (l * d * batch * h) as u64 * f;
        let x = buffer(
            "input x",
            (steps * batch * spec.input_size) as u64 * f,
            U::STORAGE | U::COPY_DST,
        )?;
        let rw = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        let ys = [
            buffer("layer output (even layers)", y_bytes, rw)?,
            buffer("layer output (odd layers)", y_bytes, rw)?,
        ];
        let gx = buffer(
            "input projection",
            (d * steps * batch * n4 * 4) as u64 * f,
            U::STORAGE | U::COPY_DST,
        )?;
        let StateBuffers { h0, c, hn } = &state;
        let lens = buffer("lengths", batch as u64 * 4, U::STORAGE | U::COPY_DST)?;
        let proj = if spec.proj_size > 0 {
            Some([
                buffer(
                    "step outputs before projection",
                    (steps * batch * d * h) as u64 * f,
                    rw,
                )?,
                buffer("final states before projection", c_bytes, rw)?,
            ])
        } else {
            None
        };
        let staging = buffer(
            "readback",
            y_bytes + h_bytes + c_bytes + TIMESTAMP_BYTES,
            U::MAP_READ | U::COPY_DST,
        )?;
        let timing = self
            .ctx
            .supports_timestamps()
            .then(|| timestamp_queries(device, "forward timestamps"));

        // One parameter block per dispatch, laid out by `Workspace::offset`.
        let block = std::mem::size_of::<GemmParams>().max(std::mem::size_of::<StepParams>()) as u64;
        let stride = block.next_multiple_of(u64::from(limits.min_uniform_buffer_offset_alignment));
        let per_layer = blocks_per_layer(steps);
        let mut param_bytes = vec![0u8; l * per_layer * stride as usize];
        let mut put = |layer: usize, i: usize, bytes: &[u8]| {
            let o = (layer * per_layer + i) * stride as usize;
            param_bytes[o..o + bytes.len()].copy_from_slice(bytes);
        };
        let mut plans = Vec::new();
        for (layer, lp) in self.layers.iter().enumerate() {
            let input = GemmParams::dense(steps * batch, spec.layer_input_size(layer), n4);
            put(layer, 0, bytemuck::bytes_of(&input));
            for s in 0..steps {
                let sp = StepParams {
                    batch: batch as u32,
                    steps: steps as u32,
                    step: s as u32,
                    dirs: d as u32,
                    hidden: h as u32,
                    n4: n4 as u32,
                    k0: h_out as u32,
                    w0_offset: 0,
                    wrec_offset: lp.wrec_offset,
                    ph_offset: lp.ph_offset,
                    h0_offset: (layer * d * batch * h_out) as u32,
                    state_offset: (layer * d * batch * h) as u32,
                };
                put(layer, 1 + s, bytemuck::bytes_of(&sp));
            }
            let proj = (spec.proj_size > 0).then(|| {
                let np = pack::proj_columns(spec);
                let p = spec.proj_size as u32;
                // y[t, b, d·P + p] = Σ_k m[t, b, d·H + k] · W_hr[p, k]
                let y = GemmParams {
                    m: (steps * batch) as u32,
                    k: h as u32,
                    n4: np as u32,
                    n_valid: p,
                    a_offset: 0,
                    a_stride: (d * h) as u32,
                    a_batch: h as u32,
                    w_batch: (h * np) as u32,
                    bias_batch: np as u32,
                    out_offset: 0,
                    out_stride: (d * spec.proj_size) as u32,
                    out_batch: p,
                };
                // h_n[l·D + d, b, p] = Σ_k m_n[l·D + d, b, k] · W_hr[p, k]
                let hn = GemmParams {
                    m: batch as u32,
                    a_offset: (layer * d * batch * h) as u32,
                    a_stride: h as u32,
                    a_batch: (batch * h) as u32,
                    out_offset: (layer * d * batch * spec.proj_size) as u32,
                    out_stride: p,
                    out_batch: (batch * spec.proj_size) as u32,
                    ..y
                };
                [y, hn]
            });
            if let Some([y, hn]) = &proj {
                put(layer, steps + 1, bytemuck::bytes_of(y));
                put(layer, steps + 2, bytemuck::bytes_of(hn));
            }
            plans.push((input, proj));
        }
        check_size(&limits, "parameter blocks", param_bytes.len() as u64)?;
        let params = upload_buffer(&self.ctx, "dispatch parameters", &param_bytes, U::UNIFORM);

        // Dispatch sizes must fit the workgroup-count limit.
        let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
        let mut dims = vec![
            step::workgroups(spec, batch, Variant::Stepwise),
            step::workgroups(spec, batch, Variant::Sequence),
        ];
        for (input, proj) in &plans {
            dims.push(input.workgroups(d));
            dims.extend(proj.iter().flatten().map(|g| g.workgroups(d)));
        }
        if let Some(&n) = dims.iter().flatten().find(|&&n| n as u64 > max_groups) {
            return Err(Error::ExceedsLimit {
                what: format!("a dispatch for {steps} steps × batch {batch}"),
                limit: "max_compute_workgroups_per_dimension",
                needed: n as u64,
                allowed: max_groups,
            });
        }

        let step_kernels = [Variant::Stepwise, Variant::Sequence]
            .map(|v| self.ctx.kernel(&step::specialization(spec, batch, v)));
        let [a, b] = step_kernels;
        let step_kernels = [a?, b?];
        let uniform = |size: usize| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &params,
                offset: 0,
                size: NonZeroU64::new(size as u64),
            })
        };
        let gemm_group = |label: &str,
                          a: &wgpu::Buffer,
                          w: &wgpu::Buffer,
                          bias: &wgpu::Buffer,
                          out: &wgpu::Buffer| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &self.gemm.layout,
                entries: &entries(vec![
                    uniform(std::mem::size_of::<GemmParams>()),
                    a.as_entire_binding(),
                    w.as_entire_binding(),
                    bias.as_entire_binding(),
                    out.as_entire_binding(),
                ]),
            })
        };
        let mut layers = Vec::new();
        for (layer, (lp, (input_params, proj_params))) in self.layers.iter().zip(plans).enumerate()
        {
            let input = if layer == 0 { &x } else { &ys[(layer - 1) % 2] };
            let output = &ys[layer % 2];
            // The step writes h_t into the layer output directly, unless it is projected after.
            let (m, mn) = match &proj {
                Some([m, mn]) => (m, mn),
                None => (output, hn),
            };
            let gemm = gemm_group(
                &format!("input projection layer {layer}"),
                input,
                &lp.w_ih,
                &lp.bias,
                &gx,
            );
            let step = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("step layer {layer}")),
                layout: &step_kernels[0].layout,
                entries: &entries(vec![
                    uniform(std::mem::size_of::<StepParams>()),
                    gx.as_entire_binding(),
                    lp.w_step.as_entire_binding(),
                    h0.as_entire_binding(),
                    m.as_entire_binding(),
                    c.as_entire_binding(),
                    mn.as_entire_binding(),
                    lens.as_entire_binding(),
                ]),
            });
            let proj_groups = match (&lp.w_hr, proj_params) {
                (Some((w_hr, zero)), Some([py, phn])) => Some([
                    (
                        gemm_group(
                            &format!("projection of y, layer {layer}"),
                            m,
                            w_hr,
                            zero,
                            output,
                        ),
                        py,
                    ),
                    (
                        gemm_group(
                            &format!("projection of h_n, layer {layer}"),
                            mn,
                            w_hr,
                            zero,
                            hn,
                        ),
                        phn,
                    ),
                ]),
                _ => None,
            };
            layers.push(LayerGroups {
                gemm: (gemm, input_params),
                step,
                proj: proj_groups,
            });
        }
        Ok(Workspace {
            steps,
            batch,
            x,
            ys,
            gx,
            state,
            lens,
            proj,
            _params: params,
            stride,
            staging,
            timing,
            step_kernels,
            layers,
        })
    }

    /// Records every dispatch of one forward into `encoder`, in one compute pass; returns how
    /// many it recorded.
    /// The step kernel a forward of `steps` × `batch` runs: the set variant, resolved for the
    /// batch, with the whole-sequence kernel replaced by the stepwise one where the driver's
    /// loop budget (see [`GpuContext::loop_budget`]) is too small for it.
    fn effective_variant(&self, steps: usize, batch: usize) -> Variant {
        let v = self.variant().resolve(batch);
        let fits = |budget: u64| {
            step::sequence_loop_iterations(&self.spec, batch, steps) <= budget * 9 / 10
        };
        if v == Variant::Sequence && !self.ctx.loop_budget().is_none_or(fits) {
            Variant::Stepwise
        } else {
            v
        }
    }

    /// Times each forward's compute pass on the device with timestamp queries, where the
    /// device supports them ([`GpuContext::supports_timestamps`]); read the result with
    /// [`GpuModel::last_forward_device_ms`].
    pub fn set_timing(&self, on: bool) {
        self.timing.store(on, Ordering::Relaxed);
    }

    /// Device time of the most recent forward's compute pass in milliseconds, when timing is
    /// on and the device supports it.
    pub fn last_forward_device_ms(&self) -> Option<f64> {
        *self
            .last_device_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The step kernel the most recent forward ran ([`Variant::Auto`] before the first).
    pub fn last_forward_variant(&self) -> Variant {
        *self.last_variant.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(
        &self,
        ws: &Workspace,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<&wgpu::QuerySet>,
    ) -> usize {
        let d = self.spec.num_directions();
        let variant = self.effective_variant(ws.steps, ws.batch);
        *self.last_variant.lock().unwrap_or_else(|e| e.into_inner()) = variant;
        let step_groups = step::workgroups(&self.spec, ws.batch, variant);
        let mut dispatches = 0;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("forward"),
            timestamp_writes: timestamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        let mut dispatch = |pass: &mut wgpu::ComputePass<'_>, [x, y, z]: [usize; 3]| {
            pass.dispatch_workgroups(x as u32, y as u32, z as u32);
            dispatches += 1;
        };
        for (layer, groups) in ws.layers.iter().enumerate() {
            pass.set_pipeline(&self.gemm.pipeline);
            pass.set_bind_group(0, &groups.gemm.0, &[ws.offset(layer, 0)]);
            dispatch(&mut pass, groups.gemm.1.workgroups(d));
            if variant == Variant::Sequence {
                pass.set_pipeline(&ws.step_kernels[1].pipeline);
                pass.set_bind_group(0, &groups.step, &[ws.offset(layer, 1)]);
                dispatch(&mut pass, step_groups);
            } else {
                pass.set_pipeline(&ws.step_kernels[0].pipeline);
                for s in 0..ws.steps {
                    pass.set_bind_group(0, &groups.step, &[ws.offset(layer, 1 + s)]);
                    dispatch(&mut pass, step_groups);
                }
            }
            if let Some(proj) = &groups.proj {
                pass.set_pipeline(&self.gemm.pipeline);
                for (i, (group, params)) in proj.iter().enumerate() {
                    pass.set_bind_group(0, group, &[ws.offset(layer, ws.steps + 1 + i)]);
                    dispatch(&mut pass, params.workgroups(d));
                }
            }
        }
        drop(pass);
        dispatches
    }

    /// Uploads the input, records and submits one forward on `ws`, and reads back `y` and,
    /// when `read_states`, `h_n` and `c_n` (in that order, one after another).
    pub(crate) fn execute(
        &self,
        ws: &Workspace,
        x: &[f32],
        lens: &[u32],
        init: Init<'_>,
        read_states: bool,
    ) -> Result<Vec<f32>> {
        let spec = &self.spec;
        let device = self.ctx.device();
        let queue = self.ctx.queue();
        let (y_bytes, h_bytes, c_bytes) = (ws.y_bytes(spec), ws.h_bytes(spec), ws.c_bytes(spec));
        let st = &ws.state;
        scoped(device, "forward", || {
            queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(x));
            queue.write_buffer(&ws.lens, 0, bytemuck::cast_slice(lens));
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
            match init {
                Init::Upload { h0, c0 } => {
                    for (buf, data) in [(&st.h0, h0), (&st.c, c0)] {
                        match data {
                            Some(d) => queue.write_buffer(buf, 0, bytemuck::cast_slice(d)),
                            None => encoder.clear_buffer(buf, 0, None),
                        }
                    }
                }
                Init::Carry => encoder.copy_buffer_to_buffer(&st.hn, 0, &st.h0, 0, h_bytes),
            }
            let timing = ws
                .timing
                .as_ref()
                .filter(|_| self.timing.load(Ordering::Relaxed));
            let n = self.encode(ws, &mut encoder, timing.map(|t| &t.0));
            self.last_dispatches.store(n, Ordering::Relaxed);
            encoder.copy_buffer_to_buffer(ws.final_y(spec), 0, &ws.staging, 0, y_bytes);
            let mut total = y_bytes;
            if read_states {
                encoder.copy_buffer_to_buffer(&st.hn, 0, &ws.staging, y_bytes, h_bytes);
                encoder.copy_buffer_to_buffer(&st.c, 0, &ws.staging, y_bytes + h_bytes, c_bytes);
                total += h_bytes + c_bytes;
            }
            if let Some((queries, resolve)) = timing {
                encoder.resolve_query_set(queries, 0..2, resolve, 0);
                encoder.copy_buffer_to_buffer(resolve, 0, &ws.staging, total, TIMESTAMP_BYTES);
            }
            queue.submit([encoder.finish()]);
            let read = total + if timing.is_some() { TIMESTAMP_BYTES } else { 0 };
            let mut data = read_back(device, &ws.staging, read)?;
            let device_ms = timing.map(|_| {
                let words: Vec<u32> = data
                    .split_off((total / 4) as usize)
                    .iter()
                    .map(|f| f.to_bits())
                    .collect();
                let t0 = u64::from(words[0]) | (u64::from(words[1]) << 32);
                let t1 = u64::from(words[2]) | (u64::from(words[3]) << 32);
                t1.saturating_sub(t0) as f64 * f64::from(queue.get_timestamp_period()) / 1e6
            });
            *self
                .last_device_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = device_ms;
            Ok(data)
        })
    }

    /// Reads back `h_n` and `c_n` of `state` through `staging`.
    pub(crate) fn read_state(
        &self,
        state: &StateBuffers,
        staging: &wgpu::Buffer,
    ) -> Result<Vec<f32>> {
        let device = self.ctx.device();
        scoped(device, "state readback", || {
            let (h, c) = (state.hn.size(), state.c.size());
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("state readback"),
            });
            encoder.copy_buffer_to_buffer(&state.hn, 0, staging, 0, h);
            encoder.copy_buffer_to_buffer(&state.c, 0, staging, h, c);
            self.ctx.queue().submit([encoder.finish()]);
            read_back(device, staging, h + c)
        })
    }

    fn run(&self, p: &Prepared<'_>) -> Result<Output> {
        let raw = self.run_chunked(p)?;
        Ok(p.finish(
            raw.y,
            raw.h_n,
            self.spec.cell.has_cell_state().then_some(raw.c_n),
        ))
    }

    /// One forward, chunked where the device's limits require it: an input whose buffers or
    /// dispatches exceed them is split over the batch (halves, recursively), and a single
    /// sequence too long for them over time (windows that carry the state on the device;
    /// one direction only — the reverse direction of a window would need the future).
    fn run_chunked(&self, p: &Prepared<'_>) -> Result<Raw> {
        match self.run_whole(p) {
            Err(Error::ExceedsLimit { .. }) if p.batch > 1 => {
                let mid = p.batch / 2;
                let a = self.run_chunked(&batch_part(p, 0, mid))?;
                let b = self.run_chunked(&batch_part(p, mid, p.batch))?;
                let cat = |x: &Array3<f32>, y: &Array3<f32>| {
                    ndarray::concatenate(ndarray::Axis(1), &[x.view(), y.view()])
                        .expect("parts differ only in the batch")
                };
                Ok(Raw {
                    y: cat(&a.y, &b.y),
                    h_n: cat(&a.h_n, &b.h_n),
                    c_n: cat(&a.c_n, &b.c_n),
                })
            }
            Err(Error::ExceedsLimit { .. }) if !self.spec.bidirectional && p.steps > 1 => {
                self.run_windows(p)
            }
            Err(Error::ExceedsLimit {
                what,
                limit,
                needed,
                allowed,
            }) if self.spec.bidirectional => Err(Error::ExceedsLimit {
                what: format!(
                    "{what} (one sequence of {} steps; a bidirectional model cannot be split over time)",
                    p.steps
                ),
                limit,
                needed,
                allowed,
            }),
            r => r,
        }
    }

    /// The whole input in one workspace.
    fn run_whole(&self, p: &Prepared<'_>) -> Result<Raw> {
        let mut cache = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        let ws = self.workspace(&mut cache, p.steps, p.batch)?;
        let lens: Vec<u32> = (0..p.batch).map(|b| p.length(b) as u32).collect();
        let init = Init::Upload {
            h0: p.h0.as_ref().map(contiguous),
            c0: p.c0.as_ref().map(contiguous),
        };
        let data = self.execute(ws, contiguous(&p.x), &lens, init, true)?;
        self.unpack(&data, p.steps, p.batch)
    }

    /// A unidirectional forward over time windows that fit the device, the state carried on
    /// the device from one window to the next.
    fn run_windows(&self, p: &Prepared<'_>) -> Result<Raw> {
        let state = self.create_state(p.batch)?;
        let mut window = p.steps;
        let mut workspaces: Vec<Workspace> = Vec::new();
        while workspaces.is_empty() {
            match self.create_workspace(window, p.batch, Some(state.clone())) {
                Ok(ws) => workspaces.push(ws),
                Err(Error::ExceedsLimit { .. }) if window > 1 => window = window.div_ceil(2),
                Err(e) => return Err(e),
            }
        }
        let mut y = Array3::<f32>::zeros((p.steps, p.batch, self.spec.output_size()));
        let mut last = None;
        for start in (0..p.steps).step_by(window) {
            let len = window.min(p.steps - start);
            if workspaces.iter().all(|w| w.steps != len) {
                workspaces.push(self.create_workspace(len, p.batch, Some(state.clone()))?);
            }
            let ws = workspaces
                .iter()
                .find(|w| w.steps == len)
                .expect("just made");
            let x = p.x.slice(ndarray::s![start..start + len, .., ..]);
            let x = x
                .as_slice()
                .expect("a time window of a row-major array is contiguous");
            let lens: Vec<u32> = (0..p.batch)
                .map(|b| p.length(b).saturating_sub(start).min(len) as u32)
                .collect();
            let init = if start == 0 {
                Init::Upload {
                    h0: p.h0.as_ref().map(contiguous),
                    c0: p.c0.as_ref().map(contiguous),
                }
            } else {
                Init::Carry
            };
            let is_last = start + len == p.steps;
            let data = self.execute(ws, x, &lens, init, is_last)?;
            let part = if is_last {
                let raw = self.unpack(&data, len, p.batch)?;
                let yw = raw.y.clone();
                last = Some(raw);
                yw
            } else {
                Array3::from_shape_vec((len, p.batch, self.spec.output_size()), data)
                    .map_err(|e| gpu_error("readback", e))?
            };
            y.slice_mut(ndarray::s![start..start + len, .., ..])
                .assign(&part);
        }
        let last = last.expect("the last window reads the states back");
        Ok(Raw {
            y,
            h_n: last.h_n,
            c_n: last.c_n,
        })
    }

    /// `y`, `h_n`, `c_n` from a readback of `steps` × `batch`.
    fn unpack(&self, data: &[f32], steps: usize, batch: usize) -> Result<Raw> {
        let spec = &self.spec;
        let ld = spec.num_layers * spec.num_directions();
        let yl = steps * batch * spec.output_size();
        let hl = ld * batch * spec.hidden_out();
        let shape_err = |e: ndarray::ShapeError| gpu_error("readback", e);
        Ok(Raw {
            y: Array3::from_shape_vec((steps, batch, spec.output_size()), data[..yl].to_vec())
                .map_err(shape_err)?,
            h_n: Array3::from_shape_vec((ld, batch, spec.hidden_out()), data[yl..yl + hl].to_vec())
                .map_err(shape_err)?,
            c_n: Array3::from_shape_vec((ld, batch, spec.hidden_size), data[yl + hl..].to_vec())
                .map_err(shape_err)?,
        })
    }
}

/// The workspace in `cache` that `matches`, moved to the end (most recently used); created
/// with `create` when there is none, dropping the least recently used beyond `capacity`.
pub(crate) fn cached(
    cache: &mut Vec<Workspace>,
    capacity: usize,
    matches: impl Fn(&Workspace) -> bool,
    create: impl FnOnce() -> Result<Workspace>,
) -> Result<&Workspace> {
    if let Some(i) = cache.iter().position(matches) {
        let ws = cache.remove(i);
        cache.push(ws);
    } else {
        let ws = create()?;
        if cache.len() >= capacity {
            cache.remove(0);
        }
        cache.push(ws);
    }
    Ok(cache.last().expect("just pushed"))
}

/// Time-major results of one forward, before the caller's layout is applied.
struct Raw {
    y: Array3<f32>,
    h_n: Array3<f32>,
    c_n: Array3<f32>,
}

/// Batch elements `lo..hi` of a prepared input, as an input of its own.
fn batch_part(p: &Prepared<'_>, lo: usize, hi: usize) -> Prepared<'static> {
    let part = |a: &ndarray::CowArray<'_, f32, ndarray::Ix3>| {
        ndarray::CowArray::from(
            a.slice(ndarray::s![.., lo..hi, ..])
                .as_standard_layout()
                .into_owned(),
        )
    };
    Prepared {
        steps: p.steps,
        batch: hi - lo,
        unbatched: false,
        batch_first: false,
        x: part(&p.x),
        h0: p.h0.as_ref().map(part),
        c0: p.c0.as_ref().map(part),
        lengths: p.lengths.as_ref().map(|l| l[lo..hi].to_vec()),
    }
}

impl Forward for GpuModel {
    fn forward(&self, input: &Input<'_>) -> Result<Output> {
        let p = Prepared::new(&self.spec, input)?;
        self.run(&p)
    }
}

/// The elements of a standard-layout array as a slice.
pub(crate) fn contiguous<'a>(a: &'a ndarray::CowArray<'_, f32, ndarray::Ix3>) -> &'a [f32] {
    a.as_slice().expect("prepared arrays are standard layout")
}

/// Maps the first `bytes` of `staging`, waits for the GPU, and copies them out.
fn read_back(device: &wgpu::Device, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
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
            .get_mapped_range(..bytes)
            .map_err(|e| gpu_error("readback", e))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    Ok(data)
}

/// A buffer holding `bytes`, written through the queue (it reaches the GPU before the next
/// submit). Unlike mapping at creation, this reports a lost device as an error, not a panic.
fn upload_buffer(
    ctx: &GpuContext,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes.len() as u64).next_multiple_of(4),
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue().write_buffer(&buffer, 0, bytes);
    buffer
}

/// Two timestamp queries (start and end of a pass) and the buffer they resolve into.
pub(crate) fn timestamp_queries(
    device: &wgpu::Device,
    label: &str,
) -> (wgpu::QuerySet, wgpu::Buffer) {
    let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some(label),
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let resolve = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: TIMESTAMP_BYTES,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    (queries, resolve)
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
