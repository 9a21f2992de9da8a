//! The cellular batcher on the CPU and (where an adapter exists, always in CI) the GPU:
//! every request's results against the same sequence run alone through `forward`, from many
//! threads at random times, with streams fed in random chunkings beside one-shot requests;
//! cancellations, deadlines, idle streams, a full queue and a full table, each leaving the
//! state table empty.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{gpu, rng, seed, uniform};
use ndarray::{s, Array2, Array3, Axis};
use rand::Rng;
use wgpu_lstm::compare::{compare, Tolerance};
use wgpu_lstm::{
    Batcher, BatcherModel, BatcherOptions, Cell, CpuModel, Error, Forward, GpuModel, Input,
    Request, Response, RnnSpec, UploadOptions, Weights, WeightsDtype,
};

/// The models of `weights` a batcher is tested on: the CPU's, and the GPU's where there is an
/// adapter.
fn devices(weights: &Weights) -> Vec<(&'static str, BatcherModel)> {
    let mut out = vec![("cpu", BatcherModel::from(CpuModel::new(weights.clone())))];
    if let Some(ctx) = gpu() {
        out.push(("gpu", GpuModel::upload(ctx, weights).unwrap().into()));
    }
    out
}

/// Every cell kind, with a projection and peepholes, and two layers.
fn specs() -> Vec<(&'static str, RnnSpec)> {
    vec![
        ("lstm", RnnSpec::lstm(5, 12)),
        ("gru", RnnSpec::gru(5, 9)),
        ("rnn-tanh", RnnSpec::new(Cell::RnnTanh, 5, 7)),
        ("rnn-relu", RnnSpec::new(Cell::RnnRelu, 5, 6)),
        (
            "lstm-peephole-projection-2-layers",
            RnnSpec::lstm(5, 10).peephole(true).proj_size(4).layers(2),
        ),
    ]
}

/// What the same sequence gives alone: one forward of batch 1 on the CPU's reference engine.
fn alone(
    weights: &Weights,
    x: &Array2<f32>,
    h0: Option<&Array2<f32>>,
    c0: Option<&Array2<f32>>,
) -> Response {
    let (y, h_n, c_n) = common::alone(weights, x, h0, c0);
    Response { y, h_n, c_n }
}

/// The worst absolute difference of `got` from `want` over y, h_n and c_n, asserting each
/// within the GPU-versus-CPU tolerance and finite.
#[track_caller]
fn check(what: &str, want: &Response, got: &Response) -> f32 {
    let mut worst = 0.0f32;
    let mut one = |name: &str, w: &Array2<f32>, g: &Array2<f32>| {
        let c = compare(
            w.view().into_dyn(),
            g.view().into_dyn(),
            Tolerance::GPU_VS_CPU,
        )
        .unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
        assert!(c.ok(), "{what}: {name}: {c}");
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{what}: {name}: not finite"
        );
        worst = worst.max(c.max_abs_err);
    };
    one("y", &want.y, &got.y);
    one("h_n", &want.h_n, &got.h_n);
    match (&want.c_n, &got.c_n) {
        (Some(w), Some(g)) => one("c_n", w, g),
        (None, None) => {}
        _ => panic!("{what}: c_n present in only one"),
    }
    worst
}

