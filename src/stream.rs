//! Streaming: feed a long sequence chunk by chunk, keeping the recurrent state between calls.
//!
//! Feeding a sequence in chunks gives the same outputs as feeding it whole. On the GPU the
//! state never leaves the device between chunks; it is read back only when asked for.
//!
//! This module holds what both paths share: the [`Stream`] trait, [`StreamState`] and the
//! checks of chunks and states. The streams themselves live with their path:
//! [`CpuStream`](crate::CpuStream) in `src/cpu/stream.rs`, [`GpuStream`](crate::GpuStream) in
//! `src/gpu/stream.rs`.
//!
//! ```no_run
//! use ndarray::Array3;
//! use wgpu_lstm::{ContextOptions, GpuContext, GpuModel, RnnSpec, Stream, Weights};
//! let ctx = GpuContext::new(&ContextOptions::default())?;
//! let model = GpuModel::upload(&ctx, &Weights::random(&RnnSpec::lstm(40, 128), 0)?)?;
//! let mut stream = model.stream(1)?;                 // one sequence
//! for _ in 0..100 {
//!     let frames = Array3::<f32>::zeros((10, 1, 40)); // 10 new frames [T, B, I]
//!     let y = stream.feed(frames.view())?;            // [10, 1, 128]
//!     # let _ = y;
//! }
//! let state = stream.state()?;                        // h [L·D, B, H], c
//! # let _ = state;
//! # Ok::<(), wgpu_lstm::Error>(())
//! ```

use ndarray::{Array3, ArrayView3};

use crate::error::{Error, Result};
use crate::spec::RnnSpec;

/// The recurrent state of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    /// Hidden state `[L·D, B, H_out]`.
    pub h: Array3<f32>,
    /// Cell state `[L·D, B, H]` (LSTM only).
    pub c: Option<Array3<f32>>,
}

/// A sequence fed chunk by chunk. Chunks are time-major `[T_chunk, B, I]`.
pub trait Stream {
    /// Runs the next `chunk` and returns its outputs `[T_chunk, B, H_out]`.
    fn feed(&mut self, chunk: ArrayView3<'_, f32>) -> Result<Array3<f32>>;
    /// The state after the last chunk (the initial state before the first).
    fn state(&self) -> Result<StreamState>;
    /// Replaces the state (e.g. to start a new sequence from a given `h0`/`c0`).
    fn set_state(&mut self, h: ArrayView3<'_, f32>, c: Option<ArrayView3<'_, f32>>) -> Result<()>;
}

/// Checks that `spec` can stream (one direction) and that `h`/`c` fit it.
pub(crate) fn check_streamable(spec: &RnnSpec) -> Result<()> {
    if spec.needs_whole_sequence() {
        return Err(Error::InvalidInput(format!(
            "a {} model cannot stream: its reverse direction needs the whole sequence",
            crate::spec::Direction::of(spec).name()
        )));
    }
    Ok(())
}

/// Checks a state given to [`Stream::set_state`] and returns it owned.
pub(crate) fn check_state(
    spec: &RnnSpec,
    batch: usize,
    h: ArrayView3<'_, f32>,
    c: Option<ArrayView3<'_, f32>>,
) -> Result<StreamState> {
    let ld = spec.num_layers * spec.num_directions();
    let eh = [ld, batch, spec.hidden_out()];
    if h.shape() != eh {
        return Err(Error::shape("h", &eh, h.shape()));
    }
    let c = match (c, spec.cell.has_cell_state()) {
        (Some(c), true) => {
            let ec = [ld, batch, spec.hidden_size];
            if c.shape() != ec {
                return Err(Error::shape("c", &ec, c.shape()));
            }
            Some(c.as_standard_layout().into_owned())
        }
        (None, true) => Some(Array3::zeros((ld, batch, spec.hidden_size))),
        (Some(_), false) => {
            return Err(Error::InvalidInput(format!(
                "a cell state was given but a {} has none",
                spec.cell.name()
            )))
        }
        (None, false) => None,
    };
    Ok(StreamState {
        h: h.as_standard_layout().into_owned(),
        c,
    })
}

/// Zero state of `batch` sequences.
pub(crate) fn zero_state(spec: &RnnSpec, batch: usize) -> StreamState {
    let ld = spec.num_layers * spec.num_directions();
    StreamState {
        h: Array3::zeros((ld, batch, spec.hidden_out())),
        c: spec
            .cell
            .has_cell_state()
            .then(|| Array3::zeros((ld, batch, spec.hidden_size))),
    }
}

/// A chunk must have the stream's batch.
pub(crate) fn check_chunk(batch: usize, chunk: &ArrayView3<'_, f32>) -> Result<()> {
    if chunk.dim().1 != batch {
        let (t, _, i) = chunk.dim();
        return Err(Error::shape("chunk", &[t, batch, i], chunk.shape()));
    }
    Ok(())
}
