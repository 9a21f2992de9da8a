//! Reliability: concurrent use of one model, long runs, device faults, determinism, and
//! NaN/Inf inputs.

mod common;

use std::sync::Arc;

use common::{gpu, rng, seed, uniform};
use ndarray::{s, Array3, Axis};
use rand::Rng;
use wgpu_lstm::{
    ContextOptions, CpuModel, Error, Forward, GpuContext, GpuModel, Input, Output, RnnSpec, Weights,
};

#[test]
fn models_and_contexts_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GpuModel>();
    check::<GpuContext>();
    check::<CpuModel>();
    check::<Output>();
}

/// 8 threads × 50 forwards at once on one model, over three input shapes (so threads contend
/// for the cached workspaces), give exactly — bit for bit — the outputs of serial runs.
#[test]
fn concurrent_forwards_equal_serial_ones() {
    let Some(ctx) = gpu() else { return };
    let sd = seed("concurrent_forwards_equal_serial_ones", 71);
    let spec = RnnSpec::lstm(6, 20).layers(2).bidirectional(true);
    let model = Arc::new(GpuModel::upload(ctx, &Weights::random(&spec, sd).unwrap()).unwrap());
    let mut r = rng(sd);
    let shapes = [(5, 3), (9, 1), (5, 4)];
    let inputs: Vec<Array3<f32>> = (0..8 * 50)
        .map(|i| {
            let (t, b) = shapes[i % 3];
            uniform(&mut r, (t, b, 6), 1.0)
        })
        .collect();
    let serial: Vec<Output> = inputs
        .iter()
        .map(|x| model.forward(&Input::new(x.view())).unwrap())
        .collect();
    let inputs = Arc::new(inputs);
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let (model, inputs) = (model.clone(), inputs.clone());
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let n = i * 8 + k;
                        (n, model.forward(&Input::new(inputs[n].view())).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (n, out) in t.join().expect("no thread panicked") {
            assert_eq!(out, serial[n], "forward {n} differs from its serial run");
        }
    }
}

/// 8 threads × 25 forwards at once on one model, each of a random length in 1..=40 and a
/// random batch in 1..=5 (with random per-sequence lengths), give bit for bit the outputs of
/// serial runs; the workspaces created stay bounded by the pool (threads × powers of two),
/// not by the number of distinct input shapes.
#[test]
fn concurrent_forwards_of_random_lengths() {
    let Some(ctx) = gpu() else { return };
    let sd = seed("concurrent_forwards_of_random_lengths", 73);
    let spec = RnnSpec::lstm(5, 24).layers(2).proj_size(7);
    let model = Arc::new(GpuModel::upload(ctx, &Weights::random(&spec, sd).unwrap()).unwrap());
    let mut r = rng(sd);
    let cases: Vec<(Array3<f32>, Vec<usize>)> = (0..8 * 25)
        .map(|_| {
            let (t, b) = (r.random_range(1..=40), r.random_range(1..=5));
            let lengths = (0..b).map(|_| r.random_range(1..=t)).collect();
            (uniform(&mut r, (t, b, 5), 1.0), lengths)
        })
        .collect();
    let forward = |m: &GpuModel, (x, l): &(Array3<f32>, Vec<usize>)| {
        m.forward(&Input::new(x.view()).lengths(l)).unwrap()
    };
    let serial: Vec<Output> = cases.iter().map(|c| forward(&model, c)).collect();
    let serial_created = model.workspaces_created();
    let cases = Arc::new(cases);
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let (model, cases) = (model.clone(), cases.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| (i * 8 + k, forward(&model, &cases[i * 8 + k])))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (n, out) in t.join().expect("no thread panicked") {
            assert_eq!(out, serial[n], "forward {n} differs from its serial run");
        }
    }
    let distinct: std::collections::HashSet<(usize, usize)> =
        cases.iter().map(|(x, _)| (x.dim().0, x.dim().1)).collect();
    let created = model.workspaces_created();
    eprintln!(
        "{} distinct shapes; workspaces created: {serial_created} serially, {created} in all",
        distinct.len()
    );
    // Serially each new workspace covers every earlier one: at most one per power of two of
    // the steps (1..=64) and of the batch (1..=8).
    assert!(
        serial_created <= 7 + 4,
        "{serial_created} workspaces for serial forwards"
    );
    // Concurrently a thread creates one where every idle workspace is busy or too small:
    // a few per thread while the pool grows to serve 8 at once.
    assert!(created <= serial_created + 2 * 8, "{created} workspaces");
    assert!(
        created < distinct.len(),
        "{created} workspaces for {} shapes",
        distinct.len()
    );
}

