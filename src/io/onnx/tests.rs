//! Hostile and malformed files, tensor encodings and external data.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use prost::Message;

use super::pb::{self, tensor_proto::DataType};
use super::*;

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

#[test]
fn length_prefix_beyond_the_file_is_an_error() {
    // ModelProto.graph (field 7, length-delimited) claiming 2^32 − 1 bytes in a 6-byte file.
    let e = err_of(&[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(e.contains("protobuf"), "{e}");
    // An initializer's raw_data (GraphProto.initializer = 5, TensorProto.raw_data = 9)
    // claiming 2^40 bytes: nested lengths that each exceed what follows.
    let mut raw = vec![0x4a];
    raw.extend(varint(1 << 40));
    let mut init = vec![0x2a];
    init.extend(varint(raw.len() as u64));
    init.extend(&raw);
    let mut graph = vec![0x3a];
    graph.extend(varint(init.len() as u64));
    graph.extend(&init);
    let e = err_of(&graph);
    assert!(e.contains("protobuf"), "{e}");
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn garbage_and_empty_files_are_errors() {
    assert!(err_of(&[]).contains("no graph"));
    assert!(err_of(b"\xff\xff\xff\xff").contains("protobuf"));
    assert!(err_of(b"not an onnx file at all").contains("protobuf"));
}

#[test]
fn every_truncation_is_an_error_or_a_model() {
    let bytes = lstm_model(f32_tensor).encode_to_vec();
    for len in 0..bytes.len() {
        let r = std::panic::catch_unwind(|| from_bytes(&bytes[..len]).is_ok());
        assert!(r.is_ok(), "prefix of {len} bytes panics");
    }
    assert!(from_bytes(&bytes).is_ok());
}

#[test]
fn nesting_beyond_the_recursion_limit_is_an_error() {
    // A Loop-like attribute graph nested 200 deep.
    let mut g = pb::GraphProto::default();
    for _ in 0..200 {
        let mut n = node("If", "if", &[], &[]);
        n.attribute.push(pb::AttributeProto {
            name: Some("then_branch".into()),
            g: Some(g),
            ..Default::default()
        });
        g = pb::GraphProto {
            node: vec![n],
            ..Default::default()
        };
    }
    let m = pb::ModelProto {
        graph: Some(g),
        ..Default::default()
    };
    let e = err_of(&m.encode_to_vec());
    assert!(e.contains("protobuf"), "{e}");
}

#[test]
fn shapes_claiming_huge_sizes_are_errors_without_allocating() {
    // dims whose product overflows, and dims claiming 2^40 elements over no data.
    for dims in [vec![1i64 << 40, 1 << 40], vec![1 << 40], vec![-1, 4]] {
        let m = lstm_model(|n, d, v| {
            if n == "W" {
                f32_tensor(n, &dims, &[])
            } else {
                f32_tensor(n, d, v)
            }
        });
        let e = err_of(&m.encode_to_vec());
        assert!(e.contains("initializer `W`"), "{e}");
    }
    // raw_data shorter than the shape needs.
    let m = lstm_model(|n, d, v| {
        let mut t = f32_tensor(n, d, &[]);
        if n == "W" {
            t.dims = vec![1 << 30, 4];
            t.raw_data = Some(vec![0; 16]);
        } else {
            t.float_data = v.to_vec();
        }
        t
    });
    assert!(err_of(&m.encode_to_vec()).contains("raw_data"));
    // ConstantOfShape folded at load time into 2^40 elements.
    let mut m = lstm_model(f32_tensor);
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(pb::TensorProto {
        name: Some("big".into()),
        dims: vec![2],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![1 << 20, 1 << 20],
        ..Default::default()
    });
    g.node
        .insert(0, node("ConstantOfShape", "zeros", &["big"], &["Z"]));
    g.output
        .push(value_info("Z", DataType::Float, &[1 << 20, 1 << 20]));
    let e = err_of(&m.encode_to_vec());
    assert!(e.contains("ConstantOfShape") && e.contains("limit"), "{e}");
}

#[test]
fn cycles_and_undefined_inputs_are_errors() {
    let mut m = lstm_model(f32_tensor);
    let g = m.graph.as_mut().unwrap();
    g.node[0].input[0] = "X2".into();
    g.node.push(node("Identity", "loop", &["Y"], &["X3"]));
    g.node.push(node("Squeeze", "sq", &["X3"], &["X2"]));
    assert!(err_of(&m.encode_to_vec()).contains("cycle"));
    let mut m = lstm_model(f32_tensor);
    m.graph.as_mut().unwrap().node[0].input[0] = "nowhere".into();
    assert!(err_of(&m.encode_to_vec()).contains("`nowhere`"));
}

#[test]
fn weights_read_alike_from_every_encoding() {
    let reference = run(&lstm_model(f32_tensor));
    assert_eq!(reference["Y"].shape(), &[3, 1, 2, 3]);
    let raw_f32 = lstm_model(|n, d, v| pb::TensorProto {
        name: Some(n.into()),
        dims: d.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    });
    assert_eq!(run(&raw_f32), reference);
    let f64_typed = lstm_model(|n, d, v| pb::TensorProto {
        name: Some(n.into()),
        dims: d.to_vec(),
        data_type: Some(DataType::Double as i32),
        double_data: v.iter().map(|&x| f64::from(x)).collect(),
        ..Default::default()
    });
    assert_eq!(run(&f64_typed), reference);
    // float16 weights: the same model rounded to f16, raw and typed (bit patterns in int32_data).
    let rounded = lstm_model(|n, d, v| {
        let r: Vec<f32> = v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
        f32_tensor(n, d, &r)
    });
    let expected = run(&rounded);
    let f16_raw = lstm_model(|n, d, v| pb::TensorProto {
        name: Some(n.into()),
        dims: d.to_vec(),
        data_type: Some(DataType::Float16 as i32),
        raw_data: Some(
            v.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        ..Default::default()
    });
    assert_eq!(run(&f16_raw), expected);
    let f16_typed = lstm_model(|n, d, v| pb::TensorProto {
        name: Some(n.into()),
        dims: d.to_vec(),
        data_type: Some(DataType::Float16 as i32),
        int32_data: v
            .iter()
            .map(|&x| i32::from(half::f16::from_f32(x).to_bits()))
            .collect(),
        ..Default::default()
    });
    assert_eq!(run(&f16_typed), expected);
}

fn external(
    name: &str,
    dims: &[i64],
    location: &str,
    offset: usize,
    len: usize,
) -> pb::TensorProto {
    let kv = |k: &str, v: String| pb::StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    pb::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        data_location: Some(1),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", len.to_string()),
        ],
        ..Default::default()
    }
}

#[test]
fn external_data_is_read_from_the_model_directory_only() {
    let reference = run(&lstm_model(f32_tensor));
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("model");
    std::fs::create_dir(&sub).unwrap();
    // All three tensors in one file, W at offset 0, R and B after it.
    let mut blob = Vec::new();
    let mut offsets = BTreeMap::new();
    for (n, _, v) in weights() {
        offsets.insert(n, (blob.len(), v.len() * 4));
        blob.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    std::fs::write(sub.join("weights.bin"), &blob).unwrap();
    std::fs::write(dir.path().join("outside.bin"), &blob).unwrap();
    let with_location = |loc: &str| {
        lstm_model(|n, d, _| {
            let (o, l) = offsets[n];
            external(n, d, loc, o, l)
        })
    };
    let write = |m: &pb::ModelProto| {
        let p = sub.join("m.onnx");
        std::fs::write(&p, m.encode_to_vec()).unwrap();
        p
    };
    let ok = load(&write(&with_location("weights.bin"))).unwrap();
    assert_eq!(ok.run_cpu(&x_input()).unwrap(), reference);
    let ok = load(&write(&with_location("./weights.bin"))).unwrap();
    assert_eq!(ok.run_cpu(&x_input()).unwrap(), reference);

    let outside = dir.path().join("outside.bin");
    for loc in [
        "../outside.bin".to_string(),
        outside.display().to_string(),
        String::new(),
    ] {
        let e = load(&write(&with_location(&loc))).unwrap_err().to_string();
        assert!(e.contains("inside the model's directory"), "{loc}: {e}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, sub.join("link.bin")).unwrap();
        let e = load(&write(&with_location("link.bin")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the model's directory"), "{e}");
    }
    // Beyond the end of the file, or a length that disagrees with the shape.
    let m = lstm_model(|n, d, _| {
        let (o, l) = offsets[n];
        external(n, d, "weights.bin", o + (1 << 20), l)
    });
    let e = load(&write(&m)).unwrap_err().to_string();
    assert!(e.contains("are needed at offset"), "{e}");
    let m = lstm_model(|n, d, _| {
        let (o, l) = offsets[n];
        external(n, d, "weights.bin", o, l + 4)
    });
    assert!(load(&write(&m)).unwrap_err().to_string().contains("length"));
    // From bytes there is no directory to read from.
    let e = from_bytes(&with_location("weights.bin").encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(e.contains("external data"), "{e}");
}

#[test]
fn run_checks_inputs() {
    let m = from_bytes(&lstm_model(f32_tensor).encode_to_vec()).unwrap();
    assert_eq!(m.roles().input.as_deref(), Some("X"));
    assert_eq!(m.roles().output.as_deref(), Some("Y"));
    assert_eq!(m.roles().hn.as_deref(), Some("Y_h"));
    let e = m.run_cpu(&BTreeMap::new()).unwrap_err().to_string();
    assert!(e.contains("`X` is missing"), "{e}");
    let mut wrong = x_input();
    wrong.insert(
        "X".into(),
        Value::F32(ArrayD::zeros(IxDyn(&[T as usize, B as usize, 5]))),
    );
    let e = m.run_cpu(&wrong).unwrap_err().to_string();
    assert!(e.contains("declares [3, 2, 2]"), "{e}");
    let mut extra = x_input();
    extra.insert("Z".into(), Value::I64(ArrayD::zeros(IxDyn(&[1]))));
    assert!(m.run_cpu(&extra).unwrap_err().to_string().contains("`Z`"));
    let e = m.run(&[], &x_input()).unwrap_err().to_string();
    assert!(e.contains("1 recurrent stack"), "{e}");
}

#[test]
fn chains_of_copies_stay_within_the_budget() {
    // 2^20 zeros, then doubled by Concat(x, x) 30 times, or copied by 100 Identity nodes:
    // each is an error once the graph's tensors would pass the budget, never 2^50 elements.
    for doubling in [true, false] {
        let mut m = lstm_model(f32_tensor);
        let g = m.graph.as_mut().unwrap();
        g.initializer.push(pb::TensorProto {
            name: Some("n".into()),
            dims: vec![1],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![1 << 20],
            ..Default::default()
        });
        g.node
            .push(node("ConstantOfShape", "zeros", &["n"], &["v0"]));
        let steps = if doubling { 30 } else { 100 };
        for k in 0..steps {
            let (a, b) = (format!("v{k}"), format!("v{}", k + 1));
            let mut n = if doubling {
                node("Concat", &format!("c{k}"), &[&a, &a], &[&b])
            } else {
                node("Identity", &format!("c{k}"), &[&a], &[&b])
            };
            n.attribute.push(attr_i("axis", 0));
            g.node.push(n);
        }
        g.output
            .push(value_info(&format!("v{steps}"), DataType::Float, &[]));
        let e = err_of(&m.encode_to_vec());
        assert!(e.contains("may hold"), "{e}");
    }
}

#[test]
fn files_beyond_the_size_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.onnx");
    // Sparse: no disk space is used, and the loader must not read it.
    std::fs::File::create(&p)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("more than the"), "{e}");
}

#[test]
fn graphs_beyond_the_size_limits_are_refused() {
    let mut m = lstm_model(f32_tensor);
    let g = m.graph.as_mut().unwrap();
    for k in 0..20_000 {
        g.node
            .push(node("Identity", "i", &["Y"], &[&format!("copy{k}")]));
    }
    assert!(err_of(&m.encode_to_vec()).contains("nodes"));
    let mut m = lstm_model(f32_tensor);
    let g = m.graph.as_mut().unwrap();
    for k in 0..70 {
        let mut n = g.node[0].clone();
        n.output = vec![format!("Y{k}")];
        g.node.push(n);
    }
    assert!(err_of(&m.encode_to_vec()).contains("LSTM/GRU/RNN nodes"));
}

#[test]
fn slices_of_empty_tensors_with_huge_dims_allocate_nothing() {
    // Expand to [2^40, 0] (no elements), then Slice and Split its 2^40-long axis.
    let mut m = lstm_model(f32_tensor);
    let g = m.graph.as_mut().unwrap();
    let ints = |name: &str, v: Vec<i64>| pb::TensorProto {
        name: Some(name.into()),
        dims: vec![v.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        int64_data: v,
        ..Default::default()
    };
    g.initializer.push(ints("shape", vec![1 << 40, 0]));
    g.initializer.push(ints("one", vec![1]));
    g.initializer.push(ints("starts", vec![0]));
    g.initializer.push(ints("ends", vec![i64::MAX]));
    g.node.push(node("Expand", "e", &["one", "shape"], &["E"]));
    g.node
        .push(node("Slice", "s", &["E", "starts", "ends"], &["S"]));
    g.node.push(node("Split", "p", &["S"], &["P0", "P1"]));
    g.output
        .push(value_info("P1", DataType::Int64, &[1 << 39, 0]));
    let m = from_bytes(&m.encode_to_vec()).unwrap();
    let out = m.run_cpu(&x_input()).unwrap();
    assert_eq!(out["P1"].shape(), &[1 << 39, 0]);
}
