//! Inputs larger than the device's limits still run, chunked over the batch and over time.
//! The tests ask for a device with small limits so that the chunking paths run on small data,
//! and compare with the CPU.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use ndarray::Array3;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Cell, ContextOptions, CpuModel, Error, Forward, GpuContext, GpuModel, Input, RnnSpec, Stream,
    Weights,
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
        ..ContextOptions::default()
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

/// A stream whose chunk cannot run on the device: the error is clear, a state given with
/// `set_state` survives it, and `state()` after a failed first chunk answers (no panic).
#[test]
fn a_failed_stream_chunk_keeps_the_state() {
    let Some(ctx) = small_device(65535) else {
        return;
    };
    let sd = seed("a_failed_stream_chunk_keeps_the_state", 94);
    let mut r = rng(sd);
    // 300 sequences: their state (19 KiB) fits the 64 KiB binding limit, one step of their
    // input (300 × 64 features, 75 KiB) does not.
    let spec = RnnSpec::lstm(64, 16);
    let model = GpuModel::upload(&ctx, &Weights::random(&spec, sd).unwrap()).unwrap();
    let chunk: Array3<f32> = uniform(&mut r, (1, 300, 64), 1.0);

    let mut fresh = model.stream(300).unwrap();
    let e = fresh.feed(chunk.view()).unwrap_err();
    assert!(matches!(e, Error::ExceedsLimit { .. }), "{e}");
    let s = fresh.state().unwrap();
    assert!(s.h.iter().chain(s.c.iter().flatten()).all(|&v| v == 0.0));

    let mut stream = model.stream(300).unwrap();
    let h: Array3<f32> = uniform(&mut r, (1, 300, 16), 1.0);
    let c: Array3<f32> = uniform(&mut r, (1, 300, 16), 1.0);
    stream.set_state(h.view(), Some(c.view())).unwrap();
    assert!(stream.feed(chunk.view()).is_err());
    let s = stream.state().unwrap();
    assert_eq!(s.h, h, "the state given with set_state was lost");
    assert_eq!(s.c.as_ref(), Some(&c));
}

/// A stream chunk longer than the device holds runs in time windows, equal to the CPU.
#[test]
fn a_long_stream_chunk_runs_in_windows() {
    let Some(ctx) = small_device(65535) else {
        return;
    };
    let sd = seed("a_long_stream_chunk_runs_in_windows", 95);
    let mut r = rng(sd);
    let spec = RnnSpec::lstm(8, 32).layers(2);
    let w = Weights::random(&spec, sd).unwrap();
    let x: Array3<f32> = uniform(&mut r, (1500, 2, 8), 1.0);
    let model = GpuModel::upload(&ctx, &w).unwrap();
    let mut stream = model.stream(2).unwrap();
    let mut ys = vec![stream.feed(x.slice(ndarray::s![..700, .., ..])).unwrap()];
    ys.push(stream.feed(x.slice(ndarray::s![700.., .., ..])).unwrap());
    let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
    let y = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    let state = stream.state().unwrap();
    let expected = CpuModel::new(w).forward(&Input::new(x.view())).unwrap();
    let got = wgpu_lstm::Output {
        y: y.into_dyn(),
        h_n: state.h.into_dyn(),
        c_n: state.c.map(|c| c.into_dyn()),
    };
    assert_outputs_close("stream in windows", &expected, &got, Tolerance::GPU_VS_CPU);
}
