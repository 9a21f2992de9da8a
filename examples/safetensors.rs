//! A PyTorch model saved as safetensors, loaded and run. The file is what this Python writes:
//!
//! ```python
//! import torch
//! from safetensors.torch import save_file
//! lstm = torch.nn.LSTM(input_size=40, hidden_size=128, num_layers=2, bidirectional=True)
//! # … train …
//! save_file(lstm.state_dict(), "model.safetensors", metadata={"cell": "lstm"})
//! ```
//!
//! The layers, directions and sizes come from the tensor names (`weight_ih_l0`,
//! `weight_hh_l1_reverse`, …) and shapes, the cell from the metadata `cell` (or from the rows
//! of `weight_hh_l0`); a prefix shared by every name (a whole model's `state_dict()`, e.g.
//! `encoder.rnn.`) is stripped.
//!
//! `cargo run --release --example safetensors -- model.safetensors`
//!
//! Without a path it first writes such a file from Rust (`io::model_file::save` writes the
//! names and layout `state_dict()` has) into a temporary directory.

use std::path::PathBuf;

use ndarray::Array3;
use wgpu_lstm::io::model_file;
use wgpu_lstm::{CpuModel, Forward, Input, RnnSpec, Weights};

fn main() -> Result<(), wgpu_lstm::Error> {
    let dir = tempfile::tempdir().map_err(|e| wgpu_lstm::Error::io(".".as_ref(), e))?;
    let path = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = dir.path().join("model.safetensors");
            let spec = RnnSpec::lstm(40, 128).layers(2).bidirectional(true);
            model_file::save(&path, &Weights::random(&spec, 42)?, false)?;
            path
        }
    };

    let file = model_file::load(&path)?;
    let spec = file.weights.spec();
    println!(
        "{}: {} input {} hidden {} layers {} bidirectional {} batch_first {}",
        path.display(),
        spec.cell.name(),
        spec.input_size,
        spec.hidden_size,
        spec.num_layers,
        spec.bidirectional,
        file.batch_first,
    );

    // The same weights run on the GPU with GpuModel::upload(&ctx, &file.weights).
    let model = CpuModel::new(file.weights.clone());
    let x = Array3::from_shape_fn((50, 2, spec.input_size), |(t, b, i)| {
        ((t + b + i) as f32 * 0.1).cos()
    }); // [T, B, I]
    let out = model.forward(&Input::new(x.view()).batch_first(file.batch_first))?;
    println!("y: {:?}  h_n: {:?}", out.y.shape(), out.h_n.shape());
    Ok(())
}
