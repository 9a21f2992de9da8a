//! The forward interface: inputs, outputs, their shape checks, and the [`Forward`] trait every
//! model implements (shared by the CPU and GPU paths).

use ndarray::{Array3, ArrayD, ArrayView, ArrayViewD, Axis, CowArray, Dimension, Ix3};

use crate::error::{Error, Result, Shape};
use crate::spec::RnnSpec;

/// The inputs of one forward: the sequence `x` and optional initial states.
///
/// Shapes (`D` = directions, `L` = layers, `H` = hidden size):
///
/// | tensor | batched                                      | unbatched   |
/// |--------|----------------------------------------------|-------------|
/// | `x`    | `[T, B, I]` (`[B, T, I]` with `batch_first`) | `[T, I]`    |
/// | `h0`   | `[L·D, B, H]` (never batch-first)            | `[L·D, H]`  |
/// | `c0`   | `[L·D, B, H]` (never batch-first)            | `[L·D, H]`  |
/// | `lengths` | `[B]`, each in `0..=T`                    | `[1]`       |
///
/// `H` is the projection size for `h0` of an LSTM with a projection. Missing initial states
/// are zeros; without `lengths` every sequence is `T` long.
///
/// ```
/// use ndarray::Array3;
/// use wgpu_lstm::Input;
/// let x = Array3::<f32>::zeros((8, 2, 5)); // [B=8, T=2, I=5]
/// let input = Input::new(x.view()).batch_first(true);
/// # let _ = input;
/// ```
#[derive(Debug, Clone)]
pub struct Input<'a> {
    x: ArrayViewD<'a, f32>,
    h0: Option<ArrayViewD<'a, f32>>,
    c0: Option<ArrayViewD<'a, f32>>,
    lengths: Option<&'a [usize]>,
    batch_first: bool,
}

impl<'a> Input<'a> {
    /// A forward over `x`: `[T, B, I]`, or `[T, I]` for one unbatched sequence.
    pub fn new<D: Dimension>(x: ArrayView<'a, f32, D>) -> Self {
        Input {
            x: x.into_dyn(),
            h0: None,
            c0: None,
            lengths: None,
            batch_first: false,
        }
    }

    /// Per-sequence lengths (PyTorch `PackedSequence`, ONNX `sequence_lens`): batch element
    /// `b` is `lengths[b]` steps long, `0 ≤ lengths[b] ≤ T`. Its outputs at `t ≥ lengths[b]`
    /// are 0, its `h_n`/`c_n` are the state after its own last step (a sequence of length 0
    /// keeps its initial state), and the reverse direction starts at its step
    /// `lengths[b] − 1`.
    pub fn lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// The initial hidden state `h0`.
    pub fn h0<D: Dimension>(mut self, h0: ArrayView<'a, f32, D>) -> Self {
        self.h0 = Some(h0.into_dyn());
        self
    }

    /// The initial cell state `c0` (LSTM only).
    pub fn c0<D: Dimension>(mut self, c0: ArrayView<'a, f32, D>) -> Self {
        self.c0 = Some(c0.into_dyn());
        self
    }

    /// Whether a batched `x` is `[B, T, I]` (and `y` comes back `[B, T, D·H]`).
    pub fn batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    /// Time steps `T` and batch `B` of this input, `B = 1` when unbatched.
    pub fn steps_and_batch(&self) -> (usize, usize) {
        let s = self.x.shape();
        match (s.len(), self.batch_first) {
            (2, _) => (s[0], 1),
            (3, false) => (s[0], s[1]),
            (3, true) => (s[1], s[0]),
            _ => (0, 0),
        }
    }
}

