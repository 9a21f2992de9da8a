//! A state table: the recurrent state of many independent sequences, one slot each, kept by
//! an engine between rounds, and rounds that advance any of them together. Both paths
//! implement [`StateTable`] (`gpu::table` keeps the slots in device buffers, `cpu::table` in
//! host memory); the batcher drives it from its scheduling thread.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::spec::RnnSpec;

/// One slot's state: `h` `[L·D, H_out]` and, for an LSTM, `c` `[L·D, H]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotState {
    pub h: Array2<f32>,
    pub c: Option<Array2<f32>>,
}

impl SlotState {
    /// Zeros, the state a sequence starts from unless it is given one.
    pub fn zeros(spec: &RnnSpec) -> SlotState {
        let ld = spec.num_layers * spec.num_directions();
        SlotState {
            h: Array2::zeros((ld, spec.hidden_out())),
            c: spec
                .cell
                .has_cell_state()
                .then(|| Array2::zeros((ld, spec.hidden_size))),
        }
    }
}

/// One row of a round: a sequence's slot and its next steps.
#[derive(Debug, Clone)]
pub(crate) struct RoundRow<'a> {
    /// The slot the row's state is read from and written back to.
    pub slot: usize,
    /// The row's inputs for this round, `[steps, I]`, at least one step.
    pub x: ArrayView2<'a, f32>,
    /// Whether the row's final state comes back with the round's outputs.
    pub read_state: bool,
}

/// What a round returns, row by row in the order of its rows.
#[derive(Debug)]
pub(crate) struct RoundOutput {
    /// `y` of each row, `[steps, D·H_out]`.
    pub y: Vec<Array2<f32>>,
    /// The final state of each row that asked for it.
    pub states: Vec<Option<SlotState>>,
}

/// Slots of recurrent state and rounds over them (see the module documentation).
pub(crate) trait StateTable: Send {
    /// The model's description.
    fn spec(&self) -> &RnnSpec;
    /// The number of slots.
    fn slots(&self) -> usize;
    /// Bytes the table's states take.
    fn bytes(&self) -> u64;
    /// Whether a round of `steps` × `rows` runs in one forward.
    fn fits(&self, steps: usize, rows: usize) -> bool;
    /// Sets a slot's state (zeros where `None`).
    fn set(&mut self, slot: usize, state: Option<&SlotState>) -> Result<()>;
    /// Reads a slot's state.
    fn read(&mut self, slot: usize) -> Result<SlotState>;
    /// Advances every row by its steps in one forward, each from the state in its slot,
    /// writing each row's final state back to its slot. Rows name distinct slots.
    fn round(&mut self, rows: &[RoundRow<'_>]) -> Result<RoundOutput>;
}

/// Checks what every table's `round` needs of its rows: at least one, distinct slots in
/// range, at least one step each, the model's input width.
pub(crate) fn check_rows(spec: &RnnSpec, slots: usize, rows: &[RoundRow<'_>]) -> Result<()> {
    if rows.is_empty() {
        return Err(Error::Internal("a round without rows".into()));
    }
    let mut seen = vec![false; slots];
    for row in rows {
        if row.slot >= slots || std::mem::replace(&mut seen[row.slot], true) {
            return Err(Error::Internal(format!(
                "round row slot {} out of range or repeated",
                row.slot
            )));
        }
        if row.x.nrows() == 0 || row.x.ncols() != spec.input_size {
            return Err(Error::Internal(format!(
                "round row of shape {:?} for input size {}",
                row.x.shape(),
                spec.input_size
            )));
        }
    }
    Ok(())
}

/// The inputs of a round packed as a forward takes them: `x` `[T, B, I]` with zeros past each
/// row's steps, and the rows' lengths.
pub(crate) fn pack_rows(
    spec: &RnnSpec,
    rows: &[RoundRow<'_>],
) -> (ndarray::Array3<f32>, Vec<usize>) {
    let steps = rows.iter().map(|r| r.x.nrows()).max().unwrap_or(1);
    let mut x = ndarray::Array3::zeros((steps, rows.len(), spec.input_size));
    let mut lens = Vec::with_capacity(rows.len());
    for (b, row) in rows.iter().enumerate() {
        x.slice_mut(ndarray::s![..row.x.nrows(), b, ..])
            .assign(&row.x);
        lens.push(row.x.nrows());
    }
    (x, lens)
}
