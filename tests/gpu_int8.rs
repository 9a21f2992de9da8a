//! Int8 weights on the GPU (`UploadOptions::weights(WeightsDtype::I8)`): each weight matrix
//! quantized row by row at upload (four integers to a `u32`, a float32 scale per row), the
//! products summed over the integers in float32 and scaled once; biases, peepholes, sums,
//! states and activations stay float32.
//!
//! - the kernels are exact about it: against the CPU reference engine running the weights as
//!   int8 represents them ([`Weights::rounded`]), every cell, every step kernel and every GEMM
//!   variant the adapter runs, within [`Tolerance::GPU_VS_CPU`];
//! - against float32 weights, within [`I8_VS_F32`], printed; and against the CPU's own int8
//!   path (which quantizes the activations too), within the same bound;
//! - a projection LSTM (its recurrent weights `W_hh·W_hr` quantized as one matrix) stays
//!   within [`I8_VS_F32`] of float32;
//! - finite for finite inputs, whatever the weights' range (NaN-poisoned outputs overwritten).

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    CpuModel, Direction, Forward, ForwardOptions, GemmVariant, GpuModel, Input, Output, RnnSpec,
    StepVariant, UploadOptions, Weights, WeightsDtype,
};

/// Int8 against float32 weights: weights ~ U(±1/√H) with 127 steps per row's largest
/// magnitude (a relative error of at most 1/254 of that magnitude per weight), over a few dozen
/// steps; `tests/int8.rs` holds the CPU's int8 path to the same bound.
const I8_VS_F32: Tolerance = Tolerance {
    abs: 3e-2,
    rel: 3e-2,
};

#[test]
fn i8_weights_compute_what_the_quantized_weights_give() {
    let Some(ctx) = gpu() else { return };
    let base = seed("i8_weights_compute_what_the_quantized_weights_give", 2401);
    let mut r = rng(base);
    let specs = common::every_cell_specs();
    let limits = ctx.limits();
    let gemms: Vec<GemmVariant> = GemmVariant::ALL
        .into_iter()
        .filter(|v| v.runs_on(&limits, ctx.supports_subgroups()))
        .collect();
    let (mut exact, mut rounding, mut against_cpu_i8) = (0.0f32, 0.0f32, 0.0f32);
    let (mut forwards, mut with_cpu_i8) = (0, 0);
    for spec in specs {
        let weights = Weights::random(&spec, r.random()).unwrap();
        let int8 = UploadOptions::default().weights(WeightsDtype::I8);
        let model = GpuModel::upload_with(ctx, &weights, &int8).unwrap();
        assert_eq!(model.weights_dtype(), WeightsDtype::I8);
        let (t, b) = (r.random_range(1..=40), r.random_range(1..=9));
        let x: ndarray::Array3<f32> = uniform(&mut r, (t, b, spec.input_size), 1.0);
        let lengths: Vec<usize> = (0..b).map(|_| r.random_range(0..=t)).collect();
        let input = Input::new(x.view()).lengths(&lengths);
        let quantized = CpuModel::reference(weights.rounded(WeightsDtype::I8))
            .forward(&input)
            .unwrap();
        // The CPU's int8 path runs on the fast engine, which leaves ONNX's reset-before GRU
        // to the reference engine.
        let cpu_i8 = CpuModel::with_threads(weights.clone(), 2)
            .unwrap()
            .weights_dtype(WeightsDtype::I8)
            .ok()
            .map(|m| m.forward(&input).unwrap());
        let full = CpuModel::reference(weights).forward(&input).unwrap();
        for (i, variant) in StepVariant::ALL.into_iter().enumerate() {
            let options = ForwardOptions::default()
                .variant(variant)
                .gemm(gemms[i % gemms.len()])
                .batch_tile(1 + i % 4);
            let (out, _) = model.forward_with(&input, &options).unwrap();
            let what = format!("seed {base} {spec:?} T={t} B={b} {options:?}");
            exact = exact.max(assert_outputs_close(
                &what,
                &quantized,
                &out,
                Tolerance::GPU_VS_CPU,
            ));
            rounding = rounding.max(assert_outputs_close(&what, &full, &out, I8_VS_F32));
            if let Some(cpu_i8) = &cpu_i8 {
                against_cpu_i8 =
                    against_cpu_i8.max(assert_outputs_close(&what, cpu_i8, &out, I8_VS_F32));
                with_cpu_i8 += 1;
            }
            forwards += 1;
        }
    }
    assert!(
        with_cpu_i8 >= forwards * 6 / 7,
        "the CPU's int8 path ran too rarely"
    );
    eprintln!(
        "i8 weights (seed {base}, {forwards} forwards): worst |gpu − cpu on quantized weights| = {exact:.2e}, |gpu − cpu f32| = {rounding:.2e}, |gpu − cpu i8| = {against_cpu_i8:.2e}"
    );
}

