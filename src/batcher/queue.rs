//! What the batcher's callers and its scheduling thread share: the open sequences, each with
//! its slot of the state table and its queue of work, the free slots, and the counters.
//! Callers admit work here (under one lock); only the scheduling thread removes it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ndarray::Array2;

use super::options::BatcherOptions;
use super::pending::{Pending, Reply};
use super::request::{Admitted, Response};
use super::stats::Counters;
use crate::error::{Error, Result};
use crate::spec::RnnSpec;
use crate::table::{JobDone, SlotState};

/// The state behind the lock, and the condition the scheduling thread waits on.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<Queue>,
    /// Signalled when work arrives, a stream closes, or the batcher shuts down.
    pub wake: Condvar,
    pub options: BatcherOptions,
    pub spec: RnnSpec,
    /// Bytes of the state table.
    pub table_bytes: u64,
}

impl Shared {
    /// The queue, locked (a panic elsewhere does not poison it for the callers).
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every open sequence and what it waits for.
#[derive(Debug)]
pub(crate) struct Queue {
    pub seqs: HashMap<u64, Seq>,
    /// The sequences with steps at the front of their work, by the arrival of that work
    /// (oldest first): what a round takes from, without scanning every sequence.
    pub ready: BTreeSet<(Instant, u64)>,
    /// Streams with a state read at the front of their work, or closed: the scheduler
    /// attends to them before its next round.
    pub attention: HashSet<u64>,
    /// Slots of the state table no sequence holds.
    pub free: Vec<usize>,
    /// Requests and chunks admitted and not yet answered.
    pub queued: usize,
    pub open_streams: usize,
    /// No more work is admitted; the thread ends when what was admitted is done.
    pub closing: bool,
    pub next_id: u64,
    pub counters: Counters,
    /// Rounds whose forward has run on a lane, for the scheduling thread to end.
    pub landed: Vec<Landed>,
}

/// A round's forward that has run on lane `lane`, and how long it took.
#[derive(Debug)]
pub(crate) struct Landed {
    pub lane: usize,
    pub done: Result<JobDone>,
    pub took: Duration,
    /// The rows' outputs, this round's appended by the lane (in the order of the rows).
    pub outputs: Vec<Vec<f32>>,
}

/// One sequence holding a slot: a one-shot request, or a stream.
#[derive(Debug)]
pub(crate) struct Seq {
    pub slot: usize,
    /// The state to put in the slot before its first round (`None` inside: zeros); taken
    /// by the scheduler.
    pub init: Option<Option<SlotState>>,
    pub work: VecDeque<Work>,
    /// A stream (else a one-shot request, removed when answered).
    pub stream: bool,
    /// A stream its handle closed: removed once its work is done.
    pub closed: bool,
    /// When the stream last had work.
    pub last_active: Instant,
    /// A stream whose state a failed round left unknown: its work fails with this message.
    pub lost: Option<String>,
    /// Its key in [`Queue::ready`], while it is there.
    pub ready_key: Option<Instant>,
    /// In a round in flight: out of [`Queue::ready`] and of the sweeps until it lands.
    pub running: bool,
}

/// A sequence's next piece of work.
#[derive(Debug)]
pub(crate) enum Work {
    /// Steps to run: a whole one-shot request or a stream's chunk.
    Steps(Steps),
    /// A stream's state, read once the chunks before it have run.
    ReadState(Arc<Reply<SlotState>>),
}

/// Steps of one request or chunk, and how far they have run.
#[derive(Debug)]
pub(crate) struct Steps {
    /// `[T, I]`, shared with the rounds that read it.
    pub x: Arc<Array2<f32>>,
    /// Steps run so far.
    pub done: usize,
    /// The outputs of the steps run so far, `[done, D·H_out]` in standard layout, appended to
    /// as the rounds land (reserved when the first is planned: a deep queue holds no
    /// outputs, and no output is written twice).
    pub y: Vec<f32>,
    /// `D·H_out`.
    pub width: usize,
    pub arrived: Instant,
    /// Whether a round has started it (its queue time is then recorded).
    pub started: bool,
    pub deadline: Option<Instant>,
    pub reply: StepsReply,
}

/// Where finished steps are answered.
#[derive(Debug)]
pub(crate) enum StepsReply {
    OneShot(Arc<Reply<Response>>),
    Chunk(Arc<Reply<Array2<f32>>>),
}

impl Steps {
    /// The outputs of all `steps` steps, `[T, D·H_out]`, once every one has run.
    pub fn into_y(y: Vec<f32>, steps: usize, width: usize) -> Result<Array2<f32>> {
        Array2::from_shape_vec((steps, width), y)
            .map_err(|e| Error::Internal(format!("a request's outputs: {e}")))
    }

