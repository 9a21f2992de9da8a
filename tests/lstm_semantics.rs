//! LSTM semantics on both paths, checked against values derived by hand and against
//! properties that hold for PyTorch's `nn.LSTM` (reverse direction, layer stacking,
//! batch-first and unbatched layouts, batch independence, saturation), plus the errors that
//! bad input must give.

mod common;

use common::{assert_close, assert_outputs_close, gpu, models, rng, seed, uniform};
use ndarray::{arr1, arr2, s, Array3, ArrayD, Axis, ShapeBuilder};
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{
    CpuModel, Error, Forward, ForwardOptions, GpuModel, Input, RnnSpec, StepVariant, Weights,
};

/// Float32 rounding of a handful of operations.
const HAND: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-6,
};

/// One step of a 1-input, 1-unit LSTM, worked out by hand:
///
/// ```text
/// W_ih = [0.5, −0.5, 1.0, 0.25]ᵀ   W_hh = [0.1, 0.2, −0.3, 0.4]ᵀ      (rows i, f, g, o)
/// b_ih = [0.1, 0, 0, −0.1]         b_hh = [0, 0.2, −0.05, 0]
/// x = 1, h0 = 0.5, c0 = 2
/// a_i = 0.5 + 0.05 + 0.1        = 0.65   i = σ(0.65)   = 0.6570104627
/// a_f = −0.5 + 0.1 + 0.2        = −0.2   f = σ(−0.2)   = 0.4501660027
/// a_g = 1.0 − 0.15 − 0.05       = 0.8    g = tanh(0.8) = 0.6640367703
/// a_o = 0.25 + 0.2 − 0.1        = 0.35   o = σ(0.35)   = 0.5866175789
/// c1 = f·c0 + i·g = 0.9003320054 + 0.4362791057 = 1.3366111110
/// h1 = o·tanh(c1) = 0.5866175789 · 0.8708572386 = 0.5108593620
/// ```
#[test]
fn hand_computed_single_step() {
    let spec = RnnSpec::lstm(1, 1);
    let tensors = vec![
        (
            "weight_ih_l0".to_string(),
            arr2(&[[0.5f32], [-0.5], [1.0], [0.25]]).into_dyn(),
        ),
        (
            "weight_hh_l0".to_string(),
            arr2(&[[0.1f32], [0.2], [-0.3], [0.4]]).into_dyn(),
        ),
        (
            "bias_ih_l0".to_string(),
            arr1(&[0.1f32, 0.0, 0.0, -0.1]).into_dyn(),
        ),
        (
            "bias_hh_l0".to_string(),
            arr1(&[0.0f32, 0.2, -0.05, 0.0]).into_dyn(),
        ),
    ];
    let weights = Weights::from_tensors(&spec, tensors).unwrap();
    let x = Array3::from_elem((1, 1, 1), 1.0f32);
    let h0 = Array3::from_elem((1, 1, 1), 0.5f32);
    let c0 = Array3::from_elem((1, 1, 1), 2.0f32);
    let h1 = ArrayD::from_elem(vec![1, 1, 1], 0.510_859_362_040_374_f64 as f32);
    let c1 = ArrayD::from_elem(vec![1, 1, 1], 1.336_611_111_040_939_f64 as f32);
    for (name, model) in models(&weights) {
        let out = model
            .forward(&Input::new(x.view()).h0(h0.view()).c0(c0.view()))
            .unwrap();
        assert_close(&format!("{name} y"), &h1, &out.y, HAND);
        assert_close(&format!("{name} h_n"), &h1, &out.h_n, HAND);
        assert_close(&format!("{name} c_n"), &c1, out.c_n.as_ref().unwrap(), HAND);
    }
}

/// The tensors of one direction of a bidirectional layer, renamed as a one-direction model.
fn one_direction(weights: &Weights, reverse: bool) -> Weights {
    let spec = RnnSpec {
        bidirectional: false,
        num_layers: 1,
        ..weights.spec().clone()
    };
    let tensors = weights
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.contains("_l0") && n.ends_with("_reverse") == reverse)
        .map(|(n, t)| (n.trim_end_matches("_reverse").to_string(), t.to_owned()));
    Weights::from_tensors(&spec, tensors).unwrap()
}

