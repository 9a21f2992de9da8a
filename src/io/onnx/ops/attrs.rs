//! Reading node attributes, and the value a `Constant` node holds.

use ndarray::{ArrayD, IxDyn};

use super::super::value::{decode, DataDir, Value};
use crate::io::onnx::pb::{attribute_proto::AttributeType, AttributeProto, NodeProto};

/// The attribute `name` of `node`.
pub(super) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

/// The integer attribute `name` of `node`.
pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).and_then(|a| a.i)
}

/// The integer list attribute `name` of `node`.
pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// The float attribute `name` of `node`.
pub(crate) fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).and_then(|a| a.f)
}

/// The float list attribute `name` of `node`.
pub(crate) fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    attr(node, name).map(|a| a.floats.clone())
}

/// The string attribute `name` of `node` (bytes read as UTF-8, lossily).
pub(crate) fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).and_then(|a| {
        a.s.as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    })
}

/// The string list attribute `name` of `node` (bytes read as UTF-8, lossily).
pub(crate) fn attr_strings(node: &NodeProto, name: &str) -> Option<Vec<String>> {
    attr(node, name).map(|a| {
        a.strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    })
}

/// The value of a `Constant` node.
pub(super) fn constant_value(node: &NodeProto, dir: DataDir<'_>) -> Result<Value, String> {
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
