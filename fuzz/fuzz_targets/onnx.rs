//! The ONNX loader on arbitrary bytes: a model or an error, never a panic or a huge
//! allocation. A model that loads must also run (on the CPU) on small zero inputs shaped as
//! the graph declares (named dims 3, unknown dims 2), giving outputs or an error.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use libfuzzer_sys::fuzz_target;
use wgpu_lstm::io::onnx::{self, Dim, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = onnx::from_bytes(data) else {
        return;
    };
    // Keep the forward small: fuzzed sizes can be large.
    let small = m.stacks().iter().all(|s| {
        let spec = s.weights.spec();
        spec.input_size * spec.hidden_size * spec.num_layers <= 1 << 16
    });
    if !small {
        return;
    }
    let mut symbols: HashMap<String, usize> = HashMap::new();
    let mut inputs = BTreeMap::new();
    for p in m.inputs() {
        let shape: Vec<usize> = match &p.dims {
            None => vec![2, 2, 2],
            Some(dims) => dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Symbol(s) => *symbols.entry(s.clone()).or_insert(3),
                    Dim::Unknown => 2,
                })
                .collect(),
        };
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n.is_none_or(|n| n > 1 << 16) {
            return;
        }
        let shape = ndarray::IxDyn(&shape);
        let v = if p.float {
            Value::F32(ndarray::ArrayD::from_elem(shape, 0.5))
        } else {
            Value::I64(ndarray::ArrayD::from_elem(shape, 1))
        };
        inputs.insert(p.name.clone(), v);
    }
    let _ = m.run_cpu(&inputs);
});
