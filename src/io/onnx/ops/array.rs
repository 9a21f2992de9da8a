//! Array helpers the operators share: axes, element caps, reshaping, slicing and
//! broadcasting.

use ndarray::{ArrayD, Axis, IxDyn};

use super::super::value::{element_count, Value};

/// Axis `a` (negative counts from the end) of a tensor of `rank`.
pub(super) fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let b = if a < 0 { a + r } else { a };
    if (0..r).contains(&b) {
        Ok(b as usize)
    } else {
        Err(format!("axis {a} out of range for rank {rank}"))
    }
}

/// Checks that a tensor of `shape` holds at most `cap` elements.
pub(super) fn check_cap(shape: &[usize], cap: usize) -> Result<(), String> {
    let n = count(shape)?;
    if n > cap {
        return Err(format!(
            "shape {shape:?} has {n} elements, more than the limit of {cap}"
        ));
    }
    Ok(())
}

/// The shape `v` (a shape input's values), checked to hold at most `cap` elements.
pub(super) fn dims_of(v: &[i64], cap: usize) -> Result<Vec<usize>, String> {
    element_count(v)?;
    let shape: Vec<usize> = v.iter().map(|&d| d as usize).collect();
    check_cap(&shape, cap)?;
    Ok(shape)
}

/// `element_count` of a shape of `usize` dims.
pub(super) fn count(shape: &[usize]) -> Result<usize, String> {
    let dims: Vec<i64> = shape
        .iter()
        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
        .collect();
    element_count(&dims)
}

/// `x` with its elements in row-major order laid out in `shape` (the same count).
pub(super) fn reshape(x: &Value, shape: &[usize]) -> Result<Value, String> {
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
pub(super) fn reshape_target(
    from: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
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
pub(super) fn slice_range(
    dim: usize,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(i64, usize, i64), String> {
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
pub(super) fn select_range(x: &Value, a: usize, first: i64, count: usize, step: i64) -> Value {
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

/// The entries `idx` of axis `a` of `x`, in that order.
pub(super) fn select(x: &Value, a: usize, idx: &[usize]) -> Value {
    map!(x, |v| v.select(Axis(a), idx))
}

/// The shape `a` and `b` broadcast to (numpy's rules).
pub(super) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
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

/// `a` broadcast to `shape` (numpy's rules), owned.
pub(super) fn broadcast_to<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
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
