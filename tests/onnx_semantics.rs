//! ONNX's options of the recurrent operators, through the Rust API ([`RnnSpec`]), on both
//! paths: a reverse-only direction, activation functions with parameters, `clip`,
//! `input_forget`, a GRU's reset gate before its linear part, sequences of length 0.
//!
//! - one step per option worked out by hand, on the CPU and the GPU;
//! - GPU against CPU on seeded random configurations of every cell with random options (both
//!   step kernels, GPU buffers poisoned with NaN first; tolerance [`Tolerance::GPU_VS_CPU`]);
//! - the fast CPU engine against the reference one on reverse-only models.
//!
//! (The ONNX files that carry these options are tested against onnxruntime in
//! `tests/onnx_fixtures.rs`.)

mod common;

use common::{assert_close, check_config, gpu, models, rng, seed, uniform, Config};
use ndarray::{arr1, arr2, arr3, ArrayD};
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Activation, Activations, Cell, CpuModel, Direction, Engine, Forward, Input, RnnSpec, Weights,
};

/// Float32 rounding of a handful of operations.
const HAND: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-6,
};

fn weights(spec: &RnnSpec, list: &[(&str, ArrayD<f32>)]) -> Weights {
    let t: Vec<(String, ArrayD<f32>)> = list
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    Weights::from_tensors(spec, t).unwrap()
}

fn one(v: f64) -> ArrayD<f32> {
    ArrayD::from_elem(vec![1, 1, 1], v as f32)
}

/// LSTM, I = H = 1, no biases, `clip = 0.6`, `input_forget`, f = HardSigmoid(0.2, 0.5),
/// g = Softsign, h = ScaledTanh(1.5, 0.5); `W_ih = [1.5, 9, 1, 0.25]`, `W_hh = [0.2, 9,
/// −0.4, 0.6]` (i, f, g, o; the forget row is unused), x = 1, h0 = 0.5, c0 = 2:
///
/// ```text
/// i = HardSigmoid(clip(1.5 + 0.1))  = 0.2·0.6 + 0.5          = 0.62
/// f = 1 − i                                                 = 0.38
/// g = Softsign(clip(1 − 0.2))       = 0.6 / 1.6             = 0.375
/// c1 = f·2 + i·g                                            = 0.9925
/// o = HardSigmoid(clip(0.25 + 0.3)) = 0.2·0.55 + 0.5        = 0.61
/// h1 = o · 1.5·tanh(0.5·c1)                                 = 0.4201340283
/// ```
#[test]
fn hand_computed_lstm_step_with_onnx_options() {
    let acts = Activations {
        f: Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        g: Activation::Softsign,
        h: Activation::ScaledTanh {
            alpha: 1.5,
            beta: 0.5,
        },
    };
    let spec = RnnSpec::lstm(1, 1)
        .bias(false)
        .activations(vec![acts])
        .clip(Some(0.6))
        .input_forget(true);
    let w = weights(
        &spec,
        &[
            (
                "weight_ih_l0",
                arr2(&[[1.5f32], [9.0], [1.0], [0.25]]).into_dyn(),
            ),
            (
                "weight_hh_l0",
                arr2(&[[0.2f32], [9.0], [-0.4], [0.6]]).into_dyn(),
            ),
        ],
    );
    let (x, h0, c0) = (
        arr3(&[[[1.0f32]]]),
        arr3(&[[[0.5f32]]]),
        arr3(&[[[2.0f32]]]),
    );
    for (name, model) in models(&w) {
        let input = Input::new(x.view()).h0(h0.view()).c0(c0.view());
        let out = model.forward(&input).unwrap();
        assert_close(
            &format!("{name} h1"),
            &one(0.420_134_028_349_693_3),
            &out.y,
            HAND,
        );
        let c_n = out.c_n.unwrap();
        assert_close(&format!("{name} c1"), &one(0.9925), &c_n, HAND);
    }
}

