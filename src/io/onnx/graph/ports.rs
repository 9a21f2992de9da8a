//! Value names and the graph's declared inputs and outputs ([`Port`]s).

use std::collections::HashMap;

use super::super::value::{type_name, Kind};
use super::{invalid, Dim, LoadError, Port};
use crate::io::onnx::pb;

/// The graph's value names and the id of each (ids in order of first mention).
pub(super) struct Names {
    pub(super) ids: HashMap<String, usize>,
    pub(super) names: Vec<String>,
}

impl Names {
    /// The id of `name`, a new one the first time.
    pub(super) fn id(&mut self, name: &str) -> usize {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }
}

/// The graph input or output `v` (`what` names which, in errors) with value id `id`.
pub(super) fn port_of(v: &pb::ValueInfoProto, what: &str, id: usize) -> Result<Port, LoadError> {
    let name = v.name.clone().unwrap_or_default();
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        None => {
            return Ok(Port {
                name,
                dims: None,
                float: true,
                id,
            })
        }
        Some(_) => return invalid(format!("{what} `{name}` is not a tensor")),
    };
    let code = tensor.elem_type.unwrap_or(1);
    let float = match Kind::of_onnx(code) {
        Some(Kind::Float) => true,
        Some(Kind::Int) => false,
        None => {
            return invalid(format!(
                "{what} `{name}` has element type {}; supported: float and integer types",
                type_name(code)
            ))
        }
    };
    let dims = tensor.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                    Dim::Fixed(*v as usize)
                }
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                    Dim::Symbol(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect()
    });
    Ok(Port {
        name,
        dims,
        float,
        id,
    })
}
