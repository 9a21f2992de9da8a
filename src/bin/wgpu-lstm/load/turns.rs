//! The servers under test on one device, measured in turns so that a neighbour's work on a
//! shared host falls on all of them alike: each started and warmed up, then every server's
//! saturation burst in turn (`--bursts` rounds of them), then each load point in turn
//! (`--repeats` rounds of them).

use std::sync::mpsc::{channel, Receiver};
use std::time::Instant;

use serde::Serialize;
use wgpu_lstm::{Batcher, BatcherOptions, BatcherStats, Error, RnnSpec};

use super::measure::{self, LoadPoint, Workload};
use super::servers::{self, Done, Kind};
use super::{Device, LoadArgs, ServerRecord, FRACTIONS};

/// The cellular batcher's rounds during a saturation burst.
#[derive(Debug, Clone, Serialize)]
pub struct BurstRounds {
    pub rows_per_round: f64,
    /// The rounds' forwards' time over the burst's wall time (above 1 where lanes run rounds
    /// side by side: the CPU's; below the lanes' number, the time spent planning and
    /// answering, or waiting for a core).
    pub busy: f64,
    pub us_per_sequence_step: f64,
}

impl BurstRounds {
    /// From the batcher's statistics before and after a burst of `wall`.
    fn between(a: &BatcherStats, b: &BatcherStats, wall: std::time::Duration) -> Self {
        let rows = |s: &BatcherStats| s.mean_batch * s.rounds as f64;
        let rounds = (b.rounds - a.rounds).max(1) as f64;
        let busy = (b.compute_time.total - a.compute_time.total).as_secs_f64();
        BurstRounds {
            rows_per_round: (rows(b) - rows(a)) / rounds,
            busy: busy / wall.as_secs_f64().max(1e-9),
            us_per_sequence_step: busy * 1e6 / (b.steps - a.steps).max(1) as f64,
        }
    }
}

/// One server under test on a device.
struct Running {
    kind: Kind,
    label: String,
    server: servers::Server,
    done: Receiver<Done>,
    batcher: Option<Batcher>,
    /// Requests in one saturation burst: about `--saturation-seconds` at the warm-up's rate,
    /// at most 4000, but at least 8 full batches (a padding server answers a batch at once:
    /// with 2 batches, the 10th and 90th percentiles of completions would be one forward
    /// apart, and its rate twice what it is).
    burst: usize,
    /// The fastest burst so far, with its rounds (cellular only).
    best: Option<(f64, Option<BurstRounds>)>,
    /// Latency at each fraction of its own saturation.
    loads: Vec<LoadPoint>,
    /// The cellular batcher at the padding batcher's loads.
    at_padding_loads: Vec<LoadPoint>,
}

impl Running {
    /// Starts `kind` on `device` and warms it up with bursts of 1, 2, 4 … `max_batch`
    /// requests, sizing its saturation burst from the last one.
    fn start(
        args: &LoadArgs,
        spec: &RnnSpec,
        device: &Device,
        work: &Workload,
        kind: Kind,
    ) -> Result<Self, Error> {
        let (tx, done) = channel::<Done>();
        let mut batcher = None;
        let server = match kind {
            Kind::PerRequest => {
                servers::per_request(device.shared.clone(), spec, device.workers, tx)
            }
            Kind::Padding => servers::padding(device.team.clone(), spec, args.max_batch, tx),
            Kind::Cellular => {
                let options = BatcherOptions::default()
                    .max_batch(args.max_batch)
                    .quantum(args.quantum)
                    .max_sequences(8192)
                    .max_queue(8192);
                let b = Batcher::new((device.owned)()?, options)?;
                batcher = Some(b.clone());
                servers::cellular(b, tx)
            }
        };
        let label = format!("{} / {}", device.name, kind.name());
        eprintln!(
            "{label}: warming up (bursts of 1, 2, 4 … {} requests)",
            args.max_batch
        );
        let mut rate = 1.0;
        let mut burst = 1;
        while burst <= args.max_batch {
            rate = measure::saturation(&server, &done, work, burst).0;
            burst *= 2;
        }
        Ok(Running {
            kind,
            label,
            server,
            done,
            batcher,
            burst: ((rate * args.saturation_seconds) as usize)
                .min(4000)
                .max(8 * args.max_batch),
            best: None,
            loads: Vec::new(),
            at_padding_loads: Vec::new(),
        })
    }

    /// Requests per second of the fastest burst so far.
    fn saturation(&self) -> f64 {
        self.best.as_ref().map_or(0.0, |(rate, _)| *rate)
    }

