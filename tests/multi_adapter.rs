//! One batch split across several adapters — the software driver's Vulkan and GL adapters
//! here — and joined: the result equals one model running the whole batch.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use ndarray::Array3;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::gpu::forward_split;
use wgpu_lstm::{
    list_adapters, ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights,
};

#[test]
fn batch_split_across_adapters_equals_one_run() {
    if gpu().is_none() {
        return;
    }
    let sd = seed("batch_split_across_adapters_equals_one_run", 81);
    let spec = RnnSpec::lstm(6, 24).layers(2).bidirectional(true);
    let weights = Weights::random(&spec, sd).unwrap();
    let mut models = Vec::new();
    for a in list_adapters(wgpu::Backends::all()) {
        let ctx = GpuContext::new(&ContextOptions::for_adapter(&a.info)).unwrap();
        eprintln!("part on {} ({:?})", a.info.name, a.info.backend);
        models.push(GpuModel::upload(&ctx, &weights).unwrap());
    }
    if models.len() < 2 {
        // One adapter: two models on it still exercise the split and the join.
        models.push(GpuModel::upload(gpu().unwrap(), &weights).unwrap());
    }
    let mut r = rng(sd);
    let (t, b) = (9, 7);
    let x: Array3<f32> = uniform(&mut r, (b, t, 6), 1.0); // batch-first
    let h0: Array3<f32> = uniform(&mut r, (4, b, 24), 1.0);
    let c0: Array3<f32> = uniform(&mut r, (4, b, 24), 1.0);
    let lengths = [9, 3, 7, 1, 9, 5, 2];
    let input = Input::new(x.view())
        .batch_first(true)
        .h0(h0.view())
        .c0(c0.view())
        .lengths(&lengths);
    let expected = CpuModel::new(weights).forward(&input).unwrap();
    let split = forward_split(&models, &input).unwrap();
    assert_eq!(split.y.shape(), &[b, t, 48]);
    assert_outputs_close("split", &expected, &split, Tolerance::GPU_VS_CPU);
    // A batch smaller than the number of models, and an unbatched sequence.
    let one = Array3::<f32>::ones((4, 1, 6));
    let e = models[0].forward(&Input::new(one.view())).unwrap();
    assert_eq!(forward_split(&models, &Input::new(one.view())).unwrap(), e);
    let x2 = ndarray::Array2::<f32>::ones((4, 6));
    let e = models[0].forward(&Input::new(x2.view())).unwrap();
    assert_eq!(forward_split(&models, &Input::new(x2.view())).unwrap(), e);
    assert!(forward_split(&[], &Input::new(x2.view())).is_err());
}
