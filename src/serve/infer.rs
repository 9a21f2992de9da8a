//! One inference request, whichever protocol brought it: its inputs checked against the model,
//! sent to the batcher as a one-shot request or as the next chunk of a sequence, and its
//! outputs gathered by name.
//!
//! [`ServedModel::submit`] does every check and queues the work at once (the requests of a
//! sequence reach the batcher in the order they arrive); [`Submitted::finish`] waits for the
//! results without blocking a thread.

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2};

use crate::batcher::{Pending, Request, Response};
use crate::table::SlotState;

use super::error::{ServeError, ServeResult};
use super::model::{ServedModel, TensorNames};
use super::sequences::{Open, SeqId};

/// An input tensor as decoded from a request (every datatype converted to the model's FP32).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

/// A request parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Text(String),
    /// A value of another type (JSON `null`, a float, an object…).
    Other,
}

/// The sequence extension's parameters of a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SequenceParams {
    pub id: SeqId,
    pub start: bool,
    pub end: bool,
}

/// A request, decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Call {
    pub inputs: Vec<InputTensor>,
    /// The outputs asked for by name; `None` for all of them.
    pub outputs: Option<Vec<String>>,
    pub sequence: Option<SequenceParams>,
    /// Triton's `timeout` parameter (microseconds).
    pub timeout: Option<Duration>,
}

impl Call {
    /// Reads the parameters the server honours (`sequence_id`, `sequence_start`,
    /// `sequence_end`, `timeout`) from a request's parameters; others are ignored, as the
    /// protocol allows.
    pub fn set_params<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a str, Param)>,
    ) -> ServeResult<()> {
        let mut id = None;
        let (mut start, mut end) = (false, false);
        for (key, value) in params {
            match key {
                "sequence_id" => {
                    id =
                        match value {
                            Param::Int(0) | Param::UInt(0) => None,
                            Param::Int(n) if n > 0 => Some(SeqId::Num(n as u64)),
                            Param::UInt(n) => Some(SeqId::Num(n)),
                            Param::Text(s) if s.is_empty() => None,
                            Param::Text(s) => Some(SeqId::Text(s)),
                            _ => return Err(ServeError::bad(
                                "parameter `sequence_id` must be an unsigned integer or a string",
                            )),
                        }
                }
                "sequence_start" | "sequence_end" => {
                    let Param::Bool(b) = value else {
                        return Err(ServeError::bad(format!(
                            "parameter `{key}` must be a boolean"
                        )));
                    };
                    if key == "sequence_start" {
                        start = b;
                    } else {
                        end = b;
                    }
                }
                "timeout" => {
                    let us = match value {
                        Param::Int(n) if n >= 0 => n as u64,
                        Param::UInt(n) => n,
                        _ => {
                            return Err(ServeError::bad(
                                "parameter `timeout` must be a count of microseconds",
                            ))
                        }
                    };
                    self.timeout = (us > 0).then(|| Duration::from_micros(us));
                }
                _ => {}
            }
        }
        self.sequence = match id {
            Some(id) => Some(SequenceParams { id, start, end }),
            None if start || end => {
                return Err(ServeError::bad(
                    "`sequence_start` or `sequence_end` without a `sequence_id`",
                ))
            }
            None => None,
        };
        Ok(())
    }
}

/// An output tensor of a response: row-major FP32.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Which outputs a request wants.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    y: bool,
    h_n: bool,
    c_n: bool,
}

/// A request queued on the batcher.
#[derive(Debug)]
pub(crate) struct Submitted {
    names: TensorNames,
    wanted: Wanted,
    work: Work,
}

#[derive(Debug)]
enum Work {
    OneShot(Pending<Response>),
    Chunk {
        y: Pending<Array2<f32>>,
        state: Option<Pending<SlotState>>,
    },
}

