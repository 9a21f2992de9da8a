//! Model weights in safetensors files with PyTorch `state_dict` names.
//!
//! Everything about the model is inferred from the tensors: layers from the `_l{k}` suffixes,
//! directions from `_reverse`, sizes and projection from the shapes, peepholes from
//! `weight_ph_l{k}`. The cell comes from the metadata key `cell` (`lstm`, `gru`, `rnn_tanh`,
//! `rnn_relu`) or else from the gate rows of `weight_hh_l0` (4H → lstm, 3H → gru,
//! H → rnn_tanh). A prefix common to every name (as in a whole model's `state_dict`, e.g.
//! `encoder.rnn.`) is stripped. The metadata key `batch_first` = `true` marks models whose
//! inputs are batch-first.
//!
//! Writing such a file from PyTorch:
//!
//! ```python
//! from safetensors.torch import save_file
//! lstm = torch.nn.LSTM(40, 128, num_layers=2, bidirectional=True)
//! save_file(lstm.state_dict(), "model.safetensors", metadata={"cell": "lstm"})
//! ```

use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayD;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::spec::{Cell, RnnSpec};
use crate::weights::Weights;

/// Weights read from a file, with the options its metadata carries.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// The weights (and through them the spec).
    pub weights: Weights,
    /// Whether the model's inputs are batch-first (metadata `batch_first` = `true`).
    pub batch_first: bool,
    /// The prefix stripped from every tensor name (empty when none).
    pub prefix: String,
}

const KINDS: [&str; 6] = [
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
    "weight_hr",
    "weight_ph",
];

/// `(kind, layer, reverse)` of a PyTorch parameter name such as `weight_hh_l1_reverse`.
fn parse_name(name: &str) -> Option<(&'static str, usize, bool)> {
    let (base, reverse) = match name.strip_suffix("_reverse") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (kind, layer) = base.rsplit_once("_l")?;
    let kind = KINDS.into_iter().find(|k| *k == kind)?;
    if layer.is_empty() || !layer.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((kind, layer.parse().ok()?, reverse))
}

fn to_f32(
    path: &Path,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<ArrayD<f32>> {
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::invalid_file(
                path,
                format!("tensor `{name}` has dtype {other:?}; expected F32, F64, F16 or BF16"),
            ))
        }
    };
    ArrayD::from_shape_vec(view.shape(), values)
        .map_err(|e| Error::invalid_file(path, format!("tensor `{name}`: {e}")))
}

/// Reads a model from a safetensors file.
pub fn load(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(path, &bytes)
}

