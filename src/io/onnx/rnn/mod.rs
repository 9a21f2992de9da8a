//! ONNX `LSTM`, `GRU` and `RNN` nodes: attributes checked against the operator definitions
//! and converted to an [`RnnSpec`](crate::RnnSpec)'s options, weights to PyTorch's layout.
//!
//! ONNX stores `W` `[D, G·H, I]`, `R` `[D, G·H, H]`, `B` `[D, 2·G·H]` (input biases, then
//! recurrent biases) and `P` `[D, 3·H]`, with gate blocks LSTM i, o, f, c (PyTorch i, f, g, o),
//! GRU z, r, h (PyTorch r, z, n) and peepholes i, o, f (ours i, f, o). onnxruntime's
//! quantized LSTM, `com.microsoft.DynamicQuantizeLSTM`, is an `LSTM` with eight-bit `W` and
//! `R` (see [`quantized`]).

mod attributes;
mod quantized;

use ndarray::{s, Array1, Array2, Array3, ArrayD, ArrayView1, ArrayView2, Axis, Ix1, Ix3};

use super::ops::{attr_int, attr_string};
use super::value::Value;
use crate::activation::Activations;
use crate::io::onnx::pb::NodeProto;
use crate::spec::Cell;
use crate::weights::{DirectionWeights, RowScales};
use attributes::attributes;
pub(crate) use quantized::QuantSlots;

/// Why a recurrent node was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The node is not a valid ONNX node (or its weights are not constants).
    Invalid(String),
}

/// A [`Refusal::Invalid`] with message `m`.
fn invalid<T>(m: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Invalid(m.into()))
}

/// The ONNX recurrent operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RnnOp {
    Lstm,
    Gru,
    Rnn,
}

impl RnnOp {
    /// The operator of ONNX op type `op`, `None` for other op types.
    pub fn from_op_type(op: &str) -> Option<RnnOp> {
        match op {
            "LSTM" => Some(RnnOp::Lstm),
            "GRU" => Some(RnnOp::Gru),
            "RNN" => Some(RnnOp::Rnn),
            _ => None,
        }
    }

    /// The operator of a node of `domain` and `op_type`, and whether it is onnxruntime's
    /// quantized LSTM (`com.microsoft.DynamicQuantizeLSTM`); `None` for other nodes.
    pub fn from_node(domain: &str, op_type: &str) -> Option<(RnnOp, bool)> {
        match domain {
            "" | "ai.onnx" => Self::from_op_type(op_type).map(|op| (op, false)),
            "com.microsoft" if op_type == "DynamicQuantizeLSTM" => Some((RnnOp::Lstm, true)),
            _ => None,
        }
    }

    /// Gate blocks in W / R.
    fn gates(self) -> usize {
        match self {
            RnnOp::Lstm => 4,
            RnnOp::Gru => 3,
            RnnOp::Rnn => 1,
        }
    }

    /// Activation functions per direction.
    fn activations(self) -> usize {
        match self {
            RnnOp::Lstm => 3,
            RnnOp::Gru => 2,
            RnnOp::Rnn => 1,
        }
    }

    /// For each of PyTorch's gate blocks, the ONNX block it comes from.
    fn gate_order(self) -> &'static [usize] {
        match self {
            // ONNX i, o, f, c → PyTorch i, f, g, o.
            RnnOp::Lstm => &[0, 2, 3, 1],
            // ONNX z, r, h → PyTorch r, z, n.
            RnnOp::Gru => &[1, 0, 2],
            RnnOp::Rnn => &[0],
        }
    }
}

/// The inputs of a recurrent node: value ids in the graph (`None` when absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    pub x: Option<usize>,
    pub w: Option<usize>,
    pub r: Option<usize>,
    pub b: Option<usize>,
    pub seq_lens: Option<usize>,
    pub init_h: Option<usize>,
    pub init_c: Option<usize>,
    pub p: Option<usize>,
    /// `DynamicQuantizeLSTM`'s scales and zero points (`None` for the ONNX operators).
    pub quant: Option<QuantSlots>,
    pub y: Option<usize>,
    pub y_h: Option<usize>,
    pub y_c: Option<usize>,
}