/// The reverse half of a bidirectional layer equals a forward-only layer with the reverse
/// weights run over the time-reversed input, with its output reversed back.
#[test]
fn reverse_direction_is_forward_over_reversed_time() {
    let sd = seed("reverse_direction_is_forward_over_reversed_time", 11);
    let mut r = rng(sd);
    let (t, b, i, h) = (9, 3, 4, 5);
    let weights = Weights::random(&RnnSpec::lstm(i, h).bidirectional(true), sd).unwrap();
    let x: Array3<f32> = uniform(&mut r, (t, b, i), 1.0);
    let mut x_rev = x.clone();
    x_rev.invert_axis(Axis(0));
    let fwd = CpuModel::new(one_direction(&weights, false));
    let bwd = CpuModel::new(one_direction(&weights, true));
    let expect_f = fwd.forward(&Input::new(x.view())).unwrap();
    let mut expect_b = bwd.forward(&Input::new(x_rev.view())).unwrap();
    expect_b.y.invert_axis(Axis(0));
    for (name, model) in models(&weights) {
        let out = model.forward(&Input::new(x.view())).unwrap();
        let tol = Tolerance::GPU_VS_CPU;
        let y_f = out.y.slice(s![.., .., ..h]).to_owned().into_dyn();
        let y_b = out.y.slice(s![.., .., h..]).to_owned().into_dyn();
        assert_close(&format!("{name} forward half"), &expect_f.y, &y_f, tol);
        assert_close(&format!("{name} reverse half"), &expect_b.y, &y_b, tol);
        // h_n of the reverse direction is its state after time step 0.
        let hn_b = out.h_n.slice(s![1..2, .., ..]).to_owned().into_dyn();
        assert_close(&format!("{name} reverse h_n"), &expect_b.h_n, &hn_b, tol);
        let y0_b = out.y.slice(s![0..1, .., h..]).to_owned().into_dyn();
        let hn_as_y = expect_b.h_n.clone();
        assert_close(&format!("{name} reverse h_n = y[0]"), &hn_as_y, &y0_b, tol);
    }
}

/// A 2-layer model equals two 1-layer models chained, with h0/c0 split by layer.
#[test]
fn layers_stack_like_pytorch() {
    let sd = seed("layers_stack_like_pytorch", 12);
    let mut r = rng(sd);
    let (t, b, i, h) = (6, 2, 3, 4);
    let spec = RnnSpec::lstm(i, h).layers(2).bidirectional(true);
    let weights = Weights::random(&spec, sd).unwrap();
    let layer = |k: usize| {
        let spec = RnnSpec::lstm(spec.layer_input_size(k), h).bidirectional(true);
        let tensors = weights
            .tensors()
            .into_iter()
            .filter(|(n, _)| n.contains(&format!("_l{k}")))
            .map(|(n, t)| (n.replace(&format!("_l{k}"), "_l0"), t.to_owned()));
        CpuModel::new(Weights::from_tensors(&spec, tensors).unwrap())
    };
    let x: Array3<f32> = uniform(&mut r, (t, b, i), 1.0);
    let h0: Array3<f32> = uniform(&mut r, (4, b, h), 1.0);
    let c0: Array3<f32> = uniform(&mut r, (4, b, h), 1.0);
    let first = layer(0)
        .forward(
            &Input::new(x.view())
                .h0(h0.slice(s![0..2, .., ..]))
                .c0(c0.slice(s![0..2, .., ..])),
        )
        .unwrap();
    let second = layer(1)
        .forward(
            &Input::new(first.y.view())
                .h0(h0.slice(s![2..4, .., ..]))
                .c0(c0.slice(s![2..4, .., ..])),
        )
        .unwrap();
    let h_n = ndarray::concatenate![Axis(0), first.h_n, second.h_n];
    let c_n = ndarray::concatenate![
        Axis(0),
        first.c_n.clone().unwrap(),
        second.c_n.clone().unwrap()
    ];
    for (name, model) in models(&weights) {
        let out = model
            .forward(&Input::new(x.view()).h0(h0.view()).c0(c0.view()))
            .unwrap();
        let tol = Tolerance::GPU_VS_CPU;
        assert_close(&format!("{name} y"), &second.y, &out.y, tol);
        assert_close(&format!("{name} h_n"), &h_n, &out.h_n, tol);
        assert_close(&format!("{name} c_n"), &c_n, out.c_n.as_ref().unwrap(), tol);
    }
}