/// Reads a model from the bytes of a safetensors file; `path` only names it in errors.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelFile> {
    let bad = |m: String| Error::invalid_file(path, m);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();

    let names = st.names();
    if names.is_empty() {
        return Err(bad("holds no tensors".into()));
    }
    // The common prefix: everything up to the last '.' of each name, which must agree.
    let prefix_of = |n: &str| n.rfind('.').map_or(String::new(), |i| n[..=i].to_string());
    let mut sorted: Vec<&str> = names.clone();
    sorted.sort_unstable();
    let prefix = prefix_of(sorted[0]);
    if let Some(other) = sorted.iter().find(|n| prefix_of(n) != prefix) {
        return Err(bad(format!(
            "tensor names do not share one prefix: `{}` and `{other}`",
            sorted[0]
        )));
    }

    let mut tensors: HashMap<String, ArrayD<f32>> = HashMap::new();
    let mut layers = 0;
    let mut reverse = false;
    for name in &sorted {
        let short = &name[prefix.len()..];
        let view = st
            .tensor(name)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let Some((_, layer, rev)) = parse_name(short) else {
            return Err(Error::UnexpectedTensor {
                tensor: name.to_string(),
                actual: view.shape().into(),
            });
        };
        layers = layers.max(layer + 1);
        reverse |= rev;
        tensors.insert(short.to_string(), to_f32(path, name, &view)?);
    }

    let shape_of = |n: &str| tensors.get(n).map(|t| t.shape().to_vec());
    let need = |n: &str| {
        shape_of(n).ok_or_else(|| {
            bad(format!(
                "no tensor `{prefix}{n}`: not a recurrent-layer state_dict"
            ))
        })
    };
    let w_ih = need("weight_ih_l0")?;
    let w_hh = need("weight_hh_l0")?;
    let two_d = |n: &str, s: &[usize]| {
        if s.len() == 2 {
            Ok(())
        } else {
            Err(bad(format!(
                "tensor `{prefix}{n}` must have 2 dimensions, got shape {}",
                crate::Shape(s.to_vec())
            )))
        }
    };
    two_d("weight_ih_l0", &w_ih)?;
    two_d("weight_hh_l0", &w_hh)?;
    let (hidden, proj_size) = match shape_of("weight_hr_l0") {
        Some(hr) => {
            two_d("weight_hr_l0", &hr)?;
            (hr[1], hr[0])
        }
        None => (w_hh[1], 0),
    };
    if hidden == 0 {
        return Err(bad("hidden size 0 in `weight_hh_l0`".into()));
    }
    let cell = match meta.get("cell") {
        Some(c) => Cell::from_name(c).ok_or_else(|| {
            bad(format!(
                "unknown cell `{c}` in the metadata (expected lstm, gru, rnn_tanh or rnn_relu)"
            ))
        })?,
        None => match (w_hh[0] % hidden, w_hh[0] / hidden) {
            (0, 4) => Cell::Lstm,
            (0, 3) => Cell::Gru,
            (0, 1) => Cell::RnnTanh,
            _ => {
                return Err(bad(format!(
                    "cannot tell the cell: `{prefix}weight_hh_l0` has {} rows for hidden size {hidden} (expected 4·H for lstm, 3·H for gru, H for rnn; or set the metadata key `cell`)",
                    w_hh[0]
                )))
            }
        },
    };
    let batch_first = match meta.get("batch_first").map(String::as_str) {
        None | Some("false") | Some("False") => false,
        Some("true") | Some("True") => true,
        Some(v) => {
            return Err(bad(format!(
                "metadata `batch_first` is `{v}`; expected `true` or `false`"
            )))
        }
    };
    let spec = RnnSpec {
        cell,
        input_size: w_ih[1],
        hidden_size: hidden,
        num_layers: layers,
        bidirectional: reverse,
        bias: tensors.contains_key("bias_ih_l0"),
        proj_size,
        peephole: tensors.contains_key("weight_ph_l0"),
        ..RnnSpec::new(cell, w_ih[1], hidden)
    };
    spec.validate().map_err(|e| bad(e.to_string()))?;
    let weights = Weights::from_tensors(&spec, tensors).map_err(|e| with_prefix(e, &prefix))?;
    Ok(ModelFile {
        weights,
        batch_first,
        prefix,
    })
}

/// Puts the stripped prefix back into the tensor names of an error.
fn with_prefix(e: Error, prefix: &str) -> Error {
    let full = |t: String| format!("{prefix}{t}");
    match e {
        Error::ShapeMismatch {
            tensor,
            expected,
            actual,
        } => Error::ShapeMismatch {
            tensor: full(tensor),
            expected,
            actual,
        },
        Error::MissingTensor { tensor, expected } => Error::MissingTensor {
            tensor: full(tensor),
            expected,
        },
        Error::UnexpectedTensor { tensor, actual } => Error::UnexpectedTensor {
            tensor: full(tensor),
            actual,
        },
        other => other,
    }
}

struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.bytes).into()
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The bytes of a safetensors file holding `weights` under PyTorch names, with the metadata
/// `cell` and, when `batch_first`, `batch_first` = `true`.
///
/// The format holds PyTorch's models: a model with ONNX-only options (a reverse-only
/// direction, other activation functions, `clip`, `input_forget`, a GRU's
/// `linear_before_reset = false`) is refused rather than saved without them.
pub fn to_bytes(weights: &Weights, batch_first: bool) -> Result<Vec<u8>> {
    let spec = weights.spec();
    if spec.reverse || !spec.plain_gates() {
        return Err(Error::InvalidInput(
            "this model has ONNX options that a PyTorch safetensors file cannot hold (reverse direction, activations, clip, input_forget or linear_before_reset = false)".into(),
        ));
    }
    let tensors = weights.tensors().into_iter().map(|(name, t)| {
        let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        (
            name,
            F32View {
                shape: t.shape().to_vec(),
                bytes,
            },
        )
    });
    let mut meta = HashMap::from([("cell".to_string(), weights.spec().cell.name().to_string())]);
    if batch_first {
        meta.insert("batch_first".into(), "true".into());
    }
    safetensors::serialize(tensors, Some(meta)).map_err(|e| Error::encode("safetensors model", e))
}

/// Writes `weights` to a safetensors file, atomically (see [`to_bytes`]).
pub fn save(path: &Path, weights: &Weights, batch_first: bool) -> Result<()> {
    super::write_atomic(path, &to_bytes(weights, batch_first)?)
}
