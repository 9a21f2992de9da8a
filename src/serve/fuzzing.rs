//! Entry points for the fuzz targets of the request decoders (`fuzz/`): not part of the API.

use std::sync::OnceLock;

use prost::Message;

use super::model::{ServedModel, TensorNames};
use crate::batcher::{Batcher, BatcherOptions};
use crate::cpu::CpuModel;
use crate::spec::RnnSpec;
use crate::weights::Weights;

/// A small LSTM (3 → 4, two layers) on the CPU with a table of 64 slots, its sequences
/// closed after 50 ms idle.
fn model() -> &'static ServedModel {
    static MODEL: OnceLock<ServedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let weights = Weights::random(&RnnSpec::lstm(3, 4).layers(2), 1).expect("weights");
        let options = BatcherOptions::default()
            .max_sequences(64)
            .max_queue(64)
            .stream_idle_timeout(std::time::Duration::from_millis(50));
        let batcher = Batcher::new(CpuModel::reference(weights), options).expect("batcher");
        ServedModel::new("fuzz", batcher, TensorNames::default()).expect("model")
    })
}

/// Runs a decoded call on the small model.
fn run(call: &super::infer::Call) -> Result<Vec<super::infer::OutputTensor>, String> {
    model().sequences.sweep(std::time::Instant::now());
    pollster::block_on(super::infer::infer(model(), call)).map_err(|e| e.message)
}

/// An HTTP inference body (JSON, with the binary extension when `header_length` is given)
/// decoded, run on a small LSTM and its response encoded: the response's length, or the
/// error.
pub fn http_infer(header_length: Option<&str>, body: &[u8]) -> Result<usize, String> {
    let request = super::http::decode_body(header_length, body).map_err(|e| e.message)?;
    let outputs = run(&request.call)?;
    let (response, json_length) = super::http::encode_body("fuzz", &request, &outputs);
    assert!(json_length.is_none_or(|n| n <= response.len()));
    Ok(response.len())
}

/// A protobuf `ModelInferRequest` decoded and run on a small LSTM: the count of output
/// elements, or the error.
pub fn grpc_infer(message: &[u8]) -> Result<usize, String> {
    let request = super::grpc::proto::ModelInferRequest::decode(message)
        .map_err(|e| format!("not a ModelInferRequest: {e}"))?;
    let call = super::grpc::decode(&request).map_err(|e| e.message)?;
    let outputs = run(&call)?;
    Ok(outputs.iter().map(|o| o.data.len()).sum())
}
