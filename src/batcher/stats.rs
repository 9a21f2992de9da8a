//! What a batcher reports: counts, round sizes, and queue and compute time distributions.

use std::time::Duration;

/// Buckets per doubling of a [`Histogram`]: a quantile is known to within 2^(1/8) ≈ 9 %.
const PER_OCTAVE: f64 = 8.0;
/// Buckets: 1 µs to about 2^40 µs (12 days).
const BUCKETS: usize = 40 * PER_OCTAVE as usize;

/// Durations in logarithmic buckets from 1 µs: constant memory, quantiles to within 9 %.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: Duration::ZERO,
        }
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let bucket = if us <= 1.0 {
            0
        } else {
            ((us.log2() * PER_OCTAVE).ceil() as usize).min(BUCKETS - 1)
        };
        self.counts[bucket] += 1;
        self.total += 1;
        self.sum += d;
    }

    /// The duration below which a fraction `q` of those recorded fall (the bucket's upper
    /// edge); zero when none was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_secs_f64((i as f64 / PER_OCTAVE).exp2() * 1e-6);
            }
        }
        Duration::from_secs_f64((BUCKETS as f64 / PER_OCTAVE).exp2() * 1e-6)
    }

    /// The distribution's summary.
    pub fn summary(&self) -> Latency {
        Latency {
            count: self.total,
            total: self.sum,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
        }
    }
}

/// A duration's distribution: how many, their sum, and two quantiles (each within 9 %,
/// rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// Durations recorded.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
}

/// A batcher's figures since it started ([`Batcher::stats`](crate::Batcher::stats)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatcherStats {
    /// One-shot requests and stream chunks admitted to the queue (each ends answered, failed
    /// or cancelled; until then it counts in `queued`).
    pub admitted: u64,
    /// One-shot requests answered with results.
    pub requests: u64,
    /// Stream chunks answered with results.
    pub chunks: u64,
    /// Requests and chunks answered with an error (a failed round, a deadline, shutdown).
    pub failed: u64,
    /// Submissions refused with [`Error::Busy`](crate::Error::Busy).
    pub rejected: u64,
    /// Requests dropped because their caller dropped the [`Pending`](crate::Pending).
    pub cancelled: u64,
    /// Streams closed for standing idle.
    pub idle_closed: u64,
    /// Rounds run.
    pub rounds: u64,
    /// Sequence-steps advanced, over all rounds.
    pub steps: u64,
    /// Mean sequences per round.
    pub mean_batch: f64,
    /// From a request's or chunk's arrival to the start of its first round.
    pub queue_time: Latency,
    /// The duration of each round.
    pub compute_time: Latency,
    /// From a request's or chunk's arrival to its result.
    pub latency: Latency,
    /// Requests and chunks admitted and not yet answered.
    pub queued: usize,
    /// Open streams.
    pub open_streams: usize,
    /// Slots in use (one-shot requests in flight and open streams).
    pub slots_in_use: usize,
    /// Bytes of the state table.
    pub state_table_bytes: u64,
}

/// The counters the scheduler keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub admitted: u64,
    pub requests: u64,
    pub chunks: u64,
    pub failed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub idle_closed: u64,
    pub rounds: u64,
    pub rows: u64,
    pub steps: u64,
    pub queue_time: Histogram,
    pub compute_time: Histogram,
    pub latency: Histogram,
}

impl Counters {
    /// The figures, with the scheduler's current occupancy.
    pub fn snapshot(
        &self,
        queued: usize,
        open_streams: usize,
        slots_in_use: usize,
        bytes: u64,
    ) -> BatcherStats {
        BatcherStats {
            admitted: self.admitted,
            requests: self.requests,
            chunks: self.chunks,
            failed: self.failed,
            rejected: self.rejected,
            cancelled: self.cancelled,
            idle_closed: self.idle_closed,
            rounds: self.rounds,
            steps: self.steps,
            mean_batch: if self.rounds == 0 {
                0.0
            } else {
                self.rows as f64 / self.rounds as f64
            },
            queue_time: self.queue_time.summary(),
            compute_time: self.compute_time.summary(),
            latency: self.latency.summary(),
            queued,
            open_streams,
            slots_in_use,
            state_table_bytes: bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.total, Duration::from_millis(5050));
        let within = |got: Duration, want: f64| {
            let got = got.as_secs_f64() * 1e3;
            assert!(got >= want && got <= want * 1.1, "{got} ms for {want} ms");
        };
        within(s.p50, 50.0);
        within(s.p99, 99.0);
    }

    #[test]
    fn empty_and_tiny_durations() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        h.record(Duration::ZERO);
        assert_eq!(h.quantile(0.99), Duration::from_micros(1));
    }
}
