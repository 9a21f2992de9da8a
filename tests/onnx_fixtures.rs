//! Every ONNX fixture in `tests/onnx/fixtures/` (see `tests/onnx/README.md`): refusal cases
//! give their error; the others run on the CPU and, where an adapter exists, on the GPU, and
//! every expected output is compared with the case's tolerance `|a − e| ≤ abs + rel·|e|` —
//! except the cases listed in `EXPECTED_UNSUPPORTED`, which must be refused as "not supported
//! yet" (the list shrinks as the engines learn ONNX's options; a listed case that runs fails
//! this test, so does an unlisted one that does not).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use serde_json::Value as Json;
use wgpu_lstm::io::npy::{self, NpyArray};
use wgpu_lstm::io::onnx::{self, OnnxModel, Value};
use wgpu_lstm::{Forward, GpuModel};

/// Cases the engines cannot compute yet, with the refused attribute (a substring of the
/// error, which must also say "not supported yet").
const EXPECTED_UNSUPPORTED: &[(&str, &str)] = &[
    // `direction = reverse` alone (bidirectional runs): 22
    ("onnx_node/test_gru_reverse", "direction"),
    ("onnx_node/test_lstm_reverse", "direction"),
    ("onnx_node/test_simple_rnn_reverse", "direction"),
    ("random/gru_act_reverse_softplus_tanh", "direction"),
    ("random/gru_lbr1_reverse_layout0", "direction"),
    ("random/gru_lbr1_reverse_layout1", "direction"),
    ("random/gru_reverse_layout0_bare", "direction"),
    ("random/gru_reverse_layout0_full", "direction"),
    ("random/gru_reverse_layout1_bare", "direction"),
    ("random/gru_reverse_layout1_full", "direction"),
    ("random/gru_seq_reverse_batch1", "direction"),
    ("random/lstm_act_reverse_sigmoid_elu_leakyrelu", "direction"),
    ("random/lstm_peephole_reverse_layout1", "direction"),
    ("random/lstm_reverse_layout0_bare", "direction"),
    ("random/lstm_reverse_layout0_full", "direction"),
    ("random/lstm_reverse_layout1_bare", "direction"),
    ("random/lstm_reverse_layout1_full", "direction"),
    ("random/rnn_clip_reverse", "direction"),
    ("random/rnn_reverse_layout0_bare", "direction"),
    ("random/rnn_reverse_layout0_full", "direction"),
    ("random/rnn_reverse_layout1_bare", "direction"),
    ("random/rnn_reverse_layout1_full", "direction"),
    // GRU `linear_before_reset = 0` (ONNX's default; PyTorch's GRU is 1): 17
    ("keras/keras_gru_reset_before", "linear_before_reset"),
    ("onnx_node/test_gru_batchwise", "linear_before_reset"),
    ("onnx_node/test_gru_bidirectional", "linear_before_reset"),
    ("onnx_node/test_gru_defaults", "linear_before_reset"),
    ("onnx_node/test_gru_seq_length", "linear_before_reset"),
    (
        "onnx_node/test_gru_with_initial_bias",
        "linear_before_reset",
    ),
    (
        "random/gru_bidirectional_layout0_bare",
        "linear_before_reset",
    ),
    (
        "random/gru_bidirectional_layout0_full",
        "linear_before_reset",
    ),
    (
        "random/gru_bidirectional_layout1_bare",
        "linear_before_reset",
    ),
    (
        "random/gru_bidirectional_layout1_full",
        "linear_before_reset",
    ),
    ("random/gru_forward_layout0_bare", "linear_before_reset"),
    ("random/gru_forward_layout0_full", "linear_before_reset"),
    ("random/gru_forward_layout1_bare", "linear_before_reset"),
    ("random/gru_forward_layout1_full", "linear_before_reset"),
    (
        "random/gru_lbr0_explicit_bidirectional",
        "linear_before_reset",
    ),
    (
        "random/gru_no_hidden_size_attr_bidirectional",
        "linear_before_reset",
    ),
    ("random/gru_t1_bidirectional_layout1", "linear_before_reset"),
    // non-default `activations` (RNN Tanh / Relu run): 19
    ("keras/keras_lstm_hard_sigmoid", "activations"),
    (
        "random/gru_act_bidirectional_hardsigmoid_leakyrelu_sigmoid_thresholdedrelu",
        "activations",
    ),
    (
        "random/gru_act_bidirectional_hardsigmoid_softsign_sigmoid_scaledtanh",
        "activations",
    ),
    (
        "random/gru_act_bidirectional_sigmoid_relu_softsign_affine",
        "activations",
    ),
    ("random/gru_act_default_params_bidirectional", "activations"),
    ("random/gru_act_forward_sigmoid_elu", "activations"),
    (
        "random/lstm_act_bidirectional_hardsigmoid_tanh_softsign_sigmoid_scaledtanh_elu",
        "activations",
    ),
    (
        "random/lstm_act_bidirectional_sigmoid_relu_affine_hardsigmoid_leakyrelu_thresholdedrelu",
        "activations",
    ),
    ("random/lstm_act_default_params_forward", "activations"),
    (
        "random/lstm_act_default_params_thresholdedrelu_affine",
        "activations",
    ),
    (
        "random/lstm_act_forward_softsign_softplus_tanh",
        "activations",
    ),
    ("random/lstm_act_partial_params_forward", "activations"),
    (
        "random/rnn_act_bidirectional_affine_hardsigmoid",
        "activations",
    ),
    ("random/rnn_act_bidirectional_elu_softsign", "activations"),
    ("random/rnn_act_bidirectional_leakyrelu_tanh", "activations"),
    ("random/rnn_act_bidirectional_relu_sigmoid", "activations"),
    (
        "random/rnn_act_bidirectional_thresholdedrelu_scaledtanh",
        "activations",
    ),
    ("random/rnn_act_default_params_bidirectional", "activations"),
    ("random/rnn_act_forward_softplus", "activations"),
    // `clip` on the gate pre-activations: 4
    ("random/gru_clip_bidirectional", "clip"),
    ("random/gru_clip_lbr1_forward", "clip"),
    ("random/lstm_clip_forward", "clip"),
    (
        "random/lstm_clip_input_forget_peephole_bidirectional_layout1",
        "clip",
    ),
    // `input_forget = 1`: 2
    ("random/lstm_input_forget_forward", "input_forget"),
    (
        "random/lstm_input_forget_peephole_bidirectional",
        "input_forget",
    ),
    // a `sequence_lens` entry of 0 (refused at run time): 2
    ("random/lstm_seq_zero_length_bidirectional", "sequence_lens"),
    ("random/rnn_seq_zero_length_forward", "sequence_lens"),
];

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/fixtures");
    let mut out = Vec::new();
    for group in std::fs::read_dir(&root).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir() {
            continue;
        }
        for case in std::fs::read_dir(&group).unwrap() {
            let case = case.unwrap().path();
            if case.join("case.json").exists() {
                out.push(case);
            }
        }
    }
    out.sort();
    out
}

