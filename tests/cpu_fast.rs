//! The fast CPU engine against the reference engine (the equations as written), on seeded
//! random configurations covering every cell and option; and its results at 1, 2 and 3
//! threads, which must be identical bit for bit.

mod common;

use std::sync::Arc;

use common::{assert_outputs_close, rng, seed, uniform};
use ndarray::Array3;
use rand::Rng;
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    Cell, CpuModel, Engine, Forward, Input, Output, RnnSpec, Stream, StreamState, Weights,
};

/// Fast versus reference: both compute in float32 with the same activation functions, but
/// the fast engine sums `x·W_ih + (b_ih + b_hh)` and `h·W_hh` in its own order with fused
/// multiply-adds, where the reference adds `(x·W_ih + b_ih) + (h·W_hh + b_hh)` in ndarray's
/// order. Over a few hundred steps such rounding differences stay near 1e-6 (the recurrence
/// is contractive at these weight scales); 2e-5 leaves room while any wrong formula, gate
/// order or missing bias gives errors above 1e-2.
const FAST_VS_REFERENCE: Tolerance = Tolerance {
    abs: 2e-5,
    rel: 2e-5,
};

/// The fast engine on `threads` threads, however small the work (by default a small step
/// runs on fewer threads).
fn fast(weights: Weights, threads: usize) -> CpuModel {
    CpuModel::with_threads(weights, threads)
        .unwrap()
        .min_work_per_thread(0)
}

/// One random configuration.
#[derive(Debug, Clone)]
struct Case {
    spec: RnnSpec,
    batch: usize,
    steps: usize,
    state: bool,
    lengths: bool,
    batch_first: bool,
    unbatched: bool,
    seed: u64,
}

/// The tensors of a case and the forward of `model` on them.
fn run_case(model: &dyn Forward, c: &Case) -> Output {
    let mut r = rng(c.seed);
    let spec = &c.spec;
    let (t, b, i) = (c.steps, c.batch, spec.input_size);
    let ld = spec.num_layers * spec.num_directions();
    let x: Array3<f32> = if c.batch_first {
        uniform(&mut r, (b, t, i), 1.0)
    } else {
        uniform(&mut r, (t, b, i), 1.0)
    };
    let h0: Array3<f32> = uniform(&mut r, (ld, b, spec.hidden_out()), 1.0);
    let c0: Array3<f32> = uniform(&mut r, (ld, b, spec.hidden_size), 2.0);
    let mut lengths: Vec<usize> = (0..b).map(|_| r.random_range(1..=t)).collect();
    if r.random_bool(0.5) {
        // Lengths that do not increase down the batch: the steps leave out the rows that
        // have ended (a path of its own).
        lengths.sort_unstable_by(|a, b| b.cmp(a));
    }
    if c.unbatched {
        let x2 = x.index_axis(ndarray::Axis(1), 0);
        let h2 = h0.index_axis(ndarray::Axis(1), 0);
        let c2 = c0.index_axis(ndarray::Axis(1), 0);
        let mut input = Input::new(x2);
        if c.state {
            input = input.h0(h2);
            if spec.cell.has_cell_state() {
                input = input.c0(c2);
            }
        }
        return model.forward(&input).unwrap();
    }
    let mut input = Input::new(x.view()).batch_first(c.batch_first);
    if c.state {
        input = input.h0(h0.view());
        if spec.cell.has_cell_state() {
            input = input.c0(c0.view());
        }
    }
    if c.lengths {
        input = input.lengths(&lengths);
    }
    model.forward(&input).unwrap()
}

/// A random case: every cell, option and awkward size is drawn.
fn random_case(r: &mut rand::rngs::StdRng, seed: u64) -> Case {
    const BATCH: [usize; 5] = [1, 2, 3, 7, 33];
    let spec = common::random_fast_spec(r);
    let unbatched = r.random_bool(0.1);
    Case {
        spec,
        batch: if unbatched {
            1
        } else {
            BATCH[r.random_range(0..BATCH.len())]
        },
        steps: r.random_range(1..=60),
        state: r.random_bool(0.5),
        lengths: !unbatched && r.random_bool(0.4),
        batch_first: !unbatched && r.random_bool(0.3),
        unbatched,
        seed,
    }
}

#[test]
fn fast_engine_matches_the_reference_on_random_configurations() {
    let sd = seed(
        "fast_engine_matches_the_reference_on_random_configurations",
        1101,
    );
    let mut r = rng(sd);
    let mut worst = 0.0f32;
    for n in 0..80 {
        let case = random_case(&mut r, sd + n);
        let weights = Weights::random(&case.spec, case.seed).unwrap();
        let fast = fast(weights.clone(), 2);
        assert_eq!(fast.engine(), Engine::Fast);
        let reference = CpuModel::reference(weights);
        assert_eq!(reference.engine(), Engine::Reference);
        let e = run_case(&reference, &case);
        let a = run_case(&fast, &case);
        let err = assert_outputs_close(&format!("{case:?}"), &e, &a, FAST_VS_REFERENCE);
        worst = worst.max(err);
    }
    eprintln!("  worst |fast - reference| = {worst:.2e}");
}