/// GRU with the reset gate before its linear part, the weights of the hand-computed GRU step
/// of `tests/variants.rs`: `W_ih = [0.5, −0.4, 0.9]`, `W_hh = [0.3, 0.2, −0.6]`,
/// `b_ih = [0.1, −0.1, 0.05]`, `b_hh = [0, 0.2, −0.3]` (r, z, n), x = 1, h0 = 0.5:
///
/// ```text
/// r = σ(0.75) = 0.6791786992          z = σ(−0.2) = 0.4501660027
/// n = tanh(0.9 + 0.05 + (−0.6)·(r·0.5) − 0.3) = tanh(0.65 − 0.3·r) = 0.4188086539
/// h1 = (1 − z)·n + z·0.5 = 0.4553582376
/// ```
///
/// (PyTorch's order, `r ⊙ (W_hn h + b_hn)`, gives 0.4971807751.)
#[test]
fn hand_computed_gru_step_with_reset_before_the_linear_part() {
    let spec = RnnSpec::gru(1, 1).linear_before_reset(false);
    let w = weights(
        &spec,
        &[
            ("weight_ih_l0", arr2(&[[0.5f32], [-0.4], [0.9]]).into_dyn()),
            ("weight_hh_l0", arr2(&[[0.3f32], [0.2], [-0.6]]).into_dyn()),
            ("bias_ih_l0", arr1(&[0.1f32, -0.1, 0.05]).into_dyn()),
            ("bias_hh_l0", arr1(&[0.0f32, 0.2, -0.3]).into_dyn()),
        ],
    );
    let (x, h0) = (arr3(&[[[1.0f32]]]), arr3(&[[[0.5f32]]]));
    for (name, model) in models(&w) {
        let out = model.forward(&Input::new(x.view()).h0(h0.view())).unwrap();
        assert_close(
            &format!("{name} h1"),
            &one(0.455_358_237_635_268_7),
            &out.y,
            HAND,
        );
    }
}

/// A reverse-only tanh RNN, I = H = 1, `W_ih = 0.7`, `W_hh = −0.5`, no biases, x = [1, −1]
/// for three sequences of lengths 2, 1 and 0 with h0 = [0, 0, 0.5]:
///
/// ```text
/// length 2: t = 1 first: h = tanh(−0.7) = −0.6043677771; then t = 0:
///           h = tanh(0.7 − 0.5·(−0.6043677771)) = 0.7625098087 = h_n
/// length 1: t = 0 only: h = tanh(0.7) = 0.6043677771 = h_n; y at t = 1 is 0
/// length 0: y = 0 everywhere, h_n = h0 = 0.5
/// ```
#[test]
fn hand_computed_reverse_steps_and_a_sequence_of_length_0() {
    let spec = RnnSpec::new(Cell::RnnTanh, 1, 1)
        .bias(false)
        .direction(Direction::Reverse);
    let w = weights(
        &spec,
        &[
            ("weight_ih_l0", arr2(&[[0.7f32]]).into_dyn()),
            ("weight_hh_l0", arr2(&[[-0.5f32]]).into_dyn()),
        ],
    );
    let x = arr3(&[[[1.0f32], [1.0], [1.0]], [[-1.0], [-1.0], [-1.0]]]);
    let h0 = arr3(&[[[0.0f32], [0.0], [0.5]]]);
    let lengths = [2, 1, 0];
    // The exact values, rounded to float32.
    let (long, short) = (
        0.762_509_808_712_291_6f64 as f32,
        0.604_367_777_117_163_6f64 as f32,
    );
    let y = arr3(&[[[long], [short], [0.0]], [[-short], [0.0], [0.0]]]);
    let h_n = arr3(&[[[long], [short], [0.5]]]);
    for (name, model) in models(&w) {
        let input = Input::new(x.view()).h0(h0.view()).lengths(&lengths);
        let out = model.forward(&input).unwrap();
        assert_close(&format!("{name} y"), &y.clone().into_dyn(), &out.y, HAND);
        assert_close(
            &format!("{name} h_n"),
            &h_n.clone().into_dyn(),
            &out.h_n,
            HAND,
        );
    }
}

