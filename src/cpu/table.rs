//! The state table on the CPU: every slot's state in one host array; a round gathers its
//! rows' states into the forward's `h0`/`c0`, hands out its forward with per-row lengths (the
//! rows longest first, so that no step computes a row that has ended) as a job, and writes
//! the rows' final states back to their slots when it has run. The model's threads are its
//! lanes: one round in flight on each, one thread per round, side by side — no barrier met
//! at every step, no thread waiting for another's round.

use std::sync::Arc;

use ndarray::{s, Array3, Axis, Ix3};

use crate::cpu::CpuModel;
use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::table::{
    check_rows, pack_rows, Begun, Job, JobDone, RoundOutput, RoundRow, SlotState, StateTable,
};
use crate::tensor::{Forward, Input, Output};

/// Slots in host memory (see the module documentation).
#[derive(Debug)]
pub(crate) struct CpuTable {
    model: Arc<CpuModel>,
    /// `[slots, L·D, H_out]`.
    h: Array3<f32>,
    /// `[slots, L·D, H]`, for an LSTM.
    c: Option<Array3<f32>>,
}

impl CpuTable {
    /// A table of `slots` zero states for `model`.
    pub fn new(model: CpuModel, slots: usize) -> CpuTable {
        let spec = model.weights().spec().clone();
        let ld = spec.num_layers * spec.num_directions();
        CpuTable {
            h: Array3::zeros((slots, ld, spec.hidden_out())),
            c: spec
                .cell
                .has_cell_state()
                .then(|| Array3::zeros((slots, ld, spec.hidden_size))),
            model: Arc::new(model),
        }
    }

    fn check_slot(&self, slot: usize) -> Result<()> {
        if slot < self.h.len_of(Axis(0)) {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "state table slot {slot} out of range"
            )))
        }
    }
}

impl StateTable for CpuTable {
    fn spec(&self) -> &RnnSpec {
        self.model.weights().spec()
    }

    fn slots(&self) -> usize {
        self.h.len_of(Axis(0))
    }

    fn bytes(&self) -> u64 {
        let elements = self.h.len() + self.c.as_ref().map_or(0, |c| c.len());
        (elements * std::mem::size_of::<f32>()) as u64
    }

    fn fits(&self, _steps: usize, _rows: usize) -> bool {
        true
    }

    fn set(&mut self, slot: usize, state: Option<&SlotState>) -> Result<()> {
        self.check_slot(slot)?;
        let mut h = self.h.index_axis_mut(Axis(0), slot);
        match state {
            Some(s) => h.assign(&s.h),
            None => h.fill(0.0),
        }
        if let Some(c) = &mut self.c {
            let mut c = c.index_axis_mut(Axis(0), slot);
            match state.and_then(|s| s.c.as_ref()) {
                Some(given) => c.assign(given),
                None => c.fill(0.0),
            }
        }
        Ok(())
    }

    fn read(&mut self, slot: usize) -> Result<SlotState> {
        self.check_slot(slot)?;
        Ok(SlotState {
            h: self.h.index_axis(Axis(0), slot).to_owned(),
            c: self
                .c
                .as_ref()
                .map(|c| c.index_axis(Axis(0), slot).to_owned()),
        })
    }