/// Waits until the batcher holds no slot and no queued work (the scheduler frees slots
/// between rounds), failing after 20 s.
#[track_caller]
fn assert_drains(batcher: &Batcher, what: &str) {
    let start = Instant::now();
    loop {
        let s = batcher.stats();
        if s.slots_in_use == 0 && s.queued == 0 && s.open_streams == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: the table does not drain: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One-shot requests of lengths 1..=T from 6 threads at random times, a third with given
/// `h0`/`c0`, against each sequence alone, for every cell kind on every device.
#[test]
fn one_shot_requests_from_many_threads_equal_each_alone() {
    let seed = seed("one_shot_requests_from_many_threads_equal_each_alone", 41);
    for (name, spec) in specs() {
        let weights = Weights::random(&spec, seed).unwrap();
        for (device, model) in devices(&weights) {
            let options = BatcherOptions::default().max_batch(8).quantum(5);
            let batcher = Batcher::new(model, options).unwrap();
            let ld = spec.num_layers * spec.num_directions();
            let threads: Vec<_> = (0..6u64)
                .map(|t| {
                    let batcher = batcher.clone();
                    let weights = weights.clone();
                    let spec = spec.clone();
                    std::thread::spawn(move || {
                        let mut rng = rng(seed ^ ((t + 1) * 7919));
                        let mut worst = 0.0f32;
                        for i in 0..5 {
                            let steps = rng.random_range(1..=23);
                            let x: Array2<f32> = uniform(&mut rng, (steps, spec.input_size), 1.0);
                            let given = i % 3 == 0;
                            let h0: Option<Array2<f32>> =
                                given.then(|| uniform(&mut rng, (ld, spec.hidden_out()), 0.5));
                            let c0: Option<Array2<f32>> = (given && spec.cell == Cell::Lstm)
                                .then(|| uniform(&mut rng, (ld, spec.hidden_size), 0.5));
                            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
                            let mut request = Request::new(x.view());
                            if let Some(h0) = &h0 {
                                request = request.h0(h0.view());
                            }
                            if let Some(c0) = &c0 {
                                request = request.c0(c0.view());
                            }
                            let got = batcher.run(request).unwrap();
                            let want = alone(&weights, &x, h0.as_ref(), c0.as_ref());
                            let what = format!("thread {t} request {i} ({steps} steps)");
                            worst = worst.max(check(&what, &want, &got));
                        }
                        worst
                    })
                })
                .collect();
            let worst = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .fold(0.0f32, f32::max);
            let stats = batcher.stats();
            eprintln!(
                "{name} on {device}: worst |batched − alone| {worst:e}; {} rounds, mean batch {:.2}",
                stats.rounds, stats.mean_batch
            );
            assert_eq!(stats.requests, 30);
            assert!(stats.rounds > 0 && stats.compute_time.count == stats.rounds);
            assert_drains(&batcher, name);
        }
    }
}

/// Streams fed in random chunkings (one to all of their steps at a time) beside one-shot
/// requests: each stream's outputs and state equal one forward over its whole sequence.
#[test]
fn streams_in_random_chunkings_equal_one_forward() {
    let seed = seed("streams_in_random_chunkings_equal_one_forward", 42);
    let spec = RnnSpec::lstm(4, 11).layers(2);
    let weights = Weights::random(&spec, seed).unwrap();
    for (device, model) in devices(&weights) {
        let batcher =
            Batcher::new(model, BatcherOptions::default().max_batch(6).quantum(4)).unwrap();
        let threads: Vec<_> = (0..5u64)
            .map(|t| {
                let batcher = batcher.clone();
                let weights = weights.clone();
                std::thread::spawn(move || {
                    let mut rng = rng(seed ^ ((t + 1) * 104_729));
                    let steps = rng.random_range(1..=30);
                    let x: Array2<f32> = uniform(&mut rng, (steps, 4), 1.0);
                    if t % 2 == 1 {
                        // A one-shot request among the streams.
                        let got = batcher.run(Request::new(x.view())).unwrap();
                        return check("one-shot", &alone(&weights, &x, None, None), &got);
                    }
                    let h0: Array2<f32> = uniform(&mut rng, (2, 11), 0.5);
                    let c0: Array2<f32> = uniform(&mut rng, (2, 11), 0.5);
                    let stream = batcher
                        .open_stream_from(Some(h0.view()), Some(c0.view()))
                        .unwrap();
                    let mut y = Array2::zeros((steps, 11));
                    let mut at = 0;
                    let mut pending = Vec::new();
                    while at < steps {
                        let n = rng.random_range(1..=steps - at);
                        pending.push((at, n, stream.feed(x.slice(s![at..at + n, ..])).unwrap()));
                        at += n;
                        if rng.random_bool(0.5) {
                            std::thread::sleep(Duration::from_micros(rng.random_range(0..2000)));
                        }
                    }
                    for (at, n, p) in pending {
                        y.slice_mut(s![at..at + n, ..]).assign(&p.wait().unwrap());
                    }
                    let state = stream.state().unwrap();
                    let got = Response {
                        y,
                        h_n: state.h.index_axis(Axis(1), 0).to_owned(),
                        c_n: state.c.map(|c| c.index_axis(Axis(1), 0).to_owned()),
                    };
                    stream.close();
                    check(
                        &format!("stream {t}"),
                        &alone(&weights, &x, Some(&h0), Some(&c0)),
                        &got,
                    )
                })
            })
            .collect();
        let worst = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold(0.0f32, f32::max);
        eprintln!("streams on {device}: worst |batched − alone| {worst:e}");
        assert_drains(&batcher, device);
    }
}

/// A bidirectional model runs each request whole, batched with others; it takes no streams.
#[test]
fn bidirectional_requests_run_whole() {
    let seed = seed("bidirectional_requests_run_whole", 43);
    let spec = RnnSpec::gru(3, 8).bidirectional(true).layers(2);
    let weights = Weights::random(&spec, seed).unwrap();
    for (device, model) in devices(&weights) {
        let batcher = Batcher::new(model, BatcherOptions::default().quantum(2)).unwrap();
        let err = batcher.open_stream().unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{device}: {err}");
        let mut rng = rng(seed);
        let xs: Vec<Array2<f32>> = (0..7)
            .map(|_| {
                let steps = rng.random_range(1..=17);
                uniform(&mut rng, (steps, 3), 1.0)
            })
            .collect();
        let pending: Vec<_> = xs
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        for (x, p) in xs.iter().zip(pending) {
            let got = p.wait().unwrap();
            assert_eq!(got.y.dim(), (x.nrows(), 16));
            check(device, &alone(&weights, x, None, None), &got);
        }
        assert!(batcher.stats().rounds <= 7);
        assert_drains(&batcher, device);
    }
}

/// Dropped `Pending`s and passed deadlines free their slots; the others still get their
/// results.
#[test]
fn cancellations_and_deadlines_free_their_slots() {
    let seed = seed("cancellations_and_deadlines_free_their_slots", 44);
    let spec = RnnSpec::lstm(4, 8);
    let weights = Weights::random(&spec, seed).unwrap();
    let mut rng = rng(seed);
    for (device, model) in devices(&weights) {
        let batcher =
            Batcher::new(model, BatcherOptions::default().max_batch(4).quantum(2)).unwrap();
        let xs: Vec<Array2<f32>> = (0..24)
            .map(|_| {
                let steps = rng.random_range(20..=60);
                uniform(&mut rng, (steps, 4), 1.0)
            })
            .collect();
        let mut kept = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            let request = match i % 3 {
                // Already late: fails before or between its rounds.
                1 => Request::new(x.view()).deadline(Instant::now()),
                _ => Request::new(x.view()),
            };
            let p = batcher.submit(request).unwrap();
            match i % 3 {
                0 => drop(p),
                _ => kept.push((i, p)),
            }
        }
        for (i, p) in kept {
            match (i % 3, p.wait()) {
                (1, Err(Error::DeadlineExceeded(_))) => {}
                (1, r) => panic!("{device}: request {i} with a passed deadline gave {r:?}"),
                (_, r) => {
                    check(device, &alone(&weights, &xs[i], None, None), &r.unwrap());
                }
            }
        }
        assert_drains(&batcher, device);
        let s = batcher.stats();
        assert_eq!(s.requests + s.failed + s.cancelled, 24, "{device}: {s:?}");
        assert_eq!(
            s.admitted, 24,
            "{device}: every request admitted counted once"
        );
        assert_eq!(s.failed, 8, "{device}: every late request fails");
        assert!(s.cancelled > 0, "{device}: {s:?}");
    }
}

/// A stream idle past the timeout is closed and its slot freed; feeding it then fails.
#[test]
fn idle_streams_are_closed() {
    let spec = RnnSpec::gru(3, 5);
    let weights = Weights::random(&spec, 45).unwrap();
    for (device, model) in devices(&weights) {
        let options = BatcherOptions::default().stream_idle_timeout(Duration::from_millis(100));
        let batcher = Batcher::new(model, options).unwrap();
        let stream = batcher.open_stream().unwrap();
        let x = Array2::<f32>::ones((4, 3));
        stream.feed(x.view()).unwrap().wait().unwrap();
        assert_eq!(batcher.stats().open_streams, 1);
        assert_drains(&batcher, device);
        assert_eq!(batcher.stats().idle_closed, 1);
        let err = stream.feed(x.view()).unwrap_err();
        assert!(matches!(err, Error::Closed(_)), "{device}: {err}");
    }
}

/// With the queue full a submission is refused with `Busy` and nothing admitted is lost;
/// with every slot held, so is a new stream.
#[test]
fn full_queue_and_full_table_are_busy_and_lose_nothing() {
    let spec = RnnSpec::lstm(3, 6);
    let weights = Weights::random(&spec, 46).unwrap();
    let mut rng = rng(46);
    for (device, model) in devices(&weights) {
        // A long queue delay holds admitted work until shutdown runs it.
        let options = BatcherOptions::default()
            .max_queue(4)
            .max_sequences(6)
            .max_queue_delay(Duration::from_secs(600));
        let batcher = Batcher::new(model, options).unwrap();
        let xs: Vec<Array2<f32>> = (0..5).map(|_| uniform(&mut rng, (9, 3), 1.0)).collect();
        let admitted: Vec<_> = xs[..4]
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        let err = batcher.submit(Request::new(xs[4].view())).unwrap_err();
        assert!(matches!(err, Error::Busy(_)), "{device}: {err}");
        let s1 = batcher.open_stream().unwrap();
        let s2 = batcher.open_stream().unwrap();
        let err = batcher.open_stream().unwrap_err();
        assert!(matches!(err, Error::Busy(_)), "{device}: {err}");
        assert_eq!(batcher.stats().rejected, 2);
        drop((s1, s2));
        let waiter = {
            let batcher = batcher.clone();
            std::thread::spawn(move || batcher.shutdown())
        };
        for (x, p) in xs.iter().zip(admitted) {
            check(device, &alone(&weights, x, None, None), &p.wait().unwrap());
        }
        waiter.join().unwrap();
        let err = batcher.submit(Request::new(xs[0].view())).unwrap_err();
        assert!(matches!(err, Error::Closed(_)), "{device}: {err}");
        let s = batcher.stats();
        assert_eq!(
            (s.requests, s.slots_in_use, s.queued),
            (4, 0, 0),
            "{device}: {s:?}"
        );
    }
}

/// Bad input fails at once with one clear error and admits nothing.
#[test]
fn bad_input_is_refused_at_once() {
    let spec = RnnSpec::gru(3, 5);
    let weights = Weights::random(&spec, 47).unwrap();
    let batcher = Batcher::new(CpuModel::new(weights), BatcherOptions::default()).unwrap();
    let wrong = Array2::<f32>::zeros((4, 2));
    let err = batcher.run(Request::new(wrong.view())).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(batcher.run(Request::new(empty.view())).is_err());
    let x = Array2::<f32>::zeros((4, 3));
    let c0 = Array2::<f32>::zeros((1, 5));
    let err = batcher
        .run(Request::new(x.view()).c0(c0.view()))
        .unwrap_err();
    assert!(err.to_string().contains("no cell state"), "{err}");
    let h0 = Array2::<f32>::zeros((2, 5));
    let err = batcher
        .run(Request::new(x.view()).h0(h0.view()))
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let s = batcher.stats();
    assert_eq!((s.requests, s.failed, s.queued), (0, 0, 0));
    let bad = BatcherOptions::default().max_batch(0);
    let weights = Weights::random(&spec, 47).unwrap();
    let err = Batcher::new(CpuModel::new(weights), bad).unwrap_err();
    assert!(err.to_string().contains("max_batch"), "{err}");
}

/// The figures a service exports: batches form under concurrent load, times are recorded,
/// and the table's size is what its slots hold.
#[test]
fn statistics_describe_the_load() {
    let spec = RnnSpec::lstm(4, 8).proj_size(3);
    let weights = Weights::random(&spec, 48).unwrap();
    for (device, model) in devices(&weights) {
        let options = BatcherOptions::default()
            .max_sequences(10)
            .max_queue_delay(Duration::from_millis(20));
        let batcher = Batcher::new(model, options).unwrap();
        let x = Arc::new(Array3::<f32>::ones((8, 12, 4)));
        let pending: Vec<_> = (0..8)
            .map(|b| {
                batcher
                    .submit(Request::new(x.slice(s![b, .., ..])))
                    .unwrap()
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        let s = batcher.stats();
        assert_eq!(s.requests, 8);
        assert!(s.mean_batch > 1.0, "{device}: {s:?}");
        assert!(s.queue_time.count == 8 && s.queue_time.p99 >= s.queue_time.p50);
        assert!(s.compute_time.p50 > Duration::ZERO && s.latency.count == 8);
        // h [1, 3] and c [1, 8] per slot, float32.
        assert_eq!(s.state_table_bytes, 10 * (3 + 8) * 4);
    }
}

/// On the CPU's reference engine a batched request is bit for bit the same sequence run alone:
/// a row's arithmetic does not depend on the rows beside it, and where the rounds cut its
/// steps does not matter (the state carries over in float32, exactly as between two steps).
/// The fast engine is not bit-identical (its product kernels tile rows, so a row's sums round
/// differently beside others: 1 ulp seen) and the GPU's kernels change with the round's batch;
/// both are held to the GPU-versus-CPU tolerance above.
#[test]
fn cpu_results_are_bit_identical_to_each_alone() {
    let seed = seed("cpu_results_are_bit_identical_to_each_alone", 49);
    for (name, spec) in specs() {
        let weights = Weights::random(&spec, seed).unwrap();
        let alone = CpuModel::reference(weights.clone());
        let options = BatcherOptions::default().max_batch(5).quantum(3);
        let batcher = Batcher::new(CpuModel::reference(weights), options).unwrap();
        let mut rng = rng(seed);
        let xs: Vec<Array2<f32>> = (0..12)
            .map(|_| {
                let steps = rng.random_range(1..=20);
                uniform(&mut rng, (steps, spec.input_size), 1.0)
            })
            .collect();
        let pending: Vec<_> = xs
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        for (i, (x, p)) in xs.iter().zip(pending).enumerate() {
            let got = p.wait().unwrap();
            let want = alone
                .forward(&Input::new(x.view().insert_axis(Axis(1))))
                .unwrap();
            let want_y = want.y.index_axis(Axis(1), 0).to_owned();
            assert_eq!(
                got.y.view().into_dyn(),
                want_y,
                "{name}: request {i}: y differs from the same sequence alone"
            );
            let want_h = want.h_n.index_axis(Axis(1), 0).to_owned();
            assert_eq!(
                got.h_n.view().into_dyn(),
                want_h,
                "{name}: request {i}: h_n"
            );
        }
    }
}

/// A deep queue on a CPU model with two lanes: each lane is handed its next round while one
/// runs, and appends its rounds' outputs itself; every request, streams' chunks among them,
/// equals its sequence alone, full rounds are run, and the table is empty after.
#[test]
fn a_deep_queue_keeps_both_cpu_lanes_fed() {
    let seed = seed("a_deep_queue_keeps_both_cpu_lanes_fed", 51);
    for (name, spec) in specs() {
        let weights = Weights::random(&spec, seed).unwrap();
        let model = CpuModel::with_threads(weights.clone(), 2).unwrap();
        let batcher =
            Batcher::new(model, BatcherOptions::default().max_batch(3).quantum(2)).unwrap();
        let mut rng = rng(seed);
        let xs: Vec<Array2<f32>> = (0..40)
            .map(|_| {
                let steps = rng.random_range(1..=15);
                uniform(&mut rng, (steps, spec.input_size), 1.0)
            })
            .collect();
        // A stream fed in chunks of 4 behind the burst.
        let streamed = uniform(&mut rng, (13, spec.input_size), 1.0);
        let stream = batcher.open_stream().unwrap();
        let pending: Vec<_> = xs
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        let chunks: Vec<_> = (0..13)
            .step_by(4)
            .map(|t| {
                stream
                    .feed(streamed.slice(s![t..(t + 4).min(13), ..]))
                    .unwrap()
            })
            .collect();
        for (i, (x, p)) in xs.iter().zip(pending).enumerate() {
            let got = p.wait().unwrap();
            check(
                &format!("{name}: request {i}"),
                &alone(&weights, x, None, None),
                &got,
            );
        }
        let ys: Vec<Array2<f32>> = chunks.into_iter().map(|c| c.wait().unwrap()).collect();
        let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
        let y = ndarray::concatenate(Axis(0), &views).unwrap();
        let want = alone(&weights, &streamed, None, None);
        let c = compare(
            want.y.view().into_dyn(),
            y.view().into_dyn(),
            Tolerance::GPU_VS_CPU,
        )
        .unwrap();
        assert!(c.ok(), "{name}: stream: {c}");
        stream.close();
        let s = batcher.stats();
        assert_eq!(s.requests, 40, "{name}: {s:?}");
        assert!(s.mean_batch > 2.0, "{name}: rounds not full: {s:?}");
        assert_drains(&batcher, name);
    }
}

/// A deep queue does not hold up what the scheduler answers between rounds: a stream's state
/// read while many requests wait is answered after a round or two, not once the queue has
/// drained (on the GPU, whose table runs rounds whole, and on the CPU's lanes).
#[test]
fn a_deep_queue_still_answers_state_reads() {
    let seed = seed("a_deep_queue_still_answers_state_reads", 52);
    let spec = RnnSpec::lstm(5, 12);
    let weights = Weights::random(&spec, seed).unwrap();
    for (device, model) in devices(&weights) {
        let options = BatcherOptions::default().max_batch(2).quantum(1);
        let batcher = Batcher::new(model, options).unwrap();
        let mut rng = rng(seed);
        let xs: Vec<Array2<f32>> = (0..40)
            .map(|_| uniform(&mut rng, (50, spec.input_size), 1.0))
            .collect();
        let pending: Vec<_> = xs
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        let stream = batcher.open_stream().unwrap();
        let state = stream.state().unwrap();
        assert!(
            state.h.iter().all(|&v| v == 0.0),
            "{device}: a new stream's state"
        );
        // Oldest first, two rows a round, 50 rounds each: the read came long before the end.
        let answered = batcher.stats().requests;
        assert!(
            answered < 30,
            "{device}: the read waited for the queue: {answered} answered"
        );
        stream.close();
        for p in pending {
            p.wait().unwrap();
        }
        assert_drains(&batcher, device);
    }
}

/// Int8 weights behind the batcher: one-shot requests and a stream fed in chunks, on the
/// CPU's int8 engine (against the same engine alone: each sequence's activations are
/// quantized on their own) and on the GPU (against the reference engine on the weights as
/// int8 represents them).
#[test]
fn int8_models_batch_like_each_alone() {
    let seed = seed("int8_models_batch_like_each_alone", 50);
    let spec = RnnSpec::lstm(6, 12).peephole(true).layers(2);
    let weights = Weights::random(&spec, seed).unwrap();
    let cpu_i8 = CpuModel::with_threads(weights.clone(), 1)
        .unwrap()
        .weights_dtype(WeightsDtype::I8)
        .unwrap();
    let rounded = CpuModel::reference(weights.rounded(WeightsDtype::I8));
    let mut devices: Vec<(&str, BatcherModel, &dyn Forward)> =
        vec![("cpu int8", cpu_i8.clone().into(), &cpu_i8)];
    if let Some(ctx) = gpu() {
        let int8 = UploadOptions::default().weights(WeightsDtype::I8);
        let model = GpuModel::upload_with(ctx, &weights, &int8).unwrap();
        devices.push(("gpu int8", model.into(), &rounded));
    }
    let mut rng = rng(seed);
    for (device, model, alone) in devices {
        let batcher =
            Batcher::new(model, BatcherOptions::default().max_batch(4).quantum(6)).unwrap();
        let alone = |x: &Array2<f32>| {
            let out = alone
                .forward(&Input::new(x.view().insert_axis(Axis(1))))
                .unwrap();
            let row = |a: &ndarray::ArrayD<f32>| {
                a.index_axis(Axis(1), 0)
                    .into_dimensionality::<ndarray::Ix2>()
                    .unwrap()
                    .to_owned()
            };
            Response {
                y: row(&out.y),
                h_n: row(&out.h_n),
                c_n: out.c_n.as_ref().map(row),
            }
        };
        let xs: Vec<Array2<f32>> = (0..7)
            .map(|_| {
                let steps = rng.random_range(1..=25);
                uniform(&mut rng, (steps, 6), 1.0)
            })
            .collect();
        let stream = batcher.open_stream().unwrap();
        let streamed = &xs[0];
        let fed: Vec<_> = (0..streamed.nrows())
            .step_by(7)
            .map(|at| {
                let end = (at + 7).min(streamed.nrows());
                stream.feed(streamed.slice(s![at..end, ..])).unwrap()
            })
            .collect();
        let pending: Vec<_> = xs[1..]
            .iter()
            .map(|x| batcher.submit(Request::new(x.view())).unwrap())
            .collect();
        let mut worst = 0.0f32;
        for (i, (x, p)) in xs[1..].iter().zip(pending).enumerate() {
            let what = format!("{device}: seed {seed}: request {i}");
            worst = worst.max(check(&what, &alone(x), &p.wait().unwrap()));
        }
        let parts: Vec<Array2<f32>> = fed.into_iter().map(|p| p.wait().unwrap()).collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let state = stream.state().unwrap();
        let got = Response {
            y: ndarray::concatenate(Axis(0), &views).unwrap(),
            h_n: state.h.index_axis(Axis(1), 0).to_owned(),
            c_n: state.c.map(|c| c.index_axis(Axis(1), 0).to_owned()),
        };
        stream.close();
        let what = format!("{device}: seed {seed}: stream");
        worst = worst.max(check(&what, &alone(streamed), &got));
        eprintln!("{device}: worst |batched − alone| {worst:e}");
        assert_drains(&batcher, device);
    }
}
