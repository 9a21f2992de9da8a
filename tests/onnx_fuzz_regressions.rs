//! Inputs of the ONNX fuzz target (`fuzz/fuzz_targets/onnx.rs`, see `fuzz/run.sh`) kept in
//! `tests/fuzz_regressions/onnx/`, replayed through the same steps: load, and when that
//! succeeds run on small zero inputs shaped as the graph declares. Each must give a value or an
//! error, never a panic; `hostile-*` files (lengths beyond the file, truncations) must be
//! errors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use wgpu_lstm::io::onnx::{self, Dim, Value};

fn replay(data: &[u8]) -> bool {
    let Ok(m) = onnx::from_bytes(data) else {
        return false;
    };
    let small = m.stacks().iter().all(|s| {
        let spec = s.weights.spec();
        spec.input_size * spec.hidden_size * spec.num_layers <= 1 << 16
    });
    if !small {
        return true;
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
            return true;
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
    true
}

#[test]
fn onnx_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/onnx");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".keep"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let name = f.display().to_string();
        let r = std::panic::catch_unwind(|| replay(&bytes));
        assert!(r.is_ok(), "{name} panics");
        if name.contains("hostile-") {
            assert_eq!(r.ok(), Some(false), "{name} loads");
        }
    }
}