    /// One saturation burst; keeps the fastest.
    fn saturate(&mut self, work: &Workload, i: usize, bursts: usize) -> Result<(), Error> {
        let label = &self.label;
        eprintln!(
            "{label}: saturation, a burst of {} requests ({} of {bursts})",
            self.burst,
            i + 1,
        );
        let before = self.batcher.as_ref().map(|b| b.stats());
        let burst_start = Instant::now();
        let (rate, failed) = measure::saturation(&self.server, &self.done, work, self.burst);
        let burst_wall = burst_start.elapsed();
        if failed > 0 {
            return Err(Error::CheckFailed(format!(
                "{label}: {failed} requests failed"
            )));
        }
        // The rounds of the burst alone: their mean rows, and the share of the burst's
        // time the rounds' forwards took.
        let rounds = before
            .zip(self.batcher.as_ref().map(|b| b.stats()))
            .map(|(a, b)| BurstRounds::between(&a, &b, burst_wall));
        if self.best.as_ref().is_none_or(|(r, _)| rate > *r) {
            self.best = Some((rate, rounds));
        }
        Ok(())
    }

    /// Poisson arrivals at `rate`, reported as `fraction` (of this server's saturation or of
    /// another's).
    fn poisson(
        &self,
        work: &Workload,
        args: &LoadArgs,
        rate: f64,
        fraction: f64,
        salt: u64,
    ) -> LoadPoint {
        let mut p = measure::poisson(&self.server, &self.done, work, rate, args.seconds, salt);
        p.fraction = fraction;
        p
    }
}

/// The servers on one device, measured interleaved so that a neighbour's work on a shared
/// host falls on all of them alike: every server's saturation burst in turn (`--bursts`
/// rounds of them, the fastest of each server's kept), then each load point in turn — every
/// server at its own fraction of its saturation, the cellular batcher at the padding
/// batcher's rate right after the padding batcher — `--repeats` rounds of them, the run with
/// each server's median p99 kept.
pub(super) fn run_device(
    args: &LoadArgs,
    spec: &RnnSpec,
    device: &Device,
    work: &Workload,
) -> Result<Vec<ServerRecord>, Error> {
    let start = Instant::now();
    let mut running = args
        .servers
        .iter()
        .map(|&kind| Running::start(args, spec, device, work, kind))
        .collect::<Result<Vec<_>, Error>>()?;
    for i in 0..args.bursts {
        for r in &mut running {
            r.saturate(work, i, args.bursts)?;
        }
    }
    for r in &running {
        if let Some((_, Some(b))) = &r.best {
            eprintln!(
                "{}: {:.1} rows per round, rounds' forwards {:.0} % of the burst's wall time, {:.2} µs per sequence-step in them",
                r.label,
                b.rows_per_round,
                b.busy * 100.0,
                b.us_per_sequence_step
            );
        }
    }
    for (i, f) in FRACTIONS.into_iter().enumerate() {
        // Each server's runs at this load, and the cellular batcher's at the padding
        // batcher's rate.
        let mut runs: Vec<Vec<LoadPoint>> = vec![Vec::new(); running.len()];
        let mut at_padding: Vec<Vec<LoadPoint>> = vec![Vec::new(); running.len()];
        for rep in 0..args.repeats {
            let salt = 10 + i as u64 + 100 * rep as u64;
            let of = if args.repeats > 1 {
                format!(", run {} of {}", rep + 1, args.repeats)
            } else {
                String::new()
            };
            for (j, r) in running.iter().enumerate() {
                let rate = f * r.saturation();
                eprintln!(
                    "{}: Poisson arrivals at {:.0} % of saturation ({rate:.1} requests/s{of})",
                    r.label,
                    f * 100.0,
                );
                runs[j].push(r.poisson(work, args, rate, f, salt));
                if r.kind != Kind::Padding {
                    continue;
                }
                // The cellular batcher at the same arrivals, right after the padding batcher.
                for (k, c) in running.iter().enumerate() {
                    if c.kind == Kind::Cellular && rate < c.saturation() {
                        eprintln!(
                            "{}: at the padding batcher's {:.0} % load{of}",
                            c.label,
                            f * 100.0
                        );
                        at_padding[k].push(c.poisson(work, args, rate, f, salt));
                    }
                }
            }
        }
        for ((r, runs), at_padding) in running.iter_mut().zip(runs).zip(at_padding) {
            r.loads.extend(measure::median_run(runs));
            r.at_padding_loads.extend(measure::median_run(at_padding));
        }
    }
    let base = running.first().map_or(1.0, Running::saturation);
    let out = running
        .into_iter()
        .map(|r| ServerRecord {
            device: device.name.clone(),
            server: r.kind.name(),
            saturation: r.saturation(),
            speedup: r.saturation() / base,
            mean_batch: r.batcher.as_ref().map(|b| b.stats().mean_batch),
            burst_rounds: r.best.and_then(|(_, rounds)| rounds),
            loads: r.loads,
            at_padding_loads: r.at_padding_loads,
        })
        .collect();
    eprintln!(
        "{}: done in {:.0} s",
        device.name,
        start.elapsed().as_secs_f64()
    );
    Ok(out)
}
