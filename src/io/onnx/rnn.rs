//! ONNX `LSTM`, `GRU` and `RNN` nodes: attributes checked against the operator definitions
//! and converted to an [`RnnSpec`](crate::RnnSpec)'s options, weights to PyTorch's layout.
//!
//! ONNX stores `W` `[D, G·H, I]`, `R` `[D, G·H, H]`, `B` `[D, 2·G·H]` (input biases, then
//! recurrent biases) and `P` `[D, 3·H]`, with gate blocks LSTM i, o, f, c (PyTorch i, f, g, o),
//! GRU z, r, h (PyTorch r, z, n) and peepholes i, o, f (ours i, f, o).

use ndarray::{s, Array1, Array2, ArrayD, ArrayView2, Axis, Ix3};

use crate::io::onnx::pb::NodeProto;
use super::value::Value;
use crate::spec::Cell;
use crate::weights::DirectionWeights;

use super::ops::{attr_float, attr_floats, attr_int, attr_string, attr_strings};
use crate::activation::{Activation, Activations, ONNX_NAMES};

/// Why a recurrent node was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The node is not a valid ONNX node (or its weights are not constants).
    Invalid(String),
}

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
}

impl RnnNode {
    pub fn has_bias(&self) -> bool {
        self.params.iter().any(|p| p.b_ih.is_some())
    }

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
    }
}

/// The activation functions `names` (every direction's, in order) with their parameters:
/// `alphas` and `betas` are consumed in order by the functions that take them (as onnxruntime
/// does); a function left without one takes the default of the ONNX operator of its name.
fn resolve_activations(
    names: &[String],
    alphas: Vec<f32>,
    betas: Vec<f32>,
) -> Result<Vec<Activation>, Refusal> {
    let (mut alphas, mut betas) = (alphas.into_iter(), betas.into_iter());
    let mut out = Vec::new();
    for name in names {
        let Some((takes_alpha, takes_beta)) = Activation::takes(name) else {
            return invalid(format!(
                "activation `{name}` in attribute `activations` is not an ONNX activation ({})",
                ONNX_NAMES.join(", ")
            ));
        };
        let alpha = if takes_alpha { alphas.next() } else { None };
        let beta = if takes_beta { betas.next() } else { None };
        out.push(
            Activation::from_onnx(name, alpha, beta)
                .map_err(|e| Refusal::Invalid(format!("attribute `activations`: {e}")))?,
        );
    }
    Ok(out)
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
    let names = match attr_strings(node, "activations") {
        None => None,
        Some(list) => {
            if list.len() != per_dir * directions {
                return invalid(format!(
                    "attribute `activations` has {} entries, {op_name} with direction \"{direction}\" needs {}",
                    list.len(),
                    per_dir * directions
                ));
            }
            Some(list)
        }
    };
    let input_forget = attr_int(node, "input_forget").unwrap_or(0);
    if !(0..=1).contains(&input_forget) {
        return invalid(format!(
            "attribute `input_forget` = {input_forget} must be 0 or 1"
        ));
    }
    let lbr = attr_int(node, "linear_before_reset").unwrap_or(0);
    if !(0..=1).contains(&lbr) {
        return invalid(format!(
            "attribute `linear_before_reset` = {lbr} must be 0 or 1"
        ));
    }
    let clip = attr_float(node, "clip");
    if let Some(c) = clip {
        if c.is_nan() || c <= 0.0 {
            return invalid(format!("attribute `clip` = {c} must be positive"));
        }
    }
    // An RNN whose activations are all Relu is PyTorch's relu RNN; any other is the tanh
    // cell with its activations replaced.
    let cell = match (op, &names) {
        (RnnOp::Lstm, _) => Cell::Lstm,
        (RnnOp::Gru, _) => Cell::Gru,
        (RnnOp::Rnn, Some(a)) if a.iter().all(|f| f.eq_ignore_ascii_case("Relu")) => Cell::RnnRelu,
        (RnnOp::Rnn, _) => Cell::RnnTanh,
    };
    let activations = match &names {
        None => Vec::new(),
        Some(names) => {
            let list = resolve_activations(
                names,
                attr_floats(node, "activation_alpha").unwrap_or_default(),
                attr_floats(node, "activation_beta").unwrap_or_default(),
            )?;
            let acts: Vec<Activations> = list
                .chunks(per_dir)
                .map(|c| {
                    let mut a = Activations::of(cell);
                    a.f = c[0];
                    if let Some(&g) = c.get(1) {
                        a.g = g;
                    }
                    if let Some(&h) = c.get(2) {
                        a.h = h;
                    }
                    a
                })
                .collect();
            if acts.iter().all(|a| a.is_default(cell)) {
                Vec::new()
            } else {
                acts
            }
        }
    };

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
        reverse: direction == "reverse",
        activations,
        clip: clip.filter(|c| c.is_finite()),
        input_forget: input_forget == 1,
        linear_before_reset: op != RnnOp::Gru || lbr == 1,
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
