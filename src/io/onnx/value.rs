//! Tensor values of a graph (float and integer) and the decoding of ONNX `TensorProto`s:
//! `raw_data` or the typed fields, f32 / f16 / bf16 / f64 and the integer types, and external
//! data files beside the model.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use ndarray::{ArrayD, IxDyn};

use crate::io::onnx::pb::{tensor_proto::DataType, TensorProto};

/// A tensor flowing through an ONNX graph: floating point (every float type is read as f32) or
/// integer (every integer type is read as i64).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Float data (float32, float16, bfloat16 and float64 in the file).
    F32(ArrayD<f32>),
    /// Integer data: shapes, indices, `sequence_lens` (int32 and int64 in the file).
    I64(ArrayD<i64>),
}

impl Value {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::I64(a) => a.shape(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Value::F32(a) => a.len(),
            Value::I64(a) => a.len(),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element kind.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::F32(_) => Kind::Float,
            Value::I64(_) => Kind::Int,
        }
    }

    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> ArrayD<f32> {
        match self {
            Value::F32(a) => a.clone(),
            Value::I64(a) => a.mapv(|v| v as f32),
        }
    }
}

impl From<ArrayD<f32>> for Value {
    fn from(a: ArrayD<f32>) -> Self {
        Value::F32(a)
    }
}

impl From<ArrayD<i64>> for Value {
    fn from(a: ArrayD<i64>) -> Self {
        Value::I64(a)
    }
}

impl From<ArrayD<i32>> for Value {
    fn from(a: ArrayD<i32>) -> Self {
        Value::I64(a.mapv(i64::from))
    }
}

/// Float or integer: the element kinds the loader distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Float,
    Int,
}

impl Kind {
    /// The kind of an ONNX `TensorProto.DataType` code, `None` for types the loader does not
    /// read (string, bool, complex, 8- and 4-bit floats).
    pub fn of_onnx(code: i32) -> Option<Kind> {
        use DataType as D;
        match DataType::try_from(code).ok()? {
            D::Float | D::Float16 | D::Double | D::Bfloat16 => Some(Kind::Float),
            D::Uint8
            | D::Int8
            | D::Uint16
            | D::Int16
            | D::Int32
            | D::Int64
            | D::Uint32
            | D::Uint64 => Some(Kind::Int),
            _ => None,
        }
    }
}

/// The name of an ONNX data type code, for messages.
pub(crate) fn type_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(t) => t.as_str_name().to_lowercase(),
        Err(_) => format!("type {code}"),
    }
}

/// Element count of `dims`, refusing negative dims and shapes an array cannot have (the
/// product of the non-zero dims must fit in `isize`, even when another dim is 0).
pub(crate) fn element_count(dims: &[i64]) -> Result<usize, String> {
    let mut n: usize = 1;
    let mut nonzero: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
        nonzero = nonzero
            .checked_mul(d.max(1))
            .filter(|&p| p <= isize::MAX as usize)
            .ok_or_else(|| format!("shape {dims:?} has too many elements"))?;
        n *= d;
    }
    Ok(n)
}

/// Bytes per element of a type the loader reads.
fn byte_width(t: DataType) -> usize {
    use DataType as D;
    match t {
        D::Uint8 | D::Int8 => 1,
        D::Uint16 | D::Int16 | D::Float16 | D::Bfloat16 => 2,
        D::Float | D::Int32 | D::Uint32 => 4,
        _ => 8,
    }
}

/// Decodes little-endian `bytes` of type `t` (already checked to hold `n` elements).
fn from_le(t: DataType, bytes: &[u8]) -> Value {
    use DataType as D;
    let w = byte_width(t);
    let chunks = bytes.chunks_exact(w);
    match t {
        D::Float => Value::F32(flat(
            chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )),
        D::Double => Value::F32(flat(
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        )),
        D::Float16 => Value::F32(flat(
            chunks
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )),
        D::Bfloat16 => Value::F32(flat(
            chunks
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )),
        D::Uint8 => Value::I64(flat(chunks.map(|c| i64::from(c[0])).collect())),
        D::Int8 => Value::I64(flat(chunks.map(|c| i64::from(c[0] as i8)).collect())),
        D::Uint16 => Value::I64(flat(
            chunks
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        )),
        D::Int16 => Value::I64(flat(
            chunks
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        )),
        D::Int32 => Value::I64(flat(
            chunks
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        )),
        D::Uint32 => Value::I64(flat(
            chunks
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        )),
        // Int64 and Uint64 (values above i64::MAX wrap, as a shape or index they are
        // invalid either way).
        _ => Value::I64(flat(
            chunks
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        )),
    }
}

/// `v` as a 1-D tensor.
fn flat<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-D")
}

/// Where external data may be read from: the model's directory (`None` when the model came
/// from bytes, which then may not use external data).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataDir<'a>(pub Option<&'a Path>);

