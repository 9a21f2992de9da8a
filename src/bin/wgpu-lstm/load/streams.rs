//! Live streams for the servers that keep no state of their own (one forward per request,
//! padding): each stream's state between its chunks, taken by the chunk that continues it and
//! put back by the chunk that ends it, as a service without a batcher keeps it by hand.

use std::collections::HashMap;
use std::sync::Mutex;

use ndarray::{s, Array2, Array3, ArrayD, ArrayView3, Axis, Ix3};
use wgpu_lstm::{Error, Output, RnnSpec};

/// What a request is: a whole sequence, or a chunk of a live stream (whose chunks come one
/// at a time, each after the previous one has been answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    Chunk {
        stream: u64,
        first: bool,
        last: bool,
    },
}

/// One stream's state: `h` `[L·D, H_out]` and, for an LSTM, `c` `[L·D, H]`.
pub struct State {
    h: Array2<f32>,
    c: Option<Array2<f32>>,
}

/// The states of every open stream.
pub struct Store {
    states: Mutex<HashMap<u64, State>>,
    layers: usize,
    h_out: usize,
    hidden: usize,
    has_c: bool,
}

/// A final state `[L·D, B, ·]` as three-dimensional.
fn as3(a: &ArrayD<f32>) -> Result<ArrayView3<'_, f32>, Error> {
    a.view()
        .into_dimensionality::<Ix3>()
        .map_err(|e| Error::Internal(format!("final state: {e}")))
}

/// Initial states of a batch, `[L·D, B, ·]`, when any row has one.
pub struct Batch {
    pub h0: Array3<f32>,
    pub c0: Option<Array3<f32>>,
}

impl Store {
    pub fn new(spec: &RnnSpec) -> Self {
        Store {
            states: Mutex::new(HashMap::new()),
            layers: spec.num_layers * spec.num_directions(),
            h_out: spec.hidden_out(),
            hidden: spec.hidden_size,
            has_c: spec.cell.has_cell_state(),
        }
    }

    /// The states of a batch's rows (zeros for a one-shot request or a stream's first chunk),
    /// `None` when no row continues a stream.
    pub fn take(&self, parts: &[Part]) -> Option<Batch> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let taken: Vec<Option<State>> = parts
            .iter()
            .map(|part| match part {
                Part::Chunk { stream, first, .. } if !first => states.remove(stream),
                _ => None,
            })
            .collect();
        if taken.iter().all(Option::is_none) {
            return None;
        }
        let b = parts.len();
        let mut h0 = Array3::zeros((self.layers, b, self.h_out));
        let mut c0 = self
            .has_c
            .then(|| Array3::zeros((self.layers, b, self.hidden)));
        for (row, state) in taken.iter().enumerate() {
            let Some(state) = state else { continue };
            h0.slice_mut(s![.., row, ..]).assign(&state.h);
            if let (Some(c0), Some(c)) = (&mut c0, &state.c) {
                c0.slice_mut(s![.., row, ..]).assign(c);
            }
        }
        Some(Batch { h0, c0 })
    }

    /// Keeps the final state of every row that is a stream's chunk other than its last.
    pub fn keep(&self, parts: &[Part], out: &Output) -> Result<(), Error> {
        let h_n = as3(&out.h_n)?;
        let c_n = out.c_n.as_ref().map(as3).transpose()?;
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for (row, part) in parts.iter().enumerate() {
            if let Part::Chunk {
                stream,
                last: false,
                ..
            } = part
            {
                let state = State {
                    h: h_n.index_axis(Axis(1), row).to_owned(),
                    c: c_n.as_ref().map(|c| c.index_axis(Axis(1), row).to_owned()),
                };
                states.insert(*stream, state);
            }
        }
        Ok(())
    }
}
