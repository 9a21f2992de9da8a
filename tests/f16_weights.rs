//! Float16 weights on the GPU (`UploadOptions::weights(WeightsDtype::F16)`): sums, states and
//! activations stay float32, each weight is rounded to float16 once, at upload.
//!
//! - the kernels are exact about it: against the CPU reference engine running the same
//!   weights rounded to float16 ([`Weights::rounded`]), every cell, both step kernels, within
//!   [`Tolerance::GPU_VS_CPU`];
//! - the cost of the rounding, against float32 weights, is within [`F16_VS_F32`] (stated in
//!   the README) and printed.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    CpuModel, Forward, ForwardOptions, GpuModel, Input, RnnSpec, StepVariant, UploadOptions,
    Weights, WeightsDtype,
};

/// Float16 against float32 weights: weights ~ U(±1/√H) rounded to 11 significant bits, over a
/// few dozen steps (measured: 2.1e-4 at worst, seed 1401).
const F16_VS_F32: Tolerance = Tolerance {
    abs: 2e-3,
    rel: 2e-3,
};

#[test]
fn f16_weights_compute_what_the_rounded_weights_give() {
    let Some(ctx) = gpu() else { return };
    let base = seed("f16_weights_compute_what_the_rounded_weights_give", 1401);
    let mut r = rng(base);
    let specs = common::every_cell_specs();
    let (mut exact, mut rounding) = (0.0f32, 0.0f32);
    for spec in specs {
        let weights = Weights::random(&spec, r.random()).unwrap();
        let half = UploadOptions::default().weights(WeightsDtype::F16);
        let model = GpuModel::upload_with(ctx, &weights, &half).unwrap();
        assert_eq!(model.weights_dtype(), WeightsDtype::F16);
        let (t, b) = (r.random_range(1..=40), r.random_range(1..=6));
        let x: ndarray::Array3<f32> = uniform(&mut r, (t, b, spec.input_size), 1.0);
        let lengths: Vec<usize> = (0..b).map(|_| r.random_range(1..=t)).collect();
        let input = Input::new(x.view()).lengths(&lengths);
        let rounded = CpuModel::reference(weights.rounded(WeightsDtype::F16))
            .forward(&input)
            .unwrap();
        let full = CpuModel::reference(weights).forward(&input).unwrap();
        for variant in StepVariant::ALL {
            let options = ForwardOptions::default().variant(variant);
            let (out, _) = model.forward_with(&input, &options).unwrap();
            let what = format!("{spec:?} T={t} B={b} {variant:?}");
            exact = exact.max(assert_outputs_close(
                &what,
                &rounded,
                &out,
                Tolerance::GPU_VS_CPU,
            ));
            rounding = rounding.max(assert_outputs_close(&what, &full, &out, F16_VS_F32));
        }
    }
    eprintln!(
        "f16 weights: worst |gpu − cpu on rounded weights| = {exact:.2e}, worst |gpu − cpu on f32 weights| = {rounding:.2e}"
    );
}

/// An LSTM with a projection folds `W_hh·W_hr` before rounding: close to float32, not equal
/// to the rounded factors.
#[test]
fn f16_weights_of_a_projection_lstm_stay_close_to_f32() {
    let Some(ctx) = gpu() else { return };
    let base = seed("f16_weights_of_a_projection_lstm_stay_close_to_f32", 1402);
    let mut r = rng(base);
    let spec = RnnSpec::lstm(11, 48).proj_size(20).layers(2);
    let weights = Weights::random(&spec, r.random()).unwrap();
    let half = UploadOptions::default().weights(WeightsDtype::F16);
    let model = GpuModel::upload_with(ctx, &weights, &half).unwrap();
    let x: ndarray::Array3<f32> = uniform(&mut r, (30, 3, 11), 1.0);
    let input = Input::new(x.view());
    let full = CpuModel::reference(weights).forward(&input).unwrap();
    let out = model.forward(&input).unwrap();
    let w = assert_outputs_close("projection lstm", &full, &out, F16_VS_F32);
    eprintln!("f16 weights, projection LSTM: worst |gpu − cpu on f32 weights| = {w:.2e}");
}