#[test]
fn same_input_same_bits() {
    let sd = seed("same_input_same_bits", 72);
    let spec = RnnSpec::lstm(7, 33).layers(2).proj_size(5);
    let w = Weights::random(&spec, sd).unwrap();
    let x: Array3<f32> = uniform(&mut rng(sd), (30, 5, 7), 1.0);
    let input = Input::new(x.view());
    let cpu = CpuModel::new(w.clone());
    assert_eq!(cpu.forward(&input).unwrap(), cpu.forward(&input).unwrap());
    if let Some(ctx) = gpu() {
        let a = GpuModel::upload(ctx, &w).unwrap();
        let b = GpuModel::upload(ctx, &w).unwrap();
        let first = a.forward(&input).unwrap();
        assert_eq!(first, a.forward(&input).unwrap());
        assert_eq!(first, b.forward(&input).unwrap());
    }
}

/// A NaN or infinity in the input reaches only the outputs it feeds: its own batch element
/// from its time step on (forward direction), nothing else; no crash, no hang.
#[test]
fn nan_and_inf_propagate_only_where_they_reach() {
    let sd = seed("nan_and_inf_propagate_only_where_they_reach", 73);
    let spec = RnnSpec::lstm(4, 9).layers(2);
    let w = Weights::random(&spec, sd).unwrap();
    let clean: Array3<f32> = uniform(&mut rng(sd), (8, 3, 4), 1.0);
    let mut models: Vec<(&str, Box<dyn Forward>)> =
        vec![("cpu", Box::new(CpuModel::new(w.clone())))];
    if let Some(ctx) = gpu() {
        models.push(("gpu", Box::new(GpuModel::upload(ctx, &w).unwrap())));
    }
    for (name, model) in &models {
        let base = model.forward(&Input::new(clean.view())).unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = clean.clone();
            x[[3, 1, 2]] = bad;
            let out = model.forward(&Input::new(x.view())).unwrap();
            let what = format!("{name} with {bad} at t=3, b=1");
            // Other batch elements, and element 1 before t = 3, are untouched.
            for b in [0, 2] {
                assert_eq!(
                    out.y.index_axis(Axis(1), b),
                    base.y.index_axis(Axis(1), b),
                    "{what}: element {b}"
                );
            }
            assert_eq!(
                out.y.slice(s![..3, 1, ..]),
                base.y.slice(s![..3, 1, ..]),
                "{what}: before t=3"
            );
            if bad.is_nan() {
                assert!(
                    out.y.slice(s![3.., 1, ..]).iter().all(|v| v.is_nan()),
                    "{what}: NaN did not propagate"
                );
            }
        }
    }
}

/// A weight buffer beyond the device's limits is an error, before anything is allocated.
#[test]
fn limits_give_errors_not_panics() {
    let Some(ctx) = gpu() else { return };
    let mut limits = ctx.limits();
    limits.max_storage_buffer_binding_size = 1 << 16;
    let small = GpuContext::new(&ContextOptions {
        limits: Some(limits),
        ..ContextOptions::default()
    })
    .unwrap();
    let w = Weights::random(&RnnSpec::lstm(4, 100), 1).unwrap(); // W_hh: 160 KB
    let e = GpuModel::upload(&small, &w).unwrap_err();
    assert!(matches!(e, Error::ExceedsLimit { .. }), "{e}");
    assert!(
        e.to_string().contains("max_storage_buffer_binding_size"),
        "{e}"
    );
}

/// After the device is lost, forwards return errors; a new context works again.
#[test]
fn lost_device_is_an_error_and_recoverable() {
    if gpu().is_none() {
        return;
    }
    let ctx = GpuContext::new(&ContextOptions::default()).unwrap();
    let w = Weights::random(&RnnSpec::lstm(3, 5), 2).unwrap();
    let model = GpuModel::upload(&ctx, &w).unwrap();
    let x = Array3::<f32>::ones((4, 2, 3));
    let good = model.forward(&Input::new(x.view())).unwrap();
    ctx.device().destroy();
    let e = model.forward(&Input::new(x.view())).unwrap_err();
    eprintln!("forward on a destroyed device: {e}");
    assert!(matches!(e, Error::Gpu { .. }), "{e}");
    let e = GpuModel::upload(&ctx, &w).unwrap_err();
    eprintln!("upload on a destroyed device: {e}");
    let fresh = GpuContext::new(&ContextOptions::default()).unwrap();
    let again = GpuModel::upload(&fresh, &w).unwrap();
    assert_eq!(again.forward(&Input::new(x.view())).unwrap(), good);
}
