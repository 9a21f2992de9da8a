//! Streaming on the GPU: the state stays in device buffers between chunks.

use ndarray::{s, Array3, ArrayView3};

use crate::error::{Error, Result};
use crate::gpu::device;
use crate::gpu::execute::{self, Init, Job};
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::kernels::step::StepVariant;
use crate::gpu::model::{contiguous, GpuModel};
use crate::gpu::plan::{Extent, Layout, Schedule, Sizes};
use crate::gpu::workspace::{StateBuffers, Workspace};
use crate::stream::{check_chunk, check_state, check_streamable, Stream, StreamState};
use crate::tensor::{Input, Prepared};

/// A stream on the GPU (see [`Stream`]). The recurrent state lives in device buffers: each
/// chunk starts from the state the previous one left there, with no readback in between.
/// A chunk longer than the device's limits allow runs in time windows.
#[derive(Debug)]
pub struct GpuStream<'m> {
    model: &'m GpuModel,
    batch: usize,
    state: StateBuffers,
    /// Where [`Stream::state`] reads the state back.
    state_staging: wgpu::Buffer,
    /// The workspace on `state`, grown (steps rounded up to a power of two) when a longer
    /// chunk comes.
    workspace: Option<Workspace>,
    /// Where the state of the next chunk comes from.
    next: Next,
}

/// Where a stream's next chunk takes its state from.
#[derive(Debug)]
enum Next {
    /// Upload this state (the initial state, or one given with `set_state`).
    Upload(StreamState),
    /// The device holds it: the state the previous chunk left.
    Device,
    /// A chunk failed after it may have changed the device's state: unknown until
    /// `set_state`.
    Lost,
}

impl GpuModel {
    /// A stream of `batch` sequences starting from zero state (unidirectional models only).
    pub fn stream(&self, batch: usize) -> Result<GpuStream<'_>> {
        check_streamable(self.spec())?;
        if batch == 0 {
            return Err(Error::InvalidInput(
                "a stream needs at least one sequence".into(),
            ));
        }
        let sizes = Sizes::new(self.spec(), Extent::new(1, batch));
        let limits = self.limits();
        limits.check_buffer("hidden state", sizes.h)?;
        limits.check_buffer("cell state", sizes.c)?;
        limits.check_buffer("state readback", sizes.h + sizes.c)?;
        let _device = self.context().exclusive();
        let dev = self.context().device();
        let state = StateBuffers::new(dev, &sizes)?;
        let state_staging = device::buffer(
            dev,
            "state readback",
            sizes.h + sizes.c,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        Ok(GpuStream {
            model: self,
            batch,
            state,
            state_staging,
            workspace: None,
            next: Next::Upload(crate::stream::zero_state(self.spec(), batch)),
        })
    }
}

impl GpuStream<'_> {
    /// The longest window of a chunk of `steps` that the device can run at once.
    fn window(&self, steps: usize) -> Result<usize> {
        let (spec, limits) = (self.model.spec(), self.model.limits());
        let fits = |t: usize| Layout::new(spec, limits, Extent::new(t, self.batch)).is_ok();
        if fits(steps) {
            return Ok(steps);
        }
        match (1..steps).rev().find(|&t| fits(t)) {
            Some(t) => Ok(t),
            None => Layout::new(spec, limits, Extent::new(1, self.batch)).map(|_| 1),
        }
    }

    /// Makes the workspace cover `steps`, growing it where needed. The state buffers stay.
    fn ensure_workspace(&mut self, steps: usize) -> Result<()> {
        let need = Extent::new(steps, self.batch);
        if self
            .workspace
            .as_ref()
            .is_some_and(|w| w.layout.capacity.covers(need))
        {
            return Ok(());
        }
        let (spec, limits) = (self.model.spec(), self.model.limits());
        let rounded = Extent::new(steps.next_power_of_two(), self.batch);
        let layout =
            Layout::new(spec, limits, rounded).or_else(|_| Layout::new(spec, limits, need))?;
        self.workspace = Some(self.model.workspace(layout, Some(self.state.clone()))?);
        Ok(())
    }
}

