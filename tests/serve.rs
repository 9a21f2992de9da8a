//! The network server (`wgpu_lstm::serve`) end to end over real sockets: the HTTP/REST
//! protocol with its binary extension, gRPC with its stream, sequences, metrics, hostile
//! input and shutdown. Models run on the CPU's reference engine, so that every result is
//! compared bit for bit with the same sequence run alone through `forward`. The shared
//! harness is here; the tests are in `tests/serve/`.

mod common;

#[path = "serve/grpc.rs"]
mod grpc;
#[path = "serve/hostile.rs"]
mod hostile;
#[path = "serve/http.rs"]
mod http;
#[path = "serve/sequences.rs"]
mod sequences;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{http_request, HttpResponse};
use ndarray::Array2;
use serde_json::Value;
use wgpu_lstm::serve::{Running, ServeOptions, ServedModel, Server, TensorNames};
use wgpu_lstm::{Batcher, BatcherOptions, CpuModel, RnnSpec, Weights};

/// The models every test server has: an LSTM with projection and peepholes over two layers,
/// a GRU, and a bidirectional LSTM.
pub fn specs() -> Vec<(&'static str, RnnSpec)> {
    vec![
        (
            "lstm",
            RnnSpec::lstm(5, 7).peephole(true).proj_size(4).layers(2),
        ),
        ("gru", RnnSpec::gru(3, 6)),
        ("bidir", RnnSpec::lstm(4, 5).bidirectional(true)),
    ]
}

/// The weights of model `name` (seeded by name).
pub fn weights(name: &str) -> Weights {
    let (i, (_, spec)) = specs()
        .into_iter()
        .enumerate()
        .find(|(_, (n, _))| *n == name)
        .expect("a test model");
    Weights::random(&spec, 100 + i as u64).unwrap()
}

/// A server on free loopback ports, on its own runtime; shut down when dropped.
pub struct TestServer {
    pub rt: tokio::runtime::Runtime,
    running: Option<Running>,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

impl TestServer {
    /// The test models with the default batcher options and the default body limit.
    pub fn start() -> Self {
        Self::with(BatcherOptions::default(), 1 << 20)
    }

    /// The test models with `options` for every batcher and `max_body_bytes`.
    pub fn with(options: BatcherOptions, max_body_bytes: usize) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let models = specs()
            .into_iter()
            .map(|(name, _)| {
                let batcher =
                    Batcher::new(CpuModel::reference(weights(name)), options.clone()).unwrap();
                ServedModel::new(name, batcher, TensorNames::default()).unwrap()
            })
            .collect();
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let options = ServeOptions {
            http: Some(loopback),
            grpc: Some(loopback),
            max_body_bytes,
            shutdown_grace: Duration::from_secs(10),
        };
        let running = rt
            .block_on(Server::new(models).unwrap().start(&options))
            .unwrap();
        TestServer {
            http: running.http_addr().unwrap(),
            grpc: running.grpc_addr().unwrap(),
            running: Some(running),
            rt,
        }
    }

    /// Shuts the server down gracefully, now.
    pub fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }

    /// An HTTP request; the status, the headers (lower-case names) and the body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.http, method, path, headers, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.http("GET", path, &[], &[])
    }

    /// `POST` of a JSON body to `path`.
    pub fn post_json(&self, path: &str, body: &Value) -> HttpResponse {
        self.http(
            "POST",
            path,
            &[("content-type", "application/json".into())],
            body.to_string().as_bytes(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What model `name` gives for `x` `[T, I]` from `h0`/`c0` alone (batch 1, the reference
/// engine): `y`, `h_n`, and `c_n` for an LSTM.
pub fn alone(
    name: &str,
    x: &Array2<f32>,
    h0: Option<&Array2<f32>>,
    c0: Option<&Array2<f32>>,
) -> (Array2<f32>, Array2<f32>, Option<Array2<f32>>) {
    common::alone(&weights(name), x, h0, c0)
}

/// A JSON input tensor.
pub fn json_input(name: &str, a: &Array2<f32>) -> Value {
    serde_json::json!({
        "name": name,
        "datatype": "FP32",
        "shape": a.shape(),
        "data": a.iter().copied().collect::<Vec<f32>>(),
    })
}

/// The output `name` of a JSON response as an array of its shape.
#[track_caller]
pub fn json_output(response: &Value, name: &str) -> Array2<f32> {
    let o = response["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output `{name}` in {response}"));
    assert_eq!(o["datatype"], "FP32");
    let shape: Vec<usize> = o["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = o["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    Array2::from_shape_vec((shape[0], shape[1]), data).unwrap()
}
