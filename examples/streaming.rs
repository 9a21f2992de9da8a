//! Streaming: a sequence that arrives in pieces (audio frames, sensor readings) fed chunk by
//! chunk. The stream keeps the recurrent state between calls — on the GPU it never leaves the
//! device — and the chunks' outputs equal those of the whole sequence run at once.
//!
//! `cargo run --release --example streaming`

use ndarray::{s, Array3, Axis};
use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::{
    ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, RnnSpec, Stream, Weights,
};

fn main() -> Result<(), wgpu_lstm::Error> {
    // A unidirectional model (a reverse direction would need the whole sequence).
    let weights = Weights::random(&RnnSpec::lstm(40, 64).layers(2), 3)?;
    let cpu = CpuModel::new(weights.clone());
    let gpu = match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => Some(GpuModel::upload(&ctx, &weights)?),
        Err(e) => {
            println!("no GPU ({e}): streaming on the CPU");
            None
        }
    };
    // The whole-sequence model and the stream, on the same device.
    let (whole_model, mut stream): (&dyn Forward, Box<dyn Stream + '_>) = match &gpu {
        Some(g) => (g, Box::new(g.stream(1)?)),
        None => (&cpu, Box::new(cpu.stream(1)?)),
    };

    // 100 frames of 40 features for one sequence: [T, B, I].
    let x = Array3::from_shape_fn((100, 1, 40), |(t, _, i)| ((t * 40 + i) as f32 * 0.01).sin());

    // Feed it 10 frames at a time, as it would arrive.
    let mut pieces = Vec::new();
    for chunk in x.axis_chunks_iter(Axis(0), 10) {
        let y = stream.feed(chunk)?; // [10, 1, 64]
        pieces.push(y);
    }
    let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
    let streamed = ndarray::concatenate(Axis(0), &views).expect("chunks of one shape");
    let state = stream.state()?; // read back only when asked for: h [L, B, H], c
    println!(
        "fed {} chunks; last output {:?}",
        pieces.len(),
        streamed.slice(s![-1, 0, ..4]).to_vec()
    );

    // The whole sequence at once gives the same outputs and final state.
    let whole = whole_model.forward(&Input::new(x.view()))?;
    let y = compare(
        whole.y.view(),
        streamed.view().into_dyn(),
        Tolerance::GPU_VS_CPU,
    )?;
    let h = compare(
        whole.h_n.view(),
        state.h.view().into_dyn(),
        Tolerance::GPU_VS_CPU,
    )?;
    println!(
        "max |chunks - whole|: y {:.1e}, h_n {:.1e}",
        y.max_abs_err, h.max_abs_err
    );
    if !(y.ok() && h.ok()) {
        return Err(wgpu_lstm::Error::CheckFailed(format!(
            "streamed output differs: {y}; {h}"
        )));
    }
    println!("chunks equal the whole sequence");
    Ok(())
}
