//! `serve`: models from a safetensors and an ONNX file served on the CPU and the GPU, answered
//! over HTTP, shut down by SIGTERM with exit 0; bad flags refused on one line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;

use ndarray::{Array2, Axis};
use serde_json::json;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::io::model_file;
use wgpu_lstm::{CpuModel, Forward, Input, RnnSpec, Weights};

use crate::common::http::http_request;
use crate::{bin, run, Case};

/// The ONNX model served beside the safetensors one: PyTorch's 3-layer LSTM with states.
const ONNX: &str = "tests/onnx/fixtures/torch/lstm_3layer_states/model.onnx";

#[test]
fn serve_answers_and_shuts_down_on_sigterm() {
    let case = Case::new();
    let spec = RnnSpec::lstm(6, 9).layers(2);
    let weights = Weights::random(&spec, 5).unwrap();
    model_file::save(&case.path("m.safetensors"), &weights, false).unwrap();
    for device in crate::devices() {
        let model_arg = format!("kws={}", case.p("m.safetensors"));
        let onnx_arg = format!("torch={ONNX}");
        let mut child = bin()
            .args(["serve", "--device", device, "--http", "127.0.0.1:0"])
            .args([
                "--grpc",
                "127.0.0.1:0",
                "--model",
                &model_arg,
                "--model",
                &onnx_arg,
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let http: SocketAddr = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "{device}: no `listening` in {seen}"
            );
            seen += &line;
            if let Some(rest) = line.strip_prefix("listening: http=") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        assert!(
            seen.contains("model `kws`: lstm 6 → 9, 2 layer(s)"),
            "{seen}"
        );
        // The ONNX model's tensors go by the graph's names.
        let meta = http_request(http, "GET", "/v2/models/torch", &[], b"").json();
        assert_ne!(meta["inputs"][0]["name"], "x", "{meta}");
        let x = Array2::from_shape_fn((7, 6), |(t, i)| ((t * 6 + i) as f32 * 0.37).sin());
        let body = json!({ "inputs": [{
            "name": "x", "datatype": "FP32", "shape": [7, 6],
            "data": x.iter().copied().collect::<Vec<f32>>(),
        }]});
        let r = http_request(
            http,
            "POST",
            "/v2/models/kws/infer",
            &[],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = r.json();
        let y: Vec<f32> = r["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let want = CpuModel::reference(weights.clone())
            .forward(&Input::new(x.view().insert_axis(Axis(1))))
            .unwrap();
        let tol = Tolerance::GPU_VS_CPU;
        for (g, w) in y.iter().zip(want.y.iter()) {
            assert!(
                (g - w).abs() <= tol.abs.max(tol.rel * w.abs()),
                "{device}: {g} vs {w}"
            );
        }
        assert_eq!(y.len(), want.y.len());
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        let mut rest = String::new();
        for line in stderr.lines() {
            rest += &line.unwrap();
            rest += "\n";
        }
        assert!(
            status.success(),
            "{device}: exit {status:?}; stderr {seen}{rest}"
        );
        assert!(rest.contains("shut down"), "{rest}");
    }
}

#[test]
fn serve_refuses_bad_flags_on_one_line() {
    let case = Case::new();
    let w = Weights::random(&RnnSpec::gru(3, 4), 1).unwrap();
    model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
    let m = format!("a={}", case.p("m.safetensors"));
    for (args, needle) in [
        (vec!["--model", "nonsense"], "is not NAME=PATH"),
        (
            vec!["--model", "a=/no/such/file.safetensors"],
            "/no/such/file.safetensors",
        ),
        (vec!["--model", &m, "--http", "nope"], "--http `nope`"),
        (
            vec!["--model", &m, "--http", "off", "--grpc", "off"],
            "an HTTP or a gRPC listener",
        ),
        (
            vec!["--model", &m, "--model", &m],
            "two models are named `a`",
        ),
        (vec!["--model", "bad/name=x.safetensors"], ""),
        (vec!["--model", &m, "--max-batch", "0"], "max_batch"),
    ] {
        let mut full = vec!["serve", "--device", "cpu"];
        if !args.contains(&"--http") {
            full.extend(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]);
        }
        full.extend(args.iter().copied());
        let out = run(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{args:?}: {err}");
        assert!(last.contains(needle), "{args:?}: `{needle}` in {err}");
    }
}
