//! The glue operators exporters put around and between recurrent nodes: their attributes,
//! which inputs are shape parameters, and their evaluation on concrete tensors.

use ndarray::{ArrayD, Axis, IxDyn};

use super::pb::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use super::value::{decode, element_count, DataDir, Kind, Value};

/// Applies a generic array function to either kind of value.
macro_rules! map {
    ($v:expr, |$a:ident| $body:expr) => {
        match $v {
            Value::F32($a) => Value::F32($body),
            Value::I64($a) => Value::I64($body),
        }
    };
}

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

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).and_then(|a| a.i)
}

pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(crate) fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).and_then(|a| a.f)
}

pub(crate) fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    attr(node, name).map(|a| a.floats.clone())
}

pub(crate) fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).and_then(|a| {
        a.s.as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    })
}

pub(crate) fn attr_strings(node: &NodeProto, name: &str) -> Option<Vec<String>> {
    attr(node, name).map(|a| {
        a.strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    })
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

    /// Evaluates the operator. `cap` bounds the elements of tensors that grow beyond their
    /// inputs (ConstantOfShape, Expand, broadcasting arithmetic, Gather).
    fn eval(
        &self,
        inputs: &[Option<&Value>],
        n_outputs: usize,
        cap: usize,
    ) -> Result<Vec<Value>, String> {
        let input = |i: usize| -> Result<&Value, String> {
            inputs
                .get(i)
                .copied()
                .flatten()
                .ok_or_else(|| format!("input {i} is missing"))
        };
        let ints = |i: usize| -> Result<Vec<i64>, String> {
            match input(i)? {
                Value::I64(a) => Ok(a.iter().copied().collect()),
                Value::F32(_) => Err(format!("input {i} must be an integer tensor")),
            }
        };
        let opt_ints = |i: usize| -> Result<Option<Vec<i64>>, String> {
            match inputs.get(i).copied().flatten() {
                None => Ok(None),
                Some(_) => ints(i).map(Some),
            }
        };
        let one = |v: Value| Ok(vec![v]);
        match self {
            Op::Identity => one(input(0)?.clone()),
            Op::Transpose { perm } => {
                let x = input(0)?;
                let rank = x.shape().len();
                let perm: Vec<usize> = match perm {
                    None => (0..rank).rev().collect(),
                    Some(p) => {
                        let p: Vec<usize> =
                            p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
                        let mut seen = vec![false; rank];
                        for &a in &p {
                            if std::mem::replace(&mut seen[a], true) {
                                return Err(format!("perm {p:?} repeats axis {a}"));
                            }
                        }
                        if p.len() != rank {
                            return Err(format!("perm {p:?} does not match rank {rank}"));
                        }
                        p
                    }
                };
                one(map!(x, |a| a
                    .view()
                    .permuted_axes(IxDyn(&perm))
                    .as_standard_layout()
                    .into_owned()))
            }
            Op::Reshape { allowzero } => {
                let x = input(0)?;
                let spec = ints(1)?;
                let shape = reshape_target(x.shape(), &spec, *allowzero)?;
                one(reshape(x, &shape)?)
            }
            Op::Squeeze { axes } => {
                let x = input(0)?;
                let rank = x.shape().len();
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => opt_ints(1)?,
                };
                let drop: Vec<usize> = match axes {
                    None => (0..rank).filter(|&a| x.shape()[a] == 1).collect(),
                    Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
                };
                if let Some(&a) = drop.iter().find(|&&a| x.shape()[a] != 1) {
                    return Err(format!(
                        "cannot squeeze axis {a} of size {} (shape {:?})",
                        x.shape()[a],
                        x.shape()
                    ));
                }
                let shape: Vec<usize> = (0..rank)
                    .filter(|a| !drop.contains(a))
                    .map(|a| x.shape()[a])
                    .collect();
                one(reshape(x, &shape)?)
            }
            Op::Unsqueeze { axes } => {
                let x = input(0)?;
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => ints(1)?,
                };
                let out_rank = x.shape().len() + axes.len();
                let mut ones = vec![false; out_rank];
                for &a in &axes {
                    let a = axis(a, out_rank)?;
                    if std::mem::replace(&mut ones[a], true) {
                        return Err(format!("axes {axes:?} repeat axis {a}"));
                    }
                }
                let mut dims = x.shape().iter();
                let shape: Vec<usize> = ones
                    .iter()
                    .map(|&one| if one { 1 } else { *dims.next().expect("count") })
                    .collect();
                one(reshape(x, &shape)?)
            }
            Op::Concat { axis: ax } => {
                let xs: Vec<&Value> = inputs.iter().flatten().copied().collect();
                let first = xs.first().ok_or("no inputs")?;
                let rank = first.shape().len();
                let a = axis(*ax, rank)?;
                for x in &xs {
                    let same = x.shape().len() == rank
                        && (0..rank).all(|d| d == a || x.shape()[d] == first.shape()[d]);
                    if !same {
                        return Err(format!(
                            "cannot concatenate shapes {:?} and {:?} on axis {a}",
                            first.shape(),
                            x.shape()
                        ));
                    }
                }
                match first {
                    Value::F32(_) => {
                        let v: Vec<_> = xs
                            .iter()
                            .map(|x| match x {
                                Value::F32(a) => Ok(a.view()),
                                _ => Err("inputs of different types".to_string()),
                            })
                            .collect::<Result<_, _>>()?;
                        one(Value::F32(
                            ndarray::concatenate(Axis(a), &v).map_err(|e| e.to_string())?,
                        ))
                    }
                    Value::I64(_) => {
                        let v: Vec<_> = xs
                            .iter()
                            .map(|x| match x {
                                Value::I64(a) => Ok(a.view()),
                                _ => Err("inputs of different types".to_string()),
                            })
                            .collect::<Result<_, _>>()?;
                        one(Value::I64(
                            ndarray::concatenate(Axis(a), &v).map_err(|e| e.to_string())?,
                        ))
                    }
                }
            }
            Op::Slice { attr } => {
                let x = input(0)?;
                let (starts, ends, axes, steps) = match attr {
                    Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
                    None => (ints(1)?, ints(2)?, opt_ints(3)?, opt_ints(4)?),
                };
                let rank = x.shape().len();
                let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err("starts, ends, axes and steps differ in length".into());
                }
                let mut seen = vec![false; rank];
                for &a in &axes {
                    if std::mem::replace(&mut seen[axis(a, rank)?], true) {
                        return Err(format!("axes {axes:?} repeat an axis"));
                    }
                }
                let mut v = x.clone();
                for i in 0..starts.len() {
                    let a = axis(axes[i], rank)?;
                    let (first, count, step) =
                        slice_range(v.shape()[a], starts[i], ends[i], steps[i])?;
                    v = select_range(&v, a, first, count, step);
                }
                one(v)
            }
            Op::Split {
                axis: ax,
                split,
                num_outputs,
            } => {
                let x = input(0)?;
                let a = axis(*ax, x.shape().len())?;
                let dim = x.shape()[a];
                let sizes: Vec<usize> = match (split.clone(), opt_ints(1)?) {
                    (Some(s), _) | (None, Some(s)) => s
                        .iter()
                        .map(|&v| usize::try_from(v).map_err(|_| format!("split size {v}")))
                        .collect::<Result<_, _>>()?,
                    (None, None) => {
                        let n = num_outputs.map_or(n_outputs, |n| n.max(0) as usize);
                        if n == 0 {
                            return Err("split into 0 outputs".into());
                        }
                        let each = dim.div_ceil(n);
                        (0..n)
                            .map(|k| each.min(dim.saturating_sub(k * each)))
                            .collect()
                    }
                };
                if sizes.iter().try_fold(0usize, |s, &v| s.checked_add(v)) != Some(dim)
                    || sizes.len() != n_outputs
                {
                    return Err(format!(
                        "split sizes {sizes:?} into {n_outputs} outputs do not fit axis {a} of size {dim}"
                    ));
                }
                let mut start = 0;
                let mut out = Vec::new();
                for s in sizes {
                    out.push(select_range(x, a, start as i64, s, 1));
                    start += s;
                }
                Ok(out)
            }
            Op::Gather { axis: ax } => {
                let x = input(0)?;
                let Value::I64(idx) = input(1)? else {
                    return Err("indices must be integers".into());
                };
                let a = axis(*ax, x.shape().len())?;
                let dim = x.shape()[a] as i64;
                let flat: Vec<usize> = idx
                    .iter()
                    .map(|&i| {
                        let j = if i < 0 { i + dim } else { i };
                        if (0..dim).contains(&j) {
                            Ok(j as usize)
                        } else {
                            Err(format!("index {i} out of range for size {dim}"))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                let rest = x.len().checked_div(x.shape()[a]).unwrap_or(0);
                let n = flat.len().checked_mul(rest).ok_or("too many elements")?;
                if n > cap {
                    return Err(format!(
                        "gathering {} indices gives {n} elements, more than the limit of {cap}",
                        flat.len()
                    ));
                }
                let picked = select(x, a, &flat);
                let mut shape: Vec<usize> = x.shape()[..a].to_vec();
                shape.extend_from_slice(idx.shape());
                shape.extend_from_slice(&x.shape()[a + 1..]);
                one(reshape(&picked, &shape)?)
            }
            Op::Shape { start, end } => {
                let s = input(0)?.shape();
                let r = s.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (b, e) = (clamp(*start), clamp(end.unwrap_or(r)));
                let dims: Vec<i64> = s[b..e.max(b)].iter().map(|&d| d as i64).collect();
                one(Value::I64(
                    ArrayD::from_shape_vec(IxDyn(&[dims.len()]), dims).expect("1-D"),
                ))
            }
            Op::Constant(v) => one(v.clone()),
            Op::ConstantOfShape(v) => {
                let shape = dims_of(&ints(0)?, cap)?;
                one(match v {
                    Value::F32(a) => Value::F32(ArrayD::from_elem(
                        IxDyn(&shape),
                        a.iter().next().copied().unwrap_or(0.0),
                    )),
                    Value::I64(a) => Value::I64(ArrayD::from_elem(
                        IxDyn(&shape),
                        a.iter().next().copied().unwrap_or(0),
                    )),
                })
            }
            Op::Expand => {
                let x = input(0)?;
                let target = ints(1)?;
                let target: Vec<usize> = target
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
                    .collect::<Result<_, _>>()?;
                let shape = broadcast_shape(x.shape(), &target)?;
                check_cap(&shape, cap)?;
                one(map!(x, |a| broadcast_to(a, &shape)?))
            }
            Op::Arith(op) => {
                let (Value::I64(a), Value::I64(b)) = (input(0)?, input(1)?) else {
                    return Err("only integer (shape) arithmetic is supported".into());
                };
                let shape = broadcast_shape(a.shape(), b.shape())?;
                check_cap(&shape, cap)?;
                let a = broadcast_to(a, &shape)?;
                let b = broadcast_to(b, &shape)?;
                let mut out = Vec::with_capacity(a.len());
                for (&x, &y) in a.iter().zip(b.iter()) {
                    out.push(match op {
                        Arith::Add => x.wrapping_add(y),
                        Arith::Sub => x.wrapping_sub(y),
                        Arith::Mul => x.wrapping_mul(y),
                        Arith::Div => {
                            if y == 0 {
                                return Err("integer division by zero".into());
                            }
                            x.wrapping_div(y)
                        }
                    });
                }
                one(Value::I64(
                    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("count"),
                ))
            }
            Op::Cast(kind) => {
                let x = input(0)?;
                one(match (kind, x) {
                    (Kind::Float, Value::I64(a)) => Value::F32(a.mapv(|v| v as f32)),
                    // Saturating, NaN to 0 (Rust's `as`).
                    (Kind::Int, Value::F32(a)) => Value::I64(a.mapv(|v| v as i64)),
                    _ => x.clone(),
                })
            }
        }
    }
}

