//! Hostile and malformed files: lengths beyond the file, truncations, nesting, huge claimed
//! sizes, cycles, and the size and allocation budgets.

use super::*;

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
