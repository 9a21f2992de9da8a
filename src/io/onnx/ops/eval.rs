//! Evaluation of each glue operator on concrete tensors.

use ndarray::{ArrayD, Axis, IxDyn};

use super::super::value::{Kind, Value};
use super::array::{
    axis, broadcast_shape, broadcast_to, check_cap, dims_of, reshape, reshape_target, select,
    select_range, slice_range,
};
use super::{Arith, Op};

impl Op {
    /// Evaluates the operator. `cap` bounds the elements of tensors that grow beyond their
    /// inputs (ConstantOfShape, Expand, broadcasting arithmetic, Gather).
    pub(super) fn eval(
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