fn case_id(dir: &Path) -> String {
    let case = dir.file_name().unwrap().to_string_lossy();
    let group = dir.parent().unwrap().file_name().unwrap().to_string_lossy();
    format!("{group}/{case}")
}

fn read_inputs(dir: &Path, case: &Json) -> BTreeMap<String, Value> {
    let mut inputs = BTreeMap::new();
    for (name, file) in case["inputs"].as_object().unwrap() {
        let a = npy::read(&dir.join(file.as_str().unwrap())).unwrap();
        let v = match a {
            NpyArray::F32(a) => Value::F32(a),
            NpyArray::F64(a) => Value::F32(a.mapv(|v| v as f32)),
            NpyArray::I32(a) => Value::from(a),
            NpyArray::I64(a) => Value::I64(a),
        };
        inputs.insert(name.clone(), v);
    }
    inputs
}

fn read_f32(path: &Path) -> ArrayD<f32> {
    match npy::read(path).unwrap() {
        NpyArray::F32(a) => a,
        NpyArray::F64(a) => a.mapv(|v| v as f32),
        other => panic!("{}: {} expected output", path.display(), other.dtype()),
    }
}

/// Compares every expected output; returns the worst absolute error.
#[track_caller]
fn compare(what: &str, dir: &Path, case: &Json, actual: &BTreeMap<String, ArrayD<f32>>) -> f32 {
    let tol = &case["tolerance"];
    let (abs, rel) = (
        tol["abs"].as_f64().unwrap() as f32,
        tol["rel"].as_f64().unwrap() as f32,
    );
    let mut worst = 0.0f32;
    let outputs = case["outputs"].as_object().unwrap();
    assert!(!outputs.is_empty(), "{what}: no expected outputs");
    for (name, file) in outputs {
        let expected = read_f32(&dir.join(file.as_str().unwrap()));
        let got = actual
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no output `{name}`"));
        assert_eq!(got.shape(), expected.shape(), "{what}: shape of `{name}`");
        assert!(!expected.is_empty(), "{what}: `{name}` is empty");
        for (i, (&a, &e)) in got.iter().zip(expected.iter()).enumerate() {
            let err = (a - e).abs();
            assert!(
                err <= abs + rel * e.abs(),
                "{what}: output `{name}` element {i}: expected {e}, got {a} (|diff| = {err:e}, tolerance {abs:e} + {rel:e}·|e|)"
            );
            worst = worst.max(err);
        }
    }
    worst
}

