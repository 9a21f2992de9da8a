//! Weights in a texture (`UploadOptions::storage(WeightsStorage::Texture)`) against weights in
//! a storage buffer: the kernels read the same values either way, so every step kernel, every
//! GEMM variant, float32 and float16 weights give the same bits; `Auto` is measured and
//! reported.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Cell, CpuModel, Direction, Forward, ForwardOptions, GemmVariant, GpuModel, Input, RnnSpec,
    StepVariant, UploadOptions, Weights, WeightsDtype, WeightsStorage,
};

#[test]
fn texture_and_buffer_weights_give_the_same_bits() {
    let Some(ctx) = gpu() else { return };
    let base = seed("texture_and_buffer_weights_give_the_same_bits", 1501);
    let mut r = rng(base);
    let specs = [
        RnnSpec::lstm(13, 40).peephole(true).layers(2),
        RnnSpec::lstm(5, 33).direction(Direction::Bidirectional),
        RnnSpec::lstm(11, 48).proj_size(20),
        RnnSpec::gru(9, 47),
        RnnSpec::gru(9, 20).linear_before_reset(false),
        RnnSpec::new(Cell::RnnTanh, 6, 35).direction(Direction::Reverse),
        RnnSpec::new(Cell::RnnRelu, 6, 18),
    ];
    let limits = ctx.limits();
    let gemms: Vec<GemmVariant> = GemmVariant::ALL
        .into_iter()
        .filter(|v| v.runs_on(&limits, ctx.supports_subgroups()))
        .collect();
    let mut compared = 0;
    for spec in specs {
        let weights = Weights::random(&spec, r.random()).unwrap();
        let (t, b) = (r.random_range(1..=30), r.random_range(1..=9));
        let x: ndarray::Array3<f32> = uniform(&mut r, (t, b, spec.input_size), 1.0);
        let lengths: Vec<usize> = (0..b).map(|_| r.random_range(0..=t)).collect();
        let input = Input::new(x.view()).lengths(&lengths);
        for dtype in [WeightsDtype::F32, WeightsDtype::F16] {
            let upload = |storage| {
                let options = UploadOptions::default().weights(dtype).storage(storage);
                GpuModel::upload_with(ctx, &weights, &options).unwrap()
            };
            let (buffer, texture) = (
                upload(WeightsStorage::Buffer),
                upload(WeightsStorage::Texture),
            );
            assert_eq!(buffer.weights_storage(), WeightsStorage::Buffer);
            assert_eq!(texture.weights_storage(), WeightsStorage::Texture);
            let reference = CpuModel::reference(weights.rounded(dtype))
                .forward(&input)
                .unwrap();
            for (i, variant) in StepVariant::ALL.into_iter().enumerate() {
                let options = ForwardOptions::default()
                    .variant(variant)
                    .gemm(gemms[i % gemms.len()])
                    .batch_tile(1 + i % 4);
                let what = format!("seed {base} {spec:?} T={t} B={b} {dtype:?} {options:?}");
                let (a, sa) = buffer.forward_with(&input, &options).unwrap();
                let (e, se) = texture.forward_with(&input, &options).unwrap();
                assert_eq!((sa.variant, sa.gemm), (se.variant, se.gemm), "{what}");
                let pairs = [(&a.y, &e.y), (&a.h_n, &e.h_n)];
                for (p, q) in pairs.into_iter().chain(a.c_n.as_ref().zip(e.c_n.as_ref())) {
                    let same = p
                        .iter()
                        .zip(q.iter())
                        .all(|(u, v)| u.to_bits() == v.to_bits());
                    assert!(same, "{what}: texture and buffer weights differ");
                }
                if dtype == WeightsDtype::F32 || spec.proj_size == 0 {
                    assert_outputs_close(&what, &reference, &e, Tolerance::GPU_VS_CPU);
                }
                compared += 1;
            }
        }
    }
    eprintln!("texture vs buffer weights: {compared} forwards bit-identical (seed {base})");
}

#[test]
fn auto_storage_is_measured_and_reported() {
    let Some(ctx) = gpu() else { return };
    let weights = Weights::random(&RnnSpec::lstm(8, 16), 1).unwrap();
    let model = GpuModel::upload(ctx, &weights).unwrap();
    let chosen = model.weights_storage();
    assert_ne!(chosen, WeightsStorage::Auto);
    let record = ctx
        .tuning()
        .into_iter()
        .find(|r| r.family == "storage")
        .expect("a storage choice among the tuning records");
    assert_eq!(record.chosen, chosen.name());
    eprintln!(
        "weights storage on {}: {} ({:?})",
        ctx.adapter_info().name,
        chosen.name(),
        record.candidates
    );
}
