//! The scheduling thread: rounds of cellular batching. Each round takes the sequences with
//! steps to run, oldest work first, up to `max_batch`, and advances each by up to `quantum`
//! steps (a bidirectional model: its whole request) in one forward over the state table;
//! sequences join and leave between rounds. A table with several lanes (the CPU's, one per
//! thread) hands each round's forward to a lane thread and the scheduler goes on: one round
//! per lane is in flight, or, while at least a full round waits, [`DEPTH`] (the next queued
//! behind the running one, so that a lane never waits for the scheduler to take a landed
//! round in), always on distinct sequences (those of a round in flight are out of the ready
//! set until it lands); the ready sequences are shared between the free lanes, and a lane
//! appends its round's outputs to the rows' own (taken from their sequences while in
//! flight) on its own thread. Between rounds it answers state reads and closes streams; every
//! [`SWEEP`] it drops cancelled and late requests and closes idle streams. Its work per round
//! grows with the round, not with the number of sequences queued.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use ndarray::s;

use super::lanes::{LaneJob, Lanes};
use super::plan::{
    apply, apply_init, fail_front, late_or_cancelled, plan, Next, Planned, Verdict, IDLE_POLL,
};
use super::queue::{Queue, Shared, Steps, StepsReply, Work};
use super::request::Response;
use crate::error::{Error, Result};
use crate::table::{Begun, JobDone, RoundOutput, RoundRow, StateTable};

/// How often every sequence is looked at for cancellation, deadlines and idleness (a round's
/// own rows are checked before each round).
const SWEEP: Duration = Duration::from_millis(20);

/// Rounds in flight on one lane at most, the next queued behind the one running (see
/// [`refill`]).
const DEPTH: usize = 2;

/// Runs rounds until the batcher shuts down and its admitted work is done.
pub(crate) fn run(shared: Arc<Shared>, mut table: Box<dyn StateTable>) {
    let mut lanes = Lanes::new(shared.clone(), table.lanes().max(1));
    // The rows of the rounds in flight on each lane, oldest first.
    let mut flights: Vec<VecDeque<Vec<Planned>>> =
        (0..lanes.count()).map(|_| VecDeque::new()).collect();
    let mut q = shared.lock();
    let mut next_sweep = Instant::now();
    loop {
        if !q.landed.is_empty() {
            let landed: Vec<_> = std::mem::take(&mut q.landed)
                .into_iter()
                .filter_map(|l| {
                    let mut rows = flights.get_mut(l.lane)?.pop_front()?;
                    for (row, y) in rows.iter_mut().zip(l.outputs) {
                        row.y = y;
                    }
                    Some((rows, l.done, l.took))
                })
                .collect();
            // The lanes' next rounds start before the landed rounds are taken in.
            q = refill(&shared, q, table.as_mut(), &mut lanes, &mut flights);
            drop(q);
            let ended: Vec<_> = landed
                .into_iter()
                .map(|(rows, done, took)| {
                    let out = done.and_then(|done| end_round(table.as_mut(), &rows, done));
                    (rows, out, took)
                })
                .collect();
            q = shared.lock();
            for (rows, out, took) in ended {
                finish(&mut q, rows, out, took, Appended::ByLane);
            }
        }
        let now = Instant::now();
        attend(&mut q, table.as_mut(), now);
        if now >= next_sweep || q.closing {
            sweep(&shared, &mut q, now);
            next_sweep = now + SWEEP;
        }
        if q.closing && q.seqs.is_empty() {
            break;
        }
        q = refill(&shared, q, table.as_mut(), &mut lanes, &mut flights);
        let free = flights.iter().filter(|f| f.is_empty()).count();
        let next = if free > 0 {
            plan(&shared, &mut q, table.as_mut(), now, free)
        } else {
            Next::Wait(IDLE_POLL)
        };
        match next {
            Next::Wait(_) if !q.landed.is_empty() => {}
            Next::Wait(timeout) => {
                let limit = if q.seqs.is_empty() {
                    IDLE_POLL
                } else {
                    next_sweep.saturating_duration_since(now)
                };
                q = shared
                    .wake
                    .wait_timeout(q, timeout.min(limit))
                    .map(|r| r.0)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            Next::Round(rows) => {
                let waiting = q.ready.len();
                drop(q);
                // Alone (no lane busy, no one waiting): the round runs here, without the two
                // wake-ups of a lane's thread, which cost more than a short round's work.
                let alone = free == flights.len() && waiting == 0;
                let lane = flights.iter().position(VecDeque::is_empty).unwrap_or(0);
                let ran = start(table.as_mut(), &mut lanes, &mut flights, lane, rows, alone);
                q = shared.lock();
                if let Some((rows, out, took)) = ran {
                    finish(&mut q, rows, out, took, Appended::No);
                }
            }
        }
    }
    drop(q);
    lanes.stop();
}

/// With a deep queue (at least a full round ready), every lane with fewer than [`DEPTH`]
/// rounds in flight is given its next: a lane that lands finds its next round waiting
/// instead of waiting for the scheduling thread to take its results in and plan another.
/// Returns the queue's lock, which it drops while rounds are packed.
fn refill<'a>(
    shared: &'a Shared,
    mut q: MutexGuard<'a, Queue>,
    table: &mut dyn StateTable,
    lanes: &mut Lanes,
    flights: &mut [VecDeque<Vec<Planned>>],
) -> MutexGuard<'a, Queue> {
    while q.ready.len() >= shared.options.max_batch && !q.closing {
        let Some(lane) = (0..flights.len())
            .filter(|&l| flights[l].len() < DEPTH)
            .min_by_key(|&l| flights[l].len())
        else {
            break;
        };
        let Next::Round(rows) = plan(shared, &mut q, table, Instant::now(), 1) else {
            break;
        };
        drop(q);
        let ran = start(table, lanes, flights, lane, rows, false);
        q = shared.lock();
        if let Some((rows, out, took)) = ran {
            // A table that runs rounds whole (the GPU's) has no lanes to keep fed: back to
            // the loop, which answers state reads and sweeps between rounds.
            finish(&mut q, rows, out, took, Appended::No);
            break;
        }
    }
    q
}

