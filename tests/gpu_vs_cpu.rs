//! The GPU forward against the CPU reference on 54 seeded random configurations: every
//! combination of hidden size {1, 3, 63, 64, 65, 257} (around the 64-wide workgroup), batch
//! {1, 7, 33} (around the 4-row batch tile) and steps {1, 50, 300}, each with a random input
//! size (≠ hidden), 1–3 layers, one or two directions, given or zero h0/c0, and batch-first or
//! not. GPU buffers are filled with NaN before each forward, so an element the kernels fail to
//! write cannot pass.
//!
//! Tolerance: [`Tolerance::GPU_VS_CPU`] (`1e-4` absolute and relative), see its docs.

mod common;

use common::{assert_outputs_close, gpu, rng, seed, uniform};
use ndarray::Array3;
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{CpuModel, Forward, GpuModel, Input, RnnSpec, Weights};

const HIDDEN: [usize; 6] = [1, 3, 63, 64, 65, 257];
const BATCH: [usize; 3] = [1, 7, 33];
const INPUTS: [usize; 5] = [1, 5, 17, 40, 100];

#[derive(Debug)]
struct Config {
    spec: RnnSpec,
    batch: usize,
    steps: usize,
    with_state: bool,
    batch_first: bool,
    seed: u64,
}

/// The 18 configurations with `steps`, one per (hidden, batch) pair, other choices drawn from
/// the seeded generator.
fn configs(steps: usize, seed: u64) -> Vec<Config> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for &hidden in &HIDDEN {
        for &batch in &BATCH {
            let input = loop {
                let i = INPUTS[r.random_range(0..INPUTS.len())];
                if i != hidden {
                    break i;
                }
            };
            let spec = RnnSpec::lstm(input, hidden)
                .layers(r.random_range(1..=3))
                .bidirectional(r.random_bool(0.5))
                .bias(r.random_bool(0.85));
            out.push(Config {
                spec,
                batch,
                steps,
                with_state: r.random_bool(0.5),
                batch_first: r.random_bool(0.3),
                seed: r.random(),
            });
        }
    }
    out
}

fn run_configs(test: &str, steps: usize, default_seed: u64) {
    let Some(ctx) = gpu() else { return };
    let base = seed(test, default_seed);
    let mut worst = 0.0f32;
    for (n, cfg) in configs(steps, base).iter().enumerate() {
        let mut r = rng(cfg.seed);
        let weights = Weights::random(&cfg.spec, cfg.seed).unwrap();
        let (t, b, i, h) = (
            cfg.steps,
            cfg.batch,
            cfg.spec.input_size,
            cfg.spec.hidden_size,
        );
        let ld = cfg.spec.num_layers * cfg.spec.num_directions();
        let x: Array3<f32> = if cfg.batch_first {
            uniform(&mut r, (b, t, i), 1.0)
        } else {
            uniform(&mut r, (t, b, i), 1.0)
        };
        let h0: Array3<f32> = uniform(&mut r, (ld, b, h), 1.0);
        let c0: Array3<f32> = uniform(&mut r, (ld, b, h), 2.0);
        let mut input = Input::new(x.view()).batch_first(cfg.batch_first);
        if cfg.with_state {
            input = input.h0(h0.view()).c0(c0.view());
        }
        let expected = CpuModel::new(weights.clone()).forward(&input).unwrap();
        let model = GpuModel::upload(ctx, &weights).unwrap();
        model.poison_workspace(t, b, f32::NAN).unwrap();
        let actual = model.forward(&input).unwrap();
        let what = format!("{test} config {n} {cfg:?}");
        let err = assert_outputs_close(&what, &expected, &actual, Tolerance::GPU_VS_CPU);
        assert_eq!(
            model.last_forward_dispatches(),
            cfg.spec.num_layers * (t + 1),
            "{what}: dispatches"
        );
        eprintln!(
            "  config {n:2}: H={h:3} I={i:3} B={b:2} T={t:3} L={} D={} bias={} state={} batch_first={}  max |gpu-cpu| = {err:.2e}",
            cfg.spec.num_layers,
            cfg.spec.num_directions(),
            cfg.spec.bias,
            cfg.with_state,
            cfg.batch_first
        );
        worst = worst.max(err);
    }
    eprintln!("{test}: worst |gpu-cpu| over 18 configurations = {worst:.3e}");
}

#[test]
fn gpu_matches_cpu_1_step() {
    run_configs("gpu_matches_cpu_1_step", 1, 101);
}

#[test]
fn gpu_matches_cpu_50_steps() {
    run_configs("gpu_matches_cpu_50_steps", 50, 202);
}

#[test]
fn gpu_matches_cpu_300_steps() {
    run_configs("gpu_matches_cpu_300_steps", 300, 303);
}

#[test]
fn configurations_cover_every_required_value() {
    let all: Vec<Config> = [1, 50, 300].iter().flat_map(|&s| configs(s, 7)).collect();
    assert!(all.len() >= 50);
    for h in HIDDEN {
        assert!(all.iter().any(|c| c.spec.hidden_size == h));
    }
    for layers in 1..=3 {
        assert!(all.iter().any(|c| c.spec.num_layers == layers));
    }
    assert!(all.iter().any(|c| c.spec.bidirectional));
    assert!(all.iter().any(|c| !c.spec.bidirectional));
    assert!(all.iter().any(|c| c.with_state) && all.iter().any(|c| !c.with_state));
    assert!(all.iter().all(|c| c.spec.input_size != c.spec.hidden_size));
}
