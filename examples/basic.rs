//! Runs a 2-layer bidirectional LSTM on the GPU (falling back to the CPU when no adapter is
//! found) and compares it with the CPU reference.
//!
//! `cargo run --release --example basic`

use ndarray::Array3;
use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::{ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights};

fn main() -> Result<(), wgpu_lstm::Error> {
    let spec = RnnSpec::lstm(40, 128).layers(2).bidirectional(true);
    let weights = Weights::random(&spec, 42)?;
    let x = Array3::from_shape_fn((100, 8, 40), |(t, b, i)| ((t + b * i) as f32 * 0.01).sin());
    let h0 = Array3::<f32>::zeros((4, 8, 128));

    let cpu = CpuModel::new(weights.clone());
    let reference = cpu.forward(&Input::new(x.view()).h0(h0.view()))?;

    let model: Box<dyn Forward> = match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            println!("adapter: {}", ctx.adapter_info().name);
            Box::new(GpuModel::upload(&ctx, &weights)?)
        }
        Err(e) => {
            println!("{e}\nrunning on the CPU instead");
            Box::new(cpu)
        }
    };
    let out = model.forward(&Input::new(x.view()).h0(h0.view()))?;
    println!("y: {:?}  h_n: {:?}", out.y.shape(), out.h_n.shape());
    let c = compare(reference.y.view(), out.y.view(), Tolerance::GPU_VS_CPU)?;
    println!("max |gpu - cpu| over y: {:.2e}", c.max_abs_err);
    Ok(())
}