/// The tensor of `name` among `inputs` as a `[rows, cols]` view, checked.
fn matrix<'a>(
    inputs: &'a [InputTensor],
    name: &str,
    rows: Option<usize>,
    cols: usize,
) -> ServeResult<Option<ArrayView2<'a, f32>>> {
    let Some(t) = inputs.iter().find(|t| t.name == name) else {
        return Ok(None);
    };
    let want = match rows {
        Some(r) => format!("[{r}, {cols}]"),
        None => format!("[T, {cols}] with T ≥ 1"),
    };
    let dims: Option<Vec<usize>> = t.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
    let ok = match dims.as_deref() {
        Some(&[r, c]) => c == cols && rows.is_none_or(|want| want == r) && r >= 1,
        _ => false,
    };
    if !ok {
        return Err(ServeError::bad(format!(
            "input `{name}` has shape {:?}; the model takes {want}",
            t.shape
        )));
    }
    let dims = dims.unwrap_or_default();
    let elements = dims[0] * dims[1];
    if t.data.len() != elements {
        return Err(ServeError::bad(format!(
            "input `{name}` of shape {:?} has {} elements, not {elements}",
            t.shape,
            t.data.len()
        )));
    }
    let view = ArrayView2::from_shape((dims[0], dims[1]), &t.data)
        .map_err(|e| ServeError::bad(format!("input `{name}`: {e}")))?;
    Ok(Some(view))
}

impl ServedModel {
    /// Checks `call` against the model and queues it on the batcher.
    pub(crate) fn submit(&self, call: &Call) -> ServeResult<Submitted> {
        let names = self.names();
        let spec = self.spec();
        let input_names: Vec<String> = self.inputs().into_iter().map(|(n, _, _)| n).collect();
        for (i, t) in call.inputs.iter().enumerate() {
            if !input_names.contains(&t.name) {
                return Err(ServeError::bad(format!(
                    "unknown input `{}`; model `{}` takes {}",
                    t.name,
                    self.name(),
                    input_names.join(", ")
                )));
            }
            if call.inputs[..i].iter().any(|o| o.name == t.name) {
                return Err(ServeError::bad(format!("input `{}` given twice", t.name)));
            }
        }
        let wanted = self.wanted(call.outputs.as_deref())?;
        let states = spec.num_layers * spec.num_directions();
        let x = matrix(&call.inputs, &names.x, None, spec.input_size)?
            .ok_or_else(|| ServeError::bad(format!("input `{}` is missing", names.x)))?;
        let h0 = matrix(&call.inputs, &names.h0, Some(states), spec.hidden_out())?;
        let c0 = if spec.cell.has_cell_state() {
            matrix(&call.inputs, &names.c0, Some(states), spec.hidden_size)?
        } else {
            None
        };
        let deadline = call.timeout.map(|t| Instant::now() + t);
        let work = match &call.sequence {
            None => {
                let mut request = Request::new(x);
                if let Some(h0) = h0 {
                    request = request.h0(h0);
                }
                if let Some(c0) = c0 {
                    request = request.c0(c0);
                }
                if let Some(d) = deadline {
                    request = request.deadline(d);
                }
                Work::OneShot(self.batcher().submit(request)?)
            }
            Some(seq) => self.feed_sequence(seq, x, h0, c0, wanted)?,
        };
        Ok(Submitted {
            names: self.names().clone(),
            wanted,
            work,
        })
    }

    /// Which outputs `requested` names (all of them for `None`).
    fn wanted(&self, requested: Option<&[String]>) -> ServeResult<Wanted> {
        let Some(requested) = requested else {
            let lstm = self.spec().cell.has_cell_state();
            return Ok(Wanted {
                y: true,
                h_n: true,
                c_n: lstm,
            });
        };
        let outputs: Vec<String> = self.outputs().into_iter().map(|(n, _)| n).collect();
        let mut w = Wanted {
            y: false,
            h_n: false,
            c_n: false,
        };
        for name in requested {
            let names = self.names();
            if !outputs.contains(name) {
                return Err(ServeError::bad(format!(
                    "unknown output `{name}`; model `{}` gives {}",
                    self.name(),
                    outputs.join(", ")
                )));
            }
            w.y |= *name == names.y;
            w.h_n |= *name == names.h_n;
            w.c_n |= *name == names.c_n;
        }
        Ok(w)
    }

