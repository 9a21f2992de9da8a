//! ONNX models: recurrent graphs exported from PyTorch (`torch.onnx.export`) and Keras
//! (tf2onnx), run on the CPU or the GPU.
//!
//! A model is a graph of one or more `LSTM` / `GRU` / `RNN` nodes, stacked, with the glue
//! exporters put around and between them (Transpose, Squeeze / Unsqueeze, Reshape, Concat,
//! Slice, Split, Gather, Identity, Cast, and Shape / Constant / ConstantOfShape / Expand with
//! integer arithmetic for dynamic shapes). [`load`] decodes the file (prost, from ONNX's own
//! `onnx.proto`), checks every node, folds constants, converts the weights of each recurrent
//! node to PyTorch's layout and stacks consecutive compatible nodes into one multi-layer
//! [`Weights`] ([`Stack`]). [`OnnxModel::run`] takes the graph's inputs by name in the shapes the
//! graph declares, evaluates the glue, runs each stack on a [`Forward`](crate::Forward) model built from its
//! weights ([`CpuModel`] or [`GpuModel`](crate::GpuModel)), and returns every graph output by
//! name in the graph's own shapes (a single node's `Y` is `[T, D, B, H]`, or `[B, T, D, H]`
//! with `layout = 1`).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use wgpu_lstm::io::onnx::{self, Value};
//! use wgpu_lstm::{ContextOptions, Forward, GpuContext, GpuModel};
//!
//! let model = onnx::load("lstm.onnx".as_ref())?;
//! let input = model.roles().input.clone().expect("a sequence input"); // e.g. "input"
//! let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[5, 3, 4])); // as the graph declares
//! let inputs = BTreeMap::from([(input, Value::F32(x))]);
//!
//! let cpu = model.run_cpu(&inputs)?;
//!
//! let ctx = GpuContext::new(&ContextOptions::default())?;
//! let gpu: Vec<GpuModel> = model
//!     .stacks()
//!     .iter()
//!     .map(|s| GpuModel::upload(&ctx, &s.weights))
//!     .collect::<Result<_, _>>()?;
//! let engines: Vec<&dyn Forward> = gpu.iter().map(|m| m as &dyn Forward).collect();
//! let outputs = model.run(&engines, &inputs)?; // graph output name → tensor
//! # Ok::<(), wgpu_lstm::Error>(())
//! ```
//!
//! Every attribute of ONNX's `LSTM`, `GRU` and `RNN` is computed, on both engines: `direction`
//! (forward, reverse, bidirectional), `layout`, `sequence_lens` (0 included: zero outputs and
//! zero final states, as onnxruntime gives), `initial_h`/`initial_c`, peepholes `P`, `clip`,
//! `input_forget`, `activations` with `activation_alpha`/`activation_beta`, GRU
//! `linear_before_reset` 0 and 1; they become the options of each stack's
//! [`RnnSpec`]. A file that is not a valid model, or holds any other operator
//! or pattern, is an [`Error::InvalidFile`] naming the node, its operator and what is
//! supported.
//!
//! onnxruntime's quantized LSTM, `com.microsoft.DynamicQuantizeLSTM` (what
//! `onnxruntime.quantization.quantize_dynamic` makes of every `LSTM`: eight-bit `W` and `R`
//! with per-tensor or per-channel scales and zero points), loads too: its weights become the
//! float32 values the integers stand for, `(q − zero_point)·scale`, and each stack remembers
//! the scales ([`Weights::quantized`]), so that [`OnnxModel::cpu_models`] computes with the
//! model's own integers ([`WeightsDtype::I8`]) while the GPU and float32 CPU models run the
//! float LSTM of those values.
//!
//! Limits: the file is at most 2 GiB (protobuf's own limit; larger weights go in external data
//! files, which must lie inside the model's directory). Decoding allocates at most in
//! proportion to the file. The tensors the glue computes share one budget: 2²⁵ elements for
//! everything folded at load time, and at run time 2²⁵ plus 32 times the elements of the
//! inputs and of the recurrent outputs — no chain of nodes can grow memory beyond that.

