//! Streaming on the CPU ([`CpuStream`]): each chunk is a forward from the previous chunk's
//! final state. The [`Stream`] trait and the checks it shares with the GPU's stream are in
//! [`crate::stream`].

use ndarray::{Array3, ArrayView3};

use super::CpuModel;
use crate::error::Result;
use crate::stream::{check_chunk, check_state, check_streamable, zero_state, Stream, StreamState};
use crate::tensor::{Forward, Input};

/// A stream on the CPU: each chunk is a forward from the previous chunk's final state.
#[derive(Debug)]
pub struct CpuStream<'m> {
    model: &'m CpuModel,
    batch: usize,
    state: StreamState,
}

impl CpuModel {
    /// A stream of `batch` sequences starting from zero state (unidirectional models only).
    pub fn stream(&self, batch: usize) -> Result<CpuStream<'_>> {
        check_streamable(self.weights().spec())?;
        Ok(CpuStream {
            model: self,
            batch,
            state: zero_state(self.weights().spec(), batch),
        })
    }
}

impl Stream for CpuStream<'_> {
    fn feed(&mut self, chunk: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
        check_chunk(self.batch, &chunk)?;
        let mut input = Input::new(chunk).h0(self.state.h.view());
        if let Some(c) = &self.state.c {
            input = input.c0(c.view());
        }
        let out = self.model.forward(&input)?;
        let as3 = |a: ndarray::ArrayD<f32>| a.into_dimensionality().expect("batched output");
        self.state = StreamState {
            h: as3(out.h_n),
            c: out.c_n.map(as3),
        };
        Ok(as3(out.y))
    }

    fn state(&self) -> Result<StreamState> {
        Ok(self.state.clone())
    }

    fn set_state(&mut self, h: ArrayView3<'_, f32>, c: Option<ArrayView3<'_, f32>>) -> Result<()> {
        self.state = check_state(self.model.weights().spec(), self.batch, h, c)?;
        Ok(())
    }
}