    /// Queues `x` as the next chunk of sequence `seq`, opening it at its start and closing
    /// it at its end.
    fn feed_sequence(
        &self,
        seq: &SequenceParams,
        x: ArrayView2<'_, f32>,
        h0: Option<ArrayView2<'_, f32>>,
        c0: Option<ArrayView2<'_, f32>>,
        wanted: Wanted,
    ) -> ServeResult<Work> {
        if !self.streamable() {
            return Err(ServeError::bad(format!(
                "model `{}` is bidirectional and takes no sequences (`sequence_id`); send each \
                 sequence whole",
                self.name()
            )));
        }
        let lstm = self.spec().cell.has_cell_state();
        let replaces = !seq.start && (h0.is_some() || c0.is_some());
        if replaces && lstm && (h0.is_none() || c0.is_none()) {
            return Err(ServeError::bad(format!(
                "sequence {}: to replace an LSTM sequence's state give both `{}` and `{}`",
                seq.id,
                self.names().h0,
                self.names().c0
            )));
        }
        let mut map = self.sequences.lock();
        if replaces && !map.contains_key(&seq.id) {
            return Err(self.not_open(&seq.id));
        }
        if seq.start || replaces {
            // A new start of an open sequence ends the old one, as does a state given with a
            // later request: its chunk continues from that state (the old stream's queued
            // chunks still run).
            map.remove(&seq.id);
            let stream = self.batcher().open_stream_from(h0, c0)?;
            map.insert(
                seq.id.clone(),
                Open {
                    stream,
                    last_used: Instant::now(),
                },
            );
        }
        let Some(open) = map.get_mut(&seq.id) else {
            return Err(self.not_open(&seq.id));
        };
        open.last_used = Instant::now();
        let fed = open.stream.feed(x).and_then(|y| {
            let state = if wanted.h_n || wanted.c_n {
                Some(open.stream.queue_state_read()?)
            } else {
                None
            };
            Ok(Work::Chunk { y, state })
        });
        if seq.end || matches!(fed, Err(crate::Error::Closed(_))) {
            // Dropping the stream closes it once its queued chunks have run.
            map.remove(&seq.id);
        }
        if let Err(crate::Error::Closed(_)) = fed {
            return Err(ServeError::bad(format!(
                "sequence {} was closed after standing idle for {} s; start it again",
                seq.id,
                self.batcher().options().stream_idle_timeout.as_secs_f64()
            )));
        }
        Ok(fed?)
    }
}

impl ServedModel {
    fn not_open(&self, id: &SeqId) -> ServeError {
        ServeError::bad(format!(
            "sequence {id} is not open: start it with `sequence_start` (it may have ended, or \
             been closed after {} s idle)",
            self.batcher().options().stream_idle_timeout.as_secs_f64()
        ))
    }
}

impl Submitted {
    /// Waits for the results and returns the outputs asked for, in the model's order.
    pub async fn finish(self) -> ServeResult<Vec<OutputTensor>> {
        let (y, h_n, c_n) = match self.work {
            Work::OneShot(pending) => {
                let r = pending.await?;
                (r.y, r.h_n, r.c_n)
            }
            Work::Chunk { y, state } => {
                let y = y.await?;
                let (h, c) = match state {
                    Some(s) => {
                        let s = s.await?;
                        (s.h, s.c)
                    }
                    None => (Array2::zeros((0, 0)), None),
                };
                (y, h, c)
            }
        };
        let names = &self.names;
        let mut out = Vec::new();
        let mut push = |name: &str, a: Array2<f32>| {
            out.push(OutputTensor {
                name: name.to_string(),
                shape: a.shape().to_vec(),
                data: a.iter().copied().collect(),
            })
        };
        if self.wanted.y {
            push(&names.y, y);
        }
        if self.wanted.h_n {
            push(&names.h_n, h_n);
        }
        if let (true, Some(c)) = (self.wanted.c_n, c_n) {
            push(&names.c_n, c);
        }
        Ok(out)
    }
}

/// [`ServedModel::submit`], a refusal counted in the model's failure counter.
pub(crate) fn submit_counted(model: &ServedModel, call: &Call) -> ServeResult<Submitted> {
    let submitted = model.submit(call);
    if submitted.is_err() {
        model.counts.record(false);
    }
    submitted
}

/// [`Submitted::finish`], counted in `model`'s success or failure counter.
pub(crate) async fn finish_counted(
    model: &ServedModel,
    submitted: Submitted,
) -> ServeResult<Vec<OutputTensor>> {
    let result = submitted.finish().await;
    model.counts.record(result.is_ok());
    result
}

/// Runs `call` on `model`: submitted, then finished, counted.
pub(crate) async fn infer(model: &ServedModel, call: &Call) -> ServeResult<Vec<OutputTensor>> {
    finish_counted(model, submit_counted(model, call)?).await
}
