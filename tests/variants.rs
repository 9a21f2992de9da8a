//! Every cell variant on both paths: GRU, RNN (tanh, relu), peephole LSTM, LSTM with
//! projection, and per-sequence lengths for all of them.
//!
//! - one step per cell worked out by hand;
//! - GPU against CPU on 18 seeded random configurations per variant (hidden 1–257, batch
//!   1–33, up to 120 steps, 1–3 layers, one or two directions, h0/c0, lengths), GPU buffers
//!   poisoned with NaN first; tolerance [`Tolerance::GPU_VS_CPU`];
//! - lengths against running each sequence alone, truncated to its length.

mod common;

use common::{
    assert_close, assert_outputs_close, check_config, gpu, models, rng, seed, uniform, Config,
};
use ndarray::{arr1, arr2, s, Array3, ArrayD, Axis};
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Cell, CpuModel, Forward, ForwardOptions, GpuModel, Input, RnnSpec, StepVariant, Weights,
};

/// Float32 rounding of a handful of operations.
const HAND: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-6,
};

fn tensors(list: &[(&str, ArrayD<f32>)]) -> Vec<(String, ArrayD<f32>)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn scalar3(v: f32) -> Array3<f32> {
    Array3::from_elem((1, 1, 1), v)
}

fn expect1(v: f64) -> ArrayD<f32> {
    ArrayD::from_elem(vec![1, 1, 1], v as f32)
}

/// GRU, I = H = 1, rows r, z, n:
///
/// ```text
/// W_ih = [0.5, −0.4, 0.9]  W_hh = [0.3, 0.2, −0.6]  b_ih = [0.1, −0.1, 0.05]  b_hh = [0, 0.2, −0.3]
/// x = 1, h0 = 0.5
/// r = σ(0.5 + 0.1 + 0.15 + 0)          = σ(0.75)  = 0.6791786992
/// z = σ(−0.4 − 0.1 + 0.1 + 0.2)        = σ(−0.2)  = 0.4501660027
/// n = tanh(0.9 + 0.05 + r·(−0.3 − 0.3)) = tanh(0.5424927795) = 0.4948725890
/// h1 = (1 − z)·n + z·h0 = 0.2720998500 + 0.2250830013 = 0.4971807751
/// ```
#[test]
fn hand_computed_gru_step() {
    let spec = RnnSpec::gru(1, 1);
    let w = Weights::from_tensors(
        &spec,
        tensors(&[
            ("weight_ih_l0", arr2(&[[0.5f32], [-0.4], [0.9]]).into_dyn()),
            ("weight_hh_l0", arr2(&[[0.3f32], [0.2], [-0.6]]).into_dyn()),
            ("bias_ih_l0", arr1(&[0.1f32, -0.1, 0.05]).into_dyn()),
            ("bias_hh_l0", arr1(&[0.0f32, 0.2, -0.3]).into_dyn()),
        ]),
    )
    .unwrap();
    let (x, h0) = (scalar3(1.0), scalar3(0.5));
    for (name, model) in models(&w) {
        let out = model.forward(&Input::new(x.view()).h0(h0.view())).unwrap();
        assert_close(
            &format!("{name} gru h1"),
            &expect1(0.497_180_775_115_865_8),
            &out.h_n,
            HAND,
        );
        assert_close(
            &format!("{name} gru y"),
            &expect1(0.497_180_775_115_865_8),
            &out.y,
            HAND,
        );
        assert!(out.c_n.is_none());
    }
}