/// An activation function with random parameters: from all eleven, or (`gate`) from those
/// with values in [0, 1], as a gate's must be for the state not to grow exponentially over
/// the steps (cancellation in a state of growing size leaves rounding differences beyond any
/// relative tolerance). Slopes stay at most 1, and every function is continuous.
fn random_activation(r: &mut rand::rngs::StdRng, gate: bool) -> Activation {
    let a = r.random_range(0.1f32..1.0);
    let b = r.random_range(-0.5f32..0.5);
    let all = [
        Activation::Sigmoid,
        Activation::HardSigmoid { alpha: a, beta: b },
        Activation::Tanh,
        Activation::Softsign,
        Activation::ScaledTanh { alpha: a, beta: a },
        Activation::Relu,
        Activation::LeakyRelu { alpha: a },
        // A threshold of 0 keeps it continuous: elsewhere rounding on either side of the
        // threshold flips the value by the threshold itself.
        Activation::ThresholdedRelu { alpha: 0.0 },
        Activation::Affine { alpha: a, beta: b },
        Activation::Elu { alpha: a },
        Activation::Softplus,
    ];
    let n = if gate { 2 } else { all.len() };
    all[r.random_range(0..n)]
}

/// A spec of `cell` with random ONNX options: direction, activations (the cell's own in a
/// quarter of the draws), clip, input_forget, the GRU's reset order.
fn random_spec(r: &mut rand::rngs::StdRng, cell: Cell) -> RnnSpec {
    let direction = [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ][r.random_range(0..3)];
    let hidden = [1, 7, 33, 65][r.random_range(0..4)];
    let mut spec = RnnSpec::new(cell, r.random_range(1..20), hidden)
        .layers(r.random_range(1..=2))
        .direction(direction)
        .bias(r.random_bool(0.8));
    if r.random_bool(0.75) {
        let acts = (0..spec.num_directions())
            .map(|_| Activations {
                // An RNN's f is its only function; LSTM and GRU gates are kept bounded.
                f: random_activation(r, matches!(cell, Cell::Lstm | Cell::Gru)),
                g: random_activation(r, false),
                h: random_activation(r, false),
            })
            .collect();
        spec = spec.activations(acts);
    }
    if r.random_bool(0.5) {
        spec = spec.clip(Some(r.random_range(0.3f32..3.0)));
    }
    match cell {
        Cell::Lstm => {
            spec = spec
                .input_forget(r.random_bool(0.4))
                .peephole(r.random_bool(0.4))
        }
        Cell::Gru => spec = spec.linear_before_reset(r.random_bool(0.3)),
        _ => {}
    }
    spec
}

#[test]
fn gpu_matches_cpu_with_random_onnx_options() {
    let Some(ctx) = gpu() else { return };
    let base = seed("gpu_matches_cpu_with_random_onnx_options", 1301);
    let mut r = rng(base);
    let mut worst = 0.0f32;
    let mut n = 0;
    for cell in Cell::ALL {
        for _ in 0..8 {
            let spec = random_spec(&mut r, cell);
            let batch = [1, 2, 5, 9][r.random_range(0..4)];
            let cfg = Config {
                spec: spec.clone(),
                batch,
                steps: r.random_range(1..=24),
                with_state: r.random_bool(0.5),
                batch_first: r.random_bool(0.3),
                with_lengths: r.random_bool(0.5),
                seed: r.random(),
            };
            eprintln!(
                "  config {n}: {} direction={} activations={:?} clip={:?} input_forget={} linear_before_reset={}",
                cell.name(),
                Direction::of(&spec).name(),
                spec.activations,
                spec.clip,
                spec.input_forget,
                spec.linear_before_reset
            );
            worst = worst.max(check_config(ctx, &format!("onnx options config {n}"), &cfg));
            n += 1;
        }
    }
    eprintln!("{n} configurations with ONNX options: worst |gpu-cpu| = {worst:.3e}");
}