    fn new(spec: &RnnSpec, x: Array2<f32>, deadline: Option<Instant>, reply: StepsReply) -> Self {
        Steps {
            y: Vec::new(),
            width: spec.output_size(),
            x: Arc::new(x),
            done: 0,
            arrived: Instant::now(),
            started: false,
            deadline,
            reply,
        }
    }

    /// Fails these steps with `e`.
    pub fn fail(&self, e: Error) {
        match &self.reply {
            StepsReply::OneShot(r) => r.send(Err(e)),
            StepsReply::Chunk(r) => r.send(Err(e)),
        }
    }

    /// Whether the caller dropped its `Pending` (one-shot requests only: a stream's chunk
    /// runs regardless, so that the stream's state stays defined).
    pub fn cancelled(&self) -> bool {
        matches!(&self.reply, StepsReply::OneShot(r) if r.cancelled())
    }
}

impl Queue {
    /// An empty queue over `slots` free slots.
    pub fn new(slots: usize) -> Self {
        Queue {
            seqs: HashMap::new(),
            ready: BTreeSet::new(),
            attention: HashSet::new(),
            free: (0..slots).rev().collect(),
            queued: 0,
            open_streams: 0,
            closing: false,
            next_id: 0,
            counters: Counters::default(),
            landed: Vec::new(),
        }
    }

    /// Refuses new work once closing, and beyond the queue's bound.
    fn check_admit(&mut self, options: &BatcherOptions) -> Result<()> {
        if self.closing {
            return Err(Error::Closed("the batcher is shut down".into()));
        }
        if self.queued >= options.max_queue {
            self.counters.rejected += 1;
            return Err(Error::Busy(format!(
                "{} requests and chunks are queued (max_queue {})",
                self.queued, options.max_queue
            )));
        }
        Ok(())
    }

    /// A new sequence in a free slot.
    fn open(
        &mut self,
        options: &BatcherOptions,
        init: Option<SlotState>,
        stream: bool,
    ) -> Result<u64> {
        let Some(slot) = self.free.pop() else {
            self.counters.rejected += 1;
            return Err(Error::Busy(format!(
                "every slot of the state table is in use (max_sequences {})",
                options.max_sequences
            )));
        };
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.insert(
            id,
            Seq {
                slot,
                init: Some(init),
                work: VecDeque::new(),
                stream,
                closed: false,
                last_active: Instant::now(),
                lost: None,
                ready_key: None,
                running: false,
            },
        );
        if stream {
            self.open_streams += 1;
        }
        Ok(id)
    }

    /// Takes sequence `id` into a round: out of [`Queue::ready`] until [`Queue::land`].
    pub fn take_running(&mut self, id: u64) {
        if let Some(seq) = self.seqs.get_mut(&id) {
            if let Some(key) = seq.ready_key.take() {
                self.ready.remove(&(key, id));
            }
            seq.running = true;
        }
    }

    /// Sequence `id`'s round has landed: it may be requeued.
    pub fn land(&mut self, id: u64) {
        if let Some(seq) = self.seqs.get_mut(&id) {
            seq.running = false;
        }
    }

