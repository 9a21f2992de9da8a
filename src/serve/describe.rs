//! What the server says about itself and its models, shared by both protocols: the server's
//! metadata, a model's metadata (inputs and outputs, `-1` for variable dimensions) and its
//! configuration in Triton's shape.

use serde_json::{json, Value};

use super::model::ServedModel;

/// The server's name in its metadata.
pub(crate) const SERVER_NAME: &str = "wgpu-lstm";

/// The platform its models report.
pub(crate) const PLATFORM: &str = "wgpu-lstm";

/// The one version each model has.
pub(crate) const VERSION: &str = "1";

/// The protocol extensions the server implements.
pub(crate) const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "sequence",
    "model_configuration",
    "parameters",
];

/// The datatype of every tensor.
pub(crate) const DATATYPE: &str = "FP32";

/// `GET /v2`.
pub(crate) fn server_metadata() -> Value {
    json!({
        "name": SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    })
}

/// `GET /v2/models/{m}`.
pub(crate) fn model_metadata(model: &ServedModel) -> Value {
    let tensor = |(name, shape): (String, Vec<i64>)| json!({ "name": name, "datatype": DATATYPE, "shape": shape });
    json!({
        "name": model.name(),
        "versions": [VERSION],
        "platform": PLATFORM,
        "inputs": model.inputs().into_iter().map(|(n, s, _)| tensor((n, s))).collect::<Vec<_>>(),
        "outputs": model.outputs().into_iter().map(tensor).collect::<Vec<_>>(),
    })
}

/// `GET /v2/models/{m}/config`: the model's configuration as Triton gives it. A model that
/// takes sequences has a `sequence_batching` block (the oldest-first strategy, the idle
/// timeout of its streams), so that sequence-aware clients such as `perf_analyzer` treat it
/// as a sequence model; every model has a `dynamic_batching` block (the batcher's round
/// size and queue delay).
pub(crate) fn model_config(model: &ServedModel) -> Value {
    let options = model.batcher().options();
    let inputs: Vec<Value> = model
        .inputs()
        .into_iter()
        .map(|(name, shape, optional)| {
            json!({
                "name": name,
                "data_type": "TYPE_FP32",
                "format": "FORMAT_NONE",
                "dims": shape,
                "optional": optional,
            })
        })
        .collect();
    let outputs: Vec<Value> = model
        .outputs()
        .into_iter()
        .map(|(name, shape)| json!({ "name": name, "data_type": "TYPE_FP32", "dims": shape }))
        .collect();
    let mut config = json!({
        "name": model.name(),
        "platform": PLATFORM,
        "backend": PLATFORM,
        "version_policy": { "latest": { "num_versions": 1 } },
        "max_batch_size": 0,
        "input": inputs,
        "output": outputs,
        "dynamic_batching": {
            "preferred_batch_size": [options.max_batch],
            "max_queue_delay_microseconds": options.max_queue_delay.as_micros() as u64,
        },
        "instance_group": [{ "name": model.name(), "count": 1 }],
    });
    if model.streamable() {
        config["sequence_batching"] = json!({
            "max_sequence_idle_microseconds": options.stream_idle_timeout.as_micros() as u64,
            "oldest": {
                "max_candidate_sequences": options.max_sequences,
                "preferred_batch_size": [options.max_batch],
                "max_queue_delay_microseconds": options.max_queue_delay.as_micros() as u64,
            },
        });
    }
    config
}
