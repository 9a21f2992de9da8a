//! The public GPU model. Weights are repacked and uploaded once; a forward is
//! plan → workspace → execute → output: the [`plan`](super::plan) splits the input where the
//! device's limits require it and schedules its dispatches, a workspace is lent from the
//! model's pool, [`execute`](super::execute) records, submits and reads back, and the chunks'
//! results are joined into the caller's layout.

use std::sync::Arc;

use ndarray::{s, Array3, ArrayView3, CowArray, Ix3};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::device;
use crate::gpu::execute::{self, Init, Job, Kernels};
use crate::gpu::kernels::cache::{Kernel, Specialization};
use crate::gpu::kernels::gemm::{self, GemmVariant};
use crate::gpu::kernels::step::{self, StepVariant};
use crate::gpu::options::WeightsStorage;
use crate::gpu::options::{ForwardOptions, ForwardStats, UploadOptions};
use crate::gpu::plan::{self, Chunk, Extent, Layout, Limits, Schedule};
use crate::gpu::weights::DeviceWeights;
use crate::gpu::workspace::{BindLayouts, Pool, StateBuffers, Workspace};
use crate::spec::RnnSpec;
use crate::tensor::{standard, Forward, Input, Output, Prepared};
use crate::weights::Weights;
use crate::weights::WeightsDtype;

mod choice;

/// A model uploaded to a GPU. Create it once with [`GpuModel::upload`] and call
/// [`Forward::forward`] (or [`GpuModel::forward_with`]) as often as needed. It can be shared
/// between threads: each forward borrows a workspace (buffers and bind groups) from the
/// model's pool, so forwards on several threads run at once, and a workspace serves every
/// input up to its capacity (steps and batch rounded up to powers of two).
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
    limits: Limits,
    weights: DeviceWeights,
    bind: BindLayouts,
    pool: Pool,
}

impl GpuModel {
    /// Repacks the weights for the kernels and uploads them as float32; compiles the pipelines
    /// on first use of the context.
    pub fn upload(ctx: &GpuContext, weights: &Weights) -> Result<Self> {
        Self::upload_with(ctx, weights, &UploadOptions::default())
    }

