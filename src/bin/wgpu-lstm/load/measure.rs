//! The load: requests of lengths drawn uniformly from a range, their inputs random; a
//! server's saturation (a burst of requests all due at once, answered as fast as it can) and
//! its latency under open-loop Poisson arrivals at a given rate (each latency measured from
//! the request's scheduled arrival, so a late generator does not hide queueing).

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ndarray::{s, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::servers::{Done, Job, Server};

/// Request lengths and inputs, the same for every server.
pub struct Workload {
    /// Inputs of the longest length; a request of `t` steps takes the first `t` rows of one.
    pool: Vec<Array2<f32>>,
    pub min_steps: usize,
    pub max_steps: usize,
    seed: u64,
}

impl Workload {
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
        }
    }

    /// The `n` requests of a run (`salt` picks the run), due at `due(i)`.
    fn jobs(&self, n: usize, salt: u64, due: impl Fn(usize) -> Instant) -> Vec<Job> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ salt.wrapping_mul(0x9E37_79B9));
        (0..n)
            .map(|i| {
                let t = rng.random_range(self.min_steps..=self.max_steps);
                let x = self.pool[i % self.pool.len()].slice(s![..t, ..]).to_owned();
                Job {
                    scheduled: due(i),
                    x,
                }
            })
            .collect()
    }
}

/// One load point: the offered rate, what was achieved, and latency quantiles.
#[derive(Debug, Clone, Serialize)]
pub struct LoadPoint {
    /// Offered load as a fraction of the server's own saturation (or of another's).
    pub fraction: f64,
    /// Offered requests per second.
    pub rate: f64,
    /// Finished requests per second over the run.
    pub achieved: f64,
    pub requests: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
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
    for job in work.jobs(n, 1, |_| start) {
        server.submit(job);
    }
    let got = receive(done, n);
    let failed = got.iter().filter(|d| !d.ok).count();
    let mut finished: Vec<Instant> = got.iter().map(|d| d.finished).collect();
    finished.sort();
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

/// Poisson arrivals at `rate` for about `seconds` (at least 20 requests).
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
    let jobs = work.jobs(n, salt, |i| start + Duration::from_secs_f64(offsets[i]));
    for job in jobs {
        let now = Instant::now();
        if job.scheduled > now {
            std::thread::sleep(job.scheduled - now);
        }
        server.submit(job);
    }
    let got = receive(done, n);
    let mut ms: Vec<f64> = got
        .iter()
        .map(|d| d.finished.duration_since(d.scheduled).as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let last = got.iter().map(|d| d.finished).max().unwrap_or(start);
    LoadPoint {
        fraction: 0.0,
        rate,
        achieved: n as f64 / last.duration_since(start).as_secs_f64().max(1e-9),
        requests: n,
        failed: got.iter().filter(|d| !d.ok).count(),
        p50_ms: quantile(&ms, 0.5),
        p99_ms: quantile(&ms, 0.99),
    }
}

/// Waits for `n` finished requests.
fn receive(done: &Receiver<Done>, n: usize) -> Vec<Done> {
    (0..n).filter_map(|_| done.recv().ok()).collect()
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
