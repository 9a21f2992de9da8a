//! Inputs larger than the device's limits still run, chunked over the batch and over time.
//! The tests ask for a device with small limits so that the chunking paths run on small data,
//! and compare with the CPU.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use ndarray::Array3;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Cell, ContextOptions, CpuModel, Error, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights,
};

/// Storage bindings of at most 64 KiB, and at most `groups` workgroups per dimension.
fn small_device(groups: u32) -> Option<GpuContext> {
    let ctx = gpu()?;
    let mut limits = ctx.limits();
    limits.max_storage_buffer_binding_size = 64 * 1024;
    limits.max_compute_workgroups_per_dimension = groups;
    let options = ContextOptions {
        backends: wgpu::Backends::from(ctx.adapter_info().backend),
        adapter_name: Some(ctx.adapter_info().name.clone()),
        limits: Some(limits),
    };
    Some(GpuContext::new(&options).unwrap())
}

fn check(
    ctx: &GpuContext,
    what: &str,
    spec: &RnnSpec,
    steps: usize,
    batch: usize,
    lengths: Option<&[usize]>,
    sd: u64,
) {
    let weights = Weights::random(spec, sd).unwrap();
    let mut r = rng(sd);
    let x: Array3<f32> = uniform(&mut r, (steps, batch, spec.input_size), 1.0);
    let ld = spec.num_layers * spec.num_directions();
    let h0: Array3<f32> = uniform(&mut r, (ld, batch, spec.hidden_out()), 1.0);
    let mut input = Input::new(x.view()).h0(h0.view());
    if let Some(l) = lengths {
        input = input.lengths(l);
    }
    let expected = CpuModel::new(weights.clone()).forward(&input).unwrap();
    let model = GpuModel::upload(ctx, &weights).unwrap();
    let out = model.forward(&input).unwrap();
    let y_bytes = steps * batch * spec.output_size() * 4;
    let gx_bytes = spec.num_directions() * steps * batch * 4 * spec.hidden_size * 4;
    eprintln!(
        "{what}: y {} KiB, input projection {} KiB against a 64 KiB binding limit ({:.0}×)",
        y_bytes / 1024,
        gx_bytes / 1024,
        gx_bytes.max(y_bytes) as f64 / 65536.0
    );
    assert_outputs_close(what, &expected, &out, Tolerance::GPU_VS_CPU);
}

#[test]
fn chunked_over_batch() {
    let Some(ctx) = small_device(65535) else {
        return;
    };
    let sd = seed("chunked_over_batch", 91);
    let spec = RnnSpec::lstm(8, 16).layers(2).bidirectional(true);
    let lengths: Vec<usize> = (0..40).map(|b| 1 + (b * 7) % 50).collect();
    check(
        &ctx,
        "bidirectional LSTM, batch 40",
        &spec,
        50,
        40,
        Some(&lengths),
        sd,
    );
}

#[test]
fn chunked_over_time() {
    let Some(ctx) = small_device(65535) else {
        return;
    };
    let sd = seed("chunked_over_time", 92);
    check(
        &ctx,
        "GRU, 4000 steps",
        &RnnSpec::gru(8, 64),
        4000,
        1,
        None,
        sd,
    );
    let spec = RnnSpec::lstm(8, 32).layers(2).proj_size(8).peephole(true);
    check(
        &ctx,
        "LSTM with projection, 2000 steps × 3",
        &spec,
        2000,
        3,
        Some(&[2000, 700, 1]),
        sd,
    );
    let spec = RnnSpec::new(Cell::RnnRelu, 8, 40);
    check(&ctx, "RNN, 3000 steps × 2", &spec, 3000, 2, None, sd);
}

#[test]
fn chunked_for_the_workgroup_limit() {
    let Some(ctx) = small_device(16) else { return };
    let sd = seed("chunked_for_the_workgroup_limit", 93);
    check(
        &ctx,
        "LSTM, 40 steps × batch 80, ≤ 16 workgroups",
        &RnnSpec::lstm(8, 16),
        40,
        80,
        None,
        sd,
    );
}

#[test]
fn too_long_for_a_bidirectional_model_is_an_error() {
    let Some(ctx) = small_device(65535) else {
        return;
    };
    let w = Weights::random(&RnnSpec::lstm(8, 32).bidirectional(true), 1).unwrap();
    let model = GpuModel::upload(&ctx, &w).unwrap();
    let x = Array3::<f32>::zeros((2000, 1, 8));
    let e = model.forward(&Input::new(x.view())).unwrap_err();
    assert!(matches!(e, Error::ExceedsLimit { .. }), "{e}");
    eprintln!("{e}");
}
