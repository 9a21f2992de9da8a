//! Planning a round: which ready sequences it takes, oldest first, and how many steps each
//! runs; and what becomes of a sequence that cannot run (cancelled, late, failed) — the
//! verdicts the scheduling thread also applies between rounds.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;

use super::queue::{Queue, Seq, Shared, Steps, Work};
use crate::error::{Error, Result};
use crate::table::StateTable;

/// How many quanta a round runs when no sequence waits beyond it (see [`plan`]).
const IDLE_QUANTA: usize = 4;

/// How long the thread sleeps at most with nothing open (it wakes on any arrival).
pub(super) const IDLE_POLL: Duration = Duration::from_secs(1);

/// One row of the round being run: its sequence, its inputs and its outputs so far.
pub(super) struct Planned {
    pub id: u64,
    pub slot: usize,
    /// The sequence's inputs, `[T, I]`, of which this round runs `from..from + steps`.
    pub x: Arc<Array2<f32>>,
    pub from: usize,
    pub steps: usize,
    /// The outputs of the steps before this round, taken from the sequence while the round
    /// is in flight (where this round's are appended) and given back when it lands.
    pub y: Vec<f32>,
    /// The row ends a one-shot request: its final state comes back.
    pub last: bool,
}

/// What the thread does next.
pub(super) enum Next {
    /// Sleep until work arrives, or at most this long.
    Wait(Duration),
    Round(Vec<Planned>),
}

/// What becomes of a sequence.
pub(super) enum Verdict {
    Keep,
    Cancelled,
    Fail(Error),
    Close,
    Idle,
}

/// A one-shot request its caller dropped, or whose deadline passed.
pub(super) fn late_or_cancelled(steps: &Steps, now: Instant) -> Verdict {
    if steps.cancelled() {
        Verdict::Cancelled
    } else if steps.deadline.is_some_and(|d| now >= d) {
        Verdict::Fail(Error::DeadlineExceeded(format!(
            "{} of {} steps had run",
            steps.done,
            steps.x.nrows()
        )))
    } else {
        Verdict::Keep
    }
}

/// Carries out a verdict on sequence `id`.
pub(super) fn apply(q: &mut Queue, id: u64, verdict: Verdict) {
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

/// Fails the steps at the front of sequence `id`'s work with `e`, counts them, and requeues
/// the sequence behind its next work.
pub(super) fn fail_front(q: &mut Queue, id: u64, e: Error) {
    if let Some(seq) = q.seqs.get_mut(&id) {
        if let Some(Work::Steps(steps)) = seq.work.pop_front() {
            steps.fail(e);
            q.counters.failed += 1;
            q.queued -= 1;
        }
        q.requeue(id);
    }
}

/// Puts a sequence's initial state in its slot, once, before it first runs.
pub(super) fn apply_init(table: &mut dyn StateTable, seq: &mut Seq) -> Result<()> {
    match seq.init.take() {
        Some(state) => table.set(seq.slot, state.as_ref()),
        None => Ok(()),
    }
}

/// The next round, or how long to wait for one.
pub(super) fn plan(
    shared: &Shared,
    q: &mut Queue,
    table: &mut dyn StateTable,
    now: Instant,
    free_lanes: usize,
) -> Next {
    let options = &shared.options;
    let Some(&(oldest, _)) = q.ready.first() else {
        return Next::Wait(IDLE_POLL);
    };
    if !options.max_queue_delay.is_zero() && q.ready.len() < options.max_batch && !q.closing {
        let due = oldest + options.max_queue_delay;
        if now < due {
            return Next::Wait(due - now);
        }
    }
    let whole = shared.spec.num_directions() > 1;
    let mut rows: Vec<Planned> = Vec::new();
    let mut longest = 0;
    let mut after: Option<(Instant, u64)> = None;
    // With several lanes free, the ready sequences shared between them.
    let most = if free_lanes > 1 {
        options.max_batch.min(q.ready.len().div_ceil(free_lanes))
    } else {
        options.max_batch
    };
    // No one waits beyond this round: where the table runs rounds that long, it goes on for
    // several quanta — fewer fixed costs per step at light load; with another lane free
    // for whoever comes next, to the end of each row's work (one forward per request, as
    // alone).
    let quantum = options.quantum;
    let idle = q.ready.len() <= most;
    let cap = if whole {
        None
    } else if idle && free_lanes > 1 {
        Some(usize::MAX)
    } else if idle && table.fits(quantum * IDLE_QUANTA, most) {
        Some(quantum * IDLE_QUANTA)
    } else {
        Some(quantum)
    };
    while rows.len() < most {
        let next = match after {
            None => q.ready.first().copied(),
            Some(k) => q.ready.range((Excluded(k), Unbounded)).next().copied(),
        };
        let Some(key @ (_, id)) = next else { break };
        after = Some(key);
        match plan_row(q, table, id, now, cap, longest, rows.len()) {
            Some(row) => {
                longest = longest.max(row.steps);
                q.take_running(row.id);
                rows.push(row);
            }
            None => continue,
        }
    }
    if rows.is_empty() {
        // Every ready sequence failed or was dropped above: look again.
        return Next::Wait(Duration::ZERO);
    }
    Next::Round(rows)
}

/// Sequence `id`'s row in the round being planned, or `None` where it fails, is dropped,
/// or (a bidirectional model's whole request) does not fit beside the rows taken.
#[allow(clippy::too_many_arguments)]
fn plan_row(
    q: &mut Queue,
    table: &mut dyn StateTable,
    id: u64,
    now: Instant,
    cap: Option<usize>,
    longest: usize,
    taken: usize,
) -> Option<Planned> {
    let seq = q.seqs.get(&id)?;
    if let Some(lost) = seq.lost.clone() {
        fail_front(q, id, Error::RoundFailed(lost));
        return None;
    }
    let Some(Work::Steps(steps)) = seq.work.front() else {
        return None;
    };
    let verdict = if seq.stream {
        Verdict::Keep
    } else {
        late_or_cancelled(steps, now)
    };
    if !matches!(verdict, Verdict::Keep) {
        apply(q, id, verdict);
        return None;
    }
    let left = steps.x.nrows() - steps.done;
    let n = cap.map_or(left, |most| left.min(most));
    if cap.is_none() && !table.fits(longest.max(n), taken + 1) {
        if taken == 0 {
            let e = Error::InvalidInput(format!(
                "a request of {n} steps exceeds what the device runs in one forward \
                 (a bidirectional model runs each request whole)"
            ));
            apply(q, id, Verdict::Fail(e));
        }
        return None;
    }
    let seq = q.seqs.get_mut(&id)?;
    if let Err(e) = apply_init(table, seq) {
        apply(q, id, Verdict::Fail(e));
        return None;
    }
    let Some(Work::Steps(steps)) = seq.work.front_mut() else {
        unreachable!("matched above")
    };
    if !steps.started {
        steps.started = true;
        steps.y = Vec::with_capacity(steps.x.nrows() * steps.width);
        q.counters
            .queue_time
            .record(now.duration_since(steps.arrived));
    }
    Some(Planned {
        id,
        slot: seq.slot,
        x: steps.x.clone(),
        from: steps.done,
        steps: n,
        y: std::mem::take(&mut steps.y),
        last: !seq.stream && steps.done + n == steps.x.nrows(),
    })
}
