//! An ONNX model exported from PyTorch, run on its inputs and checked against PyTorch's outputs.
//!
//! The default model is a committed test fixture, written by
//!
//! ```python
//! lstm = torch.nn.LSTM(input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
//!                      batch_first=True)
//! torch.onnx.export(lstm, (x, (h0, c0)), "model.onnx", input_names=["input", "h0", "c0"],
//!                   output_names=["output", "hn", "cn"], dynamo=False, dynamic_axes=…)
//! ```
//!
//! with one `.npy` per graph input and output beside it (tests/onnx/README.md).
//!
//! `cargo run --release --example onnx [-- DIR]`  (DIR holds model.onnx and NAME.npy files)

use std::collections::BTreeMap;
use std::path::PathBuf;

use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::io::npy::{self, NpyArray};
use wgpu_lstm::io::onnx::{self, Value};
use wgpu_lstm::{ContextOptions, Forward, GpuContext, GpuModel};

const FIXTURE: &str = "tests/onnx/fixtures/torch/lstm_2layer_bidirectional_batch_first_states";

fn main() -> Result<(), wgpu_lstm::Error> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURE),
    };
    let model = onnx::load(&dir.join("model.onnx"))?;
    // Consecutive recurrent nodes become one multi-layer model, its weights in PyTorch's layout.
    for stack in model.stacks() {
        let spec = stack.weights.spec();
        println!(
            "stack {:?}: {} input {} hidden {} layers {} bidirectional {}",
            stack.nodes,
            spec.cell.name(),
            spec.input_size,
            spec.hidden_size,
            spec.num_layers,
            spec.bidirectional
        );
    }

    // Every graph input, by name, from NAME.npy: floats, and integer sequence lengths.
    let mut inputs = BTreeMap::new();
    for port in model.inputs() {
        let value = match npy::read(&dir.join(format!("{}.npy", port.name)))? {
            NpyArray::F32(a) => Value::F32(a),
            NpyArray::F64(a) => Value::F32(a.mapv(|v| v as f32)),
            NpyArray::I32(a) => Value::I64(a.mapv(i64::from)),
            NpyArray::I64(a) => Value::I64(a),
        };
        println!("input  {:8} {:?}", port.name, value.shape());
        inputs.insert(port.name.clone(), value);
    }

    // On the GPU where there is one (a GpuModel per stack), else model.run_cpu(&inputs).
    let outputs = match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            let gpu = (model.stacks().iter())
                .map(|s| GpuModel::upload(&ctx, &s.weights))
                .collect::<Result<Vec<_>, _>>()?;
            let engines: Vec<&dyn Forward> = gpu.iter().map(|m| m as &dyn Forward).collect();
            model.run(&engines, &inputs)?
        }
        Err(_) => model.run_cpu(&inputs)?,
    };

    // Every graph output, in the graph's own shape, against PyTorch's where the file exists.
    let tolerance = Tolerance {
        abs: 3e-5,
        rel: 1e-4,
    };
    for (name, y) in &outputs {
        let expected = dir.join(format!("{name}.npy"));
        match npy::read(&expected) {
            Ok(NpyArray::F32(e)) => {
                let c = compare(e.view(), y.view(), tolerance)?;
                println!(
                    "output {name:8} {:?}  max |ours - torch| {:.1e}",
                    y.shape(),
                    c.max_abs_err
                );
                if !c.ok() {
                    return Err(wgpu_lstm::Error::CheckFailed(format!("output {name}: {c}")));
                }
            }
            _ => println!("output {name:8} {:?}", y.shape()),
        }
    }
    Ok(())
}