/// Axis `a` (negative counts from the end) of a tensor of `rank`.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let b = if a < 0 { a + r } else { a };
    if (0..r).contains(&b) {
        Ok(b as usize)
    } else {
        Err(format!("axis {a} out of range for rank {rank}"))
    }
}

fn check_cap(shape: &[usize], cap: usize) -> Result<(), String> {
    let n = count(shape)?;
    if n > cap {
        return Err(format!(
            "shape {shape:?} has {n} elements, more than the limit of {cap}"
        ));
    }
    Ok(())
}

fn dims_of(v: &[i64], cap: usize) -> Result<Vec<usize>, String> {
    element_count(v)?;
    let shape: Vec<usize> = v.iter().map(|&d| d as usize).collect();
    check_cap(&shape, cap)?;
    Ok(shape)
}

/// `element_count` of a shape of `usize` dims.
fn count(shape: &[usize]) -> Result<usize, String> {
    let dims: Vec<i64> = shape
        .iter()
        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
        .collect();
    element_count(&dims)
}

fn reshape(x: &Value, shape: &[usize]) -> Result<Value, String> {
    let n = count(shape).map_err(|e| format!("cannot reshape: {e}"))?;
    if n != x.len() {
        return Err(format!("cannot reshape {:?} to {shape:?}", x.shape()));
    }
    Ok(map!(x, |a| a
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|e| e.to_string())?))
}