/// Whether a round's outputs were appended to its rows' by the lane that ran it.
enum Appended {
    ByLane,
    No,
}

/// What ran on the scheduling thread: a round's rows, outcome and time.
type Ran = (Vec<Planned>, Result<RoundOutput>, Duration);

/// Starts round `rows`: its forward handed to lane `lane` (which must be free), or, where
/// the table runs rounds whole or `here` is set, run on this thread and returned.
fn start(
    table: &mut dyn StateTable,
    lanes: &mut Lanes,
    flights: &mut [VecDeque<Vec<Planned>>],
    lane: usize,
    mut rows: Vec<Planned>,
    here: bool,
) -> Option<Ran> {
    let start = Instant::now();
    let out = match begin_round(table, &rows) {
        Ok(Begun::Job(job)) if !here => {
            let job = LaneJob {
                job,
                outputs: rows.iter_mut().map(|r| std::mem::take(&mut r.y)).collect(),
                steps: rows.iter().map(|r| r.steps).collect(),
            };
            flights[lane].push_back(rows);
            lanes.send(lane, job);
            return None;
        }
        Ok(Begun::Job(job)) => job.run().and_then(|done| end_round(table, &rows, done)),
        Ok(Begun::Done(out)) => Ok(out),
        Err(e) => Err(e),
    };
    Some((rows, out, start.elapsed()))
}

/// The round's row views, as the table takes them.
fn views(rows: &[Planned]) -> Vec<RoundRow<'_>> {
    rows.iter()
        .map(|r| RoundRow {
            slot: r.slot,
            x: r.x.slice(s![r.from..r.from + r.steps, ..]),
            read_state: r.last,
        })
        .collect()
}

/// Starts a round on the table, a panic in it caught and turned into an error.
fn begin_round(table: &mut dyn StateTable, rows: &[Planned]) -> Result<Begun> {
    let views = views(rows);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.begin(&views)))
        .unwrap_or_else(|_| Err(Error::Internal("a batched round panicked".into())))
}

/// Ends a round whose forward ran on a lane, a panic in it caught and turned into an error.
fn end_round(table: &mut dyn StateTable, rows: &[Planned], done: JobDone) -> Result<RoundOutput> {
    let views = views(rows);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.end(&views, done)))
        .unwrap_or_else(|_| Err(Error::Internal("a batched round panicked".into())))
}