/// A recurrent node, checked and converted.
#[derive(Debug, Clone)]
pub(crate) struct RnnNode {
    pub op: RnnOp,
    pub cell: Cell,
    pub directions: usize,
    /// 0: `X` `[T, B, I]`, `Y` `[T, D, B, H]`, states `[D, B, H]`; 1: `[B, T, I]`,
    /// `[B, T, D, H]`, `[B, D, H]`.
    pub layout: usize,
    /// `direction = "reverse"`.
    pub reverse: bool,
    /// Per direction, when not the cell's own.
    pub activations: Vec<Activations>,
    pub clip: Option<f32>,
    pub input_forget: bool,
    /// GRU `linear_before_reset = 1` (true for the other operators).
    pub linear_before_reset: bool,
    pub hidden: usize,
    pub input_size: usize,
    pub slots: Slots,
    /// Per direction, PyTorch's layout; biases and peepholes present only when the node has
    /// `B` / `P`.
    pub params: Vec<DirectionWeights>,
    /// `DynamicQuantizeLSTM`: per direction, the scale of each row of `params`' `w_ih` and
    /// `w_hh` (their values are integers times these).
    pub row_scales: Option<Vec<RowScales>>,
}

impl RnnNode {
    /// Whether the node has biases (`B`).
    pub fn has_bias(&self) -> bool {
        self.params.iter().any(|p| p.b_ih.is_some())
    }

    /// Whether the node has peepholes (`P`).
    pub fn has_peephole(&self) -> bool {
        self.params.iter().any(|p| p.w_ph.is_some())
    }

    /// Whether `other` computes the same cell (so that both can be layers of one stack).
    pub fn same_semantics(&self, other: &RnnNode) -> bool {
        self.cell == other.cell
            && self.directions == other.directions
            && self.reverse == other.reverse
            && self.activations == other.activations
            && self.clip == other.clip
            && self.input_forget == other.input_forget
            && self.linear_before_reset == other.linear_before_reset
            && self.has_bias() == other.has_bias()
            && self.has_peephole() == other.has_peephole()
            && self.row_scales.is_some() == other.row_scales.is_some()
    }
}

/// Checks and converts `node`. `konst` gives the constant value of a value id (initializers
/// and folded constants), `name` its name.
pub(crate) fn parse(
    node: &NodeProto,
    op: RnnOp,
    slots: Slots,
    konst: &dyn Fn(usize) -> Option<Value>,
    name: &dyn Fn(usize) -> String,
) -> Result<RnnNode, Refusal> {
    // `direction` and `layout` first: the checks of the inputs need them.
    let direction = attr_string(node, "direction").unwrap_or_else(|| "forward".into());
    let directions = match direction.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        other => {
            return invalid(format!(
                "attribute `direction` = \"{other}\" is not one of forward, reverse, bidirectional"
            ))
        }
    };
    let layout = attr_int(node, "layout").unwrap_or(0);
    if !(0..=1).contains(&layout) {
        return invalid(format!("attribute `layout` = {layout} must be 0 or 1"));
    }
    if slots.quant.is_some() && layout != 0 {
        return invalid("DynamicQuantizeLSTM has no attribute `layout` (its data is [T, B, …])");
    }
    let inputs = inputs(node, op, &slots, &direction, directions, konst, name)?;
    let attrs = attributes(node, op, &direction, directions)?;
    let params = (0..directions)
        .map(|d| direction_weights(op, &inputs, d))
        .collect();
    let order = op.gate_order();
    let row_scales = inputs.scales.as_ref().map(|[ws, rs]| {
        let reordered =
            |m: &Array2<f32>, d: usize| reorder_vector(m.row(d), inputs.hidden, order).to_vec();
        (0..directions)
            .map(|d| RowScales {
                w_ih: reordered(ws, d),
                w_hh: reordered(rs, d),
            })
            .collect()
    });
    Ok(RnnNode {
        op,
        cell: attrs.cell,
        directions,
        reverse: direction == "reverse",
        activations: attrs.activations,
        clip: attrs.clip.filter(|c| c.is_finite()),
        input_forget: attrs.input_forget,
        linear_before_reset: op != RnnOp::Gru || attrs.linear_before_reset,
        layout: layout as usize,
        hidden: inputs.hidden,
        input_size: inputs.input_size,
        slots,
        params,
        row_scales,
    })
}