#[test]
fn fast_engine_runs_reverse_models_as_the_reference_does() {
    let base = seed(
        "fast_engine_runs_reverse_models_as_the_reference_does",
        1302,
    );
    let mut r = rng(base);
    for cell in Cell::ALL {
        for batch in [1, 3, 8] {
            let spec = RnnSpec::new(cell, 6, 19)
                .layers(2)
                .direction(Direction::Reverse);
            let w = Weights::random(&spec, r.random()).unwrap();
            let (t, b) = (13, batch);
            let x: ndarray::Array3<f32> = uniform(&mut r, (t, b, 6), 1.0);
            let lengths: Vec<usize> = (0..b).map(|_| r.random_range(0..=t)).collect();
            let input = Input::new(x.view()).lengths(&lengths);
            let fast = CpuModel::new(w.clone());
            assert_eq!(fast.engine(), Engine::Fast);
            let a = fast.forward(&input).unwrap();
            let e = CpuModel::reference(w).forward(&input).unwrap();
            let what = format!("{} batch {batch} lengths {lengths:?}", cell.name());
            common::assert_outputs_close(&what, &e, &a, Tolerance::GPU_VS_CPU);
        }
    }
}

#[test]
fn models_with_onnx_gate_options_run_on_the_reference_engine() {
    let plain = CpuModel::new(Weights::random(&RnnSpec::gru(3, 4), 1).unwrap());
    assert_eq!(plain.engine(), Engine::Fast);
    for spec in [
        RnnSpec::gru(3, 4).linear_before_reset(false),
        RnnSpec::lstm(3, 4).clip(Some(2.0)),
        RnnSpec::lstm(3, 4).input_forget(true),
        RnnSpec::new(Cell::RnnTanh, 3, 4).activations(vec![Activations {
            f: Activation::Softsign,
            ..Activations::of(Cell::RnnTanh)
        }]),
    ] {
        let m = CpuModel::new(Weights::random(&spec, 1).unwrap());
        assert_eq!(m.engine(), Engine::Reference, "{spec:?}");
    }
}

#[test]
fn invalid_options_are_clear_errors() {
    let cases: [(RnnSpec, &str); 6] = [
        (
            RnnSpec::lstm(2, 3)
                .bidirectional(true)
                .activations(vec![Activations::of(Cell::Lstm)]),
            "`activations` has 1 entries",
        ),
        (
            RnnSpec::lstm(2, 3).clip(Some(0.0)),
            "clip = 0 must be positive",
        ),
        (RnnSpec::lstm(2, 3).clip(Some(f32::NAN)), "must be positive"),
        (
            RnnSpec::gru(2, 3).input_forget(true),
            "input_forget needs an lstm",
        ),
        (
            RnnSpec::lstm(2, 3).linear_before_reset(false),
            "linear_before_reset = false is a gru option",
        ),
        (
            RnnSpec::lstm(2, 3).activations(vec![Activations {
                f: Activation::Elu {
                    alpha: f32::INFINITY,
                },
                ..Activations::of(Cell::Lstm)
            }]),
            "not finite",
        ),
    ];
    for (spec, expected) in cases {
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains(expected), "{spec:?}: `{e}` lacks `{expected}`");
        assert!(Weights::random(&spec, 1).is_err());
    }
    // `reverse` and `bidirectional` set by hand, contradicting each other.
    let mut both = RnnSpec::lstm(2, 3).bidirectional(true);
    both.reverse = true;
    assert!(both
        .validate()
        .unwrap_err()
        .to_string()
        .contains("unidirectional"));
    // A reverse model cannot stream.
    let w = Weights::random(&RnnSpec::lstm(2, 3).direction(Direction::Reverse), 1).unwrap();
    let model = CpuModel::new(w);
    let Err(e) = model.stream(1) else {
        panic!("a reverse model streams")
    };
    let e = e.to_string();
    assert!(e.contains("a reverse model cannot stream"), "{e}");
}
