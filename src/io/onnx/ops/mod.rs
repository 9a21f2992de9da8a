//! The glue operators exporters put around and between recurrent nodes: their attributes,
//! which inputs are shape parameters, and their evaluation on concrete tensors.

use ndarray::{ArrayD, IxDyn};

use super::value::{decode, DataDir, Kind, Value};
use crate::io::onnx::pb::NodeProto;

/// Applies a generic array function to either kind of value.
macro_rules! map {
    ($v:expr, |$a:ident| $body:expr) => {
        match $v {
            Value::F32($a) => Value::F32($body),
            Value::I64($a) => Value::I64($body),
        }
    };
}

mod array;
mod attrs;
mod eval;

use attrs::{attr, constant_value};
pub(crate) use attrs::{attr_float, attr_floats, attr_int, attr_ints, attr_string, attr_strings};

/// What the loader supports besides the recurrent nodes, for messages.
pub(crate) const SUPPORTED: &str = "a model is LSTM/GRU/RNN nodes with Transpose, Squeeze, \
Unsqueeze, Reshape, Concat, Slice, Split, Gather, Shape, Identity, Cast, Constant, \
ConstantOfShape, Expand and integer Add/Sub/Mul/Div (shape arithmetic) around and between them";

/// Integer arithmetic (for shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// `Slice` before opset 10: starts, ends and optional axes as attributes.
pub(crate) type SliceAttrs = (Vec<i64>, Vec<i64>, Option<Vec<i64>>);

/// A glue operator with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Identity,
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Reshape {
        allowzero: bool,
    },
    /// Axes from the attribute (opset < 13) or, when `None`, the second input.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    /// starts, ends, axes from attributes (opset < 10) or, when `None`, from inputs.
    Slice {
        attr: Option<SliceAttrs>,
    },
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
        num_outputs: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Constant(Value),
    ConstantOfShape(Value),
    Expand,
    Arith(Arith),
    Cast(Kind),
}

impl Op {
    /// The operator of `node` (default domain), `Ok(None)` when the op type is not glue.
    pub fn parse(node: &NodeProto, dir: DataDir<'_>) -> Result<Option<Op>, String> {
        let op = node.op_type.as_deref().unwrap_or("");
        Ok(Some(match op {
            "Identity" => Op::Identity,
            "Transpose" => Op::Transpose {
                perm: attr_ints(node, "perm"),
            },
            "Reshape" => Op::Reshape {
                allowzero: attr_int(node, "allowzero").unwrap_or(0) != 0,
            },
            "Squeeze" => Op::Squeeze {
                axes: attr_ints(node, "axes"),
            },
            "Unsqueeze" => Op::Unsqueeze {
                axes: attr_ints(node, "axes"),
            },
            "Concat" => Op::Concat {
                axis: attr_int(node, "axis").ok_or("attribute `axis` is missing")?,
            },
            "Slice" => Op::Slice {
                attr: match (attr_ints(node, "starts"), attr_ints(node, "ends")) {
                    (Some(s), Some(e)) => Some((s, e, attr_ints(node, "axes"))),
                    _ => None,
                },
            },
            "Split" => Op::Split {
                axis: attr_int(node, "axis").unwrap_or(0),
                split: attr_ints(node, "split"),
                num_outputs: attr_int(node, "num_outputs"),
            },
            "Gather" => Op::Gather {
                axis: attr_int(node, "axis").unwrap_or(0),
            },
            "Shape" => Op::Shape {
                start: attr_int(node, "start").unwrap_or(0),
                end: attr_int(node, "end"),
            },
            "Constant" => Op::Constant(constant_value(node, dir)?),
            "ConstantOfShape" => {
                let v = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => decode(t, dir, "attribute `value`")?,
                    None => Value::F32(ArrayD::zeros(IxDyn(&[1]))),
                };
                if v.len() != 1 {
                    return Err(format!(
                        "attribute `value` must hold one element, it holds {}",
                        v.len()
                    ));
                }
                Op::ConstantOfShape(v)
            }
            "Expand" => Op::Expand,
            "Add" => Op::Arith(Arith::Add),
            "Sub" => Op::Arith(Arith::Sub),
            "Mul" => Op::Arith(Arith::Mul),
            "Div" => Op::Arith(Arith::Div),
            "Cast" => {
                let to = attr_int(node, "to").ok_or("attribute `to` is missing")?;
                let kind = i32::try_from(to)
                    .ok()
                    .and_then(Kind::of_onnx)
                    .ok_or_else(|| {
                        format!(
                            "cast to {} is not supported (only to float and integer types)",
                            super::value::type_name(to as i32)
                        )
                    })?;
                Op::Cast(kind)
            }
            _ => return Ok(None),
        }))
    }

    /// Input positions that are shape parameters (their values must be known from constants
    /// and shapes, never from run-time data).
    pub fn param_inputs(&self) -> std::ops::RangeFrom<usize> {
        match self {
            Op::ConstantOfShape(_) => 0..,
            Op::Reshape { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Slice { .. }
            | Op::Split { .. }
            | Op::Gather { .. }
            | Op::Expand => 1..,
            _ => usize::MAX..,
        }
    }

    /// Whether input `i` is a shape parameter.
    pub fn is_param(&self, i: usize) -> bool {
        self.param_inputs().start <= i
    }

    /// Whether only the shape of the inputs is read (`Shape`), not their values.
    pub fn reads_shape_only(&self) -> bool {
        matches!(self, Op::Shape { .. })
    }

    /// The kind of output `k`, given the kinds of the inputs (`None` for absent ones).
    pub fn output_kind(&self, inputs: &[Option<Kind>]) -> Kind {
        match self {
            Op::Shape { .. } => Kind::Int,
            Op::Constant(v) | Op::ConstantOfShape(v) => v.kind(),
            Op::Cast(k) => *k,
            _ => inputs.first().copied().flatten().unwrap_or(Kind::Float),
        }
    }

    /// An upper bound of the elements the outputs hold, for operators that never output more
    /// than their inputs hold (`None` for those that can: their `eval` checks its `cap`).
    fn output_bound(&self, inputs: &[Option<&Value>]) -> Option<usize> {
        match self {
            Op::Shape { .. } => Some(64),
            Op::Constant(v) => Some(v.len()),
            Op::ConstantOfShape(_) | Op::Expand | Op::Arith(_) | Op::Gather { .. } => None,
            _ => Some(inputs.iter().flatten().map(|v| v.len()).sum()),
        }
    }

    /// Evaluates the operator within `budget` elements for all its outputs together, and
    /// takes what the outputs hold from it: every tensor a graph computes comes out of one
    /// budget, so no chain of nodes (copies, concatenations, broadcasts) can grow memory
    /// beyond it.
    pub fn eval_within(
        &self,
        inputs: &[Option<&Value>],
        n_outputs: usize,
        budget: &mut usize,
    ) -> Result<Vec<Value>, String> {
        let over = |n: usize, left: usize| {
            format!("its outputs would hold {n} elements; the graph's tensors may hold {left} more")
        };
        if let Some(n) = self.output_bound(inputs) {
            if n > *budget {
                return Err(over(n, *budget));
            }
        }
        let outs = self.eval(inputs, n_outputs, *budget)?;
        let n: usize = outs.iter().map(Value::len).sum();
        *budget = budget.checked_sub(n).ok_or_else(|| over(n, *budget))?;
        Ok(outs)
    }
}