/// Every cell with every option at the sizes that stress the tiling: hidden 1, 3, 17, 129
/// (tiles of 8 and 16 units with a partial last tile), batch 1, 3, 33 (row blocks of 2, 3 and
/// 6 with remainders; an LSTM projects its input up front at batch 1 and 3, inside each step
/// at 33).
#[test]
fn fast_engine_matches_the_reference_at_awkward_sizes() {
    let sd = seed("fast_engine_matches_the_reference_at_awkward_sizes", 1102);
    let mut worst = 0.0f32;
    let mut n = 0;
    for hidden in [1, 3, 17, 129] {
        for batch in [1, 3, 33] {
            let specs = [
                RnnSpec::lstm(5, hidden),
                RnnSpec::lstm(5, hidden).peephole(true).layers(2),
                // (A projection must be smaller than the hidden size.)
                RnnSpec::lstm(5, hidden)
                    .proj_size(hidden / 2)
                    .bidirectional(true),
                RnnSpec::lstm(5, hidden)
                    .peephole(true)
                    .proj_size(hidden - 1)
                    .layers(2),
                RnnSpec::gru(5, hidden).bidirectional(true),
                RnnSpec::gru(5, hidden).layers(2),
                RnnSpec::new(Cell::RnnTanh, 5, hidden)
                    .bidirectional(true)
                    .layers(2),
                RnnSpec::new(Cell::RnnRelu, 5, hidden),
            ];
            for spec in specs {
                n += 1;
                let case = Case {
                    spec,
                    batch,
                    steps: 13,
                    state: n % 2 == 0,
                    lengths: n % 3 == 0,
                    batch_first: false,
                    unbatched: false,
                    seed: sd + n,
                };
                let weights = Weights::random(&case.spec, case.seed).unwrap();
                let e = run_case(&CpuModel::reference(weights.clone()), &case);
                let a = run_case(&fast(weights, 3), &case);
                worst = worst.max(assert_outputs_close(
                    &format!("{case:?}"),
                    &e,
                    &a,
                    FAST_VS_REFERENCE,
                ));
            }
        }
    }
    eprintln!("  {n} configurations, worst |fast - reference| = {worst:.2e}");
}

/// A long sequence: rounding differences must not grow along the recurrence.
#[test]
fn fast_engine_matches_the_reference_over_300_steps() {
    let sd = seed("fast_engine_matches_the_reference_over_300_steps", 1103);
    for spec in [
        RnnSpec::lstm(24, 64).layers(3).peephole(true),
        RnnSpec::gru(24, 64).bidirectional(true),
    ] {
        let case = Case {
            spec,
            batch: 5,
            steps: 300,
            state: true,
            lengths: true,
            batch_first: false,
            unbatched: false,
            seed: sd,
        };
        let weights = Weights::random(&case.spec, sd).unwrap();
        let e = run_case(&CpuModel::reference(weights.clone()), &case);
        let a = run_case(&fast(weights, 2), &case);
        let err = assert_outputs_close(&format!("{case:?}"), &e, &a, FAST_VS_REFERENCE);
        eprintln!("  {:?} 300 steps: worst {err:.2e}", case.spec.cell);
    }
}

/// Work is split by hidden units, never along a sum: 1, 2, 3 and 5 threads give the same
/// bits, on every cell and option.
#[test]
fn results_are_bit_identical_at_any_thread_count() {
    let sd = seed("results_are_bit_identical_at_any_thread_count", 1104);
    let mut r = rng(sd);
    for n in 0..40 {
        let mut case = random_case(&mut r, sd + n);
        // Enough tiles of hidden units for every thread to get some.
        case.spec.hidden_size = [40, 129, 64][n as usize % 3];
        if case.spec.proj_size > 0 {
            case.spec.proj_size = 33;
        }
        let weights = Weights::random(&case.spec, case.seed).unwrap();
        let one = run_case(&fast(weights.clone(), 1), &case);
        for threads in [2, 3, 5] {
            let model = fast(weights.clone(), threads);
            let many = run_case(&model, &case);
            assert!(
                one == many,
                "{case:?}: {threads} threads differ from 1 thread"
            );
        }
    }
}

