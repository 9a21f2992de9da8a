//! The server's HTTP inference decoder on arbitrary bodies: the first two bytes choose
//! whether an `Inference-Header-Content-Length` is given (and its value), the rest is the
//! body. A request that decodes runs on a small LSTM and its response is encoded; nothing
//! may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (length, body) = match data {
        [0, rest @ ..] => (None, rest),
        [a, b, rest @ ..] => (Some(((*a as usize) << 8 | *b as usize).to_string()), rest),
        _ => return,
    };
    let _ = wgpu_lstm::serve::fuzzing::http_infer(length.as_deref(), body);
});
