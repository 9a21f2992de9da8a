//! The scheduling thread: rounds of cellular batching. Each round takes the sequences with
//! steps to run, oldest work first, up to `max_batch`, and advances each by up to `quantum`
//! steps (a bidirectional model: its whole request) in one forward over the state table;
//! sequences join and leave between rounds. Between rounds it answers state reads, drops
//! cancelled and late requests, and closes idle streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{s, Array2};

use super::queue::{Queue, Seq, Shared, Steps, StepsReply, Work};
use super::request::Response;
use crate::error::{Error, Result};
use crate::table::{RoundOutput, RoundRow, StateTable};

/// How long the thread sleeps at most when nothing is due (it wakes on any arrival).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// One row of the round being run: its sequence and its inputs.
struct Planned {
    id: u64,
    slot: usize,
    x: Array2<f32>,
    /// The row ends a one-shot request: its final state comes back.
    last: bool,
}

/// Runs rounds until the batcher shuts down and its admitted work is done.
pub(crate) fn run(shared: Arc<Shared>, mut table: Box<dyn StateTable>) {
    let mut q = shared.lock();
    loop {
        let now = Instant::now();
        housekeeping(&shared, &mut q, table.as_mut(), now);
        if q.closing && q.seqs.is_empty() {
            break;
        }
        match plan(&shared, &mut q, table.as_mut(), now) {
            Next::Wait(timeout) => {
                q = match timeout {
                    Some(t) => shared.wake.wait_timeout(q, t).map(|r| r.0),
                    None => shared.wake.wait_timeout(q, IDLE_POLL).map(|r| r.0),
                }
                .unwrap_or_else(|e| e.into_inner().0);
            }
            Next::Round(rows) => {
                drop(q);
                let start = Instant::now();
                let out = run_round(table.as_mut(), &rows);
                let took = start.elapsed();
                q = shared.lock();
                finish(&mut q, &rows, out, took);
            }
        }
    }
    q.ended = true;
}

/// What the thread does next.
enum Next {
    /// Sleep until work arrives, or at most this long.
    Wait(Option<Duration>),
    Round(Vec<Planned>),
}

/// One forward over the table, a panic in it caught and turned into an error.
fn run_round(table: &mut dyn StateTable, rows: &[Planned]) -> Result<RoundOutput> {
    let views: Vec<RoundRow<'_>> = rows
        .iter()
        .map(|r| RoundRow {
            slot: r.slot,
            x: r.x.view(),
            read_state: r.last,
        })
        .collect();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.round(&views)))
        .unwrap_or_else(|_| Err(Error::Internal("a batched round panicked".into())))
}

/// Between rounds: cancelled and late one-shot requests dropped, state reads answered,
/// closed and idle streams removed; at shutdown, streams without work closed.
fn housekeeping(shared: &Shared, q: &mut Queue, table: &mut dyn StateTable, now: Instant) {
    let idle = shared.options.stream_idle_timeout;
    let closing = q.closing;
    let ids: Vec<u64> = q.seqs.keys().copied().collect();
    for id in ids {
        let seq = q.seqs.get_mut(&id).expect("listed above");
        // State reads at the front of a stream's work.
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
        let verdict = match seq.work.front() {
            Some(Work::Steps(steps)) if !seq.stream => {
                if steps.cancelled() {
                    Verdict::Cancelled
                } else if steps.deadline.is_some_and(|d| now >= d) {
                    let e = Error::DeadlineExceeded(format!(
                        "{} of {} steps had run",
                        steps.done,
                        steps.x.nrows()
                    ));
                    Verdict::Fail(e)
                } else {
                    Verdict::Keep
                }
            }
            None if seq.stream && (seq.closed || closing) => Verdict::Close,
            None if seq.stream && now.duration_since(seq.last_active) >= idle => Verdict::Idle,
            _ => Verdict::Keep,
        };
        match verdict {
            Verdict::Keep => {}
            Verdict::Cancelled => {
                q.counters.cancelled += 1;
                q.queued -= 1;
                q.remove(id);
            }
            Verdict::Fail(e) => {
                fail_front(q, id, e);
                q.remove(id);
            }
            Verdict::Close => q.remove(id),
            Verdict::Idle => {
                q.counters.idle_closed += 1;
                q.remove(id);
            }
        }
    }
}

/// What housekeeping does with a sequence.
enum Verdict {
    Keep,
    Cancelled,
    Fail(Error),
    Close,
    Idle,
}

/// Fails the steps at the front of sequence `id`'s work with `e` and counts them.
fn fail_front(q: &mut Queue, id: u64, e: Error) {
    if let Some(seq) = q.seqs.get_mut(&id) {
        if let Some(Work::Steps(steps)) = seq.work.pop_front() {
            steps.fail(e);
            q.counters.failed += 1;
            q.queued -= 1;
        }
    }
}

/// Puts a sequence's initial state in its slot, once, before it first runs.
fn apply_init(table: &mut dyn StateTable, seq: &mut Seq) -> Result<()> {
    match seq.init.take() {
        Some(state) => table.set(seq.slot, state.as_ref()),
        None => Ok(()),
    }
}