impl Stream for GpuStream<'_> {
    fn feed(&mut self, chunk: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
        check_chunk(self.batch, &chunk)?;
        if matches!(self.next, Next::Lost) {
            return Err(lost());
        }
        let spec = self.model.spec().clone();
        let input = Input::new(chunk);
        let p = Prepared::new(&spec, &input)?;
        let _device = self.model.context().exclusive();
        // Everything that can fail without touching the device's state comes first.
        let window = self.window(p.steps)?;
        self.ensure_workspace(window)?;
        let ws = self.workspace.as_ref().expect("ensured above");
        let mut y = Array3::<f32>::zeros((p.steps, p.batch, spec.output_size()));
        for start in (0..p.steps).step_by(window) {
            let len = window.min(p.steps - start);
            let extent = Extent::new(len, p.batch);
            let gemm = self.model.gemm_variant(GemmVariant::Auto, extent)?;
            let schedule = Schedule::new(
                &spec,
                self.model.limits(),
                extent,
                (StepVariant::Auto, 0),
                gemm,
            )?;
            let pipelines = self.model.pipelines(&schedule)?;
            let x = p.x.slice(s![start..start + len, .., ..]);
            let x = x.as_standard_layout();
            let lens = vec![u32::try_from(len).unwrap_or(u32::MAX); p.batch];
            let init = match (&self.next, start) {
                // States are kept in standard layout (see `check_state`, `zero_state`).
                (Next::Upload(s), 0) => Init::Upload {
                    h0: s.h.as_slice(),
                    c0: s.c.as_ref().and_then(|c| c.as_slice()),
                },
                _ => Init::Carry,
            };
            let job = Job {
                x: contiguous(&x),
                lens: &lens,
                init,
                read_states: false,
                timing: false,
            };
            let kernels = pipelines.kernels();
            let dev = self.model.context();
            let out = execute::run(dev.device(), dev.queue(), ws, &schedule, kernels, job);
            let part = match out.and_then(|o| self.model.unpack(&o.data, extent, false)) {
                Ok(part) => part,
                Err(e) => {
                    // Before the first submit the device's state is the old one; after it,
                    // unknown: keep the state to upload, or mark it lost.
                    if !(start == 0 && matches!(self.next, Next::Upload(_))) {
                        self.next = Next::Lost;
                    }
                    return Err(e);
                }
            };
            y.slice_mut(s![start..start + len, .., ..]).assign(&part.y);
            if start == 0 {
                self.next = Next::Device;
            }
        }
        Ok(y)
    }

    fn state(&self) -> Result<StreamState> {
        match &self.next {
            Next::Upload(s) => return Ok(s.clone()),
            Next::Lost => return Err(lost()),
            Next::Device => {}
        }
        let spec = self.model.spec();
        let ctx = self.model.context();
        let _device = ctx.exclusive();
        let data =
            execute::read_state(ctx.device(), ctx.queue(), &self.state, &self.state_staging)?;
        let ld = spec.num_layers * spec.num_directions();
        let hl = ld * self.batch * spec.hidden_out();
        let cl = ld * self.batch * spec.hidden_size;
        if data.len() != hl + cl {
            return Err(device::gpu_error(
                "state readback",
                format!("read {} values, expected {}", data.len(), hl + cl),
            ));
        }
        let shape_err = |e: ndarray::ShapeError| device::gpu_error("state readback", e);
        let h = Array3::from_shape_vec((ld, self.batch, spec.hidden_out()), data[..hl].to_vec())
            .map_err(shape_err)?;
        let c = if spec.cell.has_cell_state() {
            Some(
                Array3::from_shape_vec((ld, self.batch, spec.hidden_size), data[hl..].to_vec())
                    .map_err(shape_err)?,
            )
        } else {
            None
        };
        Ok(StreamState { h, c })
    }

    fn set_state(&mut self, h: ArrayView3<'_, f32>, c: Option<ArrayView3<'_, f32>>) -> Result<()> {
        self.next = Next::Upload(check_state(self.model.spec(), self.batch, h, c)?);
        Ok(())
    }
}

fn lost() -> Error {
    Error::InvalidInput(
        "the stream's state is unknown after a failed chunk; give one with set_state".into(),
    )
}