/// The weights of a node in ONNX's layout, their shapes checked, and the sizes they give.
struct Inputs {
    /// `W` `[D, G·H, I]`.
    w: Array3<f32>,
    /// `R` `[D, G·H, H]`.
    r: Array3<f32>,
    /// `B` `[D, 2·G·H]`, when the node has it.
    b: Option<ArrayD<f32>>,
    /// `P` `[D, 3·H]` (LSTM only), when the node has it.
    p: Option<ArrayD<f32>>,
    /// `DynamicQuantizeLSTM`: the scales of `W`'s and `R`'s rows, `[D, G·H]` each.
    scales: Option<[Array2<f32>; 2]>,
    /// The hidden size `H`.
    hidden: usize,
    /// The input size `I`.
    input_size: usize,
}

/// The node's inputs: `X` present, the weights `W`, `R` (required), `B` and `P` (LSTM)
/// constants of the shapes `direction` (`directions` of them) and the hidden size (the
/// attribute, or `R`'s) need.
fn inputs(
    node: &NodeProto,
    op: RnnOp,
    slots: &Slots,
    direction: &str,
    directions: usize,
    konst: &dyn Fn(usize) -> Option<Value>,
    name: &dyn Fn(usize) -> String,
) -> Result<Inputs, Refusal> {
    if slots.x.is_none() {
        return invalid("input X is missing");
    }
    let weight = |slot: Option<usize>, what: &str| constant_weight(slot, what, konst, name);
    let (w, r, scales) = match &slots.quant {
        None => (
            weight(slots.w, "W")?.ok_or_else(|| Refusal::Invalid("input W is missing".into()))?,
            weight(slots.r, "R")?.ok_or_else(|| Refusal::Invalid("input R is missing".into()))?,
            None,
        ),
        Some(q) => {
            let w = quantized::dequantize("W", [slots.w, q.w_scale, q.w_zero_point], konst, name)?;
            let r = quantized::dequantize("R", [slots.r, q.r_scale, q.r_zero_point], konst, name)?;
            (w.w, r.w, Some([w.scales, r.scales]))
        }
    };
    let b = weight(slots.b, "B")?;
    let p = match op {
        RnnOp::Lstm => weight(slots.p, "P")?,
        _ => None,
    };
    let g = op.gates();
    if w.ndim() != 3 || r.ndim() != 3 {
        return invalid(format!(
            "W {:?} and R {:?} must have 3 dimensions [num_directions, {g}·hidden_size, …]",
            w.shape(),
            r.shape()
        ));
    }
    let hidden = match attr_int(node, "hidden_size") {
        Some(h) if h > 0 => h as usize,
        Some(h) => return invalid(format!("attribute `hidden_size` = {h} must be positive")),
        None => r.shape()[2],
    };
    if hidden == 0 {
        return invalid("hidden size 0 (R has shape [.., .., 0])");
    }
    let gh = g * hidden;
    let input_size = w.shape()[2];
    if w.shape()[0] != directions || r.shape()[0] != directions {
        return invalid(format!(
            "W {:?} / R {:?} hold {} direction(s), attribute `direction` = \"{direction}\" needs {directions}",
            w.shape(),
            r.shape(),
            w.shape()[0]
        ));
    }
    let hs_note = if attr_int(node, "hidden_size").is_some() {
        format!("attribute `hidden_size` = {hidden}")
    } else {
        format!("hidden_size {hidden} (from R)")
    };
    if w.shape()[1] != gh || r.shape() != [directions, gh, hidden] {
        return invalid(format!(
            "{hs_note} needs W [{directions}, {gh}, {input_size}] and R [{directions}, {gh}, {hidden}], got W {:?} and R {:?}",
            w.shape(),
            r.shape()
        ));
    }
    for (what, v, len) in [("B", &b, 2 * gh), ("P", &p, 3 * hidden)] {
        if let Some(v) = v {
            if v.shape() != [directions, len] {
                return invalid(format!(
                    "{hs_note} needs {what} [{directions}, {len}], got {:?}",
                    v.shape()
                ));
            }
        }
    }
    Ok(Inputs {
        w: w.into_dimensionality::<Ix3>().expect("rank checked"),
        r: r.into_dimensionality::<Ix3>().expect("rank checked"),
        b,
        p,
        scales,
        hidden,
        input_size,
    })
}

