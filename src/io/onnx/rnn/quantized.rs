//! onnxruntime's `com.microsoft.DynamicQuantizeLSTM` (what `quantize_dynamic` makes of an
//! ONNX `LSTM`): the LSTM's inputs and attributes, with `W` `[D, I, 4·H]` and `R`
//! `[D, H, 4·H]` as eight-bit integers — transposed against `LSTM`'s — and their scales and
//! zero points as inputs 8 to 11: `W_scale`, `W_zero_point`, `R_scale`, `R_zero_point`, each
//! `[D]` (one per direction) or `[D, 4·H]` (one per gate row).
//!
//! A weight is `(q − zero_point) · scale`. The loader turns `W` and `R` into float32 weights of
//! exactly those values in ONNX's `LSTM` layout, and keeps each gate row's scale, so that
//! [`WeightsDtype::I8`](crate::WeightsDtype::I8) computes with the model's own integers.

use ndarray::{Array2, Array3, ArrayD, Axis, Ix1, Ix2, Ix3};

use super::{invalid, Refusal};
use crate::io::onnx::value::Value;

/// The value ids of a `DynamicQuantizeLSTM`'s inputs 8 to 11 (`None` when absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct QuantSlots {
    pub w_scale: Option<usize>,
    pub w_zero_point: Option<usize>,
    pub r_scale: Option<usize>,
    pub r_zero_point: Option<usize>,
}

/// A quantized weight input as float32 in ONNX's `LSTM` layout, with its row scales.
pub(super) struct Dequantized {
    /// `[D, 4·H, K]`: `(q − zero_point) · scale`, transposed back.
    pub w: ArrayD<f32>,
    /// `[D, 4·H]`: the scale of each row of `w`.
    pub scales: Array2<f32>,
}

/// The quantized weight `what` (`W` or `R`) in `slot` with its scale and zero point, checked
/// (constants, `q` and zero points eight-bit integers, scales finite and not negative, shapes
/// as onnxruntime's kernel requires them) and dequantized.
pub(super) fn dequantize(
    what: &str,
    [slot, scale_slot, zp_slot]: [Option<usize>; 3],
    konst: &dyn Fn(usize) -> Option<Value>,
    name: &dyn Fn(usize) -> String,
) -> Result<Dequantized, Refusal> {
    let fetch = |slot: Option<usize>, input: String| -> Result<Value, Refusal> {
        let Some(id) = slot else {
            return invalid(format!("input {input} is missing"));
        };
        konst(id).ok_or_else(|| {
            Refusal::Invalid(format!(
                "input {input} is `{}`, a value computed at run time; it must be an initializer or a constant",
                name(id)
            ))
        })
    };
    let (scale_name, zp_name) = (format!("{what}_scale"), format!("{what}_zero_point"));
    let integers = |v: Value, input: &str| match v {
        Value::I64(a) if a.iter().all(|&x| (-128..=255).contains(&x)) => Ok(a),
        Value::I64(_) => invalid(format!("input {input} holds values outside int8 and uint8")),
        Value::F32(_) => invalid(format!(
            "input {input} is a float tensor; DynamicQuantizeLSTM takes int8 or uint8"
        )),
    };
    let q = integers(fetch(slot, what.to_string())?, what)?;
    let scale = match fetch(scale_slot, scale_name.clone())? {
        Value::F32(a) => a,
        Value::I64(_) => return invalid(format!("input {scale_name} must be a float tensor")),
    };
    let zp = integers(fetch(zp_slot, zp_name.clone())?, &zp_name)?;
    let q = q.into_dimensionality::<Ix3>().map_err(|_| {
        Refusal::Invalid(format!(
            "input {what} must have 3 dimensions [num_directions, K, 4·hidden_size]"
        ))
    })?;
    let (d, k, n) = q.dim();
    let rows = |a: ArrayD<f32>, input: &str| -> Result<Array2<f32>, Refusal> {
        let shape = a.shape().to_vec();
        match shape.as_slice() {
            [x] if *x == d => Ok(a
                .into_dimensionality::<Ix1>()
                .expect("1-D")
                .insert_axis(Axis(1))
                .broadcast((d, n))
                .expect("[D, 1] broadcasts")
                .to_owned()),
            [x, y] if *x == d && *y == n => Ok(a.into_dimensionality::<Ix2>().expect("2-D")),
            _ => invalid(format!(
                "input {input} has shape {shape:?}; {what} {:?} needs [{d}] (per tensor) or [{d}, {n}] (per channel)",
                [d, k, n]
            )),
        }
    };
    if zp.shape() != scale.shape() {
        return invalid(format!(
            "input {zp_name} has shape {:?}, {scale_name} {:?}: they must match",
            zp.shape(),
            scale.shape()
        ));
    }
    let scales = rows(scale, &scale_name)?;
    let zps = rows(zp.mapv(|v| v as f32), &zp_name)?;
    if let Some(s) = scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
        return invalid(format!(
            "input {scale_name} holds {s}; scales must be finite and not negative"
        ));
    }
    let w = Array3::from_shape_fn((d, n, k), |(dd, nn, kk)| {
        (q[[dd, kk, nn]] as f32 - zps[[dd, nn]]) * scales[[dd, nn]]
    });
    Ok(Dequantized {
        w: w.into_dyn(),
        scales,
    })
}
