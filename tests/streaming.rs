//! Streaming: feeding a sequence in chunks gives the outputs and final state of feeding it
//! whole, on the CPU and on the GPU (where the state stays on the device between chunks).

mod common;

use common::{assert_close, gpu, rng, seed, uniform};
use ndarray::{s, Array3, Axis};
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::{Cell, CpuModel, Forward, GpuModel, Input, RnnSpec, Stream, Weights};

fn specs() -> Vec<RnnSpec> {
    vec![
        RnnSpec::lstm(5, 9).layers(2),
        RnnSpec::lstm(5, 9).proj_size(4).peephole(true).layers(2),
        RnnSpec::gru(5, 9).layers(3),
        RnnSpec::new(Cell::RnnTanh, 5, 66),
    ]
}

/// Feeds `x` in chunks of the given sizes, returning the concatenated outputs.
fn feed_chunks(stream: &mut dyn Stream, x: &Array3<f32>, sizes: &[usize]) -> Array3<f32> {
    let mut start = 0;
    let mut ys = Vec::new();
    for &n in sizes {
        ys.push(stream.feed(x.slice(s![start..start + n, .., ..])).unwrap());
        start += n;
    }
    assert_eq!(start, x.dim().0);
    let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
    ndarray::concatenate(Axis(0), &views).unwrap()
}

#[test]
fn chunks_equal_the_whole_sequence() {
    let sd = seed("chunks_equal_the_whole_sequence", 51);
    let mut r = rng(sd);
    let sizes = [1, 7, 3, 20, 1, 8]; // 40 steps in chunks of awkward, repeating lengths
    let tol = Tolerance::GPU_VS_CPU;
    for spec in specs() {
        let weights = Weights::random(&spec, sd).unwrap();
        let x: Array3<f32> = uniform(&mut r, (40, 3, 5), 1.0);
        let ld = spec.num_layers;
        let h0: Array3<f32> = uniform(&mut r, (ld, 3, spec.hidden_out()), 1.0);
        let c0: Array3<f32> = uniform(&mut r, (ld, 3, spec.hidden_size), 1.0);
        let lstm = spec.cell == Cell::Lstm;
        let cpu = CpuModel::new(weights.clone());
        let mut input = Input::new(x.view()).h0(h0.view());
        if lstm {
            input = input.c0(c0.view());
        }
        let whole = cpu.forward(&input).unwrap();
        let c0v = lstm.then(|| c0.view());

        let mut cs = cpu.stream(3).unwrap();
        cs.set_state(h0.view(), c0v).unwrap();
        let mut runs: Vec<(&str, Array3<f32>, wgpu_lstm::StreamState)> = Vec::new();
        let y = feed_chunks(&mut cs, &x, &sizes);
        runs.push(("cpu", y, cs.state().unwrap()));
        let gpu_model = gpu().map(|ctx| GpuModel::upload(ctx, &weights).unwrap());
        if let Some(model) = &gpu_model {
            let mut gs = model.stream(3).unwrap();
            let before = gs.state().unwrap();
            assert!(
                before.h.iter().all(|&v| v == 0.0),
                "a new stream starts at zero"
            );
            gs.set_state(h0.view(), c0v).unwrap();
            assert_eq!(gs.state().unwrap().h, h0);
            let y = feed_chunks(&mut gs, &x, &sizes);
            runs.push(("gpu", y, gs.state().unwrap()));
        }
        for (name, y, state) in runs {
            let what = format!("{name} {:?}", spec.cell);
            assert_close(&format!("{what} y"), &whole.y, &y.into_dyn(), tol);
            assert_close(&format!("{what} h"), &whole.h_n, &state.h.into_dyn(), tol);
            match (&whole.c_n, state.c) {
                (Some(e), Some(c)) => {
                    assert_close(&format!("{what} c"), e, &c.into_dyn(), tol);
                }
                (None, None) => {}
                _ => panic!("{what}: cell state presence differs"),
            }
        }
    }
}

#[test]
fn streams_are_independent_of_other_forwards() {
    let Some(ctx) = gpu() else { return };
    let sd = seed("streams_are_independent_of_other_forwards", 52);
    let mut r = rng(sd);
    let weights = Weights::random(&RnnSpec::lstm(4, 8), sd).unwrap();
    let model = GpuModel::upload(ctx, &weights).unwrap();
    let x: Array3<f32> = uniform(&mut r, (10, 2, 4), 1.0);
    let whole = CpuModel::new(weights)
        .forward(&Input::new(x.view()))
        .unwrap();
    let mut a = model.stream(2).unwrap();
    let mut b = model.stream(2).unwrap();
    let ya = a.feed(x.slice(s![..5, .., ..])).unwrap();
    // Another stream and a plain forward of the same chunk length run in between.
    b.feed(x.slice(s![5.., .., ..])).unwrap();
    model
        .forward(&Input::new(x.slice(s![5.., .., ..])))
        .unwrap();
    let yb = a.feed(x.slice(s![5.., .., ..])).unwrap();
    let y = ndarray::concatenate![Axis(0), ya, yb];
    assert_close(
        "interleaved stream",
        &whole.y,
        &y.into_dyn(),
        Tolerance::GPU_VS_CPU,
    );
}

#[test]
fn stream_errors() {
    let bi = Weights::random(&RnnSpec::lstm(4, 8).bidirectional(true), 1).unwrap();
    let e = CpuModel::new(bi.clone()).stream(1).unwrap_err().to_string();
    assert!(e.contains("a bidirectional model cannot stream"), "{e}");
    if let Some(ctx) = gpu() {
        let m = GpuModel::upload(ctx, &bi).unwrap();
        assert!(m
            .stream(1)
            .unwrap_err()
            .to_string()
            .contains("cannot stream"));
    }
    let w = Weights::random(&RnnSpec::gru(4, 8), 1).unwrap();
    let cpu = CpuModel::new(w);
    let mut s = cpu.stream(2).unwrap();
    let e = s
        .feed(Array3::zeros((3, 1, 4)).view())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "tensor `chunk`: expected shape [3, 2, 4], got [3, 1, 4]");
    let e = s
        .feed(Array3::zeros((3, 2, 5)).view())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "tensor `x`: expected shape [3, 2, 4], got [3, 2, 5]");
    let h = Array3::<f32>::zeros((1, 2, 8));
    let e = s
        .set_state(h.view(), Some(h.view()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a cell state was given but a gru has none"),
        "{e}"
    );
    let e = s
        .set_state(Array3::zeros((1, 2, 7)).view(), None)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "tensor `h`: expected shape [1, 2, 8], got [1, 2, 7]");
}