/// The weight input `what` in `slot`: `None` when absent, else a float constant (`konst`
/// gives the constant of a value id, `name` its name).
fn constant_weight(
    slot: Option<usize>,
    what: &str,
    konst: &dyn Fn(usize) -> Option<Value>,
    name: &dyn Fn(usize) -> String,
) -> Result<Option<ArrayD<f32>>, Refusal> {
    let Some(id) = slot else { return Ok(None) };
    match konst(id) {
        Some(Value::F32(a)) => Ok(Some(a)),
        Some(Value::I64(_)) => invalid(format!(
            "input {what} (`{}`) is an integer tensor; weights are float",
            name(id)
        )),
        None => invalid(format!(
            "input {what} is `{}`, a value computed at run time; weights (W, R, B, P) must be initializers or constants",
            name(id)
        )),
    }
}

/// The weights of direction `d` of the node in PyTorch's layout: gate blocks reordered
/// (see [`RnnOp::gate_order`]), `B` split into input and recurrent biases, peepholes
/// reordered to ours.
fn direction_weights(op: RnnOp, inputs: &Inputs, d: usize) -> DirectionWeights {
    let Inputs { hidden, .. } = *inputs;
    let gh = op.gates() * hidden;
    let order = op.gate_order();
    let w_ih = reorder(inputs.w.index_axis(Axis(0), d), hidden, order);
    let w_hh = reorder(inputs.r.index_axis(Axis(0), d), hidden, order);
    fn row(v: &ArrayD<f32>, d: usize) -> ArrayView1<'_, f32> {
        v.index_axis(Axis(0), d)
            .into_dimensionality::<Ix1>()
            .expect("2-D")
    }
    let (b_ih, b_hh) = match &inputs.b {
        Some(b) => {
            let row = row(b, d);
            (
                Some(reorder_vector(row.slice(s![..gh]), hidden, order)),
                Some(reorder_vector(row.slice(s![gh..]), hidden, order)),
            )
        }
        None => (None, None),
    };
    // ONNX i, o, f → ours i, f, o.
    let w_ph = inputs
        .p
        .as_ref()
        .map(|p| reorder_vector(row(p, d), hidden, &[0, 2, 1]));
    DirectionWeights {
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        w_hr: None,
        w_ph,
    }
}

/// Rows of `m` regrouped by gate: block `j` of the result is block `order[j]` of `m`.
fn reorder(m: ArrayView2<'_, f32>, hidden: usize, order: &[usize]) -> Array2<f32> {
    let blocks: Vec<_> = order
        .iter()
        .map(|&k| m.slice(s![k * hidden..(k + 1) * hidden, ..]))
        .collect();
    ndarray::concatenate(Axis(0), &blocks).expect("same widths")
}

/// A gate-major vector regrouped as [`reorder`] regroups rows.
fn reorder_vector(v: ArrayView1<'_, f32>, hidden: usize, order: &[usize]) -> Array1<f32> {
    let m = reorder(v.insert_axis(Axis(1)), hidden, order);
    let n = m.len();
    m.into_shape_with_order(n).expect("one column")
}