/// Batch-first input gives the transposed output of the time-major input; an unbatched
/// sequence gives the batch-1 result without its batch axis; each batch element alone gives
/// its row of the batched result.
#[test]
fn layouts_and_batch_independence() {
    let sd = seed("layouts_and_batch_independence", 13);
    let mut r = rng(sd);
    let (t, b, i, h) = (7, 5, 3, 6);
    let spec = RnnSpec::lstm(i, h).layers(2);
    let weights = Weights::random(&spec, sd).unwrap();
    let x: Array3<f32> = uniform(&mut r, (t, b, i), 1.0);
    let h0: Array3<f32> = uniform(&mut r, (2, b, h), 1.0);
    let tol = Tolerance::GPU_VS_CPU;
    for (name, model) in models(&weights) {
        let base = model.forward(&Input::new(x.view()).h0(h0.view())).unwrap();
        let mut xb = x.clone();
        xb.swap_axes(0, 1);
        let bf = model
            .forward(&Input::new(xb.view()).batch_first(true).h0(h0.view()))
            .unwrap();
        assert_eq!(bf.y.shape(), &[b, t, h]);
        let mut y_t = bf.y.clone();
        y_t.swap_axes(0, 1);
        assert_close(&format!("{name} batch-first y"), &base.y, &y_t, tol);
        assert_close(&format!("{name} batch-first h_n"), &base.h_n, &bf.h_n, tol);
        for k in 0..b {
            let xk = x.slice(s![.., k, ..]);
            let hk = h0.slice(s![.., k, ..]);
            let one = model.forward(&Input::new(xk).h0(hk)).unwrap();
            assert_eq!(one.y.shape(), &[t, h]);
            assert_eq!(one.h_n.shape(), &[2, h]);
            let row = base.y.index_axis(Axis(1), k).to_owned();
            assert_close(
                &format!("{name} unbatched y of element {k}"),
                &row,
                &one.y,
                tol,
            );
            let hn = base.h_n.index_axis(Axis(1), k).to_owned();
            assert_close(
                &format!("{name} unbatched h_n of element {k}"),
                &hn,
                &one.h_n,
                tol,
            );
        }
    }
}

/// Pre-activations of ±1e30 saturate the gates and give finite outputs (the GPU's σ and
/// tanh never overflow); extreme states stay finite too.
#[test]
fn saturation_gives_finite_outputs() {
    let sd = seed("saturation_gives_finite_outputs", 14);
    let mut r = rng(sd);
    let (t, b, i, h) = (5, 3, 4, 7);
    let spec = RnnSpec::lstm(i, h).bidirectional(true);
    let mut tensors: Vec<(String, ArrayD<f32>)> = Weights::random(&spec, sd)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.mapv(|v| v * 1e28)))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = Weights::from_tensors(&spec, tensors).unwrap();
    let x: Array3<f32> = uniform(&mut r, (t, b, i), 100.0);
    let h0: Array3<f32> = uniform(&mut r, (2, b, h), 1.0);
    let c0: Array3<f32> = uniform(&mut r, (2, b, h), 1e30);
    let mut outs = Vec::new();
    for (name, model) in models(&weights) {
        let out = model
            .forward(&Input::new(x.view()).h0(h0.view()).c0(c0.view()))
            .unwrap();
        for (what, a) in [
            ("y", &out.y),
            ("h_n", &out.h_n),
            ("c_n", out.c_n.as_ref().unwrap()),
        ] {
            assert!(
                a.iter().all(|v| v.is_finite()),
                "{name} {what} not finite: {a}"
            );
        }
        assert!(out.y.iter().all(|v| v.abs() <= 1.0), "{name}: |h| > 1");
        outs.push(out);
    }
    if outs.len() == 2 {
        // Saturated gates are exactly 0 or 1 on both paths, so the results agree closely.
        assert_outputs_close(
            "gpu vs cpu saturated",
            &outs[0],
            &outs[1],
            Tolerance::GPU_VS_CPU,
        );
    }
}

/// One forward of a 2-layer, 50-step model is 2 · (50 + 1) = 102 dispatches stepwise, and
/// 2 · 2 = 4 with the whole-sequence kernel, in one submit either way.
#[test]
fn dispatch_count_of_two_layers_fifty_steps() {
    let Some(ctx) = gpu() else { return };
    let spec = RnnSpec::lstm(8, 16).layers(2);
    let model = GpuModel::upload(ctx, &Weights::random(&spec, 3).unwrap()).unwrap();
    let x = Array3::<f32>::zeros((50, 4, 8));
    let xf = Array3::<f32>::zeros((50, 4, 8).f());
    let stats = |x: &Array3<f32>, variant: StepVariant| {
        let options = ForwardOptions::default().variant(variant);
        model
            .forward_with(&Input::new(x.view()), &options)
            .unwrap()
            .1
    };
    for (variant, expected) in [
        (StepVariant::Stepwise, 102),
        (StepVariant::Sequence, 4),
        (StepVariant::StepwiseWide, 102),
        (StepVariant::SequenceWide, 4),
    ] {
        for input in [&x, &xf] {
            let s = stats(input, variant);
            assert_eq!((s.dispatches, s.submits), (expected, 1), "{variant:?}");
            assert_eq!(s.variant, variant);
        }
    }
    // Auto runs the kernel the device's tuner measured to be faster, and says which.
    for b in [4, 8] {
        let xb = Array3::<f32>::zeros((50, b, 8));
        let s = stats(&xb, StepVariant::Auto);
        let expected = if s.variant.is_sequence() { 4 } else { 102 };
        assert_ne!(s.variant, StepVariant::Auto);
        assert_eq!((s.dispatches, s.submits), (expected, 1), "batch {b}: {s:?}");
    }
}

