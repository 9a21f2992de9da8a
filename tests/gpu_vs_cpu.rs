//! The GPU forward against the CPU reference on 54 seeded random configurations: every
//! combination of hidden size {1, 3, 63, 64, 65, 257} (around the 64-wide workgroup), batch
//! {1, 7, 33} (around the 4-row batch tile) and steps {1, 50, 300}, each with a random input
//! size (≠ hidden), 1–3 layers, one or two directions, given or zero h0/c0, and batch-first or
//! not, each with the step variant its seed draws. GPU buffers are filled with NaN before each
//! forward, so an element the kernels fail to write cannot pass.
//!
//! Tolerance: [`Tolerance::GPU_VS_CPU`] (`2e-5` absolute and relative), see its docs.

mod common;

use common::{check_config, gpu, rng, seed, Config};
use rand::Rng;
use wgpu_lstm::RnnSpec;

const HIDDEN: [usize; 6] = [1, 3, 63, 64, 65, 257];
const BATCH: [usize; 3] = [1, 7, 33];
const INPUTS: [usize; 5] = [1, 5, 17, 40, 100];

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
                with_lengths: false,
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
        worst = worst.max(check_config(ctx, &format!("{test} config {n}"), cfg));
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