/// The target of `Reshape` from its shape input (0 copies the input's dim unless
/// `allowzero`, one -1 is inferred).
fn reshape_target(from: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = from.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *from
                    .get(i)
                    .ok_or_else(|| format!("shape {spec:?}: 0 at {i} has no input dim to copy"))?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid shape {spec:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {spec:?} is too large"))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {from:?} to {spec:?}"));
        }
        out[i] = total / known;
    }
    Ok(out)
}

/// The elements an ONNX slice of one axis selects: `count` indices from `first` by `step`.
fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> Result<(i64, usize, i64), String> {
    if step == 0 {
        return Err("slice step 0".into());
    }
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    // i128: no overflow for any i64 start, end and step.
    let (s, e, st) = if step > 0 {
        (
            i128::from(s.clamp(0, d)),
            i128::from(e.clamp(0, d)),
            i128::from(step),
        )
    } else {
        (
            i128::from(s.clamp(-1, d - 1)),
            i128::from(e.clamp(-1, d - 1)),
            i128::from(step),
        )
    };
    let span = if step > 0 { e - s } else { s - e };
    let count = if span <= 0 {
        0
    } else {
        (span + st.abs() - 1) / st.abs()
    };
    Ok((s as i64, count as usize, step))
}

/// `count` elements along axis `a` from `first` by `step`. The indices are only listed for
/// a tensor that holds elements (so `count` ≤ its size); an empty tensor, whose dims may be
/// anything, gives an empty result of the new shape without listing them.
fn select_range(x: &Value, a: usize, first: i64, count: usize, step: i64) -> Value {
    if x.is_empty() {
        let mut shape = x.shape().to_vec();
        shape[a] = count;
        return match x {
            Value::F32(_) => {
                Value::F32(ArrayD::from_shape_vec(IxDyn(&shape), vec![]).expect("empty"))
            }
            Value::I64(_) => {
                Value::I64(ArrayD::from_shape_vec(IxDyn(&shape), vec![]).expect("empty"))
            }
        };
    }
    let idx: Vec<usize> = (0..count as i64)
        .map(|k| (first + k * step) as usize)
        .collect();
    select(x, a, &idx)
}

