//! Weights in every tensor encoding, external data files, and the checks of run-time inputs.

use super::*;

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
