//! HTTP/REST: health, metadata, configuration, inference with JSON and binary tensors.

use ndarray::Array2;
use serde_json::json;

use crate::common::{rng, seed, uniform};
use crate::{alone, json_input, json_output, specs, TestServer};

#[test]
fn health_metadata_and_config_describe_every_model() {
    let server = TestServer::start();
    assert_eq!(server.get("/v2/health/live").status, 200);
    assert_eq!(server.get("/v2/health/ready").status, 200);
    let meta = server.get("/v2").json();
    assert_eq!(meta["name"], "wgpu-lstm");
    let ext: Vec<&str> = meta["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for e in ["binary_tensor_data", "sequence", "model_configuration"] {
        assert!(ext.contains(&e), "extension {e} in {ext:?}");
    }
    for (name, spec) in specs() {
        for base in [
            format!("/v2/models/{name}"),
            format!("/v2/models/{name}/versions/1"),
        ] {
            let m = server.get(&base).json();
            assert_eq!(m["name"], name);
            assert_eq!(m["versions"], json!(["1"]));
            assert_eq!(m["inputs"][0]["name"], "x");
            assert_eq!(m["inputs"][0]["datatype"], "FP32");
            assert_eq!(m["inputs"][0]["shape"], json!([-1, spec.input_size]));
            assert_eq!(m["outputs"][0]["name"], "y");
            assert_eq!(m["outputs"][0]["shape"], json!([-1, spec.output_size()]));
            let states = spec.num_layers * spec.num_directions();
            assert_eq!(m["outputs"][1]["shape"], json!([states, spec.hidden_out()]));
            let outputs = m["outputs"].as_array().unwrap().len();
            assert_eq!(outputs, if spec.cell.has_cell_state() { 3 } else { 2 });
            assert_eq!(server.get(&format!("{base}/ready")).status, 200);
            let config = server.get(&format!("{base}/config")).json();
            assert_eq!(config["name"], name);
            assert_eq!(config["max_batch_size"], 0);
            assert_eq!(config["input"][0]["dims"], json!([-1, spec.input_size]));
            assert_eq!(config["input"][1]["optional"], true);
            // Sequence-aware clients recognise a streamable model by this block.
            assert_eq!(
                config.get("sequence_batching").is_some(),
                !spec.bidirectional,
                "{name}: {config}"
            );
        }
    }
    let e = server.get("/v2/models/nope").error(404);
    assert!(e.contains("unknown model `nope`"), "{e}");
    let e = server.get("/v2/models/lstm/versions/2").error(404);
    assert!(e.contains("no version `2`"), "{e}");
    assert!(server.get("/v2/models/nope/ready").status == 404);
    server.get("/v2/nowhere").error(404);
}

#[test]
fn json_inference_equals_each_sequence_alone() {
    let seed = seed("json_inference_equals_each_sequence_alone", 11);
    let server = TestServer::start();
    let mut rng = rng(seed);
    for (name, spec) in specs() {
        let states = spec.num_layers * spec.num_directions();
        for steps in [1, 2, 13, 40] {
            let x: Array2<f32> = uniform(&mut rng, (steps, spec.input_size), 1.0);
            let h0: Array2<f32> = uniform(&mut rng, (states, spec.hidden_out()), 0.5);
            let c0: Array2<f32> = uniform(&mut rng, (states, spec.hidden_size), 0.5);
            let lstm = spec.cell.has_cell_state();
            let mut inputs = vec![json_input("x", &x), json_input("h0", &h0)];
            if lstm {
                inputs.push(json_input("c0", &c0));
            }
            let r = server.post_json(
                &format!("/v2/models/{name}/infer"),
                &json!({ "id": "r1", "inputs": inputs }),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let r = r.json();
            assert_eq!(r["model_name"], name);
            assert_eq!(r["model_version"], "1");
            assert_eq!(r["id"], "r1");
            let (y, h_n, c_n) = alone(name, &x, Some(&h0), lstm.then_some(&c0));
            assert_eq!(json_output(&r, "y"), y, "{name} T={steps}: y");
            assert_eq!(json_output(&r, "h_n"), h_n, "{name} T={steps}: h_n");
            if let Some(c_n) = c_n {
                assert_eq!(json_output(&r, "c_n"), c_n, "{name} T={steps}: c_n");
            }
        }
    }
}

#[test]
fn nested_data_and_requested_outputs() {
    let server = TestServer::start();
    let x = Array2::from_shape_fn((3, 3), |(t, i)| (t * 3 + i) as f32 * 0.1);
    let nested: Vec<Vec<f32>> = x.outer_iter().map(|r| r.to_vec()).collect();
    let r = server.post_json(
        "/v2/models/gru/infer",
        &json!({
            "inputs": [{ "name": "x", "datatype": "FP32", "shape": [3, 3], "data": nested }],
            "outputs": [{ "name": "h_n" }],
        }),
    );
    let r = r.json();
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "only the output asked for: {r}");
    assert_eq!(json_output(&r, "h_n"), alone("gru", &x, None, None).1);
    assert!(r.get("id").is_none());
}

