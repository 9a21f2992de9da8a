//! The server's gRPC inference decoder on arbitrary bytes taken as a protobuf
//! `ModelInferRequest`: a request that decodes runs on a small LSTM; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgpu_lstm::serve::fuzzing::grpc_infer(data);
});
