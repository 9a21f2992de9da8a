//! A model as the server offers it: its name, the names of its tensors, its batcher, the
//! sequences open on it, and its counters.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::batcher::Batcher;
use crate::error::{Error, Result};
use crate::io::onnx::Roles;
use crate::spec::RnnSpec;
use crate::weights::Weights;

use super::sequences::Sequences;

/// The names a served model's tensors go by in requests and responses.
///
/// Models from safetensors files use [`TensorNames::default`] (`x`, `h0`, `c0` in; `y`,
/// `h_n`, `c_n` out); ONNX models the names their graph gives the sequence input, the initial
/// states and the outputs ([`TensorNames::from_onnx`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorNames {
    /// The input sequence `[T, I]`.
    pub x: String,
    /// The initial hidden state `[L·D, H_out]` (optional in a request).
    pub h0: String,
    /// The initial cell state `[L·D, H]` of an LSTM (optional in a request).
    pub c0: String,
    /// The output sequence `[T, D·H_out]`.
    pub y: String,
    /// The final hidden state `[L·D, H_out]`.
    pub h_n: String,
    /// The final cell state `[L·D, H]` of an LSTM.
    pub c_n: String,
}

impl Default for TensorNames {
    fn default() -> Self {
        TensorNames {
            x: "x".into(),
            h0: "h0".into(),
            c0: "c0".into(),
            y: "y".into(),
            h_n: "h_n".into(),
            c_n: "c_n".into(),
        }
    }
}

impl TensorNames {
    /// The names an ONNX graph gives its sequence input, initial states and outputs; the
    /// default name for any role the graph does not have.
    pub fn from_onnx(roles: &Roles) -> Self {
        let d = TensorNames::default();
        let pick = |n: &Option<String>, default: String| n.clone().unwrap_or(default);
        TensorNames {
            x: pick(&roles.input, d.x),
            h0: pick(&roles.h0, d.h0),
            c0: pick(&roles.c0, d.c0),
            y: pick(&roles.output, d.y),
            h_n: pick(&roles.hn, d.h_n),
            c_n: pick(&roles.cn, d.c_n),
        }
    }
}

/// Reads the weights of a model file to serve and the names its tensors go by: a
/// `.safetensors` file ([`crate::io::model_file`]), or an `.onnx` model of one recurrent stack
/// ([`crate::io::onnx`]; the server runs the stack on its own, in the layout of
/// [`TensorNames`], not the graph's glue around it). `path` may also be a directory holding
/// exactly one such file (as KServe mounts a model's storage at `/mnt/models`).
pub fn load_model_file(path: &Path) -> Result<(Weights, TensorNames)> {
    if path.is_dir() {
        return load_model_file(&only_model_in(path)?);
    }
    let is_onnx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if !is_onnx {
        let file = crate::io::model_file::load(path)?;
        return Ok((file.weights, TensorNames::default()));
    }
    let model = crate::io::onnx::load(path)?;
    match model.stacks() {
        [stack] => Ok((stack.weights.clone(), TensorNames::from_onnx(model.roles()))),
        stacks => Err(Error::invalid_file(
            path,
            format!(
                "the server runs models of one recurrent stack; this graph has {}",
                stacks.len()
            ),
        )),
    }
}

/// The one `.onnx` or `.safetensors` file in `dir`.
fn only_model_in(dir: &Path) -> Result<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let model = p.extension().is_some_and(|e| {
            e.eq_ignore_ascii_case("onnx") || e.eq_ignore_ascii_case("safetensors")
        });
        if model && p.is_file() {
            found.push(p);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(Error::invalid_file(
            dir,
            format!("a model directory must hold exactly one .onnx or .safetensors file, not {n}"),
        )),
    }
}

/// Counters a served model keeps beside its batcher's.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Inference requests answered with results.
    pub success: AtomicU64,
    /// Inference requests answered with an error.
    pub failure: AtomicU64,
}

impl Counts {
    pub fn record(&self, ok: bool) {
        let c = if ok { &self.success } else { &self.failure };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A model to serve: a name, a [`Batcher`] running it, and the names of its tensors.
///
/// ```
/// use wgpu_lstm::serve::{ServedModel, TensorNames};
/// use wgpu_lstm::{Batcher, BatcherOptions, CpuModel, RnnSpec, Weights};
///
/// let weights = Weights::random(&RnnSpec::lstm(8, 16), 7)?;
/// let batcher = Batcher::new(CpuModel::new(weights), BatcherOptions::default())?;
/// let model = ServedModel::new("kws", batcher, TensorNames::default())?;
/// assert_eq!(model.name(), "kws");
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug)]
pub struct ServedModel {
    name: String,
    names: TensorNames,
    batcher: Batcher,
    pub(crate) sequences: Sequences,
    pub(crate) counts: Counts,
}

impl ServedModel {
    /// A model served under `name` (letters, digits, `-`, `_`, `.`; the path segment of its
    /// URLs). Fails on another name, or where two of `names` are the same.
    pub fn new(name: impl Into<String>, batcher: Batcher, names: TensorNames) -> Result<Self> {
        let name = name.into();
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || !name.chars().all(ok) || name.starts_with('.') {
            return Err(Error::InvalidInput(format!(
                "model name `{name}`: use letters, digits, `-`, `_` and `.` (not first)"
            )));
        }
        let all = [
            &names.x, &names.h0, &names.c0, &names.y, &names.h_n, &names.c_n,
        ];
        for (i, a) in all.iter().enumerate() {
            if all[..i].contains(a) {
                return Err(Error::InvalidInput(format!(
                    "model `{name}`: two of its tensors are named `{a}`"
                )));
            }
        }
        let idle = batcher.options().stream_idle_timeout;
        Ok(ServedModel {
            name,
            names,
            batcher,
            sequences: Sequences::new(idle),
            counts: Counts::default(),
        })
    }

    /// The name it is served under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of its tensors.
    pub fn names(&self) -> &TensorNames {
        &self.names
    }

    /// Its batcher.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The model's description.
    pub fn spec(&self) -> &RnnSpec {
        self.batcher.spec()
    }

    /// Whether it takes sequences (the protocol's `sequence_id`): unidirectional models.
    pub fn streamable(&self) -> bool {
        crate::stream::check_streamable(self.spec()).is_ok()
    }

    /// The inputs a request may carry: name and shape (`-1` for a variable dimension), and
    /// whether it is optional.
    pub(crate) fn inputs(&self) -> Vec<(String, Vec<i64>, bool)> {
        let s = self.spec();
        let states = (s.num_layers * s.num_directions()) as i64;
        let mut v = vec![
            (self.names.x.clone(), vec![-1, s.input_size as i64], false),
            (
                self.names.h0.clone(),
                vec![states, s.hidden_out() as i64],
                true,
            ),
        ];
        if s.cell.has_cell_state() {
            v.push((
                self.names.c0.clone(),
                vec![states, s.hidden_size as i64],
                true,
            ));
        }
        v
    }

    /// The outputs a response may carry: name and shape (`-1` for a variable dimension).
    pub(crate) fn outputs(&self) -> Vec<(String, Vec<i64>)> {
        let s = self.spec();
        let states = (s.num_layers * s.num_directions()) as i64;
        let mut v = vec![
            (self.names.y.clone(), vec![-1, s.output_size() as i64]),
            (self.names.h_n.clone(), vec![states, s.hidden_out() as i64]),
        ];
        if s.cell.has_cell_state() {
            v.push((self.names.c_n.clone(), vec![states, s.hidden_size as i64]));
        }
        v
    }
}
