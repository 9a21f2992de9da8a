//! The load: utterances of lengths drawn uniformly from a range, their inputs random, each a
//! one-shot request or (a given share of them) a live stream sent in chunks; a server's
//! saturation (a burst of utterances all due at once, answered as fast as it can) and its
//! latency under open-loop Poisson arrivals at a given rate (each latency measured from the
//! request's or chunk's scheduled arrival, so a late generator does not hide queueing).

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ndarray::{s, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::drive::{drive, Chunking, Outcome, Utterance};
use super::servers::{Done, Server};

/// Request lengths and inputs, the same for every server.
pub struct Workload {
    /// Inputs of the longest length; a request of `t` steps takes the first `t` rows of one.
    pool: Vec<Array2<f32>>,
    pub min_steps: usize,
    pub max_steps: usize,
    seed: u64,
    /// The share of utterances that are live streams.
    pub streams: f64,
    /// Steps per stream chunk, and the time between a live stream's chunks.
    pub chunk: usize,
    pub chunk_interval: Duration,
}

impl Workload {
    /// Utterances of `min_steps..=max_steps` steps of `input` values, all one-shot requests
    /// (see [`Workload::with_streams`]).
    pub fn new(input: usize, min_steps: usize, max_steps: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let pool = (0..16)
            .map(|_| {
                Array2::from_shape_simple_fn((max_steps, input), || rng.random_range(-1.0..1.0))
            })
            .collect();
        Workload {
            pool,
            min_steps,
            max_steps,
            seed,
            streams: 0.0,
            chunk: 10,
            chunk_interval: Duration::ZERO,
        }
    }

    /// A share `streams` of the utterances sent as live streams, in chunks of `chunk` steps
    /// every `interval`.
    pub fn with_streams(mut self, streams: f64, chunk: usize, interval: Duration) -> Self {
        self.streams = streams;
        self.chunk = chunk;
        self.chunk_interval = interval;
        self
    }

    /// The `n` utterances of a run (`salt` picks the run), due at `due(i)`.
    fn utterances(&self, n: usize, salt: u64, due: impl Fn(usize) -> Instant) -> Vec<Utterance> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ salt.wrapping_mul(0x9E37_79B9));
        (0..n)
            .map(|i| {
                let t = rng.random_range(self.min_steps..=self.max_steps);
                let stream = self.streams > 0.0 && rng.random::<f64>() < self.streams;
                Utterance {
                    due: due(i),
                    x: self.pool[i % self.pool.len()].slice(s![..t, ..]).to_owned(),
                    stream,
                }
            })
            .collect()
    }

    /// How streams send their chunks: live (every interval) or back to back.
    fn chunking(&self, live: bool) -> Chunking {
        Chunking {
            steps: self.chunk,
            interval: live.then_some(self.chunk_interval),
        }
    }
}

/// One load point: the offered rate, what was achieved, and latency quantiles.
#[derive(Debug, Clone, Serialize)]
pub struct LoadPoint {
    /// Offered load as a fraction of the server's own saturation (or of another's).
    pub fraction: f64,
    /// Offered utterances (one-shot requests and streams) per second.
    pub rate: f64,
    /// Finished utterances per second over the run.
    pub achieved: f64,
    pub requests: usize,
    pub failed: usize,
    /// Latency of the one-shot requests (of every utterance when there are no streams).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Latency of the streams' chunks, each from its own arrival (`None` without streams).
    pub chunk_p50_ms: Option<f64>,
    pub chunk_p99_ms: Option<f64>,
    /// The p99 of every run at this load (`--repeats`), in the order they ran; this point is
    /// the run with the median.
    pub p99_runs_ms: Vec<f64>,
}

/// The run with the median p99 of `runs` (of an even number, the slower of the middle two),
/// carrying every run's p99; `None` for no runs.
pub fn median_run(runs: Vec<LoadPoint>) -> Option<LoadPoint> {
    let p99s: Vec<f64> = runs.iter().map(|p| p.p99_ms).collect();
    let mut sorted = runs;
    sorted.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    let mid = sorted.len() / 2;
    let mut point = sorted.into_iter().nth(mid)?;
    point.p99_runs_ms = p99s;
    Some(point)
}

/// Requests per second a server answers in steady state when `n` requests are all due at
/// once: the rate between the 10th and the 90th percentile of their completions (the ramp
/// at the start and the tail, where a batching server runs out of company, left out), and
/// how many failed.
pub fn saturation(
    server: &Server,
    done: &Receiver<Done>,
    work: &Workload,
    n: usize,
) -> (f64, usize) {
    let start = Instant::now();
    let utterances = work.utterances(n, 1, |_| start);
    let got = drive(server, done, &utterances, work.chunking(false)).utterances;
    let failed = got.iter().filter(|d| !d.ok).count() + n.saturating_sub(got.len());
    let mut finished: Vec<Instant> = got.iter().map(|d| d.finished).collect();
    finished.sort();
    let n = finished.len();
    let (lo, hi) = (
        n / 10,
        (n * 9 / 10).max(n / 10 + 1).min(n.saturating_sub(1)),
    );
    if n < 10 || hi <= lo {
        let last = finished.last().copied().unwrap_or(start);
        return (
            n as f64 / last.duration_since(start).as_secs_f64().max(1e-9),
            failed,
        );
    }
    let span = finished[hi]
        .duration_since(finished[lo])
        .as_secs_f64()
        .max(1e-9);
    ((hi - lo) as f64 / span, failed)
}

/// Poisson arrivals of utterances at `rate` for about `seconds` (at least 20), streams
/// sending their chunks live.
pub fn poisson(
    server: &Server,
    done: &Receiver<Done>,
    work: &Workload,
    rate: f64,
    seconds: f64,
    salt: u64,
) -> LoadPoint {
    let n = ((rate * seconds).round() as usize).max(20);
    let mut rng = StdRng::seed_from_u64(work.seed ^ salt);
    let mut at = 0.0f64;
    let offsets: Vec<f64> = (0..n)
        .map(|_| {
            // Exponential inter-arrival times of mean 1/rate.
            at += -(1.0 - rng.random::<f64>()).ln() / rate;
            at
        })
        .collect();
    let start = Instant::now() + Duration::from_millis(5);
    let utterances = work.utterances(n, salt, |i| start + Duration::from_secs_f64(offsets[i]));
    let Outcome {
        utterances: got,
        whole,
        chunks,
    } = drive(server, done, &utterances, work.chunking(true));
    // One-shot requests by their own latency; streams by their chunks'.
    let latencies = |ds: &mut dyn Iterator<Item = &Done>| {
        let mut ms: Vec<f64> = ds
            .map(|d| d.finished.duration_since(d.scheduled).as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let whole_ms = latencies(&mut whole.iter());
    let chunk_ms = latencies(&mut chunks.iter());
    let streams = !chunks.is_empty();
    let last = got.iter().map(|d| d.finished).max().unwrap_or(start);
    let p99_ms = quantile(&whole_ms, 0.99);
    LoadPoint {
        fraction: 0.0,
        rate,
        achieved: got.len() as f64 / last.duration_since(start).as_secs_f64().max(1e-9),
        requests: n,
        failed: got.iter().filter(|d| !d.ok).count() + n.saturating_sub(got.len()),
        p50_ms: quantile(&whole_ms, 0.5),
        p99_ms,
        chunk_p50_ms: streams.then(|| quantile(&chunk_ms, 0.5)),
        chunk_p99_ms: streams.then(|| quantile(&chunk_ms, 0.99)),
        p99_runs_ms: vec![p99_ms],
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