/// The streams that need it: state reads at the front of their work answered, closed
/// streams with no work left removed.
fn attend(q: &mut Queue, table: &mut dyn StateTable, now: Instant) {
    let ids: Vec<u64> = q.attention.drain().collect();
    for id in ids {
        let Some(seq) = q.seqs.get_mut(&id) else {
            continue;
        };
        while let Some(Work::ReadState(_)) = seq.work.front() {
            let Some(Work::ReadState(reply)) = seq.work.pop_front() else {
                unreachable!("matched above")
            };
            let result = match &seq.lost {
                Some(lost) => Err(Error::RoundFailed(lost.clone())),
                None => apply_init(table, seq).and_then(|()| table.read(seq.slot)),
            };
            reply.send(result);
            seq.last_active = now;
        }
        if seq.closed && seq.work.is_empty() {
            q.remove(id);
        } else {
            q.requeue(id);
        }
    }
}

/// Every sequence: cancelled and late one-shot requests dropped, idle streams closed, and at
/// shutdown streams without work closed.
fn sweep(shared: &Shared, q: &mut Queue, now: Instant) {
    let idle = shared.options.stream_idle_timeout;
    let closing = q.closing;
    let ids: Vec<u64> = q.seqs.keys().copied().collect();
    for id in ids {
        let seq = &q.seqs[&id];
        if seq.running {
            continue;
        }
        let verdict = match seq.work.front() {
            Some(Work::Steps(steps)) if !seq.stream => late_or_cancelled(steps, now),
            None if seq.stream && (seq.closed || closing) => Verdict::Close,
            None if seq.stream && now.duration_since(seq.last_active) >= idle => Verdict::Idle,
            _ => Verdict::Keep,
        };
        apply(q, id, verdict);
    }
}

/// Takes a round's results: outputs appended, finished requests and chunks answered, slots
/// of finished one-shot requests freed; on failure every row's work failed.
fn finish(
    q: &mut Queue,
    mut rows: Vec<Planned>,
    out: Result<RoundOutput>,
    took: Duration,
    appended: Appended,
) {
    for row in &rows {
        q.land(row.id);
    }
    let steps: Vec<usize> = rows.iter().map(|r| r.steps).collect();
    q.counters.rounds += 1;
    q.counters.rows += rows.len() as u64;
    q.counters.steps += steps.iter().sum::<usize>() as u64;
    q.counters.compute_time.record(took);
    // A round run here: its outputs appended to the rows' now (a lane's were on the lane).
    let out = out.and_then(|out| {
        if matches!(appended, Appended::No) {
            let mut to: Vec<&mut Vec<f32>> = rows.iter_mut().map(|r| &mut r.y).collect();
            out.append_rows(&mut to, &steps)?;
        }
        Ok(out)
    });
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let message = e.to_string();
            for row in &rows {
                let stream = q.seqs.get(&row.id).is_some_and(|s| s.stream);
                fail_front(q, row.id, Error::RoundFailed(message.clone()));
                match q.seqs.get_mut(&row.id) {
                    Some(seq) if stream => seq.lost = Some(message.clone()),
                    _ => q.remove(row.id),
                }
            }
            return;
        }
    };
    let now = Instant::now();
    for (i, row) in rows.iter_mut().enumerate() {
        let seq = q.seqs.get_mut(&row.id).expect("rows stay until finished");
        seq.last_active = now;
        let Some(Work::Steps(steps)) = seq.work.front_mut() else {
            unreachable!("a planned row's sequence has steps at its front")
        };
        steps.y = std::mem::take(&mut row.y);
        steps.done += row.steps;
        if steps.done < steps.x.nrows() {
            q.requeue(row.id);
            continue;
        }
        let Some(Work::Steps(done)) = seq.work.pop_front() else {
            unreachable!("matched above")
        };
        let latency = now.duration_since(done.arrived);
        let y = Steps::into_y(done.y, done.x.nrows(), done.width);
        let reply = done.reply;
        match reply {
            StepsReply::OneShot(reply) => {
                let answer = match (out.states[i].clone(), y) {
                    (Some(state), Ok(y)) => Ok(Response {
                        y,
                        h_n: state.h,
                        c_n: state.c,
                    }),
                    (_, Err(e)) => Err(e),
                    (None, _) => Err(Error::Internal(
                        "a finished request without its state".into(),
                    )),
                };
                reply.send(answer);
                q.counters.requests += 1;
                q.remove(row.id);
            }
            StepsReply::Chunk(reply) => {
                reply.send(y);
                q.counters.chunks += 1;
                q.requeue(row.id);
            }
        }
        q.counters.latency.record(latency);
        q.queued -= 1;
    }
}
