//! ONNX `LSTM`, `GRU` and `RNN` nodes: attributes checked against the operator definitions,
//! then against what the engines compute today, and weights converted to PyTorch's layout.
//!
//! ONNX stores `W` `[D, G·H, I]`, `R` `[D, G·H, H]`, `B` `[D, 2·G·H]` (input biases, then
//! recurrent biases) and `P` `[D, 3·H]`, with gate blocks LSTM i, o, f, c (PyTorch i, f, g, o),
//! GRU z, r, h (PyTorch r, z, n) and peepholes i, o, f (ours i, f, o).

use ndarray::{s, Array1, Array2, ArrayD, ArrayView2, Axis, Ix3};

use super::pb::NodeProto;
use super::value::Value;
use crate::spec::Cell;
use crate::weights::DirectionWeights;

use super::ops::{attr_float, attr_floats, attr_int, attr_string, attr_strings};

/// Why a recurrent node was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The node is not a valid ONNX node (or its weights are not constants).
    Invalid(String),
    /// A valid node whose semantics the engines cannot compute yet.
    NotYet(String),
}

fn invalid<T>(m: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Invalid(m.into()))
}

fn not_yet<T>(
    attribute: &str,
    value: impl std::fmt::Display,
    supported: &str,
) -> Result<T, Refusal> {
    Err(Refusal::NotYet(format!(
        "ONNX attribute `{attribute}` = {value} is not supported yet ({supported})"
    )))
}

/// The ONNX recurrent operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RnnOp {
    Lstm,
    Gru,
    Rnn,
}