mod graph;
mod ops;
mod pb;
mod rnn;
mod run;
#[cfg(test)]
mod tests;
mod value;

use std::path::Path;

use prost::Message;

pub use graph::{Dim, Port, Roles};
pub use value::Value;

use crate::cpu::CpuModel;
use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::weights::{param_name, Weights, WeightsDtype};
use graph::{Graph, LoadError};
use value::DataDir;

/// The largest model file read (protobuf's limit).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Recurrent nodes run as one multi-layer model.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Names of the ONNX nodes, bottom layer first.
    pub nodes: Vec<String>,
    /// The weights in PyTorch's layout (one layer per node).
    pub weights: Weights,
    /// Whether the nodes have `layout = 1` (batch-major inputs and outputs).
    pub batch_first: bool,
}

/// An ONNX model, analysed and converted.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    path: String,
    graph: Graph,
    stacks: Vec<Stack>,
}

/// Reads the ONNX model at `path` (external data files are read from its directory).
pub fn load(path: &Path) -> Result<OnnxModel> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::invalid_file(
            path,
            format!("{size} bytes is more than the {MAX_FILE_BYTES} bytes an ONNX file may have"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parse(&path.display().to_string(), &bytes, DataDir(Some(dir)))
}

/// Reads an ONNX model from its bytes; it may not use external data.
pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel> {
    parse("<bytes>", bytes, DataDir(None))
}

/// Decodes, analyses and converts the model in `bytes` (`path` names it in errors).
fn parse(path: &str, bytes: &[u8], dir: DataDir<'_>) -> Result<OnnxModel> {
    let bad = |m: String| Error::InvalidFile {
        path: path.to_string(),
        message: m,
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(format!(
            "{} bytes is more than the {MAX_FILE_BYTES} bytes an ONNX file may have",
            bytes.len()
        )));
    }
    let model = pb::ModelProto::decode(bytes).map_err(|e| {
        bad(format!(
            "not a valid ONNX model: protobuf decoding failed ({})",
            one_line(&e.to_string())
        ))
    })?;
    let graph = graph::analyse(&model, dir).map_err(|LoadError::Invalid(m)| bad(one_line(&m)))?;
    let mut stacks = Vec::new();
    for g in &graph.groups {
        let first = graph.rnn(g.members[0]);
        let spec = RnnSpec {
            cell: first.cell,
            input_size: first.input_size,
            hidden_size: first.hidden,
            num_layers: g.members.len(),
            bidirectional: first.directions == 2,
            bias: first.has_bias(),
            proj_size: 0,
            peephole: first.has_peephole(),
            reverse: first.reverse,
            activations: first.activations.clone(),
            clip: first.clip,
            input_forget: first.input_forget,
            linear_before_reset: first.linear_before_reset,
        };
        let mut tensors = Vec::new();
        for (layer, &m) in g.members.iter().enumerate() {
            for (d, p) in graph.rnn(m).params.iter().enumerate() {
                let rev = d == 1;
                tensors.push((
                    param_name("weight_ih", layer, rev),
                    p.w_ih.clone().into_dyn(),
                ));
                tensors.push((
                    param_name("weight_hh", layer, rev),
                    p.w_hh.clone().into_dyn(),
                ));
                if let (Some(bi), Some(bh)) = (&p.b_ih, &p.b_hh) {
                    tensors.push((param_name("bias_ih", layer, rev), bi.clone().into_dyn()));
                    tensors.push((param_name("bias_hh", layer, rev), bh.clone().into_dyn()));
                }
                if let Some(ph) = &p.w_ph {
                    tensors.push((param_name("weight_ph", layer, rev), ph.clone().into_dyn()));
                }
            }
        }
        let label = graph.nodes[g.members[0]].label();
        let mut weights =
            Weights::from_tensors(&spec, tensors).map_err(|e| bad(format!("{label}: {e}")))?;
        if first.row_scales.is_some() {
            // Stacked nodes compute the same way: all of them are quantized.
            let scales = g
                .members
                .iter()
                .flat_map(|&m| graph.rnn(m).row_scales.clone().unwrap_or_default())
                .collect();
            weights = weights
                .with_row_scales(scales)
                .map_err(|e| bad(format!("{label}: {e}")))?;
        }
        stacks.push(Stack {
            nodes: g
                .members
                .iter()
                .map(|&m| graph.nodes[m].name.clone())
                .collect(),
            weights,
            batch_first: first.layout == 1,
        });
    }
    Ok(OnnxModel {
        path: path.to_string(),
        graph,
        stacks,
    })
}