    /// Puts sequence `id` where its front work says: in [`Queue::ready`] behind steps, among
    /// those needing attention behind a state read. Called after every change to its work.
    pub fn requeue(&mut self, id: u64) {
        let Some(seq) = self.seqs.get_mut(&id) else {
            return;
        };
        if let Some(key) = seq.ready_key.take() {
            self.ready.remove(&(key, id));
        }
        if seq.running {
            // Requeued when its round lands.
            return;
        }
        match seq.work.front() {
            Some(Work::Steps(s)) => {
                seq.ready_key = Some(s.arrived);
                self.ready.insert((s.arrived, id));
            }
            Some(Work::ReadState(_)) => {
                self.attention.insert(id);
            }
            None if seq.closed => {
                self.attention.insert(id);
            }
            None => {}
        }
    }

    /// Removes a sequence and frees its slot.
    pub fn remove(&mut self, id: u64) {
        if let Some(seq) = self.seqs.remove(&id) {
            if let Some(key) = seq.ready_key {
                self.ready.remove(&(key, id));
            }
            self.attention.remove(&id);
            self.free.push(seq.slot);
            if seq.stream {
                self.open_streams -= 1;
            }
        }
    }
}

impl Shared {
    /// Admits a one-shot request.
    pub fn submit(&self, request: Admitted) -> Result<Pending<Response>> {
        let mut q = self.lock();
        q.check_admit(&self.options)?;
        let id = q.open(&self.options, request.state, false)?;
        let (reply, pending) = Reply::new();
        let steps = Steps::new(
            &self.spec,
            request.x,
            request.deadline,
            StepsReply::OneShot(reply),
        );
        q.seqs
            .get_mut(&id)
            .expect("just opened")
            .work
            .push_back(Work::Steps(steps));
        q.requeue(id);
        q.queued += 1;
        q.counters.admitted += 1;
        drop(q);
        self.wake.notify_all();
        Ok(pending)
    }

    /// Opens a stream from `state` (zeros where `None`).
    pub fn open_stream(&self, state: Option<SlotState>) -> Result<u64> {
        let mut q = self.lock();
        if q.closing {
            return Err(Error::Closed("the batcher is shut down".into()));
        }
        q.open(&self.options, state, true)
    }

    /// The open stream `id`, or why it is not.
    fn stream(q: &mut Queue, id: u64) -> Result<&mut Seq> {
        match q.seqs.get_mut(&id) {
            Some(seq) if !seq.closed => Ok(seq),
            _ => Err(Error::Closed(
                "the stream is closed (by its handle, for standing idle, or at shutdown)".into(),
            )),
        }
    }

    /// Queues a chunk of stream `id`.
    pub fn feed(&self, id: u64, x: Array2<f32>) -> Result<Pending<Array2<f32>>> {
        let mut q = self.lock();
        q.check_admit(&self.options)?;
        let seq = Self::stream(&mut q, id)?;
        if let Some(lost) = &seq.lost {
            return Err(Error::RoundFailed(lost.clone()));
        }
        let (reply, pending) = Reply::new();
        seq.work.push_back(Work::Steps(Steps::new(
            &self.spec,
            x,
            None,
            StepsReply::Chunk(reply),
        )));
        seq.last_active = Instant::now();
        q.requeue(id);
        q.queued += 1;
        q.counters.admitted += 1;
        drop(q);
        self.wake.notify_all();
        Ok(pending)
    }

    /// Queues a read of stream `id`'s state, after its queued chunks.
    pub fn read_state(&self, id: u64) -> Result<Pending<SlotState>> {
        let mut q = self.lock();
        let seq = Self::stream(&mut q, id)?;
        let (reply, pending) = Reply::new();
        seq.work.push_back(Work::ReadState(reply));
        seq.last_active = Instant::now();
        q.requeue(id);
        drop(q);
        self.wake.notify_all();
        Ok(pending)
    }

    /// Closes stream `id` once its queued work is done.
    pub fn close(&self, id: u64) {
        let mut q = self.lock();
        if let Some(seq) = q.seqs.get_mut(&id) {
            seq.closed = true;
            q.requeue(id);
        }
        drop(q);
        self.wake.notify_all();
    }

    /// Stops admitting work; the thread ends when what was admitted is done.
    pub fn shut_down(&self) {
        self.lock().closing = true;
        self.wake.notify_all();
    }
}