impl RnnOp {
    pub fn from_op_type(op: &str) -> Option<RnnOp> {
        match op {
            "LSTM" => Some(RnnOp::Lstm),
            "GRU" => Some(RnnOp::Gru),
            "RNN" => Some(RnnOp::Rnn),
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

/// ONNX's activation functions (names as the operators spell them).
const ACTIVATIONS: [&str; 11] = [
    "Relu",
    "Tanh",
    "Sigmoid",
    "Affine",
    "LeakyRelu",
    "ThresholdedRelu",
    "ScaledTanh",
    "HardSigmoid",
    "Elu",
    "Softsign",
    "Softplus",
];

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
    pub hidden: usize,
    pub input_size: usize,
    pub slots: Slots,
    /// Per direction, PyTorch's layout; biases and peepholes present only when the node has
    /// `B` / `P`.
    pub params: Vec<DirectionWeights>,
}

impl RnnNode {
    pub fn has_bias(&self) -> bool {
        self.params.iter().any(|p| p.b_ih.is_some())
    }

    pub fn has_peephole(&self) -> bool {
        self.params.iter().any(|p| p.w_ph.is_some())
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
    let op_name = node.op_type.clone().unwrap_or_default();
    // --- ONNX validity ---
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
    let Some(x) = slots.x else {
        return invalid("input X is missing");
    };
    let _ = x;
    let weight = |slot: Option<usize>, what: &str| -> Result<Option<ArrayD<f32>>, Refusal> {
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
    };
    let w = weight(slots.w, "W")?.ok_or_else(|| Refusal::Invalid("input W is missing".into()))?;
    let r = weight(slots.r, "R")?.ok_or_else(|| Refusal::Invalid("input R is missing".into()))?;
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
    if let Some(b) = &b {
        if b.shape() != [directions, 2 * gh] {
            return invalid(format!(
                "{hs_note} needs B [{directions}, {}], got {:?}",
                2 * gh,
                b.shape()
            ));
        }
    }
    if let Some(p) = &p {
        if p.shape() != [directions, 3 * hidden] {
            return invalid(format!(
                "{hs_note} needs P [{directions}, {}], got {:?}",
                3 * hidden,
                p.shape()
            ));
        }
    }
    let per_dir = op.activations();
    let activations = match attr_strings(node, "activations") {
        None => None,
        Some(list) => {
            if list.len() != per_dir * directions {
                return invalid(format!(
                    "attribute `activations` has {} entries, {op_name} with direction \"{direction}\" needs {}",
                    list.len(),
                    per_dir * directions
                ));
            }
            let mut canon = Vec::new();
            for a in &list {
                match ACTIVATIONS.iter().find(|k| k.eq_ignore_ascii_case(a)) {
                    Some(k) => canon.push(*k),
                    None => {
                        return invalid(format!(
                            "activation `{a}` in attribute `activations` is not an ONNX activation ({})",
                            ACTIVATIONS.join(", ")
                        ))
                    }
                }
            }
            Some(canon)
        }
    };
    let input_forget = attr_int(node, "input_forget").unwrap_or(0);
    let lbr = attr_int(node, "linear_before_reset").unwrap_or(0);
    let clip = attr_float(node, "clip");

    // --- what the engines compute today ---
    if direction == "reverse" {
        return not_yet(
            "direction",
            "\"reverse\"",
            "supported: forward, bidirectional",
        );
    }
    let defaults: &[&str] = match op {
        RnnOp::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        RnnOp::Gru => &["Sigmoid", "Tanh"],
        RnnOp::Rnn => &["Tanh"],
    };
    let cell = match (op, &activations) {
        (RnnOp::Lstm, _) => Cell::Lstm,
        (RnnOp::Gru, _) => Cell::Gru,
        (RnnOp::Rnn, Some(a)) if a.iter().all(|&f| f == "Relu") => Cell::RnnRelu,
        (RnnOp::Rnn, _) => Cell::RnnTanh,
    };
    if let Some(a) = &activations {
        let ok = match cell {
            Cell::RnnRelu => true,
            _ => a.chunks(per_dir).all(|c| c == defaults),
        };
        if !ok {
            let supported = match op {
                RnnOp::Rnn => "supported: Tanh or Relu, the same in both directions".to_string(),
                _ => format!("supported: {} in each direction", defaults.join(", ")),
            };
            return not_yet("activations", format!("[{}]", a.join(", ")), &supported);
        }
    }
    if let Some(c) = clip {
        return not_yet("clip", c, "gate pre-activations are not clipped");
    }
    if input_forget != 0 {
        return not_yet(
            "input_forget",
            input_forget,
            "supported: 0, separate input and forget gates",
        );
    }
    if op == RnnOp::Gru && lbr != 1 {
        return not_yet("linear_before_reset", lbr, "supported: 1, PyTorch's GRU");
    }
    let _ = (
        attr_floats(node, "activation_alpha"),
        attr_floats(node, "activation_beta"),
    );

    // --- conversion ---
    let w = w.into_dimensionality::<Ix3>().expect("rank checked");
    let r = r.into_dimensionality::<Ix3>().expect("rank checked");
    let order = op.gate_order();
    let mut params = Vec::new();
    for d in 0..directions {
        let w_ih = reorder(w.index_axis(Axis(0), d), hidden, order);
        let w_hh = reorder(r.index_axis(Axis(0), d), hidden, order);
        let (b_ih, b_hh) = match &b {
            Some(b) => {
                let row = b.index_axis(Axis(0), d);
                let wb = row.slice(s![..gh]).to_owned().insert_axis(Axis(1));
                let rb = row.slice(s![gh..]).to_owned().insert_axis(Axis(1));
                (
                    Some(column(reorder(wb.view(), hidden, order))),
                    Some(column(reorder(rb.view(), hidden, order))),
                )
            }
            None => (None, None),
        };
        let w_ph = p.as_ref().map(|p| {
            let row = p.index_axis(Axis(0), d).to_owned().insert_axis(Axis(1));
            // ONNX i, o, f → ours i, f, o.
            let m = row.into_dimensionality::<ndarray::Ix2>().expect("2-D");
            column(reorder(m.view(), hidden, &[0, 2, 1]))
        });
        params.push(DirectionWeights {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            w_hr: None,
            w_ph,
        });
    }
    Ok(RnnNode {
        op,
        cell,
        directions,
        layout: layout as usize,
        hidden,
        input_size,
        slots,
        params,
    })
}

/// Rows of `m` regrouped by gate: block `j` of the result is block `order[j]` of `m`.
fn reorder(m: ArrayView2<'_, f32>, hidden: usize, order: &[usize]) -> Array2<f32> {
    let blocks: Vec<_> = order
        .iter()
        .map(|&k| m.slice(s![k * hidden..(k + 1) * hidden, ..]))
        .collect();
    ndarray::concatenate(Axis(0), &blocks).expect("same widths")
}

fn column(m: Array2<f32>) -> Array1<f32> {
    let n = m.len();
    m.into_shape_with_order(n).expect("one column")
}
