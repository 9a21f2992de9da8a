//! Every ONNX fixture in `tests/onnx/fixtures/` (see `tests/onnx/README.md`): refusal cases
//! give their error; the others run on the CPU and, where an adapter exists, on the GPU, and
//! every expected output is compared with the case's tolerance `|a − e| ≤ abs + rel·|e|`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;
use serde_json::Value as Json;
use wgpu_lstm::io::npy::{self, NpyArray};
use wgpu_lstm::io::onnx::{self, OnnxModel, Value};
use wgpu_lstm::{CpuModel, Forward, GpuModel, UploadOptions, WeightsDtype};

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

/// Compares every expected output; returns the worst absolute error. `case` holds `outputs`
/// and `tolerance` (a case, or its `float_reference`).
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
    // A quantized model (group `quantized`): the CPU computes with its eight-bit weights
    // (compared above with onnxruntime's int8 outputs); float32 engines — the CPU with
    // float32 weights, the GPU — give the float LSTM of the values the integers stand for.
    let float_case = match case.get("float_reference") {
        Some(reference) => {
            assert!(model.quantized(), "{id}: not loaded as a quantized model");
            assert!(
                model
                    .cpu_models()
                    .iter()
                    .all(|m| m.dtype() == WeightsDtype::I8),
                "{id}: the CPU does not compute with the model's int8 weights"
            );
            let f32_models: Vec<CpuModel> = model
                .stacks()
                .iter()
                .map(|s| CpuModel::new(s.weights.clone()))
                .collect();
            let engines: Vec<&dyn Forward> = f32_models.iter().map(|m| m as &dyn Forward).collect();
            let out = model
                .run(&engines, &inputs)
                .unwrap_or_else(|e| panic!("{id}: cpu f32: {e}"));
            let float_err = compare(&format!("{id} cpu f32"), dir, reference, &out);
            // Our int8 against the float LSTM: within about twice onnxruntime's own error
            // (activations rounded to 7 bits per row where it uses 8 per tensor), 3× stated.
            let ort_err = case["quantization"]["onnxruntime_error"].as_f64().unwrap() as f32;
            let bound = serde_json::json!({
                "outputs": reference["outputs"],
                "tolerance": {"abs": 3.0 * ort_err + 1e-4, "rel": 0.0},
            });
            let int8_err = compare(&format!("{id} cpu int8 vs float"), dir, &bound, &cpu);
            eprintln!(
                "  {id}: int8 vs onnxruntime int8 {worst:.2e}, vs float {int8_err:.2e} (onnxruntime int8 vs float {ort_err:.2e}); f32 vs float {float_err:.2e}"
            );
            reference
        }
        None => &case,
    };
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
        worst = worst.max(compare(&format!("{id} gpu"), dir, float_case, &out));
        if model.quantized() {
            // The GPU's int8 weights keep the model's integers and scales, and its activations
            // stay float32: the float LSTM of the values the integers stand for, like f32.
            let int8 = UploadOptions::default().weights(WeightsDtype::I8);
            let models: Vec<GpuModel> = model
                .stacks()
                .iter()
                .map(|s| GpuModel::upload_with(ctx, &s.weights, &int8).unwrap())
                .collect();
            let engines: Vec<&dyn Forward> = models.iter().map(|m| m as &dyn Forward).collect();
            let out = model
                .run(&engines, &inputs)
                .unwrap_or_else(|e| panic!("{id}: gpu int8: {e}"));
            let err = compare(&format!("{id} gpu int8"), dir, float_case, &out);
            eprintln!("  {id}: gpu int8 vs the float LSTM of its integers {err:.2e}");
            worst = worst.max(err);
        }
    }
    let stacks: Vec<usize> = model.stacks().iter().map(|s| s.nodes.len()).collect();
    eprintln!("  {id}: ok, layers per stack {stacks:?}, worst |diff| {worst:.2e}");
    Outcome::Passed(worst)
}

#[test]
fn onnx_fixtures() {
    let gpu = common::gpu();
    let all = common::onnx_fixture_dirs();
    assert!(all.len() >= 130, "only {} fixtures found", all.len());
    let mut passed: BTreeMap<String, (usize, f32)> = BTreeMap::new();
    let mut refused = 0;
    let mut failures = Vec::new();
    for dir in &all {
        let id = case_id(dir);
        let group = id.split('/').next().unwrap().to_string();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(dir, &id, gpu))) {
            Ok(Outcome::Passed(w)) => {
                let e = passed.entry(group).or_insert((0, 0.0));
                e.0 += 1;
                e.1 = e.1.max(w);
            }
            Ok(Outcome::Refused) => refused += 1,
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| format!("{id}: panicked")),
            ),
        }
    }
    let n: usize = passed.values().map(|p| p.0).sum();
    eprintln!(
        "onnx fixtures ({}): {n} passed numerically, {refused} refused as expected",
        if gpu.is_some() {
            "cpu and gpu"
        } else {
            "cpu only"
        }
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