/// RNN, I = H = 1: `W_ih = 0.7, W_hh = −0.5, b_ih = 0.1, b_hh = −0.2`, h0 = 0.5.
/// x = 1: a = 0.7 − 0.25 + 0.1 − 0.2 = 0.35, tanh → 0.3363755443, relu → 0.35.
/// x = −1: a = −0.7 − 0.25 − 0.1 = −1.05, relu → 0.
#[test]
fn hand_computed_rnn_steps() {
    for (cell, x, expected) in [
        (Cell::RnnTanh, 1.0, 0.336_375_544_336_332_2),
        (Cell::RnnRelu, 1.0, 0.35),
        (Cell::RnnRelu, -1.0, 0.0),
    ] {
        let spec = RnnSpec::new(cell, 1, 1);
        let w = Weights::from_tensors(
            &spec,
            tensors(&[
                ("weight_ih_l0", arr2(&[[0.7f32]]).into_dyn()),
                ("weight_hh_l0", arr2(&[[-0.5f32]]).into_dyn()),
                ("bias_ih_l0", arr1(&[0.1f32]).into_dyn()),
                ("bias_hh_l0", arr1(&[-0.2f32]).into_dyn()),
            ]),
        )
        .unwrap();
        let (xs, h0) = (scalar3(x), scalar3(0.5));
        for (name, model) in models(&w) {
            let out = model.forward(&Input::new(xs.view()).h0(h0.view())).unwrap();
            let what = format!("{name} {} x={x}", cell.name());
            assert_close(&what, &expect1(expected), &out.y, HAND);
        }
    }
}

/// Peephole LSTM: the weights of the plain hand-computed LSTM step plus
/// `weight_ph = [p_i, p_f, p_o] = [0.3, −0.2, 0.5]`; x = 1, h0 = 0.5, c0 = 2.
///
/// ```text
/// i = σ(0.65 + 0.3·2)        = σ(1.25)  = 0.7772998612
/// f = σ(−0.2 − 0.2·2)        = σ(−0.6)  = 0.3543436938
/// g = tanh(0.8)                          = 0.6640367703
/// c1 = f·2 + i·g                         = 1.2248430769
/// o = σ(0.35 + 0.5·c1)       = σ(0.9624215384) = 0.7236063754
/// h1 = o·tanh(c1)                        = 0.6086086748
/// ```
#[test]
fn hand_computed_peephole_step() {
    let spec = RnnSpec::lstm(1, 1).peephole(true);
    let w = Weights::from_tensors(
        &spec,
        tensors(&[
            (
                "weight_ih_l0",
                arr2(&[[0.5f32], [-0.5], [1.0], [0.25]]).into_dyn(),
            ),
            (
                "weight_hh_l0",
                arr2(&[[0.1f32], [0.2], [-0.3], [0.4]]).into_dyn(),
            ),
            ("bias_ih_l0", arr1(&[0.1f32, 0.0, 0.0, -0.1]).into_dyn()),
            ("bias_hh_l0", arr1(&[0.0f32, 0.2, -0.05, 0.0]).into_dyn()),
            ("weight_ph_l0", arr1(&[0.3f32, -0.2, 0.5]).into_dyn()),
        ]),
    )
    .unwrap();
    let (x, h0, c0) = (scalar3(1.0), scalar3(0.5), scalar3(2.0));
    for (name, model) in models(&w) {
        let out = model
            .forward(&Input::new(x.view()).h0(h0.view()).c0(c0.view()))
            .unwrap();
        assert_close(
            &format!("{name} peephole h1"),
            &expect1(0.608_608_674_812_542_5),
            &out.y,
            HAND,
        );
        let c = out.c_n.unwrap();
        assert_close(
            &format!("{name} peephole c1"),
            &expect1(1.224_843_076_892_498_5),
            &c,
            HAND,
        );
    }
}