    /// [`GpuModel::upload`] with settings: float16 weights, for instance.
    ///
    /// ```no_run
    /// use wgpu_lstm::{ContextOptions, GpuContext, GpuModel, RnnSpec, UploadOptions, Weights, WeightsDtype};
    /// let ctx = GpuContext::new(&ContextOptions::default())?;
    /// let weights = Weights::random(&RnnSpec::lstm(40, 128), 0)?;
    /// let half = GpuModel::upload_with(&ctx, &weights, &UploadOptions::default().weights(WeightsDtype::F16))?;
    /// assert_eq!(half.weights_dtype(), WeightsDtype::F16);
    /// # Ok::<(), wgpu_lstm::Error>(())
    /// ```
    pub fn upload_with(
        ctx: &GpuContext,
        weights: &Weights,
        options: &UploadOptions,
    ) -> Result<Self> {
        let _device = ctx.exclusive();
        let spec = weights.spec().clone();
        let limits = Limits::new(&ctx.limits(), ctx.loop_budget(), ctx.supports_subgroups());
        let dtype = options.weights;
        let requested = ctx.weights_storage(options.storage)?;
        let (device, queue) = (ctx.device(), ctx.queue());
        let weights = device::scoped(device, "weight upload", || {
            DeviceWeights::upload(device, queue, &limits, weights, dtype, requested)
        })?;
        // Compiled now, so that a device that cannot build the kernels fails at upload.
        let storage = weights.storage;
        ctx.kernel(
            &gemm::specialization(GemmVariant::default())
                .weights(dtype)
                .storage(storage.binding()),
        )?;
        let bind = BindLayouts {
            gemm: ctx.bind_group_layout(&gemm::FAMILY, storage),
            step: ctx.bind_group_layout(&step::FAMILY, storage),
        };
        Ok(GpuModel {
            ctx: ctx.clone(),
            spec,
            limits,
            weights,
            bind,
            pool: Pool::default(),
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

    /// The type of the model's weights on the device.
    pub fn weights_dtype(&self) -> WeightsDtype {
        self.weights.dtype
    }

    /// Where the model's weights live on the device: [`WeightsStorage::Buffer`] or
    /// [`WeightsStorage::Texture`] (what [`UploadOptions::storage`] asked for, or measured, or
    /// a buffer where the weights exceed the device's texture size or are int8).
    pub fn weights_storage(&self) -> WeightsStorage {
        self.weights.storage
    }

    /// The pipeline of `spec` for this model's weights, compiled once per context.
    fn kernel(&self, spec: Specialization) -> Result<Arc<Kernel>> {
        self.ctx.kernel(
            &spec
                .weights(self.weights.dtype)
                .storage(self.weights.storage.binding()),
        )
    }

    /// Workspaces this model has created so far. Their number is bounded by the forwards
    /// running at once and the powers of two of the inputs' steps and batch, not by the
    /// number of distinct input shapes.
    pub fn workspaces_created(&self) -> usize {
        self.pool.created()
    }

    /// A forward with per-call settings; returns the output and what the forward did.
    ///
    /// ```no_run
    /// use wgpu_lstm::{ContextOptions, ForwardOptions, GpuContext, GpuModel, Input, RnnSpec, StepVariant, Weights};
    /// let ctx = GpuContext::new(&ContextOptions::default())?;
    /// let model = GpuModel::upload(&ctx, &Weights::random(&RnnSpec::lstm(40, 128), 0)?)?;
    /// let x = ndarray::Array3::<f32>::zeros((100, 1, 40));
    /// let options = ForwardOptions::default().variant(StepVariant::Sequence).timing(true);
    /// let (out, stats) = model.forward_with(&Input::new(x.view()), &options)?;
    /// println!("{} dispatches, {:?} kernel, {:?} ms on the device", stats.dispatches, stats.variant, stats.device_ms);
    /// # let _ = out;
    /// # Ok::<(), wgpu_lstm::Error>(())
    /// ```
    pub fn forward_with(
        &self,
        input: &Input<'_>,
        options: &ForwardOptions,
    ) -> Result<(Output, ForwardStats)> {
        let p = Prepared::new(&self.spec, input)?;
        let _device = self.ctx.exclusive();
        let chunks = plan::chunks(&self.spec, &self.limits, Extent::new(p.steps, p.batch))?;
        let options = self.choose(&p, &chunks, options)?;
        let (raw, stats) = self.run_chunks(&p, &chunks, &options)?;
        let c_n = self.spec.cell.has_cell_state().then_some(raw.c_n);
        Ok((p.finish(raw.y, raw.h_n, c_n), stats))
    }

    /// Runs every chunk: one workspace per batch part, its time windows carrying the state
    /// on the device from one to the next.
    fn run_chunks(
        &self,
        p: &Prepared<'_>,
        chunks: &[Chunk],
        options: &ForwardOptions,
    ) -> Result<(Raw, ForwardStats)> {
        let spec = &self.spec;
        let ld = spec.num_layers * spec.num_directions();
        let mut raw = Raw {
            y: Array3::zeros((p.steps, p.batch, spec.output_size())),
            h_n: Array3::zeros((ld, p.batch, spec.hidden_out())),
            c_n: Array3::zeros((ld, p.batch, spec.hidden_size)),
        };
        let mut stats = ForwardStats {
            dispatches: 0,
            submits: 0,
            chunks: chunks.len(),
            variant: StepVariant::Auto,
            gemm: options.gemm,
            batch_tile: 0,
            device_ms: None,
        };
        let mut i = 0;
        while i < chunks.len() {
            let part = chunks[i].batch.clone();
            let windows: Vec<&Chunk> = chunks[i..].iter().take_while(|c| c.batch == part).collect();
            i += windows.len();
            let need = windows
                .iter()
                .map(|c| c.extent())
                .fold(Extent::new(1, 1), Extent::max);
            let ws = self
                .pool
                .lend(need, |largest| self.create_workspace(largest, need))?;
            let h0 = p.h0.as_ref().map(|a| batch_part(a, &part));
            let c0 = p.c0.as_ref().map(|a| batch_part(a, &part));
            for (w, chunk) in windows.iter().enumerate() {
                let extent = chunk.extent();
                let step = (options.variant, options.batch_tile);
                let schedule = Schedule::new(spec, &self.limits, extent, step, stats.gemm)?;
                let pipelines = self.pipelines(&schedule)?;
                let x = p.x.slice(s![chunk.time.clone(), part.clone(), ..]);
                let x = x.as_standard_layout();
                let lens: Vec<u32> = part
                    .clone()
                    .map(|b| {
                        let len = p
                            .length(b)
                            .saturating_sub(chunk.time.start)
                            .min(extent.steps);
                        // A length is at most the steps, which the schedule has checked.
                        u32::try_from(len).unwrap_or(u32::MAX)
                    })
                    .collect();
                let init = if w == 0 {
                    Init::Upload {
                        h0: h0.as_ref().map(contiguous),
                        c0: c0.as_ref().map(contiguous),
                    }
                } else {
                    Init::Carry
                };
                let last = w + 1 == windows.len();
                let job = Job {
                    x: contiguous(&x),
                    lens: &lens,
                    init,
                    read_states: last,
                    timing: options.timing,
                };
                let kernels = pipelines.kernels();
                let out = execute::run(
                    self.ctx.device(),
                    self.ctx.queue(),
                    &ws,
                    &schedule,
                    kernels,
                    job,
                )?;
                if stats.submits == 0 {
                    stats.variant = schedule.variant;
                    stats.batch_tile = schedule.batch_tile;
                }
                stats.dispatches += schedule.dispatches();
                stats.submits += 1;
                if let Some(ms) = out.device_ms {
                    stats.device_ms = Some(stats.device_ms.unwrap_or(0.0) + ms);
                }
                let part_raw = self.unpack(&out.data, extent, last)?;
                raw.y
                    .slice_mut(s![chunk.time.clone(), part.clone(), ..])
                    .assign(&part_raw.y);
                if let Some((h_n, c_n)) = part_raw.states {
                    raw.h_n.slice_mut(s![.., part.clone(), ..]).assign(&h_n);
                    raw.c_n.slice_mut(s![.., part.clone(), ..]).assign(&c_n);
                }
            }
        }
        Ok((raw, stats))
    }

    /// The pipeline of the step kernel a schedule runs (compiled once per context).
    fn step_kernel(&self, schedule: &Schedule) -> Result<Arc<Kernel>> {
        self.kernel(step::specialization(
            &self.spec,
            schedule.extent.batch,
            schedule.batch_tile,
            schedule.variant,
        ))
    }

    /// A new workspace for the pool: the rounded capacity covering `largest` (the input and
    /// every idle workspace) where the device allows it, else one for the input alone.
    fn create_workspace(&self, largest: Extent, need: Extent) -> Result<Workspace> {
        let (spec, limits) = (&self.spec, &self.limits);
        let layout = Layout::new(spec, limits, plan::capacity(spec, limits, largest))
            .or_else(|_| Layout::new(spec, limits, plan::capacity(spec, limits, need)))?;
        self.workspace(layout, None)
    }

    /// The buffers and bind groups of `layout`, on `state` (new state buffers when `None`).
    pub(crate) fn workspace(
        &self,
        layout: Layout,
        state: Option<StateBuffers>,
    ) -> Result<Workspace> {
        Workspace::new(
            self.ctx.device(),
            layout,
            &self.weights,
            &self.bind,
            state,
            self.ctx.supports_timestamps(),
        )
    }

    /// `y` and, when `states`, `h_n` and `c_n`, from a readback of `extent`.
    pub(crate) fn unpack(&self, data: &[f32], extent: Extent, states: bool) -> Result<RawPart> {
        let spec = &self.spec;
        let ld = spec.num_layers * spec.num_directions();
        let Extent { steps, batch } = extent;
        let yl = steps * batch * spec.output_size();
        let hl = ld * batch * spec.hidden_out();
        let cl = ld * batch * spec.hidden_size;
        let expected = yl + if states { hl + cl } else { 0 };
        if data.len() != expected {
            return Err(device::gpu_error(
                "readback",
                format!("read {} values, expected {expected}", data.len()),
            ));
        }
        let shape_err = |e: ndarray::ShapeError| device::gpu_error("readback", e);
        let y = ArrayView3::from_shape((steps, batch, spec.output_size()), &data[..yl])
            .map_err(shape_err)?
            .to_owned();
        let states = if states {
            let h = ArrayView3::from_shape((ld, batch, spec.hidden_out()), &data[yl..yl + hl])
                .map_err(shape_err)?
                .to_owned();
            let c = ArrayView3::from_shape((ld, batch, spec.hidden_size), &data[yl + hl..])
                .map_err(shape_err)?
                .to_owned();
            Some((h, c))
        } else {
            None
        };
        Ok(RawPart { y, states })
    }

    /// The device limits this model's plans respect.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The pipelines a schedule runs, compiled once per context.
    pub(crate) fn pipelines(&self, schedule: &Schedule) -> Result<Pipelines> {
        let (batch, tile, variant) = (schedule.extent.batch, schedule.batch_tile, schedule.variant);
        let reset = match step::reset_specialization(&self.spec, batch, tile, variant) {
            Some(spec) => Some(self.kernel(spec)?),
            None => None,
        };
        Ok(Pipelines {
            gemm: self.kernel(gemm::specialization(schedule.gemm))?,
            step: self.step_kernel(schedule)?,
            reset,
        })
    }
}

/// The pipelines of one schedule, held for its execution.
pub(crate) struct Pipelines {
    gemm: Arc<Kernel>,
    step: Arc<Kernel>,
    reset: Option<Arc<Kernel>>,
}

impl Pipelines {
    pub fn kernels(&self) -> Kernels<'_> {
        Kernels {
            gemm: &self.gemm,
            step: &self.step,
            reset: self.reset.as_deref(),
        }
    }
}

/// Time-major results of one forward, before the caller's layout is applied.
struct Raw {
    y: Array3<f32>,
    h_n: Array3<f32>,
    c_n: Array3<f32>,
}

/// The results of one chunk: `y`, and the final states when they were read back.
pub(crate) struct RawPart {
    pub y: Array3<f32>,
    pub states: Option<(Array3<f32>, Array3<f32>)>,
}

impl Forward for GpuModel {
    fn forward(&self, input: &Input<'_>) -> Result<Output> {
        Ok(self.forward_with(input, &ForwardOptions::default())?.0)
    }
}

/// Sequences `part` of a state `[L·D, B, H]`, in standard layout.
fn batch_part<'a>(
    a: &'a CowArray<'_, f32, Ix3>,
    part: &std::ops::Range<usize>,
) -> CowArray<'a, f32, Ix3> {
    standard(a.view().slice_move(s![.., part.clone(), ..]))
}

/// The elements of a standard-layout array as a slice.
pub(crate) fn contiguous<'a>(a: &'a CowArray<'_, f32, Ix3>) -> &'a [f32] {
    a.as_slice().expect("standard layout")
}
