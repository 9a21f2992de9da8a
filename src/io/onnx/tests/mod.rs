//! Unit tests of the ONNX loader on models built in code: hostile and malformed files and the
//! limits (`hostile`), tensor encodings, external data and run-time input checks
//! (`encodings`). This file holds the model builders both use.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use prost::Message;

use super::*;
use crate::io::onnx::pb::{self, tensor_proto::DataType};

fn tensor_type(elem: DataType, dims: &[i64]) -> pb::TypeProto {
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: Some(elem as i32),
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| pb::tensor_shape_proto::Dimension {
                        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: DataType, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(tensor_type(elem, dims)),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn attr_i(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

const T: i64 = 3;
const B: i64 = 2;
const I: i64 = 2;
const H: i64 = 3;

/// Deterministic weights for an LSTM with I = 2, H = 3.
fn weights() -> [(String, Vec<i64>, Vec<f32>); 3] {
    let gen = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin() * 0.5).collect();
    [
        (
            "W".into(),
            vec![1, 4 * H, I],
            gen((4 * H * I) as usize, 0.7),
        ),
        (
            "R".into(),
            vec![1, 4 * H, H],
            gen((4 * H * H) as usize, 1.3),
        ),
        ("B".into(), vec![1, 8 * H], gen((8 * H) as usize, 0.3)),
    ]
}

/// A one-node LSTM model whose initializers are made by `init`.
fn lstm_model(init: impl Fn(&str, &[i64], &[f32]) -> pb::TensorProto) -> pb::ModelProto {
    let mut lstm = node("LSTM", "lstm", &["X", "W", "R", "B"], &["Y", "Y_h"]);
    lstm.attribute.push(attr_i("hidden_size", H));
    pb::ModelProto {
        ir_version: Some(8),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(14),
        }],
        graph: Some(pb::GraphProto {
            node: vec![lstm],
            initializer: weights().iter().map(|(n, d, v)| init(n, d, v)).collect(),
            input: vec![value_info("X", DataType::Float, &[T, B, I])],
            output: vec![
                value_info("Y", DataType::Float, &[T, 1, B, H]),
                value_info("Y_h", DataType::Float, &[1, B, H]),
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn x_input() -> BTreeMap<String, Value> {
    let x = ArrayD::from_shape_fn(IxDyn(&[T as usize, B as usize, I as usize]), |ix| {
        (ix[0] as f32 - ix[1] as f32 * 0.5 + ix[2] as f32 * 0.25).cos()
    });
    BTreeMap::from([("X".to_string(), Value::F32(x))])
}

fn run(m: &pb::ModelProto) -> BTreeMap<String, ArrayD<f32>> {
    from_bytes(&m.encode_to_vec())
        .unwrap()
        .run_cpu(&x_input())
        .unwrap()
}

fn err_of(bytes: &[u8]) -> String {
    let e = from_bytes(bytes).expect_err("an error").to_string();
    assert!(!e.contains('\n'), "not one line: {e}");
    e
}

mod encodings;
mod hostile;
