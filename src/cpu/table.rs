//! The state table on the CPU: every slot's state in one host array; a round gathers its
//! rows' states into the forward's `h0`/`c0`, runs one forward with per-row lengths, and
//! writes the rows' final states back to their slots.

use ndarray::{s, Array3, Axis, Ix3};

use crate::cpu::CpuModel;
use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::table::{check_rows, pack_rows, RoundOutput, RoundRow, SlotState, StateTable};
use crate::tensor::{Forward, Input};

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
        let (x, lens) = pack_rows(&spec, rows);
        let gather = |table: &Array3<f32>| -> Array3<f32> {
            let (_, ld, w) = table.dim();
            let mut out = Array3::zeros((ld, rows.len(), w));
            for (b, row) in rows.iter().enumerate() {
                out.slice_mut(s![.., b, ..])
                    .assign(&table.index_axis(Axis(0), row.slot));
            }
            out
        };
        let h0 = gather(&self.h);
        let c0 = self.c.as_ref().map(gather);
        let mut input = Input::new(x.view()).lengths(&lens).h0(h0.view());
        if let Some(c0) = &c0 {
            input = input.c0(c0.view());
        }
        let out = self.model.forward(&input)?;
        let shape_err = |e: ndarray::ShapeError| Error::Internal(format!("round output: {e}"));
        let y = out.y.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let h_n = out.h_n.into_dimensionality::<Ix3>().map_err(shape_err)?;
        let c_n = match out.c_n {
            Some(c) => Some(c.into_dimensionality::<Ix3>().map_err(shape_err)?),
            None => None,
        };
        let mut output = RoundOutput {
            y: Vec::with_capacity(rows.len()),
            states: Vec::with_capacity(rows.len()),
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
        Ok(output)
    }
}
