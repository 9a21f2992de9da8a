//! One model, one call: on the GPU where wgpu finds an adapter, on the CPU otherwise. Both
//! models implement `Forward`, so the code that runs them does not know which it has.
//!
//! `cargo run --release --example gpu_or_cpu`          (the GPU if there is one)
//! `cargo run --release --example gpu_or_cpu -- --cpu` (the CPU fallback)

use ndarray::{s, Array3};
use wgpu_lstm::{ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights};

/// The GPU model where an adapter exists (and `force_cpu` is false), else the CPU model.
fn pick(weights: Weights, force_cpu: bool) -> Result<Box<dyn Forward>, wgpu_lstm::Error> {
    if !force_cpu {
        match GpuContext::new(&ContextOptions::default()) {
            Ok(ctx) => {
                println!("device: GPU ({})", ctx.adapter_info().name);
                return Ok(Box::new(GpuModel::upload(&ctx, &weights)?));
            }
            Err(e) => println!("no GPU: {e}"),
        }
    }
    println!("device: CPU ({} threads)", CpuModel::default_threads());
    Ok(Box::new(CpuModel::new(weights)))
}

fn main() -> Result<(), wgpu_lstm::Error> {
    let force_cpu = std::env::args().any(|a| a == "--cpu");
    // nn.GRU(input_size=16, hidden_size=32, num_layers=2)
    let weights = Weights::random(&RnnSpec::gru(16, 32).layers(2), 7)?;
    let model = pick(weights, force_cpu)?;

    // [T, B, I]
    let x = Array3::from_shape_fn((20, 4, 16), |(t, b, i)| ((t * 7 + b * 3 + i) as f32).sin());
    let lengths = [20, 15, 10, 1]; // per-sequence lengths, like a PackedSequence
    let out = model.forward(&Input::new(x.view()).lengths(&lengths))?;
    println!("y: {:?}  h_n: {:?}", out.y.shape(), out.h_n.shape()); // [20, 4, 32], [2, 4, 32]
    let last = out.h_n.slice(s![1, 0, ..4]).to_vec(); // layer 1, sequence 0
    println!("h_n of the last layer, first sequence: {last:?}");
    Ok(())
}