/// Every GEMM variant on the same model: each computes the input projection's sums over the
/// integers in the same order, so the same bits.
#[test]
fn i8_weights_give_the_same_bits_in_every_gemm_variant() {
    let Some(ctx) = gpu() else { return };
    let base = seed("i8_weights_give_the_same_bits_in_every_gemm_variant", 2402);
    let mut r = rng(base);
    let spec = RnnSpec::lstm(37, 24).layers(2);
    let weights = Weights::random(&spec, r.random()).unwrap();
    let int8 = UploadOptions::default().weights(WeightsDtype::I8);
    let model = GpuModel::upload_with(ctx, &weights, &int8).unwrap();
    let x: ndarray::Array3<f32> = uniform(&mut r, (17, 5, 37), 1.0);
    let input = Input::new(x.view());
    let limits = ctx.limits();
    let mut first: Option<Output> = None;
    for gemm in GemmVariant::ALL {
        if !gemm.runs_on(&limits, ctx.supports_subgroups()) {
            continue;
        }
        let options = ForwardOptions::default()
            .variant(StepVariant::Stepwise)
            .gemm(gemm);
        let (out, _) = model.forward_with(&input, &options).unwrap();
        match &first {
            None => first = Some(out),
            Some(e) => {
                let same =
                    e.y.iter()
                        .zip(out.y.iter())
                        .all(|(u, v)| u.to_bits() == v.to_bits());
                assert!(same, "seed {base}: {gemm:?} differs from the first variant");
            }
        }
    }
}

/// An LSTM with a projection quantizes `W_hh·W_hr` as one matrix: close to float32.
#[test]
fn i8_weights_of_a_projection_lstm_stay_close_to_f32() {
    let Some(ctx) = gpu() else { return };
    let base = seed("i8_weights_of_a_projection_lstm_stay_close_to_f32", 2403);
    let mut r = rng(base);
    let spec = RnnSpec::lstm(11, 48)
        .proj_size(20)
        .layers(2)
        .direction(Direction::Bidirectional);
    let weights = Weights::random(&spec, r.random()).unwrap();
    let int8 = UploadOptions::default().weights(WeightsDtype::I8);
    let model = GpuModel::upload_with(ctx, &weights, &int8).unwrap();
    let x: ndarray::Array3<f32> = uniform(&mut r, (30, 3, 11), 1.0);
    let lengths = [30, 7, 19];
    let input = Input::new(x.view()).lengths(&lengths);
    let full = CpuModel::reference(weights).forward(&input).unwrap();
    let mut out = model.forward(&input).unwrap();
    let w = assert_outputs_close("projection lstm", &full, &out, I8_VS_F32);
    eprintln!("i8 weights, projection LSTM (seed {base}): worst |gpu − cpu f32| = {w:.2e}");
    // Weights far from U(±1/√H) (rows spanning 1e-3 … 30): still finite.
    let tensors = Weights::random(&spec, r.random())
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(name, w)| {
            let mut w = w.to_owned();
            for (i, v) in w.iter_mut().enumerate() {
                *v *= if i % 7 == 0 { 30.0 } else { 1e-3 };
            }
            (name, w)
        })
        .collect::<Vec<_>>();
    let wide = Weights::from_tensors(&spec, tensors).unwrap();
    let model = GpuModel::upload_with(ctx, &wide, &int8).unwrap();
    out.y.fill(f32::NAN);
    out = model.forward(&input).unwrap();
    assert!(
        out.y.iter().chain(out.h_n.iter()).all(|v| v.is_finite()),
        "seed {base}: non-finite output"
    );
}
