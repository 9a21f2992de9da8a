//! gRPC: the service's calls with tonic's client built from the same `.proto`, raw and typed
//! contents, errors as status codes, and `ModelStreamInfer` with sequences.

use std::collections::HashMap;

use ndarray::{s, Array2};
use wgpu_lstm::serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use wgpu_lstm::serve::grpc::proto::infer_parameter::ParameterChoice;
use wgpu_lstm::serve::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use wgpu_lstm::serve::grpc::proto::*;

use crate::common::{rng, seed, uniform};
use crate::{alone, TestServer};

type Client = GrpcInferenceServiceClient<tonic::transport::Channel>;

fn client(server: &TestServer) -> Client {
    let url = format!("http://{}", server.grpc);
    server
        .rt
        .block_on(GrpcInferenceServiceClient::connect(url))
        .unwrap()
}

fn raw(a: &Array2<f32>) -> Vec<u8> {
    a.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn tensor(name: &str, a: &Array2<f32>) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "FP32".into(),
        shape: a.shape().iter().map(|&d| d as i64).collect(),
        ..Default::default()
    }
}

/// The output `name` of a response with raw contents.
fn output(r: &ModelInferResponse, name: &str) -> Array2<f32> {
    let k = r.outputs.iter().position(|o| o.name == name).expect(name);
    let shape = &r.outputs[k].shape;
    let data: Vec<f32> = r.raw_output_contents[k]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Array2::from_shape_vec((shape[0] as usize, shape[1] as usize), data).unwrap()
}

fn param(p: ParameterChoice) -> InferParameter {
    InferParameter {
        parameter_choice: Some(p),
    }
}

