//! The bodies of `POST …/infer`: the JSON request (tensors flat or nested) with Triton's binary
//! tensor extension, and the response in the form the request asked for.
//!
//! With the extension a body is a JSON header of `Inference-Header-Content-Length` bytes
//! followed by the raw data of every input whose parameters give a `binary_data_size`, in the
//! order of `inputs` (FP32, little-endian, row-major). Outputs whose parameters say
//! `"binary_data": true` (or all of them, with the request parameter `binary_data_output`)
//! come back the same way.

use serde_json::{json, Map, Value};

use crate::serve::describe::{DATATYPE, VERSION};
use crate::serve::error::{ServeError, ServeResult};
use crate::serve::infer::{Call, InputTensor, OutputTensor, Param};

/// The header that gives the length of the JSON part of a body with binary data.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// A decoded request: the call, the request's `id`, and for each output asked for whether it
/// goes back as binary data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpCall {
    pub call: Call,
    pub id: Option<String>,
    /// Per output asked for by name: binary or not; `None` when the request names none.
    pub binary: Option<Vec<bool>>,
    /// The request parameter `binary_data_output`: every output not otherwise set is binary.
    pub binary_all: bool,
}

/// A JSON parameter value.
fn param(v: &Value) -> Param {
    match v {
        Value::Bool(b) => Param::Bool(*b),
        Value::String(s) => Param::Text(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Param::Int(i),
            (None, Some(u)) => Param::UInt(u),
            _ => Param::Other,
        },
        _ => Param::Other,
    }
}

/// `v` as a JSON object, or an error naming `what`.
fn object<'a>(v: &'a Value, what: &str) -> ServeResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ServeError::bad(format!("{what} must be a JSON object")))
}

