//! Evaluation of each glue operator on concrete tensors.

use ndarray::{ArrayD, Axis, IxDyn};

use super::super::value::{Kind, Value};
use super::array::{
    axis, broadcast_shape, broadcast_to, check_cap, dims_of, reshape, reshape_target, select,
    select_range, slice_range,
};
use super::{Arith, Op, SliceAttrs};

/// What an operator evaluates to: its outputs in order.
type Outputs = Result<Vec<Value>, String>;

impl Op {
    /// Evaluates the operator. `cap` bounds the elements of tensors that grow beyond their
    /// inputs (ConstantOfShape, Expand, broadcasting arithmetic, Gather).
    pub(super) fn eval(&self, inputs: &[Option<&Value>], n_outputs: usize, cap: usize) -> Outputs {
        let args = Args(inputs);
        match self {
            Op::Identity => one(args.input(0)?.clone()),
            Op::Transpose { perm } => transpose(&args, perm.as_deref()),
            Op::Reshape { allowzero } => {
                let x = args.input(0)?;
                let spec = args.ints(1)?;
                let shape = reshape_target(x.shape(), &spec, *allowzero)?;
                one(reshape(x, &shape)?)
            }
            Op::Squeeze { axes } => squeeze(&args, axes.as_deref()),
            Op::Unsqueeze { axes } => unsqueeze(&args, axes.as_deref()),
            Op::Concat { axis: ax } => concat(inputs, *ax),
            Op::Slice { attr } => slice(&args, attr.as_ref()),
            Op::Split {
                axis: ax,
                split: sizes,
                num_outputs,
            } => split(&args, *ax, sizes.as_deref(), *num_outputs, n_outputs),
            Op::Gather { axis: ax } => gather(&args, *ax, cap),
            Op::Shape { start, end } => {
                let s = args.input(0)?.shape();
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
                let shape = dims_of(&args.ints(0)?, cap)?;
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
                let x = args.input(0)?;
                let target = args.ints(1)?;
                let target: Vec<usize> = target
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
                    .collect::<Result<_, _>>()?;
                let shape = broadcast_shape(x.shape(), &target)?;
                check_cap(&shape, cap)?;
                one(map!(x, |a| broadcast_to(a, &shape)?))
            }
            Op::Arith(op) => arith(&args, *op, cap),
            Op::Cast(kind) => {
                let x = args.input(0)?;
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

/// The inputs of one evaluation (`None` for absent ones), read as the operators need them.
struct Args<'a>(&'a [Option<&'a Value>]);

impl<'a> Args<'a> {
    /// Input `i`, which must be present.
    fn input(&self, i: usize) -> Result<&'a Value, String> {
        self.0
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    }

    /// Input `i`, which must be a present integer tensor, flattened.
    fn ints(&self, i: usize) -> Result<Vec<i64>, String> {
        match self.input(i)? {
            Value::I64(a) => Ok(a.iter().copied().collect()),
            Value::F32(_) => Err(format!("input {i} must be an integer tensor")),
        }
    }

    /// Input `i` as [`Args::ints`] does, `None` when absent.
    fn opt_ints(&self, i: usize) -> Result<Option<Vec<i64>>, String> {
        match self.0.get(i).copied().flatten() {
            None => Ok(None),
            Some(_) => self.ints(i).map(Some),
        }
    }
}

/// One output.
fn one(v: Value) -> Outputs {
    Ok(vec![v])
}

/// `Transpose` by `perm` (reversing the axes when `None`).
fn transpose(args: &Args<'_>, perm: Option<&[i64]>) -> Outputs {
    let x = args.input(0)?;
    let rank = x.shape().len();
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => {
            let p: Vec<usize> = p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
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

/// `Squeeze` of `axes` (the attribute, else the second input, else every axis of size 1).
fn squeeze(args: &Args<'_>, axes: Option<&[i64]>) -> Outputs {
    let x = args.input(0)?;
    let rank = x.shape().len();
    let axes = match axes {
        Some(a) => Some(a.to_vec()),
        None => args.opt_ints(1)?,
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

/// `Unsqueeze` at `axes` (the attribute, else the second input).
fn unsqueeze(args: &Args<'_>, axes: Option<&[i64]>) -> Outputs {
    let x = args.input(0)?;
    let axes = match axes {
        Some(a) => a.to_vec(),
        None => args.ints(1)?,
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

/// `Concat` of the present `inputs` on axis `ax`.
fn concat(inputs: &[Option<&Value>], ax: i64) -> Outputs {
    let xs: Vec<&Value> = inputs.iter().flatten().copied().collect();
    let first = xs.first().ok_or("no inputs")?;
    let rank = first.shape().len();
    let a = axis(ax, rank)?;
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

/// `Slice`: starts, ends and axes from the attributes `attr` (opset < 10), else starts,
/// ends, axes and steps from the inputs.
fn slice(args: &Args<'_>, attr: Option<&SliceAttrs>) -> Outputs {
    let x = args.input(0)?;
    let (starts, ends, axes, steps) = match attr {
        Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
        None => (
            args.ints(1)?,
            args.ints(2)?,
            args.opt_ints(3)?,
            args.opt_ints(4)?,
        ),
    };
    let rank = x.shape().len();
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
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
        let (first, count, step) = slice_range(v.shape()[a], starts[i], ends[i], steps[i])?;
        v = select_range(&v, a, first, count, step);
    }
    one(v)
}

/// `Split` on axis `ax` into `n_outputs` parts: sizes from the attribute `split`, else the
/// second input, else `num_outputs` (or `n_outputs`) parts as equal as can be, the last
/// smaller.
fn split(
    args: &Args<'_>,
    ax: i64,
    split: Option<&[i64]>,
    num_outputs: Option<i64>,
    n_outputs: usize,
) -> Outputs {
    let x = args.input(0)?;
    let a = axis(ax, x.shape().len())?;
    let dim = x.shape()[a];
    let sizes: Vec<usize> = match (split, args.opt_ints(1)?.as_deref()) {
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

/// `Gather` on axis `ax`, the result at most `cap` elements.
fn gather(args: &Args<'_>, ax: i64, cap: usize) -> Outputs {
    let x = args.input(0)?;
    let Value::I64(idx) = args.input(1)? else {
        return Err("indices must be integers".into());
    };
    let a = axis(ax, x.shape().len())?;
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

/// Integer `Add`, `Sub`, `Mul` or `Div` (wrapping), broadcast, the result at most `cap`
/// elements.
fn arith(args: &Args<'_>, op: Arith, cap: usize) -> Outputs {
    let (Value::I64(a), Value::I64(b)) = (args.input(0)?, args.input(1)?) else {
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
