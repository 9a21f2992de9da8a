//! The model-file loader on arbitrary bytes: a model or an error, never a panic. A model that
//! loads must also run (on the CPU) on a small input without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgpu_lstm::io::model_file;
use wgpu_lstm::{CpuModel, Forward, Input};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = model_file::from_bytes(std::path::Path::new("fuzz.safetensors"), data) {
        let spec = m.weights.spec();
        // Keep the forward small: fuzzed shapes can be large.
        if spec.input_size * spec.hidden_size * spec.num_layers <= 1 << 16 {
            let x = ndarray::Array3::<f32>::zeros((2, 1, spec.input_size));
            let _ = CpuModel::new(m.weights).forward(&Input::new(x.view()));
        }
    }
});