/// LSTM with projection, I = 1, H = 2, P = 1, no biases; x = 1, h0 = 0.5, c0 = [1, −1].
///
/// ```text
/// W_ih = [0.5, −0.3, 0.2, 0.4, 1.0, −1.0, 0.3, 0.1]ᵀ  (rows i0 i1 f0 f1 g0 g1 o0 o1)
/// W_hh = [0.2, 0.1, −0.3, 0.5, 0.4, 0.6, −0.2, 0.3]ᵀ  W_hr = [[0.7, −0.4]]
/// a = W_ih·1 + W_hh·0.5 = [0.6, −0.25, 0.05, 0.65, 1.2, −0.7, 0.2, 0.25]
/// unit 0: i = σ(0.6), f = σ(0.05), g = tanh(1.2), o = σ(0.2)
///         c = f·1 + i·g = 1.0507517507, m = o·tanh(c) = 0.4300243174
/// unit 1: i = σ(−0.25), f = σ(0.65), g = tanh(−0.7), o = σ(0.25)
///         c = −f + i·g = −0.9216168776, m = −0.4085119736
/// h1 = W_hr·m = 0.7·0.4300243174 − 0.4·(−0.4085119736) = 0.4644218116
/// ```
#[test]
fn hand_computed_projection_step() {
    let spec = RnnSpec::lstm(1, 2).proj_size(1).bias(false);
    let col = |v: &[f32]| {
        ndarray::Array2::from_shape_vec((v.len(), 1), v.to_vec())
            .unwrap()
            .into_dyn()
    };
    let w = Weights::from_tensors(
        &spec,
        tensors(&[
            (
                "weight_ih_l0",
                col(&[0.5, -0.3, 0.2, 0.4, 1.0, -1.0, 0.3, 0.1]),
            ),
            (
                "weight_hh_l0",
                col(&[0.2, 0.1, -0.3, 0.5, 0.4, 0.6, -0.2, 0.3]),
            ),
            ("weight_hr_l0", arr2(&[[0.7f32, -0.4]]).into_dyn()),
        ]),
    )
    .unwrap();
    let x = scalar3(1.0);
    let h0 = scalar3(0.5);
    let c0 = Array3::from_shape_vec((1, 1, 2), vec![1.0f32, -1.0]).unwrap();
    for (name, model) in models(&w) {
        let out = model
            .forward(&Input::new(x.view()).h0(h0.view()).c0(c0.view()))
            .unwrap();
        assert_eq!(out.y.shape(), &[1, 1, 1]);
        assert_close(
            &format!("{name} projection h1"),
            &expect1(0.464_421_811_623_625_6),
            &out.y,
            HAND,
        );
        assert_close(
            &format!("{name} projection h_n"),
            &expect1(0.464_421_811_623_625_6),
            &out.h_n,
            HAND,
        );
        let c = ArrayD::from_shape_vec(vec![1, 1, 2], vec![1.050_751_8f32, -0.921_616_9]).unwrap();
        assert_close(
            &format!("{name} projection c_n"),
            &c,
            out.c_n.as_ref().unwrap(),
            HAND,
        );
    }
}

const HIDDEN: [usize; 6] = [1, 3, 63, 64, 65, 257];
const BATCH: [usize; 3] = [1, 7, 33];
const STEPS: [usize; 3] = [1, 23, 120];
const INPUTS: [usize; 5] = [1, 5, 17, 40, 100];

/// 18 configurations of one variant: every (hidden, batch) pair, the rest drawn.
fn variant_configs(make: impl Fn(usize, usize) -> RnnSpec, seed: u64) -> Vec<Config> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for &hidden in &HIDDEN {
        for &batch in &BATCH {
            let input = INPUTS[r.random_range(0..INPUTS.len())];
            let spec = make(input, hidden)
                .layers(r.random_range(1..=3))
                .bidirectional(r.random_bool(0.5))
                .bias(r.random_bool(0.85));
            out.push(Config {
                spec,
                batch,
                steps: STEPS[r.random_range(0..STEPS.len())],
                with_state: r.random_bool(0.5),
                batch_first: r.random_bool(0.3),
                with_lengths: r.random_bool(0.6),
                seed: r.random(),
            });
        }
    }
    out
}

fn run_variant(test: &str, default_seed: u64, make: impl Fn(usize, usize) -> RnnSpec) {
    let Some(ctx) = gpu() else { return };
    let base = seed(test, default_seed);
    let worst = variant_configs(make, base)
        .iter()
        .enumerate()
        .map(|(n, cfg)| check_config(ctx, &format!("{test} config {n}"), cfg))
        .fold(0.0f32, f32::max);
    eprintln!("{test}: worst |gpu-cpu| over 18 configurations = {worst:.3e}");
}

#[test]
fn gpu_matches_cpu_gru() {
    run_variant("gpu_matches_cpu_gru", 31, RnnSpec::gru);
}

#[test]
fn gpu_matches_cpu_rnn_tanh() {
    run_variant("gpu_matches_cpu_rnn_tanh", 32, |i, h| {
        RnnSpec::new(Cell::RnnTanh, i, h)
    });
}

#[test]
fn gpu_matches_cpu_rnn_relu() {
    run_variant("gpu_matches_cpu_rnn_relu", 33, |i, h| {
        RnnSpec::new(Cell::RnnRelu, i, h)
    });
}