/// The results of one forward.
///
/// | tensor | batched                                          | unbatched     |
/// |--------|--------------------------------------------------|---------------|
/// | `y`    | `[T, B, D·H]` (`[B, T, D·H]` with `batch_first`) | `[T, D·H]`    |
/// | `h_n`  | `[L·D, B, H]`                                    | `[L·D, H]`    |
/// | `c_n`  | `[L·D, B, H_cell]`                               | `[L·D, H_cell]` |
///
/// `H` is the projection size for an LSTM with a projection (the cell state keeps
/// `H_cell` = hidden size). `y[t]` holds the last layer's hidden state of both directions
/// concatenated on features (forward first); `h_n[l·D + d]` is layer `l`'s final state in
/// direction `d` (for the reverse direction, the state after time step 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Output sequence of the last layer.
    pub y: ArrayD<f32>,
    /// Final hidden state of every layer and direction.
    pub h_n: ArrayD<f32>,
    /// Final cell state of every layer and direction (`None` for cells without one).
    pub c_n: Option<ArrayD<f32>>,
}

/// A model that can run a forward pass: [`CpuModel`](crate::CpuModel) or
/// [`GpuModel`](crate::GpuModel).
pub trait Forward {
    /// Runs the whole model over `input` and returns `y`, `h_n` and `c_n`.
    fn forward(&self, input: &Input<'_>) -> Result<Output>;
}

/// An input checked against a spec and brought to time-major `[T, B, I]` layout.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub steps: usize,
    pub batch: usize,
    pub unbatched: bool,
    pub batch_first: bool,
    /// `[T, B, I]`, standard (row-major) layout.
    pub x: CowArray<'a, f32, Ix3>,
    /// `[L·D, B, H]`, standard layout.
    pub h0: Option<CowArray<'a, f32, Ix3>>,
    /// `[L·D, B, H]`, standard layout.
    pub c0: Option<CowArray<'a, f32, Ix3>>,
    /// `[B]`, each in `0..=T`; `None` when every sequence is `T` long.
    pub lengths: Option<Vec<usize>>,
}

