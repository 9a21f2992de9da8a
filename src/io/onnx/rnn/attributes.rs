//! The attributes of a recurrent node besides `direction`, `layout` and `hidden_size`:
//! activation functions with their parameters, `input_forget`, `linear_before_reset`, `clip`.

use super::{invalid, Refusal, RnnOp};
use crate::activation::{Activation, Activations, ONNX_NAMES};
use crate::io::onnx::ops::{attr_float, attr_floats, attr_int, attr_strings};
use crate::io::onnx::pb::NodeProto;
use crate::spec::Cell;

/// The options a node's attributes set besides `direction`, `layout` and `hidden_size`.
pub(super) struct Attributes {
    /// The cell the operator and its activations compute.
    pub(super) cell: Cell,
    /// Per direction, when not the cell's own.
    pub(super) activations: Vec<Activations>,
    /// `clip`, when given.
    pub(super) clip: Option<f32>,
    /// `input_forget = 1`.
    pub(super) input_forget: bool,
    /// `linear_before_reset = 1`.
    pub(super) linear_before_reset: bool,
}

/// The node's attributes `activations` (as many as the operator takes per direction, for
/// each of the `directions` `direction` names), `input_forget`, `linear_before_reset` and
/// `clip`, checked against the operator definitions.
pub(super) fn attributes(
    node: &NodeProto,
    op: RnnOp,
    direction: &str,
    directions: usize,
) -> Result<Attributes, Refusal> {
    let op_name = node.op_type.clone().unwrap_or_default();
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
    let (cell, activations) = cell_and_activations(node, op, names.as_deref())?;
    Ok(Attributes {
        cell,
        activations,
        clip,
        input_forget: input_forget == 1,
        linear_before_reset: lbr == 1,
    })
}

/// The cell of operator `op` with the activation functions `names` (every direction's, with
/// `activation_alpha` / `activation_beta` from `node`), and those functions per direction
/// (empty when every direction has the cell's own).
fn cell_and_activations(
    node: &NodeProto,
    op: RnnOp,
    names: Option<&[String]>,
) -> Result<(Cell, Vec<Activations>), Refusal> {
    // An RNN whose activations are all Relu is PyTorch's relu RNN; any other is the tanh
    // cell with its activations replaced.
    let cell = match (op, names) {
        (RnnOp::Lstm, _) => Cell::Lstm,
        (RnnOp::Gru, _) => Cell::Gru,
        (RnnOp::Rnn, Some(a)) if a.iter().all(|f| f.eq_ignore_ascii_case("Relu")) => Cell::RnnRelu,
        (RnnOp::Rnn, _) => Cell::RnnTanh,
    };
    let Some(names) = names else {
        return Ok((cell, Vec::new()));
    };
    let list = resolve_activations(
        names,
        attr_floats(node, "activation_alpha").unwrap_or_default(),
        attr_floats(node, "activation_beta").unwrap_or_default(),
    )?;
    let acts: Vec<Activations> = list
        .chunks(op.activations())
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
        Ok((cell, Vec::new()))
    } else {
        Ok((cell, acts))
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