fn roles_of(m: &OnnxModel) -> BTreeMap<String, String> {
    let r = m.roles();
    [
        ("input", &r.input),
        ("h0", &r.h0),
        ("c0", &r.c0),
        ("lengths", &r.lengths),
        ("output", &r.output),
        ("hn", &r.hn),
        ("cn", &r.cn),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
    .collect()
}

/// What a case did.
enum Outcome {
    Passed(f32),
    Unsupported,
    Refused,
}

fn check_case(dir: &Path, id: &str, gpu: Option<&wgpu_lstm::GpuContext>) -> Outcome {
    let case: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let loaded = onnx::load(&dir.join("model.onnx"));

    if let Some(expect) = case["expect_error"].as_str() {
        let e = loaded
            .err()
            .unwrap_or_else(|| panic!("{id}: loads, expected an error"));
        let msg = e.to_string();
        assert!(msg.contains(expect), "{id}: error `{msg}` lacks `{expect}`");
        assert!(!msg.contains('\n'), "{id}: error is not one line: {msg}");
        eprintln!("  {id}: refused: {msg}");
        return Outcome::Refused;
    }
    if let Some(ops) = case["requires_ops"].as_array() {
        // Value-computing ops (a Keras mask): refused, naming one of them.
        let e = loaded.err().unwrap_or_else(|| panic!("{id}: loads"));
        let msg = e.to_string();
        assert!(
            ops.iter().any(|o| msg.contains(o.as_str().unwrap())),
            "{id}: error `{msg}` names none of {ops:?}"
        );
        eprintln!("  {id}: refused: {msg}");
        return Outcome::Refused;
    }
    let inputs = read_inputs(dir, &case);
    if let Some(&(_, attr)) = EXPECTED_UNSUPPORTED.iter().find(|(c, _)| *c == id) {
        let msg = match loaded {
            Err(e) => e.to_string(),
            Ok(m) => match m.run_cpu(&inputs) {
                Err(e) => e.to_string(),
                Ok(_) => panic!(
                    "{id} is listed in EXPECTED_UNSUPPORTED but runs: remove it from the list"
                ),
            },
        };
        assert!(
            msg.contains("not supported yet") && msg.contains(attr),
            "{id}: expected a `{attr}` … not supported yet error, got: {msg}"
        );
        assert!(!msg.contains('\n'), "{id}: error is not one line: {msg}");
        eprintln!("  {id}: expected-unsupported: {msg}");
        return Outcome::Unsupported;
    }
    let model = loaded.unwrap_or_else(|e| panic!("{id}: {e}"));
    let expected_roles: BTreeMap<String, String> = case["roles"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(roles_of(&model), expected_roles, "{id}: roles");
    let cpu = model
        .run_cpu(&inputs)
        .unwrap_or_else(|e| panic!("{id}: cpu: {e}"));
    let mut worst = compare(&format!("{id} cpu"), dir, &case, &cpu);
    if let Some(ctx) = gpu {
        let models: Vec<GpuModel> = model
            .stacks()
            .iter()
            .map(|s| GpuModel::upload(ctx, &s.weights).unwrap())
            .collect();
        let engines: Vec<&dyn Forward> = models.iter().map(|m| m as &dyn Forward).collect();
        let out = model
            .run(&engines, &inputs)
            .unwrap_or_else(|e| panic!("{id}: gpu: {e}"));
        worst = worst.max(compare(&format!("{id} gpu"), dir, &case, &out));
    }
    let stacks: Vec<usize> = model.stacks().iter().map(|s| s.nodes.len()).collect();
    eprintln!("  {id}: ok, layers per stack {stacks:?}, worst |diff| {worst:.2e}");
    Outcome::Passed(worst)
}

#[test]
fn onnx_fixtures() {
    let gpu = common::gpu();
    let all = fixtures();
    assert!(all.len() >= 130, "only {} fixtures found", all.len());
    let mut passed: BTreeMap<String, (usize, f32)> = BTreeMap::new();
    let (mut unsupported, mut refused) = (0, 0);
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for dir in &all {
        let id = case_id(dir);
        ids.push(id.clone());
        let group = id.split('/').next().unwrap().to_string();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(dir, &id, gpu))) {
            Ok(Outcome::Passed(w)) => {
                let e = passed.entry(group).or_insert((0, 0.0));
                e.0 += 1;
                e.1 = e.1.max(w);
            }
            Ok(Outcome::Unsupported) => unsupported += 1,
            Ok(Outcome::Refused) => refused += 1,
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| format!("{id}: panicked")),
            ),
        }
    }
    for (c, _) in EXPECTED_UNSUPPORTED {
        assert!(
            ids.iter().any(|s| s == c),
            "{c} is listed but not a fixture"
        );
    }
    let n: usize = passed.values().map(|p| p.0).sum();
    eprintln!(
        "onnx fixtures ({}): {n} passed numerically, {unsupported} expected-unsupported, {refused} refused as expected",
        if gpu.is_some() { "cpu and gpu" } else { "cpu only" }
    );
    for (g, (k, w)) in &passed {
        eprintln!("  {g}: {k} passed, worst |diff| {w:.2e}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
