//! A state table: the recurrent state of many independent sequences, one slot each, kept by
//! an engine between rounds, and rounds that advance any of them together. Both paths
//! implement [`StateTable`] (`gpu::table` keeps the slots in device buffers, `cpu::table` in
//! host memory); the batcher drives it from its scheduling thread.

use ndarray::{Array2, Array3, ArrayView2};

use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::tensor::Output;

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

/// What a round returns: the forward's outputs, and each row's final state where asked.
#[derive(Debug)]
pub(crate) struct RoundOutput {
    /// The forward's `y`, `[T, B, D·H_out]`.
    pub y: Array3<f32>,
    /// The batch row of `y` that holds each round row's outputs, in the order of the rows.
    pub batch_row: Vec<usize>,
    /// The final state of each row that asked for it.
    pub states: Vec<Option<SlotState>>,
}

impl RoundOutput {
    /// Appends each row's outputs of this round (its first `steps[row]` steps) to
    /// `outputs[row]`: one copy, from the forward's `y` to where they are kept.
    pub fn append_rows(&self, outputs: &mut [&mut Vec<f32>], steps: &[usize]) -> Result<()> {
        let pairs = self.batch_row.iter().enumerate().map(|(i, &b)| (b, i));
        append_outputs(self.y.view(), pairs, outputs, steps)
    }
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
    /// How many rounds may be in flight at once, each on its own thread (rows of rounds in
    /// flight are distinct).
    fn lanes(&self) -> usize {
        1
    }
    /// Starts a round: the whole of it ([`Begun::Done`], the default), or everything but its
    /// forward, which comes back as a [`Job`] for another thread, its output then given to
    /// [`StateTable::end`] with the same rows.
    fn begin(&mut self, rows: &[RoundRow<'_>]) -> Result<Begun> {
        self.round(rows).map(Begun::Done)
    }
    /// Ends a round [`StateTable::begin`] handed out as a job: writes the rows' final states
    /// back to their slots and returns the rows' outputs.
    fn end(&mut self, _rows: &[RoundRow<'_>], _job: JobDone) -> Result<RoundOutput> {
        Err(Error::Internal("this table runs its rounds whole".into()))
    }
}

/// A round started by [`StateTable::begin`].
pub(crate) enum Begun {
    Done(RoundOutput),
    Job(Job),
}

/// A round's forward, apart from its table: run it on any thread with [`Job::run`].
pub(crate) struct Job {
    /// The round's row at each batch row of the forward.
    pub order: Vec<usize>,
    pub forward: Box<dyn FnOnce() -> Result<Output> + Send>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("order", &self.order).finish()
    }
}

/// A [`Job`] that has run.
#[derive(Debug)]
pub(crate) struct JobDone {
    pub order: Vec<usize>,
    pub out: Output,
}

impl JobDone {
    /// [`RoundOutput::append_rows`] before the round's end: on the thread that ran the
    /// forward, whose cache holds the outputs.
    pub fn append_rows(&self, outputs: &mut [&mut Vec<f32>], steps: &[usize]) -> Result<()> {
        let y = self
            .out
            .y
            .view()
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| Error::Internal(format!("round output: {e}")))?;
        append_outputs(y, self.order.iter().copied().enumerate(), outputs, steps)
    }
}

/// Appends, for each `(b, row)` of `pairs`, batch row `b` of `y` `[T, B, W]` (its first
/// `steps[row]` steps) to `outputs[row]` (`[.., W]` in standard layout), every index checked
/// first.
fn append_outputs(
    y: ndarray::ArrayView3<'_, f32>,
    pairs: impl Iterator<Item = (usize, usize)> + Clone,
    outputs: &mut [&mut Vec<f32>],
    steps: &[usize],
) -> Result<()> {
    let (t, rows, width) = y.dim();
    let fits = outputs.len() == steps.len()
        && pairs
            .clone()
            .all(|(b, i)| b < rows && steps.get(i).is_some_and(|&n| n <= t));
    if !fits {
        return Err(Error::Internal(format!(
            "a round's outputs of shape {:?} do not hold its rows",
            y.shape()
        )));
    }
    let src = y.to_slice();
    for (b, i) in pairs {
        let dst = &mut *outputs[i];
        dst.reserve(steps[i] * width);
        match src {
            Some(src) => {
                for t in 0..steps[i] {
                    let at = (t * rows + b) * width;
                    dst.extend_from_slice(&src[at..at + width]);
                }
            }
            None => dst.extend(y.slice(ndarray::s![..steps[i], b, ..]).iter()),
        }
    }
    Ok(())
}

impl Job {
    /// Runs the forward (a panic in it caught and returned as an error).
    pub fn run(self) -> Result<JobDone> {
        let Job { order, forward } = self;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(forward))
            .unwrap_or_else(|_| Err(Error::Internal("a batched round panicked".into())))?;
        Ok(JobDone { order, out })
    }
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
    let width = spec.input_size;
    let lens: Vec<usize> = rows.iter().map(|r| r.x.nrows()).collect();
    // Step by step, each row's inputs or zeros past its end, every element written once
    // (this runs on the scheduling thread at every round).
    let mut x = Vec::with_capacity(steps * rows.len() * width);
    for t in 0..steps {
        for row in rows {
            if t < row.x.nrows() {
                let src = row.x.row(t);
                match src.as_slice() {
                    Some(src) => x.extend_from_slice(src),
                    None => x.extend(src.iter()),
                }
            } else {
                x.resize(x.len() + width, 0.0);
            }
        }
    }
    let x = ndarray::Array3::from_shape_vec((steps, rows.len(), width), x)
        .expect("steps × rows × width elements");
    (x, lens)
}