fn assert_err(result: Result<impl std::fmt::Debug, Error>, expect: &str) {
    let msg = result.expect_err("an error").to_string();
    assert!(
        msg.contains(expect),
        "error `{msg}` does not contain `{expect}`"
    );
    assert!(!msg.contains('\n'), "error `{msg}` is not one line");
}

#[test]
fn bad_inputs_are_clear_errors_on_both_paths() {
    let spec = RnnSpec::lstm(3, 4).layers(2);
    let weights = Weights::random(&spec, 5).unwrap();
    let x = Array3::<f32>::zeros((6, 2, 3));
    let wrong_x = Array3::<f32>::zeros((6, 2, 5));
    let h0_wrong = Array3::<f32>::zeros((1, 2, 4));
    let c0_wrong = Array3::<f32>::zeros((2, 3, 4));
    let empty = Array3::<f32>::zeros((0, 2, 3));
    let x4 = ndarray::Array4::<f32>::zeros((1, 6, 2, 3));
    for (name, model) in models(&weights) {
        eprintln!("checking errors on {name}");
        assert_err(
            model.forward(&Input::new(wrong_x.view())),
            "tensor `x`: expected shape [6, 2, 3], got [6, 2, 5]",
        );
        assert_err(
            model.forward(&Input::new(wrong_x.view()).batch_first(true)),
            "tensor `x`: expected shape [6, 2, 3], got [6, 2, 5]",
        );
        assert_err(
            model.forward(&Input::new(x.view()).h0(h0_wrong.view())),
            "tensor `h0`: expected shape [2, 2, 4], got [1, 2, 4]",
        );
        assert_err(
            model.forward(&Input::new(x.view()).c0(c0_wrong.view())),
            "tensor `c0`: expected shape [2, 2, 4], got [2, 3, 4]",
        );
        assert_err(model.forward(&Input::new(empty.view())), "no time steps");
        assert_err(model.forward(&Input::new(x4.view())), "input `x` must be");
    }
}

#[test]
fn bad_weights_are_clear_errors() {
    let spec = RnnSpec::lstm(3, 4).layers(2).bidirectional(true);
    let good: Vec<(String, ArrayD<f32>)> = Weights::random(&spec, 1)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.to_owned()))
        .collect();
    assert!(Weights::from_tensors(&spec, good.clone()).is_ok());

    let missing: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "weight_hh_l1_reverse")
        .cloned()
        .collect();
    assert_err(
        Weights::from_tensors(&spec, missing),
        "missing tensor `weight_hh_l1_reverse` (expected shape [16, 4])",
    );

    let mut wrong = good.clone();
    wrong[0].1 = ArrayD::zeros(vec![16, 5]);
    assert_err(
        Weights::from_tensors(&spec, wrong),
        "tensor `weight_ih_l0`: expected shape [16, 3], got [16, 5]",
    );

    let mut extra = good.clone();
    extra.push(("weight_ih_l2".into(), ArrayD::zeros(vec![16, 8])));
    assert_err(
        Weights::from_tensors(&spec, extra),
        "unexpected tensor `weight_ih_l2` with shape [16, 8]",
    );

    assert_err(
        Weights::random(&RnnSpec::lstm(3, 0), 1),
        "invalid model spec: hidden_size must be at least 1",
    );
}

/// The whole-sequence kernel over long sequences and many columns per invocation: correct
/// where it runs, and replaced by the stepwise kernel where the driver cannot run it (Mesa's
/// llvmpipe stops an invocation's loops after 65 535 iterations in total).
#[test]
fn whole_sequence_kernel_on_long_sequences() {
    let Some(ctx) = gpu() else { return };
    let sd = seed("whole_sequence_kernel_on_long_sequences", 15);
    let mut ran = Vec::new();
    for (h, t) in [(129, 300), (257, 50), (257, 300), (300, 120)] {
        let spec = RnnSpec::lstm(5, h);
        let w = Weights::random(&spec, sd).unwrap();
        let x: Array3<f32> = uniform(&mut rng(sd), (t, 2, 5), 1.0);
        let expected = CpuModel::new(w.clone())
            .forward(&Input::new(x.view()))
            .unwrap();
        let model = GpuModel::upload(ctx, &w).unwrap();
        let options = ForwardOptions::default().variant(StepVariant::Sequence);
        let (out, stats) = model.forward_with(&Input::new(x.view()), &options).unwrap();
        let v = stats.variant;
        eprintln!("H={h} T={t}: ran {v:?}");
        assert_outputs_close(
            &format!("H={h} T={t} {v:?}"),
            &expected,
            &out,
            Tolerance::GPU_VS_CPU,
        );
        ran.push(v);
    }
    assert!(ran.contains(&StepVariant::Sequence));
}