/// `model` computing with its weights' own type: eight-bit for a quantized model where the
/// fast engine runs it (see [`OnnxModel::cpu_models_with`]).
fn own_dtype(mut model: CpuModel) -> CpuModel {
    if model.weights().quantized() {
        // Refused (the reference engine): the model stays float32, as documented.
        let _ = model.set_dtype(WeightsDtype::I8);
    }
    model
}

/// `s` on one line, its whitespace runs made single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl OnnxModel {
    /// The recurrent stacks, in the order [`OnnxModel::run`] takes their models.
    pub fn stacks(&self) -> &[Stack] {
        &self.stacks
    }

    /// Which graph inputs and outputs carry the sequence, the states and the lengths.
    pub fn roles(&self) -> &Roles {
        &self.graph.roles
    }

    /// The graph inputs fed at run time (inputs with an initializer are constants and not
    /// listed).
    pub fn inputs(&self) -> &[Port] {
        &self.graph.inputs
    }

    /// The graph outputs.
    pub fn outputs(&self) -> &[Port] {
        &self.graph.outputs
    }

    /// One [`CpuModel`] per stack on [`CpuModel::default_threads`] threads, with the model's
    /// own weights type (see [`OnnxModel::cpu_models_with`]).
    pub fn cpu_models(&self) -> Vec<CpuModel> {
        self.stacks
            .iter()
            .map(|s| own_dtype(CpuModel::new(s.weights.clone())))
            .collect()
    }

    /// One [`CpuModel`] per stack on `threads` threads, computing with `dtype` weights. `None`:
    /// the model's own — a stack of onnxruntime's quantized LSTMs ([`Weights::quantized`])
    /// computes with the model's eight-bit integers and scales ([`WeightsDtype::I8`]), as
    /// onnxruntime does, except where the fast engine does not run it (ONNX's gate options
    /// `clip`, `input_forget`, `activations`: the reference engine), which computes in float32
    /// with the values the integers stand for ([`CpuModel::dtype`] says which); any other
    /// stack computes in float32. `Some(WeightsDtype::F32)` runs a quantized model in float32
    /// with those values; `Some(WeightsDtype::I8)` quantizes a float model (see
    /// [`CpuModel::weights_dtype`]).
    ///
    /// # Errors
    /// `threads` is 0, or `dtype` is refused by [`CpuModel::weights_dtype`].
    pub fn cpu_models_with(
        &self,
        threads: usize,
        dtype: Option<WeightsDtype>,
    ) -> Result<Vec<CpuModel>> {
        self.stacks
            .iter()
            .map(|s| {
                let model = CpuModel::with_threads(s.weights.clone(), threads)?;
                match dtype {
                    Some(d) => model.weights_dtype(d),
                    None => Ok(own_dtype(model)),
                }
            })
            .collect()
    }

    /// Whether any stack is onnxruntime's quantized LSTM ([`Weights::quantized`]).
    pub fn quantized(&self) -> bool {
        self.stacks.iter().any(|s| s.weights.quantized())
    }
}