#[test]
fn gpu_matches_cpu_peephole_lstm() {
    run_variant("gpu_matches_cpu_peephole_lstm", 34, |i, h| {
        RnnSpec::lstm(i, h).peephole(true)
    });
}

/// Projection needs `proj_size < hidden_size`: hidden 1 becomes 2; P is drawn below H.
#[test]
fn gpu_matches_cpu_projection_lstm() {
    run_variant("gpu_matches_cpu_projection_lstm", 35, |i, h| {
        let h = h.max(2);
        let p = 1 + (i * 7 + h) % (h - 1);
        RnnSpec::lstm(i, h).proj_size(p).peephole(i % 2 == 1)
    });
}

#[test]
fn gpu_matches_cpu_lstm_with_lengths() {
    let Some(ctx) = gpu() else { return };
    let base = seed("gpu_matches_cpu_lstm_with_lengths", 36);
    let mut worst = 0.0f32;
    for (n, mut cfg) in variant_configs(RnnSpec::lstm, base).into_iter().enumerate() {
        cfg.with_lengths = true;
        worst = worst.max(check_config(ctx, &format!("lstm lengths config {n}"), &cfg));
    }
    eprintln!("gpu_matches_cpu_lstm_with_lengths: worst |gpu-cpu| = {worst:.3e}");
}

/// With lengths, each batch element gives what it gives alone when cut to its length: its
/// outputs up to its length, zeros after, and its own final states — for both directions
/// (the reverse one starting at the element's own last step), every cell, on both paths.
#[test]
fn lengths_equal_truncated_sequences() {
    let sd = seed("lengths_equal_truncated_sequences", 37);
    let mut r = rng(sd);
    let (t, i, h) = (8, 3, 5);
    let lengths = [8usize, 1, 5, 3];
    let b = lengths.len();
    let specs = [
        RnnSpec::lstm(i, h).layers(2).bidirectional(true),
        RnnSpec::gru(i, h).layers(2).bidirectional(true),
        RnnSpec::new(Cell::RnnRelu, i, h).bidirectional(true),
        RnnSpec::lstm(i, h)
            .proj_size(2)
            .peephole(true)
            .layers(2)
            .bidirectional(true),
    ];
    for spec in specs {
        let weights = Weights::random(&spec, sd).unwrap();
        let x: Array3<f32> = uniform(&mut r, (t, b, i), 1.0);
        let ld = spec.num_layers * spec.num_directions();
        let h0: Array3<f32> = uniform(&mut r, (ld, b, spec.hidden_out()), 1.0);
        let tol = Tolerance::GPU_VS_CPU;
        for (name, model) in models(&weights) {
            let what = format!("{name} {}", spec.cell.name());
            let out = model
                .forward(&Input::new(x.view()).h0(h0.view()).lengths(&lengths))
                .unwrap();
            for (k, &len) in lengths.iter().enumerate() {
                let alone = model
                    .forward(&Input::new(x.slice(s![..len, k, ..])).h0(h0.slice(s![.., k, ..])))
                    .unwrap();
                let y_k = out.y.slice(s![..len, k, ..]).to_owned().into_dyn();
                assert_close(&format!("{what} y of element {k}"), &alone.y, &y_k, tol);
                assert!(
                    out.y.slice(s![len.., k, ..]).iter().all(|&v| v == 0.0),
                    "{what}: outputs of element {k} past its length are not 0"
                );
                let hn_k = out.h_n.index_axis(Axis(1), k).to_owned();
                assert_close(
                    &format!("{what} h_n of element {k}"),
                    &alone.h_n,
                    &hn_k,
                    tol,
                );
                if let (Some(c), Some(ca)) = (&out.c_n, &alone.c_n) {
                    let cn_k = c.index_axis(Axis(1), k).to_owned();
                    assert_close(&format!("{what} c_n of element {k}"), ca, &cn_k, tol);
                }
            }
        }
    }
}