fn select(x: &Value, a: usize, idx: &[usize]) -> Value {
    map!(x, |v| v.select(Axis(a), idx))
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        if i + s.len() < r {
            1
        } else {
            s[i + s.len() - r]
        }
    };
    (0..r)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

fn broadcast_to<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    let mut s = vec![1; shape.len().saturating_sub(a.ndim())];
    s.extend_from_slice(a.shape());
    let r = a
        .view()
        .into_shape_with_order(IxDyn(&s))
        .map_err(|e| e.to_string())?;
    Ok(r.broadcast(IxDyn(shape))
        .ok_or_else(|| format!("cannot broadcast {:?} to {shape:?}", a.shape()))?
        .to_owned())
}

/// The value of a `Constant` node.
fn constant_value(node: &NodeProto, dir: DataDir<'_>) -> Result<Value, String> {
    let a = node
        .attribute
        .first()
        .ok_or("a Constant needs one attribute")?;
    let name = a.name.as_deref().unwrap_or("");
    let vec1 = |v: Vec<i64>| Value::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-D"));
    Ok(match name {
        "value" => decode(
            a.t.as_ref().ok_or("attribute `value` holds no tensor")?,
            dir,
            "attribute `value`",
        )?,
        "value_float" => Value::F32(ArrayD::from_elem(IxDyn(&[]), a.f.unwrap_or(0.0))),
        "value_floats" => Value::F32(
            ArrayD::from_shape_vec(IxDyn(&[a.floats.len()]), a.floats.clone()).expect("1-D"),
        ),
        "value_int" => Value::I64(ArrayD::from_elem(IxDyn(&[]), a.i.unwrap_or(0))),
        "value_ints" => vec1(a.ints.clone()),
        other => {
            let _ = AttributeType::Undefined;
            return Err(format!(
                "Constant with attribute `{other}` is not supported (value, value_float(s), value_int(s))"
            ));
        }
    })
}