/// Decodes a tensor. `what` names it in errors (e.g. "initializer `W`").
pub(crate) fn decode(t: &TensorProto, dir: DataDir<'_>, what: &str) -> Result<Value, String> {
    let code = t.data_type.unwrap_or(0);
    let Some(kind) = Kind::of_onnx(code) else {
        return Err(format!(
            "{what} has data type {}; supported: float, float16, bfloat16, double and the integer types",
            type_name(code)
        ));
    };
    let dtype = DataType::try_from(code).expect("checked by Kind::of_onnx");
    if t.segment.is_some() {
        return Err(format!("{what} is segmented, which is not supported"));
    }
    let n = element_count(&t.dims).map_err(|e| format!("{what}: {e}"))?;
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let external = t.data_location == Some(1);
    let flat_value = if external {
        let bytes = read_external(t, dir, what, n, byte_width(dtype))?;
        from_le(dtype, &bytes)
    } else if let Some(raw) = &t.raw_data {
        let need = n
            .checked_mul(byte_width(dtype))
            .ok_or_else(|| format!("{what} is too large"))?;
        if raw.len() != need {
            return Err(format!(
                "{what}: raw_data has {} bytes, its shape {:?} of {} needs {need}",
                raw.len(),
                t.dims,
                type_name(code)
            ));
        }
        from_le(dtype, raw)
    } else {
        typed_fields(t, dtype, what)?
    };
    if flat_value.len() != n {
        return Err(format!(
            "{what} holds {} values, its shape {:?} needs {n}",
            flat_value.len(),
            t.dims
        ));
    }
    let _ = kind;
    let shaped = |e: ndarray::ShapeError| format!("{what}: shape {:?}: {e}", t.dims);
    Ok(match flat_value {
        Value::F32(a) => Value::F32(a.into_shape_with_order(IxDyn(&shape)).map_err(shaped)?),
        Value::I64(a) => Value::I64(a.into_shape_with_order(IxDyn(&shape)).map_err(shaped)?),
    })
}

/// The values of a tensor stored in the typed repeated fields.
fn typed_fields(t: &TensorProto, dtype: DataType, what: &str) -> Result<Value, String> {
    use DataType as D;
    Ok(match dtype {
        D::Float => Value::F32(flat(t.float_data.clone())),
        D::Double => Value::F32(flat(t.double_data.iter().map(|&v| v as f32).collect())),
        // float16 / bfloat16 are stored as their bit patterns in int32_data.
        D::Float16 => Value::F32(flat(
            t.int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect(),
        )),
        D::Bfloat16 => Value::F32(flat(
            t.int32_data
                .iter()
                .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                .collect(),
        )),
        D::Int64 => Value::I64(flat(t.int64_data.clone())),
        D::Uint32 | D::Uint64 => {
            Value::I64(flat(t.uint64_data.iter().map(|&v| v as i64).collect()))
        }
        D::Uint8 | D::Int8 | D::Uint16 | D::Int16 | D::Int32 => {
            Value::I64(flat(t.int32_data.iter().map(|&v| i64::from(v)).collect()))
        }
        other => {
            return Err(format!(
                "{what} has data type {}, which is not supported",
                other.as_str_name().to_lowercase()
            ))
        }
    })
}

/// Reads `n` elements of `width` bytes from the external data file of `t`: a relative path
/// inside the model's directory (no `..`, no absolute path, no symbolic link out of it), at
/// `offset`, of `length` bytes when given.
fn read_external(
    t: &TensorProto,
    dir: DataDir<'_>,
    what: &str,
    n: usize,
    width: usize,
) -> Result<Vec<u8>, String> {
    let Some(dir) = dir.0 else {
        return Err(format!(
            "{what} uses external data, which needs the model's directory: load the model from its file"
        ));
    };
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for e in &t.external_data {
        let key = e.key.as_deref().unwrap_or("");
        let value = e.value.as_deref().unwrap_or("");
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what}: external data `{key}` = `{value}` is not a number"))
        };
        match key {
            "location" => location = Some(value),
            "offset" => offset = number()?,
            "length" => length = Some(number()?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| format!("{what}: external data without a `location`"))?;
    let rel = Path::new(location);
    if location.is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "{what}: external data location `{location}` must be a relative path inside the model's directory"
        ));
    }
    let need = n
        .checked_mul(width)
        .ok_or_else(|| format!("{what} is too large"))? as u64;
    if let Some(len) = length {
        if len != need {
            return Err(format!(
                "{what}: external data length {len} bytes, its shape {:?} needs {need}",
                t.dims
            ));
        }
    }
    let base = dir
        .canonicalize()
        .map_err(|e| format!("{what}: model directory `{}`: {e}", dir.display()))?;
    let file = base
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("{what}: external data `{location}`: {e}"))?;
    if !file.starts_with(&base) {
        return Err(format!(
            "{what}: external data `{location}` resolves outside the model's directory"
        ));
    }
    let mut f = std::fs::File::open(&file)
        .map_err(|e| format!("{what}: external data `{location}`: {e}"))?;
    let size = f
        .metadata()
        .map_err(|e| format!("{what}: external data `{location}`: {e}"))?
        .len();
    if offset.checked_add(need).is_none_or(|end| end > size) {
        return Err(format!(
            "{what}: external data `{location}` has {size} bytes, {need} are needed at offset {offset}"
        ));
    }
    let mut bytes = vec![0u8; need as usize];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut bytes))
        .map_err(|e| format!("{what}: external data `{location}`: {e}"))?;
    Ok(bytes)
}