#[test]
fn variant_errors_are_clear() {
    let msg = |e: wgpu_lstm::Error| e.to_string();
    assert_eq!(
        msg(Weights::random(&RnnSpec::gru(3, 4).proj_size(2), 1).unwrap_err()),
        "invalid model spec: projection and peepholes need an lstm, not a gru"
    );
    assert_eq!(
        msg(Weights::random(&RnnSpec::lstm(3, 4).proj_size(4), 1).unwrap_err()),
        "invalid model spec: proj_size (4) must be smaller than hidden_size (4)"
    );
    let w = Weights::random(&RnnSpec::gru(3, 4), 1).unwrap();
    let x = Array3::<f32>::zeros((5, 2, 3));
    let c0 = Array3::<f32>::zeros((1, 2, 4));
    let h0_wrong = Array3::<f32>::zeros((1, 2, 3));
    for (name, model) in models(&w) {
        let e = model
            .forward(&Input::new(x.view()).c0(c0.view()))
            .unwrap_err();
        assert_eq!(
            msg(e),
            "invalid input: `c0` was given but a gru has no cell state",
            "{name}"
        );
        let e = model
            .forward(&Input::new(x.view()).lengths(&[5, 6]))
            .unwrap_err();
        assert_eq!(
            msg(e),
            "invalid input: `lengths[1]` is 6; each length must be in 0..=5 (the input's time steps)",
            "{name}"
        );
        let e = model
            .forward(&Input::new(x.view()).lengths(&[1]))
            .unwrap_err();
        assert_eq!(
            msg(e),
            "invalid input: `lengths` has 1 entries but the batch has 2",
            "{name}"
        );
        let e = model
            .forward(&Input::new(x.view()).h0(h0_wrong.view()))
            .unwrap_err();
        assert_eq!(
            msg(e),
            "tensor `h0`: expected shape [1, 2, 4], got [1, 2, 3]",
            "{name}"
        );
    }
    let p = RnnSpec::lstm(3, 4).proj_size(2).peephole(true);
    let mut t: Vec<(String, ArrayD<f32>)> = Weights::random(&p, 1)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.to_owned()))
        .collect();
    t.retain(|(n, _)| n != "weight_ph_l0");
    assert_eq!(
        msg(Weights::from_tensors(&p, t).unwrap_err()),
        "missing tensor `weight_ph_l0` (expected shape [12])"
    );
}

/// Every batch tile (1 to 8 rows per invocation) with every step kernel, against the CPU, on
/// a batch of 11 with lengths 0..=T: tiles that do not divide the batch, padding rows,
/// ended sequences.
#[test]
fn every_batch_tile_matches_the_cpu() {
    let Some(ctx) = gpu() else { return };
    let sd = seed("every_batch_tile_matches_the_cpu", 37);
    let mut r = rng(sd);
    let specs = [
        RnnSpec::lstm(5, 19).peephole(true),
        RnnSpec::gru(5, 17).linear_before_reset(false),
        RnnSpec::new(Cell::RnnTanh, 5, 10).bidirectional(true),
    ];
    let mut worst = 0.0f32;
    for spec in specs {
        let w = Weights::random(&spec, sd).unwrap();
        let model = GpuModel::upload(ctx, &w).unwrap();
        let (t, b) = (9, 11);
        let x: Array3<f32> = uniform(&mut r, (t, b, 5), 1.0);
        let lengths: Vec<usize> = (0..b).map(|_| r.random_range(0..=t)).collect();
        let input = Input::new(x.view()).lengths(&lengths);
        let expected = CpuModel::new(w.clone()).forward(&input).unwrap();
        for variant in StepVariant::ALL {
            // Every tile with the stepwise kernel; 1, 3 and 8 rows with the others.
            let tiles = if variant == StepVariant::Stepwise {
                &[1, 2, 3, 4, 5, 6, 7, 8][..]
            } else {
                &[1, 3, 8][..]
            };
            for &tile in tiles {
                let options = ForwardOptions::default().variant(variant).batch_tile(tile);
                let (out, stats) = model.forward_with(&input, &options).unwrap();
                assert_eq!(stats.batch_tile, tile);
                let what = format!("{} {variant:?} tile {tile}", spec.cell.name());
                worst = worst.max(assert_outputs_close(
                    &what,
                    &expected,
                    &out,
                    Tolerance::GPU_VS_CPU,
                ));
            }
        }
    }
    eprintln!("every batch tile: worst |gpu-cpu| = {worst:.2e}");
}
