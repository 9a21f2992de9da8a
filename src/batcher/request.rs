//! One-shot requests and their responses, checked against the model.

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::table::SlotState;

/// One sequence to run whole: its input `[T, I]` (PyTorch's unbatched layout), optionally its
/// initial state and a deadline.
///
/// ```
/// use ndarray::Array2;
/// use std::time::Duration;
/// use wgpu_lstm::Request;
///
/// let x = Array2::<f32>::zeros((50, 40));
/// let request = Request::new(x.view()).timeout(Duration::from_secs(2));
/// # let _ = request;
/// ```
#[derive(Debug, Clone)]
pub struct Request<'a> {
    x: ArrayView2<'a, f32>,
    h0: Option<ArrayView2<'a, f32>>,
    c0: Option<ArrayView2<'a, f32>>,
    deadline: Option<Instant>,
}

impl<'a> Request<'a> {
    /// A request for the sequence `x` `[T, I]`, from zero state.
    pub fn new(x: ArrayView2<'a, f32>) -> Self {
        Request {
            x,
            h0: None,
            c0: None,
            deadline: None,
        }
    }

    /// The initial hidden state `[L·D, H_out]` (zeros when not given).
    pub fn h0(mut self, h0: ArrayView2<'a, f32>) -> Self {
        self.h0 = Some(h0);
        self
    }

    /// The initial cell state `[L·D, H]` of an LSTM (zeros when not given).
    pub fn c0(mut self, c0: ArrayView2<'a, f32>) -> Self {
        self.c0 = Some(c0);
        self
    }

    /// Fails the request with [`Error::DeadlineExceeded`] if its results are not ready by
    /// `deadline`; it is then dropped from the batch and its slot freed.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// [`deadline`](Self::deadline) `timeout` from now.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }

    /// The request checked against `spec`, copied for the scheduler.
    pub(crate) fn admit(&self, spec: &RnnSpec) -> Result<Admitted> {
        let x = check_steps(spec, self.x, "x")?;
        let state = initial_state(spec, self.h0, self.c0)?;
        Ok(Admitted {
            x,
            state,
            deadline: self.deadline,
        })
    }
}

/// A request as the scheduler keeps it.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub x: Array2<f32>,
    pub state: Option<SlotState>,
    pub deadline: Option<Instant>,
}

/// The results of one request, in PyTorch's unbatched layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The last layer's output at every step, `[T, D·H_out]`.
    pub y: Array2<f32>,
    /// The final hidden state of every layer and direction, `[L·D, H_out]`.
    pub h_n: Array2<f32>,
    /// The final cell state of every layer and direction, `[L·D, H]` (LSTM only).
    pub c_n: Option<Array2<f32>>,
}

/// `x` `[T, I]` with at least one step, copied.
pub(crate) fn check_steps(
    spec: &RnnSpec,
    x: ArrayView2<'_, f32>,
    name: &str,
) -> Result<Array2<f32>> {
    if x.ncols() != spec.input_size || x.nrows() == 0 {
        return Err(Error::ShapeMismatch {
            tensor: name.into(),
            expected: crate::error::Shape(vec![x.nrows().max(1), spec.input_size]),
            actual: x.shape().into(),
        });
    }
    Ok(x.to_owned())
}

/// An initial state from `h0` and `c0` (`None` for zeros), checked against `spec`.
pub(crate) fn initial_state(
    spec: &RnnSpec,
    h0: Option<ArrayView2<'_, f32>>,
    c0: Option<ArrayView2<'_, f32>>,
) -> Result<Option<SlotState>> {
    if h0.is_none() && c0.is_none() {
        return Ok(None);
    }
    let mut state = SlotState::zeros(spec);
    if let Some(h0) = h0 {
        if h0.shape() != state.h.shape() {
            return Err(Error::shape("h0", state.h.shape(), h0.shape()));
        }
        state.h.assign(&h0);
    }
    match (c0, &mut state.c) {
        (Some(c0), Some(c)) => {
            if c0.shape() != c.shape() {
                return Err(Error::shape("c0", c.shape(), c0.shape()));
            }
            c.assign(&c0);
        }
        (Some(_), None) => {
            return Err(Error::InvalidInput(format!(
                "`c0` given for a {} model, which has no cell state",
                spec.cell.name()
            )))
        }
        (None, _) => {}
    }
    Ok(Some(state))
}
