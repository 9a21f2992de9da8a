//! The state table on the CPU: every slot's state in one host array; a round gathers its
//! rows' states into the forward's `h0`/`c0`, runs forwards with per-row lengths — the rows
//! split in one part per thread, each part's forward on one thread, side by side, so that no
//! barrier is met at every step — and writes the rows' final states back to their slots.

use ndarray::{s, Array3, Axis, Ix3};

use crate::cpu::CpuModel;
use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::table::{check_rows, pack_rows, RoundOutput, RoundRow, SlotState, StateTable};
use crate::tensor::{Input, Output};

/// Slots in host memory (see the module documentation).
#[derive(Debug)]
pub(crate) struct CpuTable {
    model: CpuModel,
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
            model,
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
        let spec = self.spec().clone();
        check_rows(&spec, self.slots(), rows)?;
        // The rows in contiguous parts, one forward each, side by side on the model's threads.
        let parts = self.model.apart_parts(rows.len());
        let bounds: Vec<usize> = (0..=parts).map(|p| p * rows.len() / parts).collect();
        let packed: Vec<Packed> = bounds
            .windows(2)
            .map(|w| self.pack(&spec, &rows[w[0]..w[1]]))
            .collect();
        let inputs: Vec<Input<'_>> = packed.iter().map(Packed::input).collect();
        let outs = self.model.forward_apart(&inputs);
        let mut output = RoundOutput {
            y: Vec::with_capacity(rows.len()),
            states: Vec::with_capacity(rows.len()),
        };
        for ((w, part), out) in bounds.windows(2).zip(&packed).zip(outs) {
            self.finish(&rows[w[0]..w[1]], &part.lens, out?, &mut output)?;
        }
        Ok(output)
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
        let gather = |table: &Array3<f32>| -> Array3<f32> {
            let (_, ld, w) = table.dim();
            let mut out = Array3::zeros((ld, rows.len(), w));
            for (b, row) in rows.iter().enumerate() {
                out.slice_mut(s![.., b, ..])
                    .assign(&table.index_axis(Axis(0), row.slot));
            }
            out
        };
        Packed {
            x,
            lens,
            h0: gather(&self.h),
            c0: self.c.as_ref().map(gather),
        }
    }

    /// Writes the final states of `rows` back to their slots and appends their outputs.
    fn finish(
        &mut self,
        rows: &[RoundRow<'_>],
        lens: &[usize],
        out: Output,
        output: &mut RoundOutput,
    ) -> Result<()> {
        let shape_err = |e: ndarray::ShapeError| Error::Internal(format!("round output: {e}"));
        let y = out.y.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let h_n = out.h_n.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let c_n = match out.c_n {
            Some(c) => Some(c.into_dimensionality::<Ix3>().map_err(shape_err)?),
            None => None,
        };
        for (b, row) in rows.iter().enumerate() {
            self.h
                .index_axis_mut(Axis(0), row.slot)
                .assign(&h_n.slice(s![.., b, ..]));
            if let (Some(table), Some(c_n)) = (&mut self.c, &c_n) {
                table
                    .index_axis_mut(Axis(0), row.slot)
                    .assign(&c_n.slice(s![.., b, ..]));
            }
            output.y.push(y.slice(s![..lens[b], b, ..]).to_owned());
            output.states.push(row.read_state.then(|| SlotState {
                h: h_n.slice(s![.., b, ..]).to_owned(),
                c: c_n.as_ref().map(|c| c.slice(s![.., b, ..]).to_owned()),
            }));
        }
        Ok(())
    }
}
