//! Eight-bit weights on the CPU (`WeightsDtype::I8`): every cell and option against float32,
//! results independent of the thread count and of the other sequences of a batch, NaN-free
//! for finite inputs, and the errors of what it cannot run.

mod common;

use common::{random_fast_spec, rng, seed, uniform};
use ndarray::{s, Array3};
use rand::Rng;
use wgpu_lstm::{Cell, CpuModel, Forward, Input, Output, RnnSpec, Weights, WeightsDtype};

/// One random configuration and its tensors.
struct Case {
    spec: RnnSpec,
    x: Array3<f32>,
    h0: Option<Array3<f32>>,
    c0: Option<Array3<f32>>,
    lengths: Option<Vec<usize>>,
}

impl Case {
    fn random(r: &mut rand::rngs::StdRng) -> Case {
        let spec = random_fast_spec(r);
        let (cell, input, hidden) = (spec.cell, spec.input_size, spec.hidden_size);
        let (t, b) = (
            r.random_range(1..=40),
            [1, 2, 3, 7, 33][r.random_range(0..5)],
        );
        let ld = spec.num_layers * spec.num_directions();
        let state = r.random_bool(0.5);
        let h0 = state.then(|| uniform(r, (ld, b, spec.hidden_out()), 1.0));
        let c0 = (state && cell == Cell::Lstm).then(|| uniform(r, (ld, b, hidden), 2.0));
        let mut lengths: Vec<usize> = (0..b).map(|_| r.random_range(1..=t)).collect();
        if r.random_bool(0.5) {
            lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        Case {
            x: uniform(r, (t, b, input), 1.0),
            h0,
            c0,
            lengths: r.random_bool(0.5).then_some(lengths),
            spec,
        }
    }

    fn run(&self, model: &dyn Forward) -> Output {
        let mut input = Input::new(self.x.view());
        if let Some(h0) = &self.h0 {
            input = input.h0(h0.view());
        }
        if let Some(c0) = &self.c0 {
            input = input.c0(c0.view());
        }
        if let Some(l) = &self.lengths {
            input = input.lengths(l);
        }
        model.forward(&input).unwrap()
    }
}

fn int8(weights: Weights, threads: usize) -> CpuModel {
    CpuModel::with_threads(weights, threads)
        .unwrap()
        .min_work_per_thread(0)
        .weights_dtype(WeightsDtype::I8)
        .unwrap()
}

/// Worst and mean absolute difference over y, h_n and c_n.
fn diff(a: &Output, b: &Output) -> (f32, f32) {
    let mut pairs: Vec<(f32, f32)> = a.y.iter().copied().zip(b.y.iter().copied()).collect();
    pairs.extend(a.h_n.iter().copied().zip(b.h_n.iter().copied()));
    if let (Some(p), Some(q)) = (&a.c_n, &b.c_n) {
        pairs.extend(p.iter().copied().zip(q.iter().copied()));
    }
    let worst = pairs.iter().map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    let mean = pairs.iter().map(|(p, q)| (p - q).abs()).sum::<f32>() / pairs.len() as f32;
    (worst, mean)
}

/// Eight-bit against float32 weights, on random configurations (seeded; every cell,
/// projection, peepholes, directions, lengths, given states). The weights are PyTorch's
/// initialisation (uniform in ±1/√H), the inputs uniform in ±1: a weight's rounding is at
/// most half a step of its row (max|w|/254), an activation's half a step of its row's range
/// over 127; over a sum of K products these errors average out to ~1e-3 of a pre-activation,
/// and a recurrence at these scales does not amplify them. Worst 0.08 and mean 0.01 leave
/// room (a wrong scale, zero point or gate order gives errors of order 1).
#[test]
fn int8_follows_float32_on_random_configurations() {
    let sd = seed("int8_follows_float32_on_random_configurations", 2401);
    let mut r = rng(sd);
    let (mut worst, mut worst_mean) = (0.0f32, 0.0f32);
    for n in 0..40 {
        let case = Case::random(&mut r);
        let weights = Weights::random(&case.spec, sd + n).unwrap();
        let exact = case.run(&CpuModel::reference(weights.clone()));
        let model = int8(weights, 2);
        assert!(model.kernel().unwrap().ends_with("int8"));
        let out = case.run(&model);
        assert!(out.y.iter().all(|v| v.is_finite()), "{:?}: NaN", case.spec);
        let (w, m) = diff(&exact, &out);
        assert!(w < 0.08 && m < 0.01, "{:?}: worst {w}, mean {m}", case.spec);
        worst = worst.max(w);
        worst_mean = worst_mean.max(m);
    }
    eprintln!("  int8 vs f32: worst {worst:.2e}, worst mean {worst_mean:.2e}");
}

/// The integer sums are exact: 1, 2 and 3 threads give the same bits, and a sequence gives
/// the same bits alone as batched with others (each row is quantized on its own).
#[test]
fn int8_results_depend_on_neither_threads_nor_batch() {
    let sd = seed("int8_results_depend_on_neither_threads_nor_batch", 2402);
    let mut r = rng(sd);
    for n in 0..12 {
        let case = Case::random(&mut r);
        let weights = Weights::random(&case.spec, sd + n).unwrap();
        let one = case.run(&int8(weights.clone(), 1));
        for threads in [2, 3] {
            assert_eq!(
                case.run(&int8(weights.clone(), threads)),
                one,
                "{threads} threads"
            );
        }
        // The last sequence alone.
        let b = case.x.shape()[1];
        let last = b - 1;
        let alone = Case {
            spec: case.spec.clone(),
            x: case.x.slice(s![.., last..b, ..]).to_owned(),
            h0: case
                .h0
                .as_ref()
                .map(|h| h.slice(s![.., last..b, ..]).to_owned()),
            c0: case
                .c0
                .as_ref()
                .map(|c| c.slice(s![.., last..b, ..]).to_owned()),
            lengths: case.lengths.as_ref().map(|l| vec![l[last]]),
        };
        let len = case.lengths.as_ref().map_or(case.x.shape()[0], |l| l[last]);
        let solo = alone.run(&int8(weights, 2));
        assert_eq!(
            solo.h_n.view(),
            one.h_n.slice(s![.., last..b, ..]).into_dyn(),
            "{:?}: h_n alone vs batched",
            case.spec
        );
        assert_eq!(
            solo.y.slice(s![..len, .., ..]).into_dyn(),
            one.y.slice(s![..len, last..b, ..]).into_dyn(),
            "{:?}: y alone vs batched",
            case.spec
        );
    }
}

/// A NaN in the input gives NaN where float32 would, nothing panics; finite inputs of any
/// magnitude give finite outputs.
#[test]
fn int8_nan_in_nan_out_and_large_inputs_stay_finite() {
    let spec = RnnSpec::lstm(6, 20);
    let model = int8(Weights::random(&spec, 3).unwrap(), 2);
    let mut x = Array3::<f32>::from_elem((4, 2, 6), 0.5);
    x[[1, 0, 2]] = f32::NAN;
    let out = model.forward(&Input::new(x.view())).unwrap();
    assert!(out.y[[0, 0, 0]].is_finite() && out.y[[1, 0, 0]].is_nan());
    assert!(out.y.slice(s![.., 1, ..]).iter().all(|v| v.is_finite()));
    let big = Array3::<f32>::from_shape_fn((5, 3, 6), |(t, b, i)| {
        [1e30, -3e38, 0.0][b] * ((t + i) as f32).cos()
    });
    let out = model.forward(&Input::new(big.view())).unwrap();
    assert!(out.y.iter().all(|v| v.is_finite()));
}

/// One LSTM step by hand with weights that quantize exactly: with x = [1, −1] (range [−1, 1]:
/// scale 2/127, zero point 64, so x is represented as (127 − 64)·2/127 and (0 − 64)·2/127),
/// W_ih rows [0.5, 0.25] (scale 0.5/127: integers 127, 64), zero biases and state.
#[test]
fn int8_one_lstm_step_by_hand() {
    let spec = RnnSpec::lstm(2, 1).bias(false);
    let w_ih = ndarray::Array2::from_shape_fn((4, 2), |(_, k)| [0.5f32, 0.25][k]);
    let w_hh = ndarray::Array2::<f32>::zeros((4, 1));
    let weights = Weights::from_tensors(
        &spec,
        vec![
            ("weight_ih_l0".to_string(), w_ih.into_dyn()),
            ("weight_hh_l0".to_string(), w_hh.into_dyn()),
        ],
    )
    .unwrap();
    let model = CpuModel::new(weights)
        .weights_dtype(WeightsDtype::I8)
        .unwrap();
    let x = Array3::from_shape_vec((1, 1, 2), vec![1.0f32, -1.0]).unwrap();
    let out = model.forward(&Input::new(x.view())).unwrap();
    let (xa, xb) = (63.0 * 2.0 / 127.0, -64.0 * 2.0 / 127.0);
    let (wa, wb) = (127.0 * 0.5 / 127.0, 64.0 * 0.5 / 127.0);
    let z: f64 = xa * wa + xb * wb;
    let sig = 1.0 / (1.0 + (-z).exp());
    let c = sig * z.tanh();
    let h = sig * c.tanh();
    assert!(
        (f64::from(out.h_n[[0, 0, 0]]) - h).abs() < 1e-6,
        "{} vs {h}",
        out.h_n[[0, 0, 0]]
    );
    assert!((f64::from(out.c_n.unwrap()[[0, 0, 0]]) - c).abs() < 1e-6);
}

#[test]
fn int8_refusals_are_one_line_errors() {
    let spec = RnnSpec::lstm(3, 4);
    let w = Weights::random(&spec, 1).unwrap();
    let e = CpuModel::new(w.clone())
        .weights_dtype(WeightsDtype::F16)
        .unwrap_err();
    assert!(e.to_string().contains("GPU storage type"), "{e}");
    let e = CpuModel::reference(w)
        .weights_dtype(WeightsDtype::I8)
        .unwrap_err();
    assert!(e.to_string().contains("fast engine"), "{e}");
    assert!(!e.to_string().contains('\n'));
}

/// Through the batcher (one-shot requests and streams fed in chunks, several callers at once)
/// an int8 model gives each sequence the same bits as one forward of it alone: rows are
/// quantized one by one, so neither the batch-mates nor the chunking change a result.
#[test]
fn int8_through_the_batcher_equals_each_sequence_alone() {
    use ndarray::{Array2, Axis};
    use wgpu_lstm::{Batcher, BatcherOptions, Request};
    let sd = seed("int8_through_the_batcher_equals_each_sequence_alone", 2404);
    let spec = RnnSpec::lstm(6, 13).layers(2).proj_size(5);
    let weights = Weights::random(&spec, sd).unwrap();
    let model = int8(weights.clone(), 2);
    let batcher = Batcher::new(
        model.clone(),
        BatcherOptions::default().max_batch(4).quantum(3),
    )
    .unwrap();
    let callers: Vec<_> = (0..6u64)
        .map(|t| {
            let (batcher, model) = (batcher.clone(), model.clone());
            std::thread::spawn(move || {
                let mut r = rng(sd ^ ((t + 1) * 7919));
                let steps = r.random_range(1..=20);
                let x: Array2<f32> = uniform(&mut r, (steps, 6), 1.0);
                let x3 = x.view().insert_axis(Axis(1));
                let alone = model.forward(&Input::new(x3)).unwrap();
                let want_y = alone.y.index_axis(Axis(1), 0).to_owned().into_dyn();
                let want_h = alone.h_n.index_axis(Axis(1), 0).to_owned().into_dyn();
                if t % 2 == 0 {
                    let got = batcher.run(Request::new(x.view())).unwrap();
                    assert_eq!(got.y.into_dyn(), want_y, "one-shot {t}: y");
                    assert_eq!(got.h_n.into_dyn(), want_h, "one-shot {t}: h_n");
                    return;
                }
                let stream = batcher.open_stream().unwrap();
                let mut y = Array2::zeros((steps, 5));
                let mut at = 0;
                while at < steps {
                    let n = r.random_range(1..=steps - at);
                    let part = stream.feed(x.slice(s![at..at + n, ..])).unwrap();
                    y.slice_mut(s![at..at + n, ..])
                        .assign(&part.wait().unwrap());
                    at += n;
                }
                let state = stream.state().unwrap();
                assert_eq!(y.into_dyn(), want_y, "stream {t}: y");
                let h_n = state.h.index_axis(Axis(1), 0).to_owned().into_dyn();
                assert_eq!(h_n, want_h, "stream {t}: h_n");
                stream.close();
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
}