#[test]
fn grpc_calls_answer_like_http() {
    let seed = seed("grpc_calls_answer_like_http", 31);
    let server = TestServer::start();
    let mut c = client(&server);
    let rt = &server.rt;
    assert!(
        rt.block_on(c.server_live(ServerLiveRequest {}))
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        rt.block_on(c.server_ready(ServerReadyRequest {}))
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = rt
        .block_on(c.server_metadata(ServerMetadataRequest {}))
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "wgpu-lstm");
    assert!(meta.extensions.contains(&"sequence".to_string()));
    let ready = |c: &mut Client, name: &str| {
        rt.block_on(c.model_ready(ModelReadyRequest {
            name: name.into(),
            version: String::new(),
        }))
        .unwrap()
        .into_inner()
        .ready
    };
    assert!(ready(&mut c, "lstm"));
    assert!(!ready(&mut c, "nope"));
    let m = rt
        .block_on(c.model_metadata(ModelMetadataRequest {
            name: "gru".into(),
            version: "1".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(m.inputs[0].shape, vec![-1, 3]);
    assert_eq!(m.outputs.len(), 2);
    let e = rt
        .block_on(c.model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let mut rng = rng(seed);
    let x: Array2<f32> = uniform(&mut rng, (11, 5), 1.0);
    let c0: Array2<f32> = uniform(&mut rng, (2, 7), 0.5);
    let (y, h_n, c_n) = alone("lstm", &x, None, Some(&c0));
    // Raw contents.
    let request = ModelInferRequest {
        model_name: "lstm".into(),
        id: "g1".into(),
        inputs: vec![tensor("x", &x), tensor("c0", &c0)],
        raw_input_contents: vec![raw(&x), raw(&c0)],
        ..Default::default()
    };
    let r = rt.block_on(c.model_infer(request)).unwrap().into_inner();
    assert_eq!(r.id, "g1");
    assert_eq!(output(&r, "y"), y);
    assert_eq!(output(&r, "h_n"), h_n);
    assert_eq!(output(&r, "c_n"), c_n.unwrap());
    // Typed contents, one output asked for.
    let mut t = tensor("x", &x);
    t.contents = Some(InferTensorContents {
        fp32_contents: x.iter().copied().collect(),
        ..Default::default()
    });
    let request = ModelInferRequest {
        model_name: "lstm".into(),
        inputs: vec![t],
        outputs: vec![InferRequestedOutputTensor {
            name: "y".into(),
            parameters: HashMap::new(),
        }],
        ..Default::default()
    };
    let r = rt.block_on(c.model_infer(request)).unwrap().into_inner();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(output(&r, "y"), alone("lstm", &x, None, None).0);
    // Errors as codes.
    let mut bad = tensor("x", &x);
    bad.datatype = "INT32".into();
    let request = ModelInferRequest {
        model_name: "lstm".into(),
        inputs: vec![bad],
        raw_input_contents: vec![raw(&x)],
        ..Default::default()
    };
    let e = rt.block_on(c.model_infer(request)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("datatype INT32"), "{}", e.message());
    let request = ModelInferRequest {
        model_name: "lstm".into(),
        inputs: vec![tensor("x", &x)],
        raw_input_contents: vec![raw(&x)[..10].to_vec()],
        ..Default::default()
    };
    let e = rt.block_on(c.model_infer(request)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = rt
        .block_on(c.model_infer(ModelInferRequest {
            model_name: "x".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// A stream carrying two interleaved sequences and a bad request: answers in order, the bad
/// one's error in its own answer, the sequences equal to each whole sequence alone.
#[test]
fn stream_infer_runs_sequences_in_order() {
    let seed = seed("stream_infer_runs_sequences_in_order", 32);
    let server = TestServer::start();
    let mut c = client(&server);
    let mut rng = rng(seed);
    let xs: Vec<Array2<f32>> = (0..2).map(|_| uniform(&mut rng, (12, 3), 1.0)).collect();
    let mut requests = Vec::new();
    for part in 0..3 {
        for (k, x) in xs.iter().enumerate() {
            let chunk = x.slice(s![part * 4..part * 4 + 4, ..]).to_owned();
            let mut parameters = HashMap::new();
            let id = if k == 0 {
                ParameterChoice::Int64Param(40)
            } else {
                ParameterChoice::StringParam("s".into())
            };
            parameters.insert("sequence_id".to_string(), param(id));
            parameters.insert(
                "sequence_start".into(),
                param(ParameterChoice::BoolParam(part == 0)),
            );
            parameters.insert(
                "sequence_end".into(),
                param(ParameterChoice::BoolParam(part == 2)),
            );
            requests.push(ModelInferRequest {
                model_name: "gru".into(),
                id: format!("{part}-{k}"),
                parameters,
                inputs: vec![tensor("x", &chunk)],
                raw_input_contents: vec![raw(&chunk)],
                ..Default::default()
            });
        }
        if part == 1 {
            requests.push(ModelInferRequest {
                model_name: "gru".into(),
                id: "bad".into(),
                ..Default::default()
            });
        }
    }
    let answers: Vec<ModelStreamInferResponse> = server.rt.block_on(async {
        let mut stream = c
            .model_stream_infer(tokio_stream::iter(requests.clone()))
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(a) = stream.message().await.unwrap() {
            out.push(a);
        }
        out
    });
    assert_eq!(answers.len(), requests.len());
    let mut ys: Vec<Vec<f32>> = vec![Vec::new(); 2];
    for (req, a) in requests.iter().zip(&answers) {
        if req.id == "bad" {
            assert!(
                a.error_message.contains("input `x` is missing"),
                "{}",
                a.error_message
            );
            continue;
        }
        assert!(a.error_message.is_empty(), "{}", a.error_message);
        let r = a.infer_response.as_ref().unwrap();
        assert_eq!(r.id, req.id, "answers in the order sent");
        let k: usize = req.id[2..].parse().unwrap();
        ys[k].extend(output(r, "y").iter());
    }
    for (k, x) in xs.iter().enumerate() {
        let (y, _, _) = alone("gru", x, None, None);
        assert_eq!(ys[k], y.iter().copied().collect::<Vec<_>>(), "sequence {k}");
    }
}
