//! Streaming on the GPU: the state stays in device buffers between chunks.

use ndarray::{Array3, ArrayView3};

use crate::error::Result;
use crate::gpu::model::{cached, contiguous, GpuModel, Init, StateBuffers, Workspace};
use crate::stream::{check_chunk, check_state, check_streamable, Stream, StreamState};
use crate::tensor::Prepared;
use crate::Input;

/// How many chunk lengths keep their buffers and bind groups in one stream.
const CHUNK_SHAPES: usize = 4;

/// A stream on the GPU (see [`Stream`]). The recurrent state lives in device buffers: each
/// chunk starts from the state the previous one left there, with no readback in between.
#[derive(Debug)]
pub struct GpuStream<'m> {
    model: &'m GpuModel,
    batch: usize,
    state: StateBuffers,
    /// Workspaces on `state`, one per chunk length, most recent last.
    workspaces: Vec<Workspace>,
    /// The state to upload before the next chunk; `None` once the device holds it.
    pending: Option<StreamState>,
}

impl GpuModel {
    /// A stream of `batch` sequences starting from zero state (unidirectional models only).
    pub fn stream(&self, batch: usize) -> Result<GpuStream<'_>> {
        check_streamable(self.spec())?;
        Ok(GpuStream {
            model: self,
            batch,
            state: self.create_state(batch)?,
            workspaces: Vec::new(),
            pending: Some(crate::stream::zero_state(self.spec(), batch)),
        })
    }
}

impl GpuStream<'_> {
    fn workspace(&mut self, steps: usize) -> Result<&Workspace> {
        let (model, batch, state) = (self.model, self.batch, &self.state);
        cached(
            &mut self.workspaces,
            CHUNK_SHAPES,
            |w| w.steps == steps,
            || model.create_workspace(steps, batch, Some(state.clone())),
        )
    }
}

impl Stream for GpuStream<'_> {
    fn feed(&mut self, chunk: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
        check_chunk(self.batch, &chunk)?;
        let spec = self.model.spec().clone();
        let input = Input::new(chunk);
        let p = Prepared::new(&spec, &input)?;
        let lens = vec![p.steps as u32; p.batch];
        let pending = self.pending.take();
        let model = self.model;
        let ws = self.workspace(p.steps)?;
        let init = match &pending {
            // States are kept in standard layout (see `check_state`, `zero_state`).
            Some(s) => Init::Upload {
                h0: Some(s.h.as_slice().expect("standard layout")),
                c0: s.c.as_ref().map(|c| c.as_slice().expect("standard layout")),
            },
            None => Init::Carry,
        };
        let result = model.execute(ws, contiguous(&p.x), &lens, init, false);
        if result.is_err() {
            // The device state is unknown after a failed chunk: keep the last known one.
            self.pending = pending;
        }
        let data = result?;
        Ok(
            Array3::from_shape_vec((p.steps, p.batch, spec.output_size()), data)
                .expect("readback has the output's size"),
        )
    }

    fn state(&self) -> Result<StreamState> {
        if let Some(s) = &self.pending {
            return Ok(s.clone());
        }
        let spec = self.model.spec();
        let staging = &self.workspaces.last().expect("a chunk ran").staging;
        let data = self.model.read_state(&self.state, staging)?;
        let ld = spec.num_layers * spec.num_directions();
        let hl = ld * self.batch * spec.hidden_out();
        let h = Array3::from_shape_vec((ld, self.batch, spec.hidden_out()), data[..hl].to_vec())
            .expect("readback has the state's size");
        let c = spec.cell.has_cell_state().then(|| {
            Array3::from_shape_vec((ld, self.batch, spec.hidden_size), data[hl..].to_vec())
                .expect("readback has the state's size")
        });
        Ok(StreamState { h, c })
    }

    fn set_state(&mut self, h: ArrayView3<'_, f32>, c: Option<ArrayView3<'_, f32>>) -> Result<()> {
        self.pending = Some(check_state(self.model.spec(), self.batch, h, c)?);
        Ok(())
    }
}
