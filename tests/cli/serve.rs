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

/// The KServe manifests in `deploy/kserve/` parse, agree with each other, and the runtime's
/// container arguments start the server (KServe's mount and ports replaced by a temporary
/// folder and free loopback ports), whose probes answer.
#[test]
fn the_kserve_runtime_starts_the_server() {
    use yaml_rust2::YamlLoader;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kserve");
    let read = |name: &str| {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        YamlLoader::load_from_str(&text).unwrap().remove(0)
    };
    let runtime = read("servingruntime.yaml");
    assert_eq!(runtime["kind"].as_str(), Some("ServingRuntime"));
    assert_eq!(
        runtime["apiVersion"].as_str(),
        Some("serving.kserve.io/v1alpha1")
    );
    let protocols: Vec<&str> = runtime["spec"]["protocolVersions"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(protocols, ["v2", "grpc-v2"]);
    let container = &runtime["spec"]["containers"][0];
    let port = container["ports"][0]["containerPort"].as_i64().unwrap();
    assert_eq!(
        container["readinessProbe"]["httpGet"]["port"].as_i64(),
        Some(port)
    );
    let ready_path = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap();
    let service = read("inferenceservice.yaml");
    assert_eq!(service["kind"].as_str(), Some("InferenceService"));
    let model = &service["spec"]["predictor"]["model"];
    assert_eq!(model["runtime"], runtime["metadata"]["name"]);
    let formats = runtime["spec"]["supportedModelFormats"].as_vec().unwrap();
    assert!(formats
        .iter()
        .any(|f| f["name"] == model["modelFormat"]["name"]));

    let case = Case::new();
    std::fs::create_dir(case.path("models")).unwrap();
    let w = Weights::random(&RnnSpec::gru(3, 4), 2).unwrap();
    model_file::save(&case.path("models/model.safetensors"), &w, false).unwrap();
    let device = *crate::devices().last().unwrap();
    let args: Vec<String> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().expect("string arguments");
            let a = a.replace("{{.Name}}", "kws");
            let a = a.replace("/mnt/models", &case.p("models"));
            match a.as_str() {
                "0.0.0.0:8080" | "0.0.0.0:9000" => "127.0.0.1:0".to_string(),
                "gpu" => device.to_string(),
                _ => a,
            }
        })
        .collect();
    assert_eq!(args[0], "serve");
    let mut child = bin().args(&args).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let http: SocketAddr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server did not start"
        );
        if let Some(rest) = line.strip_prefix("listening: http=") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert_eq!(http_request(http, "GET", ready_path, &[], b"").status, 200);
    assert_eq!(
        http_request(http, "GET", "/v2/models/kws/ready", &[], b"").status,
        200
    );
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
