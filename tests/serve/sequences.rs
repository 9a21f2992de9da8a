//! Triton's sequence extension on the batcher's streams: sequences fed in chunks, interleaved,
//! equal to each whole sequence run alone; their errors; idle expiry frees the slot.

use std::time::Duration;

use ndarray::{s, Array2};
use serde_json::{json, Value};
use wgpu_lstm::BatcherOptions;

use crate::common::{rng, seed, uniform};
use crate::{alone, json_input, json_output, TestServer};

/// A chunk of sequence `id` with its flags.
fn chunk(id: Value, x: ndarray::ArrayView2<'_, f32>, start: bool, end: bool) -> Value {
    json!({
        "parameters": { "sequence_id": id, "sequence_start": start, "sequence_end": end },
        "inputs": [json_input("x", &x.to_owned())],
    })
}

#[test]
fn interleaved_sequences_equal_each_whole_sequence() {
    let seed = seed("interleaved_sequences_equal_each_whole_sequence", 21);
    let server = TestServer::start();
    let mut rng = rng(seed);
    use rand::Rng;
    // Numeric and string ids; chunk sizes random; sequences advanced in turn.
    let ids: Vec<Value> = vec![json!(7), json!("utt-a"), json!(u64::MAX), json!("utt-b")];
    let xs: Vec<Array2<f32>> = ids
        .iter()
        .map(|_| {
            let steps = rng.random_range(3..30);
            uniform(&mut rng, (steps, 5), 1.0)
        })
        .collect();
    let mut at = vec![0usize; ids.len()];
    let mut ys: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
    let mut last = vec![Value::Null; ids.len()];
    while at.iter().zip(&xs).any(|(a, x)| *a < x.nrows()) {
        for k in 0..ids.len() {
            let n = xs[k].nrows();
            if at[k] == n {
                continue;
            }
            let len = rng.random_range(1..=6).min(n - at[k]);
            let part = xs[k].slice(s![at[k]..at[k] + len, ..]);
            let r = server.post_json(
                "/v2/models/lstm/infer",
                &chunk(ids[k].clone(), part, at[k] == 0, at[k] + len == n),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let r = r.json();
            ys[k].extend(json_output(&r, "y").iter());
            last[k] = r;
            at[k] += len;
        }
    }
    for k in 0..ids.len() {
        let (y, h_n, c_n) = alone("lstm", &xs[k], None, None);
        assert_eq!(
            ys[k],
            y.iter().copied().collect::<Vec<_>>(),
            "sequence {}: y",
            ids[k]
        );
        // h_n and c_n of a chunk are the state after it: after the last, the final state.
        assert_eq!(json_output(&last[k], "h_n"), h_n, "sequence {}", ids[k]);
        assert_eq!(
            json_output(&last[k], "c_n"),
            c_n.unwrap(),
            "sequence {}",
            ids[k]
        );
    }
    let text = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(
        text.contains("wgpu_lstm_open_sequences{model=\"lstm\",version=\"1\"} 0"),
        "{text}"
    );
}

#[test]
fn a_sequence_starts_from_its_initial_state() {
    let server = TestServer::start();
    let x = Array2::from_shape_fn((6, 3), |(t, i)| ((t + i) as f32 * 0.3).sin());
    let h0 = Array2::from_elem((1, 6), 0.25f32);
    let mut first = chunk(json!(5), x.slice(s![..2, ..]), true, false);
    first["inputs"]
        .as_array_mut()
        .unwrap()
        .push(json_input("h0", &h0));
    assert_eq!(server.post_json("/v2/models/gru/infer", &first).status, 200);
    let r = server.post_json(
        "/v2/models/gru/infer",
        &chunk(json!(5), x.slice(s![2.., ..]), false, true),
    );
    let (y, h_n, _) = alone("gru", &x, Some(&h0), None);
    assert_eq!(json_output(&r.json(), "y"), y.slice(s![2.., ..]));
    assert_eq!(json_output(&r.json(), "h_n"), h_n);
}

/// A state given with a later request of a sequence replaces the sequence's state: that chunk
/// and the next continue from it (how clients that keep the state themselves, and
/// `perf_analyzer`, which sends every input, use a sequence).
#[test]
fn a_state_given_mid_sequence_replaces_it() {
    let server = TestServer::start();
    let x = Array2::from_shape_fn((8, 5), |(t, i)| ((t * 5 + i) as f32 * 0.21).cos());
    let h0 = Array2::from_shape_fn((2, 4), |(l, j)| (l as f32 - j as f32) * 0.1);
    let c0 = Array2::from_shape_fn((2, 7), |(l, j)| (l + j) as f32 * 0.05);
    let post = |v: &Value| server.post_json("/v2/models/lstm/infer", v);
    assert_eq!(
        post(&chunk(json!(9), x.slice(s![..3, ..]), true, false)).status,
        200
    );
    let mut v = chunk(json!(9), x.slice(s![3..5, ..]), false, false);
    let inputs = v["inputs"].as_array_mut().unwrap();
    inputs.push(json_input("h0", &h0));
    inputs.push(json_input("c0", &c0));
    let first = post(&v).json();
    let last = post(&chunk(json!(9), x.slice(s![5.., ..]), false, true)).json();
    let (y, h_n, c_n) = alone(
        "lstm",
        &x.slice(s![3.., ..]).to_owned(),
        Some(&h0),
        Some(&c0),
    );
    assert_eq!(json_output(&first, "y"), y.slice(s![..2, ..]));
    assert_eq!(json_output(&last, "y"), y.slice(s![2.., ..]));
    assert_eq!(json_output(&last, "h_n"), h_n);
    assert_eq!(json_output(&last, "c_n"), c_n.unwrap());
}

#[test]
fn sequence_errors_are_clear() {
    let server = TestServer::start();
    let x = Array2::<f32>::ones((2, 5));
    let post = |v: &Value| server.post_json("/v2/models/lstm/infer", v);
    // Continued without a start.
    let e = post(&chunk(json!(99), x.view(), false, false)).error(400);
    assert!(e.contains("sequence 99 is not open"), "{e}");
    // Continued after its end.
    assert_eq!(post(&chunk(json!(3), x.view(), true, true)).status, 200);
    let e = post(&chunk(json!(3), x.view(), false, false)).error(400);
    assert!(e.contains("not open"), "{e}");
    // Half a state for an LSTM, mid-sequence.
    assert_eq!(post(&chunk(json!(4), x.view(), true, false)).status, 200);
    let mut v = chunk(json!(4), x.view(), false, false);
    v["inputs"]
        .as_array_mut()
        .unwrap()
        .push(json_input("h0", &Array2::zeros((2, 4))));
    let e = post(&v).error(400);
    assert!(e.contains("give both `h0` and `c0`"), "{e}");
    // A state for a sequence never started.
    let mut v = chunk(json!(77), x.view(), false, false);
    let inputs = v["inputs"].as_array_mut().unwrap();
    inputs.push(json_input("h0", &Array2::zeros((2, 4))));
    inputs.push(json_input("c0", &Array2::zeros((2, 7))));
    assert!(post(&v).error(400).contains("sequence 77 is not open"));
    // Flags without an id, an id of the wrong type.
    let v = json!({ "parameters": { "sequence_start": true }, "inputs": [json_input("x", &x)] });
    assert!(post(&v).error(400).contains("without a `sequence_id`"));
    let v = json!({ "parameters": { "sequence_id": 1.5 }, "inputs": [json_input("x", &x)] });
    assert!(post(&v).error(400).contains("`sequence_id` must be"));
    // A bidirectional model takes no sequences.
    let xb = Array2::<f32>::ones((2, 4));
    let r = server.post_json(
        "/v2/models/bidir/infer",
        &chunk(json!(1), xb.view(), true, false),
    );
    assert!(r.error(400).contains("bidirectional"));
}

/// More open sequences than the state table holds: 429, and the open ones go on unharmed.
#[test]
fn a_full_table_is_429_and_loses_nothing() {
    let server = TestServer::with(BatcherOptions::default().max_sequences(2), 1 << 20);
    let x = Array2::from_shape_fn((4, 5), |(t, i)| (t as f32 - i as f32) * 0.1);
    let post = |v: &Value| server.post_json("/v2/models/lstm/infer", v);
    for id in [1, 2] {
        assert_eq!(
            post(&chunk(json!(id), x.slice(s![..2, ..]), true, false)).status,
            200
        );
    }
    let e = post(&chunk(json!(3), x.slice(s![..2, ..]), true, false)).error(429);
    assert!(
        e.to_lowercase().contains("busy") || e.contains("full"),
        "{e}"
    );
    let (y, _, _) = alone("lstm", &x, None, None);
    for id in [1, 2] {
        let r = post(&chunk(json!(id), x.slice(s![2.., ..]), false, true));
        assert_eq!(json_output(&r.json(), "y"), y.slice(s![2.., ..]));
    }
    // Both ended: the table has room again.
    assert_eq!(post(&chunk(json!(3), x.view(), true, true)).status, 200);
}

/// A sequence abandoned by its client is closed after the idle timeout: its slot is freed and
/// continuing it is a clear error.
#[test]
fn an_abandoned_sequence_expires() {
    let options = BatcherOptions::default().stream_idle_timeout(Duration::from_millis(200));
    let server = TestServer::with(options, 1 << 20);
    let x = Array2::<f32>::ones((2, 3));
    let post = |v: &Value| server.post_json("/v2/models/gru/infer", v);
    assert_eq!(
        post(&chunk(json!("gone"), x.view(), true, false)).status,
        200
    );
    std::thread::sleep(Duration::from_millis(2500));
    let text = String::from_utf8(server.get("/metrics").body).unwrap();
    for metric in ["wgpu_lstm_open_sequences", "wgpu_lstm_slots_in_use"] {
        let line = format!("{metric}{{model=\"gru\",version=\"1\"}} 0");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    let e = post(&chunk(json!("gone"), x.view(), false, true)).error(400);
    assert!(e.contains("not open") || e.contains("idle"), "{e}");
}