impl<'a> Prepared<'a> {
    pub fn new(spec: &RnnSpec, input: &Input<'a>) -> Result<Self> {
        let i = spec.input_size;
        let shape = input.x.shape().to_vec();
        let unbatched = shape.len() == 2;
        let x3 = match shape.len() {
            2 => input.x.clone().insert_axis(Axis(1)),
            3 => input.x.clone(),
            _ => {
                return Err(Error::InvalidInput(format!(
                    "input `x` must be [T, B, {i}] (batch-first [B, T, {i}]) or unbatched [T, {i}], got shape {}",
                    Shape(shape.clone()),
                )));
            }
        };
        let mut x3 = x3.into_dimensionality::<Ix3>().expect("ndim checked");
        let batch_first = input.batch_first && !unbatched;
        if batch_first {
            x3.swap_axes(0, 1);
        }
        let (steps, batch, features) = x3.dim();
        if features != i {
            let expected = match (unbatched, batch_first) {
                (true, _) => vec![steps, i],
                (false, false) => vec![steps, batch, i],
                (false, true) => vec![batch, steps, i],
            };
            return Err(Error::shape("x", &expected, &shape));
        }
        if steps == 0 || batch == 0 {
            return Err(Error::InvalidInput(format!(
                "input `x` of shape {} has no {}; at least one time step and one batch element are needed",
                Shape(shape),
                if steps == 0 { "time steps" } else { "batch elements" }
            )));
        }
        let state = |name: &str,
                     t: &Option<ArrayViewD<'a, f32>>,
                     h: usize|
         -> Result<Option<CowArray<'a, f32, Ix3>>> {
            let Some(t) = t else { return Ok(None) };
            let ld = spec.num_layers * spec.num_directions();
            let expected: Vec<usize> = if unbatched {
                vec![ld, h]
            } else {
                vec![ld, batch, h]
            };
            if t.shape() != expected.as_slice() {
                return Err(Error::shape(name, &expected, t.shape()));
            }
            let t3 = if unbatched {
                t.clone().insert_axis(Axis(1))
            } else {
                t.clone()
            };
            let t3 = t3.into_dimensionality::<Ix3>().expect("ndim checked");
            Ok(Some(standard(t3)))
        };
        let h0 = state("h0", &input.h0, spec.hidden_out())?;
        let c0 = if spec.cell.has_cell_state() {
            state("c0", &input.c0, spec.hidden_size)?
        } else if input.c0.is_some() {
            return Err(Error::InvalidInput(format!(
                "`c0` was given but a {} has no cell state",
                spec.cell.name()
            )));
        } else {
            None
        };
        let lengths = match input.lengths {
            None => None,
            Some(l) if l.len() != batch => {
                return Err(Error::InvalidInput(format!(
                    "`lengths` has {} entries but the batch has {batch}",
                    l.len()
                )))
            }
            Some(l) => {
                if let Some((b, &v)) = l.iter().enumerate().find(|(_, &v)| v > steps) {
                    return Err(Error::InvalidInput(format!(
                        "`lengths[{b}]` is {v}; each length must be in 0..={steps} (the input's time steps)"
                    )));
                }
                Some(l.to_vec())
            }
        };
        let x = standard(x3);
        Ok(Prepared {
            steps,
            batch,
            unbatched,
            batch_first,
            x,
            h0,
            c0,
            lengths,
        })
    }

    /// The first `steps` time steps of this input (lengths clipped to them), borrowing it.
    pub fn prefix(&self, steps: usize) -> Prepared<'_> {
        let steps = steps.clamp(1, self.steps);
        Prepared {
            steps,
            batch: self.batch,
            unbatched: self.unbatched,
            batch_first: self.batch_first,
            x: standard(self.x.slice(ndarray::s![..steps, .., ..])),
            h0: self.h0.as_ref().map(|a| CowArray::from(a.view())),
            c0: self.c0.as_ref().map(|a| CowArray::from(a.view())),
            lengths: self
                .lengths
                .as_ref()
                .map(|l| l.iter().map(|&n| n.min(steps)).collect()),
        }
    }

    /// Length of sequence `b`.
    pub fn length(&self, b: usize) -> usize {
        self.lengths.as_ref().map_or(self.steps, |l| l[b])
    }

    /// Turns time-major results into the caller's layout. A sequence of length 0 ends in its
    /// initial state (zeros where none was given), whatever the engine left in its rows.
    pub fn finish(
        &self,
        y: Array3<f32>,
        mut h_n: Array3<f32>,
        mut c_n: Option<Array3<f32>>,
    ) -> Output {
        for b in (0..self.batch).filter(|&b| self.length(b) == 0) {
            let initial = |state: &mut Array3<f32>, given: &Option<CowArray<'_, f32, Ix3>>| {
                let mut row = state.index_axis_mut(Axis(1), b);
                match given {
                    Some(s) => row.assign(&s.index_axis(Axis(1), b)),
                    None => row.fill(0.0),
                }
            };
            initial(&mut h_n, &self.h0);
            if let Some(c) = &mut c_n {
                initial(c, &self.c0);
            }
        }
        let y = if self.unbatched {
            y.index_axis_move(Axis(1), 0).into_dyn()
        } else if self.batch_first {
            let mut y = y;
            y.swap_axes(0, 1);
            y.as_standard_layout().to_owned().into_dyn()
        } else {
            y.into_dyn()
        };
        let state = |s: Array3<f32>| {
            if self.unbatched {
                s.index_axis_move(Axis(1), 0).into_dyn()
            } else {
                s.into_dyn()
            }
        };
        Output {
            y,
            h_n: state(h_n),
            c_n: c_n.map(state),
        }
    }
}

/// Borrows `v` when it is already row-major, else copies it into row-major order.
pub(crate) fn standard<'a>(v: ndarray::ArrayView3<'a, f32>) -> CowArray<'a, f32, Ix3> {
    if v.is_standard_layout() {
        CowArray::from(v)
    } else {
        CowArray::from(v.as_standard_layout().into_owned())
    }
}
