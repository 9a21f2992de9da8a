//! Loading and saving models as safetensors with PyTorch state_dict names.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use wgpu_lstm::io::model_file;
use wgpu_lstm::{Cell, RnnSpec, Weights};

/// A safetensors file from `(name, shape, f32 values)` with the given dtype and metadata.
fn file(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    dtype: Dtype,
    meta: &[(&str, &str)],
) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b = match dtype {
                Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Dtype::F64 => v.iter().flat_map(|x| f64::from(*x).to_le_bytes()).collect(),
                Dtype::F16 => v
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
                Dtype::I32 => v.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            (n.clone(), s.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()));
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, (!meta.is_empty()).then_some(meta)).unwrap()
}

/// The tensors of `weights` under `prefix`.
fn named(weights: &Weights, prefix: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    weights
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                format!("{prefix}{n}"),
                t.shape().to_vec(),
                t.iter().copied().collect(),
            )
        })
        .collect()
}

fn load(bytes: &[u8]) -> Result<model_file::ModelFile, wgpu_lstm::Error> {
    model_file::from_bytes(Path::new("m.safetensors"), bytes)
}

fn err(bytes: &[u8]) -> String {
    let e = load(bytes).unwrap_err().to_string();
    assert!(!e.contains('\n'), "error is not one line: {e}");
    e
}

fn variants() -> Vec<RnnSpec> {
    vec![
        RnnSpec::lstm(5, 7).layers(2).bidirectional(true),
        RnnSpec::lstm(5, 7).bias(false),
        RnnSpec::lstm(5, 7).proj_size(3).layers(3),
        RnnSpec::lstm(5, 7).peephole(true).bidirectional(true),
        RnnSpec::gru(5, 7).layers(2),
        RnnSpec::new(Cell::RnnTanh, 5, 7).bidirectional(true),
        RnnSpec::new(Cell::RnnRelu, 5, 7).layers(2),
    ]
}

#[test]
fn save_and_load_round_trip_every_variant() {
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in variants().into_iter().enumerate() {
        let w = Weights::random(&spec, i as u64).unwrap();
        let path = dir.path().join(format!("m{i}.safetensors"));
        model_file::save(&path, &w, i % 2 == 0).unwrap();
        let m = model_file::load(&path).unwrap();
        assert_eq!(m.weights, w, "{spec:?}");
        assert_eq!(m.batch_first, i % 2 == 0);
        assert_eq!(m.prefix, "");
    }
    // Only the destination is left: no temporary files.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 7);
}

#[test]
fn infers_the_cell_from_gate_rows_and_strips_a_prefix() {
    for spec in [
        RnnSpec::lstm(4, 6),
        RnnSpec::gru(4, 6),
        RnnSpec::new(Cell::RnnTanh, 4, 6),
    ] {
        let w = Weights::random(&spec.clone().layers(2), 1).unwrap();
        let m = load(&file(&named(&w, "encoder.rnn."), Dtype::F32, &[])).unwrap();
        assert_eq!(m.weights, w);
        assert_eq!(m.prefix, "encoder.rnn.");
    }
    // relu cannot be told from the shapes: the metadata says it.
    let w = Weights::random(&RnnSpec::new(Cell::RnnRelu, 4, 6), 1).unwrap();
    let m = load(&file(&named(&w, ""), Dtype::F32, &[("cell", "rnn_relu")])).unwrap();
    assert_eq!(m.weights.spec().cell, Cell::RnnRelu);
    assert_eq!(m.weights, w);
}

#[test]
fn converts_float64_and_float16() {
    let w = Weights::random(&RnnSpec::lstm(3, 4), 2).unwrap();
    let m = load(&file(&named(&w, ""), Dtype::F64, &[])).unwrap();
    assert_eq!(m.weights, w);
    let m = load(&file(&named(&w, ""), Dtype::F16, &[])).unwrap();
    let (a, b) = (&m.weights.get(0, 0).w_ih, &w.get(0, 0).w_ih);
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3));
    assert!(err(&file(&named(&w, ""), Dtype::I32, &[]))
        .contains("has dtype I32; expected F32, F64, F16 or BF16"));
}

#[test]
fn bad_files_name_the_tensor_and_the_shapes() {
    let w = Weights::random(&RnnSpec::lstm(3, 4).layers(3).bidirectional(true), 3).unwrap();
    let good = named(&w, "rnn.");

    let missing: Vec<_> = good
        .iter()
        .filter(|t| t.0 != "rnn.bias_hh_l1_reverse")
        .cloned()
        .collect();
    assert_eq!(
        err(&file(&missing, Dtype::F32, &[])),
        "missing tensor `rnn.bias_hh_l1_reverse` (expected shape [16])"
    );

    let mut shaped = good.clone();
    let i = shaped
        .iter()
        .position(|t| t.0 == "rnn.weight_hh_l2")
        .unwrap();
    shaped[i] = ("rnn.weight_hh_l2".into(), vec![16, 5], vec![0.0; 80]);
    assert_eq!(
        err(&file(&shaped, Dtype::F32, &[])),
        "tensor `rnn.weight_hh_l2`: expected shape [16, 4], got [16, 5]"
    );

    let mut extra = good.clone();
    extra.push(("rnn.weight_xx_l0".into(), vec![2], vec![0.0; 2]));
    assert_eq!(
        err(&file(&extra, Dtype::F32, &[])),
        "unexpected tensor `rnn.weight_xx_l0` with shape [2]"
    );

    // Layers 0 and 2 without layer 1: a gap.
    let gap: Vec<_> = good
        .iter()
        .filter(|t| !t.0.contains("_l1"))
        .cloned()
        .collect();
    assert_eq!(
        err(&file(&gap, Dtype::F32, &[])),
        "missing tensor `rnn.weight_ih_l1` (expected shape [16, 8])"
    );

    let mut mixed = good.clone();
    mixed[0].0 = format!("other.{}", &mixed[0].0[4..]);
    assert!(err(&file(&mixed, Dtype::F32, &[])).contains("tensor names do not share one prefix"));

    assert!(
        err(&file(&good, Dtype::F32, &[("cell", "transformer")])).contains(
            "unknown cell `transformer` in the metadata (expected lstm, gru, rnn_tanh or rnn_relu)"
        )
    );
    assert!(err(&file(&good, Dtype::F32, &[("cell", "gru")]))
        .contains("tensor `rnn.weight_ih_l0`: expected shape [12, 3], got [16, 3]"));
    assert!(err(&file(&good, Dtype::F32, &[("batch_first", "maybe")]))
        .contains("metadata `batch_first` is `maybe`"));

    let odd: Vec<_> = vec![
        ("weight_ih_l0".to_string(), vec![10, 3], vec![0.0; 30]),
        ("weight_hh_l0".to_string(), vec![10, 4], vec![0.0; 40]),
    ];
    assert!(err(&file(&odd, Dtype::F32, &[]))
        .contains("cannot tell the cell: `weight_hh_l0` has 10 rows for hidden size 4"));

    let none: Vec<_> = vec![("fc.weight".to_string(), vec![2, 2], vec![0.0; 4])];
    assert_eq!(
        err(&file(&none, Dtype::F32, &[])),
        "unexpected tensor `fc.weight` with shape [2, 2]"
    );

    assert!(err(b"garbage").contains("not a valid safetensors file"));
    assert!(err(&[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}', 0, 0, 0, 0, 0, 0])
        .contains("not a valid safetensors file"));
}