    fn round(&mut self, rows: &[RoundRow<'_>]) -> Result<RoundOutput> {
        match self.begin(rows)? {
            Begun::Done(out) => Ok(out),
            Begun::Job(job) => {
                let done = job.run()?;
                self.end(rows, done)
            }
        }
    }

    fn lanes(&self) -> usize {
        self.model.lanes()
    }

    fn begin(&mut self, rows: &[RoundRow<'_>]) -> Result<Begun> {
        let spec = self.spec().clone();
        check_rows(&spec, self.slots(), rows)?;
        // Longest rows first: the forward leaves out the rows that have ended at each step.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(rows[i].x.nrows()));
        let sorted: Vec<RoundRow<'_>> = order.iter().map(|&i| rows[i].clone()).collect();
        let packed = self.pack(&spec, &sorted);
        let model = self.model.clone();
        // With several lanes each round runs on one thread, beside the others; alone, a
        // round may use the model's team of threads.
        let alone = model.lanes() > 1;
        let forward = Box::new(move || {
            let input = packed.input();
            if alone {
                model.forward_alone(&input)
            } else {
                model.forward(&input)
            }
        });
        Ok(Begun::Job(Job { order, forward }))
    }

    fn end(&mut self, rows: &[RoundRow<'_>], job: JobDone) -> Result<RoundOutput> {
        self.finish(rows, &job.order, job.out)
    }
}

/// One part of a round packed as a forward takes it.
struct Packed {
    x: Array3<f32>,
    lens: Vec<usize>,
    h0: Array3<f32>,
    c0: Option<Array3<f32>>,
}

impl Packed {
    fn input(&self) -> Input<'_> {
        let input = Input::new(self.x.view())
            .lengths(&self.lens)
            .h0(self.h0.view());
        match &self.c0 {
            Some(c0) => input.c0(c0.view()),
            None => input,
        }
    }
}

impl CpuTable {
    /// The inputs of `rows` and their slots' states.
    fn pack(&self, spec: &RnnSpec, rows: &[RoundRow<'_>]) -> Packed {
        let (x, lens) = pack_rows(spec, rows);
        // `[L·D, B, W]` from the slots' `[L·D, W]`, a slice copy each (the table is in
        // standard layout, made so by `new`).
        let gather = |table: &Array3<f32>| -> Array3<f32> {
            let (_, ld, w) = table.dim();
            let all = table.as_slice().expect("the table is in standard layout");
            let mut out = Vec::with_capacity(ld * rows.len() * w);
            for l in 0..ld {
                for row in rows {
                    let at = (row.slot * ld + l) * w;
                    out.extend_from_slice(&all[at..at + w]);
                }
            }
            Array3::from_shape_vec((ld, rows.len(), w), out).expect("L·D × B × W elements")
        };
        Packed {
            x,
            lens,
            h0: gather(&self.h),
            c0: self.c.as_ref().map(gather),
        }
    }

    /// Writes the final states of a round's rows (`rows[order[b]]` the forward's batch row
    /// `b`) back to their slots; the outputs stay in the forward's `y`, each row's found by
    /// its batch row.
    fn finish(
        &mut self,
        rows: &[RoundRow<'_>],
        order: &[usize],
        out: Output,
    ) -> Result<RoundOutput> {
        let shape_err = |e: ndarray::ShapeError| Error::Internal(format!("round output: {e}"));
        let y = out.y.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let h_n = out.h_n.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let c_n = match out.c_n {
            Some(c) => Some(c.into_dimensionality::<Ix3>().map_err(shape_err)?),
            None => None,
        };
        let mut output = RoundOutput {
            y,
            batch_row: vec![0; rows.len()],
            states: vec![None; rows.len()],
        };
        for (b, &i) in order.iter().enumerate() {
            let row = &rows[i];
            scatter(&mut self.h, row.slot, &h_n, b);
            if let (Some(table), Some(c_n)) = (&mut self.c, &c_n) {
                scatter(table, row.slot, c_n, b);
            }
            output.batch_row[i] = b;
            output.states[i] = row.read_state.then(|| SlotState {
                h: h_n.slice(s![.., b, ..]).to_owned(),
                c: c_n.as_ref().map(|c| c.slice(s![.., b, ..]).to_owned()),
            });
        }
        Ok(output)
    }
}

/// Writes batch row `b` of a forward's final states `[L·D, B, W]` to slot `slot` of `table`
/// `[slots, L·D, W]`: a slice copy per layer and direction where both are in standard layout.
fn scatter(table: &mut Array3<f32>, slot: usize, states: &Array3<f32>, b: usize) {
    let (_, ld, w) = table.dim();
    let rows = states.dim().1;
    match (table.as_slice_mut(), states.as_slice()) {
        (Some(dst), Some(src)) => {
            for l in 0..ld {
                let to = (slot * ld + l) * w;
                let from = (l * rows + b) * w;
                dst[to..to + w].copy_from_slice(&src[from..from + w]);
            }
        }
        _ => table
            .index_axis_mut(Axis(0), slot)
            .assign(&states.slice(s![.., b, ..])),
    }
}