/// Without an initial state the first step's recurrent product is skipped (its `H_{t−1}` is
/// zero); the results are those of an explicit zero state, bit for bit (each skipped term is
/// an exact zero).
#[test]
fn a_missing_initial_state_equals_a_zero_one() {
    let sd = seed("a_missing_initial_state_equals_a_zero_one", 1122);
    let mut r = rng(sd);
    for n in 0..24 {
        let case = random_case(&mut r, sd + n);
        let spec = &case.spec;
        let (t, b) = (case.steps, case.batch);
        let ld = spec.num_layers * spec.num_directions();
        let x: Array3<f32> = uniform(&mut rng(case.seed), (t, b, spec.input_size), 1.0);
        let h0 = Array3::<f32>::zeros((ld, b, spec.hidden_out()));
        let c0 = Array3::<f32>::zeros((ld, b, spec.hidden_size));
        let model = fast(Weights::random(spec, case.seed).unwrap(), 2);
        let missing = model.forward(&Input::new(x.view())).unwrap();
        let mut input = Input::new(x.view()).h0(h0.view());
        if spec.cell.has_cell_state() {
            input = input.c0(c0.view());
        }
        let zero = model.forward(&input).unwrap();
        assert!(
            missing == zero,
            "seed {sd}, {case:?}: no initial state differs from a zero one"
        );
    }
}

/// Several threads calling one model at once: the pool serves one forward at a time, the
/// others run on their calling thread; every result equals the serial one bit for bit.
#[test]
fn concurrent_forwards_on_one_model_equal_serial_ones() {
    let sd = seed("concurrent_forwards_on_one_model_equal_serial_ones", 1105);
    let spec = RnnSpec::lstm(16, 48).layers(2).bidirectional(true);
    let model = Arc::new(fast(Weights::random(&spec, sd).unwrap(), 2));
    let x: Array3<f32> = uniform(&mut rng(sd), (20, 4, 16), 1.0);
    let expected = model.forward(&Input::new(x.view())).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let out = model.forward(&Input::new(x.view())).unwrap();
                    assert!(out == expected, "a concurrent forward differs");
                }
            });
        }
    });
}

/// Streaming on the fast engine: chunks of 1, 7 and 20 steps equal the reference's whole
/// forward, and the state after them equals its `h_n`/`c_n`.
#[test]
fn streaming_on_the_fast_engine_matches_the_reference() {
    let sd = seed("streaming_on_the_fast_engine_matches_the_reference", 1106);
    for spec in [
        RnnSpec::lstm(7, 33).layers(2).peephole(true),
        RnnSpec::lstm(7, 20).proj_size(9),
        RnnSpec::gru(7, 17).layers(2),
        RnnSpec::new(Cell::RnnRelu, 7, 17),
    ] {
        let weights = Weights::random(&spec, sd).unwrap();
        let mut r = rng(sd);
        let (t, b) = (28, 3);
        let x: Array3<f32> = uniform(&mut r, (t, b, 7), 1.0);
        let whole = CpuModel::reference(weights.clone())
            .forward(&Input::new(x.view()))
            .unwrap();
        let fast = fast(weights, 2);
        let mut stream = fast.stream(b).unwrap();
        let mut ys = Vec::new();
        let mut start = 0;
        for chunk in [1, 7, 20] {
            let y = stream
                .feed(x.slice(ndarray::s![start..start + chunk, .., ..]))
                .unwrap();
            ys.push(y);
            start += chunk;
        }
        let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
        let y = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        let StreamState { h, c } = stream.state().unwrap();
        let streamed = Output {
            y: y.into_dyn(),
            h_n: h.into_dyn(),
            c_n: c.map(|c| c.into_dyn()),
        };
        assert_outputs_close(
            &format!("stream {spec:?}"),
            &whole,
            &streamed,
            FAST_VS_REFERENCE,
        );
    }
}

#[test]
fn zero_threads_is_an_error() {
    let w = Weights::random(&RnnSpec::lstm(2, 3), 1).unwrap();
    let e = CpuModel::with_threads(w, 0).unwrap_err().to_string();
    assert!(e.contains("at least one thread"), "{e}");
}

/// A hand-derived step through the fast engine: one LSTM unit, all weights 0.5, no bias, one
/// input of 1 from zero state: every gate pre-activation is 0.5, so
/// `c = σ(0.5)·tanh(0.5)` and `h = σ(0.5)·tanh(c)`.
#[test]
fn one_hand_derived_lstm_step() {
    let spec = RnnSpec::lstm(1, 1).bias(false);
    let tensors = vec![
        (
            "weight_ih_l0".to_string(),
            ndarray::ArrayD::from_elem(vec![4, 1], 0.5f32),
        ),
        (
            "weight_hh_l0".to_string(),
            ndarray::ArrayD::from_elem(vec![4, 1], 0.5f32),
        ),
    ];
    let model = CpuModel::with_threads(Weights::from_tensors(&spec, tensors).unwrap(), 2).unwrap();
    let x = Array3::<f32>::ones((1, 1, 1));
    let out = model.forward(&Input::new(x.view())).unwrap();
    let s = 1.0 / (1.0 + (-0.5f64).exp());
    let c = s * 0.5f64.tanh();
    let h = s * c.tanh();
    let got_c = out.c_n.unwrap()[[0, 0, 0]] as f64;
    let got_h = out.y[[0, 0, 0]] as f64;
    assert!((got_c - c).abs() < 1e-6, "c {got_c} vs {c}");
    assert!((got_h - h).abs() < 1e-6, "h {got_h} vs {h}");
}