/// The elements of nested arrays of numbers, row-major.
fn flatten(v: &Value, name: &str, out: &mut Vec<f32>) -> ServeResult<()> {
    match v {
        Value::Number(n) => {
            let x = n
                .as_f64()
                .ok_or_else(|| ServeError::bad(format!("input `{name}`: {n} is not a number")))?;
            out.push(x as f32);
        }
        Value::Array(a) => {
            for e in a {
                flatten(e, name, out)?;
            }
        }
        other => {
            return Err(ServeError::bad(format!(
                "input `{name}`: data must be numbers (flat or nested arrays), found {}",
                kind(other)
            )))
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits `body` into its JSON part and its binary part by the header's length.
fn split<'a>(header_length: Option<&str>, body: &'a [u8]) -> ServeResult<(&'a [u8], &'a [u8])> {
    let Some(h) = header_length else {
        return Ok((body, &[]));
    };
    let n: usize = h.trim().parse().map_err(|_| {
        ServeError::bad(format!(
            "header Inference-Header-Content-Length `{h}` is not a length"
        ))
    })?;
    if n > body.len() {
        return Err(ServeError::bad(format!(
            "Inference-Header-Content-Length is {n} but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

/// Decodes the body of an inference request.
pub(crate) fn decode(header_length: Option<&str>, body: &[u8]) -> ServeResult<HttpCall> {
    let (json_part, mut binary) = split(header_length, body)?;
    let root: Value = serde_json::from_slice(json_part)
        .map_err(|e| ServeError::bad(format!("the request is not valid JSON: {e}")))?;
    let root = object(&root, "the request")?;
    let id = match root.get("id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ServeError::bad("`id` must be a string")),
    };
    let mut call = Call::default();
    let mut binary_all = false;
    if let Some(p) = root.get("parameters") {
        let p = object(p, "`parameters`")?;
        binary_all = p.get("binary_data_output").and_then(Value::as_bool) == Some(true);
        call.set_params(p.iter().map(|(k, v)| (k.as_str(), param(v))))?;
    }
    let inputs = root
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| ServeError::bad("the request has no `inputs` array"))?;
    for input in inputs {
        let t = decode_input(input, &mut binary)?;
        call.inputs.push(t);
    }
    if !binary.is_empty() {
        return Err(ServeError::bad(format!(
            "the body has {} bytes of binary data beyond those the inputs' `binary_data_size` \
             account for",
            binary.len()
        )));
    }
    let mut wanted = None;
    if let Some(outputs) = root.get("outputs") {
        let outputs = outputs
            .as_array()
            .ok_or_else(|| ServeError::bad("`outputs` must be an array"))?;
        let (mut names, mut flags) = (Vec::new(), Vec::new());
        for o in outputs {
            let o = object(o, "an entry of `outputs`")?;
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ServeError::bad("an entry of `outputs` has no `name`"))?;
            let flag = o
                .get("parameters")
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
                .unwrap_or(binary_all);
            names.push(name.to_string());
            flags.push(flag);
        }
        call.outputs = Some(names);
        wanted = Some(flags);
    }
    Ok(HttpCall {
        call,
        id,
        binary: wanted,
        binary_all,
    })
}

/// One entry of `inputs`; binary data is taken from the front of `binary`.
fn decode_input(input: &Value, binary: &mut &[u8]) -> ServeResult<InputTensor> {
    let input = object(input, "an entry of `inputs`")?;
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ServeError::bad("an entry of `inputs` has no `name`"))?
        .to_string();
    let datatype = input
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or_else(|| ServeError::bad(format!("input `{name}` has no `datatype`")))?;
    if datatype != DATATYPE {
        return Err(ServeError::bad(format!(
            "input `{name}` has datatype {datatype}; the model takes {DATATYPE}"
        )));
    }
    let shape: Vec<i64> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_i64).collect())
        .ok_or_else(|| {
            ServeError::bad(format!("input `{name}` needs a `shape` array of integers"))
        })?;
    let size = input
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"));
    let data = match (size, input.get("data")) {
        (Some(_), Some(_)) => {
            return Err(ServeError::bad(format!(
                "input `{name}` has both `data` and `binary_data_size`"
            )))
        }
        (Some(size), None) => {
            let size = size.as_u64().ok_or_else(|| {
                ServeError::bad(format!(
                    "input `{name}`: `binary_data_size` must be a count"
                ))
            })?;
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > binary.len() || size % 4 != 0 {
                return Err(ServeError::bad(format!(
                    "input `{name}`: `binary_data_size` {size} does not fit the body's {} bytes \
                     of binary data left, or is not a whole number of FP32 elements",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        (None, Some(data)) => {
            let mut out = Vec::new();
            flatten(data, &name, &mut out)?;
            out
        }
        (None, None) => {
            return Err(ServeError::bad(format!(
                "input `{name}` has neither `data` nor `binary_data_size`"
            )))
        }
    };
    Ok(InputTensor { name, shape, data })
}

/// Encodes a response: the body, and the length of its JSON part when binary data follows.
pub(crate) fn encode(
    model: &str,
    request: &HttpCall,
    outputs: &[OutputTensor],
) -> (Vec<u8>, Option<usize>) {
    let mut binary = Vec::new();
    let entries: Vec<Value> = outputs
        .iter()
        .map(|o| {
            let as_binary = match &request.binary {
                Some(flags) => request
                    .call
                    .outputs
                    .as_ref()
                    .and_then(|names| names.iter().position(|n| *n == o.name))
                    .map_or(request.binary_all, |k| flags[k]),
                None => request.binary_all,
            };
            if as_binary {
                let start = binary.len();
                for v in &o.data {
                    binary.extend_from_slice(&v.to_le_bytes());
                }
                json!({
                    "name": o.name,
                    "datatype": DATATYPE,
                    "shape": o.shape,
                    "parameters": { "binary_data_size": binary.len() - start },
                })
            } else {
                json!({ "name": o.name, "datatype": DATATYPE, "shape": o.shape, "data": o.data })
            }
        })
        .collect();
    let mut root = json!({ "model_name": model, "model_version": VERSION, "outputs": entries });
    if let Some(id) = &request.id {
        root["id"] = json!(id);
    }
    let mut body = root.to_string().into_bytes();
    if binary.is_empty() {
        return (body, None);
    }
    let header = body.len();
    body.extend_from_slice(&binary);
    (body, Some(header))
}