/// Triton's binary extension: inputs as raw bytes after the JSON header, outputs the same
/// where asked for (per output, or all with `binary_data_output`).
#[test]
fn binary_tensor_data_both_ways() {
    let seed = seed("binary_tensor_data_both_ways", 12);
    let server = TestServer::start();
    let mut rng = rng(seed);
    let x: Array2<f32> = uniform(&mut rng, (9, 5), 1.0);
    let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (y, h_n, c_n) = alone("lstm", &x, None, None);
    for (outputs, binary) in [
        (
            json!([{ "name": "y", "parameters": { "binary_data": true } }, { "name": "c_n" }]),
            vec![true, false],
        ),
        (json!(null), vec![true, true, true]),
    ] {
        let mut header = json!({
            "inputs": [{
                "name": "x", "datatype": "FP32", "shape": [9, 5],
                "parameters": { "binary_data_size": raw.len() },
            }],
        });
        if outputs.is_null() {
            header["parameters"] = json!({ "binary_data_output": true });
        } else {
            header["outputs"] = outputs;
        }
        let header = header.to_string().into_bytes();
        let mut body = header.clone();
        body.extend_from_slice(&raw);
        let r = server.http(
            "POST",
            "/v2/models/lstm/infer",
            &[("inference-header-content-length", header.len().to_string())],
            &body,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let n: usize = r
            .header("inference-header-content-length")
            .expect("a binary response gives its header's length")
            .parse()
            .unwrap();
        let head: serde_json::Value = serde_json::from_slice(&r.body[..n]).unwrap();
        let mut rest = &r.body[n..];
        let outputs = head["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), binary.len());
        for (o, is_binary) in outputs.iter().zip(binary) {
            let want = match o["name"].as_str().unwrap() {
                "y" => &y,
                "h_n" => &h_n,
                "c_n" => c_n.as_ref().unwrap(),
                other => panic!("output {other}"),
            };
            if is_binary {
                let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
                assert_eq!(size, want.len() * 4);
                let got: Vec<f32> = rest[..size]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                rest = &rest[size..];
                assert_eq!(got, want.iter().copied().collect::<Vec<_>>(), "{o}");
            } else {
                assert_eq!(json_output(&head, o["name"].as_str().unwrap()), want);
            }
        }
        assert!(rest.is_empty(), "{} bytes beyond the outputs", rest.len());
    }
}

#[test]
fn metrics_count_requests_and_rounds() {
    let server = TestServer::start();
    let x = Array2::<f32>::ones((4, 3));
    for _ in 0..3 {
        let r = server.post_json(
            "/v2/models/gru/infer",
            &json!({ "inputs": [json_input("x", &x)] }),
        );
        assert_eq!(r.status, 200);
    }
    let bad = server.post_json("/v2/models/gru/infer", &json!({ "inputs": [] }));
    assert_eq!(bad.status, 400);
    let m = server.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(m.body).unwrap();
    let value = |metric: &str| -> f64 {
        let prefix = format!("{metric}{{model=\"gru\",version=\"1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{metric} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("nv_inference_request_success"), 3.0);
    assert_eq!(value("nv_inference_request_failure"), 1.0);
    assert_eq!(value("nv_inference_count"), 3.0);
    assert!(value("nv_inference_exec_count") >= 1.0);
    assert!(value("nv_inference_compute_infer_duration_us") > 0.0);
    assert_eq!(value("wgpu_lstm_open_sequences"), 0.0);
    // The refused request never reached the batcher.
    assert_eq!(value("wgpu_lstm_admitted"), 3.0);
    assert_eq!(value("wgpu_lstm_cancelled"), 0.0);
    assert!(value("wgpu_lstm_state_table_bytes") > 0.0);
    assert!(text.contains("# TYPE nv_inference_request_success counter"));
}