/// The next round, or how long to wait for one.
fn plan(shared: &Shared, q: &mut Queue, table: &mut dyn StateTable, now: Instant) -> Next {
    let options = &shared.options;
    let mut ready: Vec<(Instant, u64)> = q
        .seqs
        .iter()
        .filter_map(|(&id, seq)| match seq.work.front() {
            Some(Work::Steps(s)) => Some((s.arrived, id)),
            _ => None,
        })
        .collect();
    if ready.is_empty() {
        return Next::Wait(next_due(shared, q, now));
    }
    ready.sort_unstable();
    if !options.max_queue_delay.is_zero() && ready.len() < options.max_batch && !q.closing {
        // Wait for company, but wake for the first deadline among the waiting.
        let deadline = q
            .seqs
            .values()
            .filter_map(|seq| match seq.work.front() {
                Some(Work::Steps(s)) => s.deadline,
                _ => None,
            })
            .min();
        let due = ready[0].0 + options.max_queue_delay;
        if now < due {
            let until = deadline.map_or(due, |d| d.min(due));
            return Next::Wait(Some(until.saturating_duration_since(now)));
        }
    }
    let whole = shared.spec.num_directions() > 1;
    let mut rows: Vec<Planned> = Vec::new();
    let mut longest = 0;
    for &(_, id) in &ready {
        if rows.len() == options.max_batch {
            break;
        }
        let seq = q.seqs.get_mut(&id).expect("listed above");
        let Some(Work::Steps(steps)) = seq.work.front() else {
            continue;
        };
        let left = steps.x.nrows() - steps.done;
        let n = if whole {
            left
        } else {
            left.min(options.quantum)
        };
        if let Some(lost) = seq.lost.clone() {
            fail_front(q, id, Error::RoundFailed(lost));
            continue;
        }
        if whole && !table.fits(longest.max(n), rows.len() + 1) {
            if rows.is_empty() {
                let e = Error::InvalidInput(format!(
                    "a request of {n} steps exceeds what the device runs in one forward \
                     (a bidirectional model runs each request whole)"
                ));
                fail_front(q, id, e);
                q.remove(id);
            }
            continue;
        }
        if let Err(e) = apply_init(table, seq) {
            fail_front(q, id, e);
            q.remove(id);
            continue;
        }
        let Some(Work::Steps(steps)) = seq.work.front_mut() else {
            unreachable!("matched above")
        };
        if !steps.started {
            steps.started = true;
            q.counters
                .queue_time
                .record(now.duration_since(steps.arrived));
        }
        longest = longest.max(n);
        rows.push(Planned {
            id,
            slot: seq.slot,
            x: steps.x.slice(s![steps.done..steps.done + n, ..]).to_owned(),
            last: !seq.stream && steps.done + n == steps.x.nrows(),
        });
    }
    if rows.is_empty() {
        // Every ready sequence failed above: look again.
        return Next::Wait(Some(Duration::ZERO));
    }
    Next::Round(rows)
}

/// When the thread must look again with nothing ready: the next deadline or idle expiry.
fn next_due(shared: &Shared, q: &Queue, now: Instant) -> Option<Duration> {
    let idle = shared.options.stream_idle_timeout;
    q.seqs
        .values()
        .filter(|s| s.stream && s.work.is_empty())
        .map(|s| (s.last_active + idle).saturating_duration_since(now))
        .min()
}

/// Takes a round's results: outputs appended, finished requests and chunks answered, slots
/// of finished one-shot requests freed; on failure every row's work failed.
fn finish(q: &mut Queue, rows: &[Planned], out: Result<RoundOutput>, took: Duration) {
    let steps: usize = rows.iter().map(|r| r.x.nrows()).sum();
    q.counters.rounds += 1;
    q.counters.rows += rows.len() as u64;
    q.counters.steps += steps as u64;
    q.counters.compute_time.record(took);
    let now = Instant::now();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let message = e.to_string();
            for row in rows {
                let seq = q.seqs.get_mut(&row.id).expect("rows stay until finished");
                if let Some(Work::Steps(s)) = seq.work.pop_front() {
                    s.fail(Error::RoundFailed(message.clone()));
                }
                let stream = seq.stream;
                if stream {
                    seq.lost = Some(message.clone());
                }
                q.counters.failed += 1;
                q.queued -= 1;
                if !stream {
                    q.remove(row.id);
                }
            }
            return;
        }
    };
    for (i, row) in rows.iter().enumerate() {
        let seq = q.seqs.get_mut(&row.id).expect("rows stay until finished");
        seq.last_active = now;
        let Some(Work::Steps(steps)) = seq.work.front_mut() else {
            unreachable!("a planned row's sequence has steps at its front")
        };
        let n = row.x.nrows();
        steps
            .y
            .slice_mut(s![steps.done..steps.done + n, ..])
            .assign(&out.y[i]);
        steps.done += n;
        if steps.done < steps.x.nrows() {
            continue;
        }
        let Some(Work::Steps(done)) = seq.work.pop_front() else {
            unreachable!()
        };
        let latency = now.duration_since(done.arrived);
        let Steps { y, reply, .. } = done;
        match reply {
            StepsReply::OneShot(reply) => {
                let answer = match out.states[i].clone() {
                    Some(state) => Ok(Response {
                        y,
                        h_n: state.h,
                        c_n: state.c,
                    }),
                    None => Err(Error::Internal(
                        "a finished request without its state".into(),
                    )),
                };
                reply.send(answer);
                q.counters.requests += 1;
                q.remove(row.id);
            }
            StepsReply::Chunk(reply) => {
                reply.send(Ok(y));
                q.counters.chunks += 1;
            }
        }
        q.counters.latency.record(latency);
        q.queued -= 1;
    }
}
