//! Many callers, one model: eight threads each send their own requests — one-shot sequences
//! of different lengths, and a live stream fed in chunks — to one `Batcher`, which advances
//! all of them together in rounds on the GPU (or the CPU without one). Each result equals
//! the same sequence run alone.
//!
//! `cargo run --release --example batcher`

use ndarray::{s, Array2, Array3, Axis};
use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::{
    Batcher, BatcherModel, BatcherOptions, ContextOptions, CpuModel, Forward, GpuContext, GpuModel,
    Input, Request, RnnSpec, Weights,
};

fn main() -> Result<(), wgpu_lstm::Error> {
    let weights = Weights::random(&RnnSpec::lstm(40, 128), 5)?;
    let model: BatcherModel = match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            println!("device: GPU {}", ctx.adapter_info().name);
            GpuModel::upload(&ctx, &weights)?.into()
        }
        Err(e) => {
            println!("device: CPU (no GPU: {e})");
            CpuModel::new(weights.clone()).into()
        }
    };
    // Up to 32 sequences per round, each advanced by up to 8 steps per round.
    let options = BatcherOptions::default().max_batch(32).quantum(8);
    let batcher = Batcher::new(model, options)?;

    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let batcher = batcher.clone(); // Clone + Send + Sync: one handle per thread
            std::thread::spawn(move || -> Result<Vec<Array2<f32>>, wgpu_lstm::Error> {
                let mut outputs = Vec::new();
                for r in 0..4 {
                    let steps = 10 + 13 * ((caller + 3 * r) % 11); // 10 to 140 steps
                    let x = Array2::from_shape_fn((steps, 40), |(t, i)| {
                        ((t * 7 + i * 3 + caller) % 17) as f32 / 17.0 - 0.5
                    });
                    let response = batcher.run(Request::new(x.view()))?;
                    outputs.push(x);
                    outputs.push(response.y);
                }
                Ok(outputs)
            })
        })
        .collect();

    // Meanwhile a live stream: 60 frames arriving 5 at a time.
    let frames = Array2::from_shape_fn((60, 40), |(t, i)| ((t + i) % 9) as f32 / 9.0 - 0.5);
    let stream = batcher.open_stream()?;
    let mut streamed = Array2::zeros((60, 128));
    for start in (0..60).step_by(5) {
        let y = stream
            .feed(frames.slice(s![start..start + 5, ..]))?
            .wait()?;
        streamed.slice_mut(s![start..start + 5, ..]).assign(&y);
    }
    stream.close();

    // Every result against the same sequence alone on the CPU.
    let alone = CpuModel::new(weights);
    let mut worst = 0.0f32;
    let mut check = |x: &Array2<f32>, y: &Array2<f32>| -> Result<(), wgpu_lstm::Error> {
        let want = alone.forward(&Input::new(x.view().insert_axis(Axis(1))))?.y;
        let want: Array3<f32> = want.into_dimensionality().expect("[T, 1, H]");
        let c = compare(
            want.index_axis(Axis(1), 0).into_dyn(),
            y.view().into_dyn(),
            Tolerance::GPU_VS_CPU,
        )?;
        assert!(c.ok(), "{c}");
        worst = worst.max(c.max_abs_err);
        Ok(())
    };
    let mut requests = 0;
    for caller in callers {
        let outputs = caller.join().expect("caller thread")?;
        for pair in outputs.chunks(2) {
            check(&pair[0], &pair[1])?;
            requests += 1;
        }
    }
    check(&frames, &streamed)?;
    let stats = batcher.stats();
    println!(
        "{requests} requests and 12 stream chunks in {} rounds (mean batch {:.1}); compute p50 {:?}, queue p99 {:?}",
        stats.rounds, stats.mean_batch, stats.compute_time.p50, stats.queue_time.p99
    );
    println!("max |batched - alone| {worst:e}");
    Ok(())
}
