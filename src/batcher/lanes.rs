//! The batcher's lanes: threads that run rounds' forwards handed out by a state table with
//! several lanes (the CPU's, one per engine thread), one round at a time each, while the
//! scheduling thread goes on answering and planning.

use std::sync::mpsc::{channel, Receiver, SendError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::queue::{Landed, Shared};
use crate::error::{Error, Result};
use crate::table::{Job, JobDone};

/// A round's forward for a lane, with its rows' outputs so far (see [`Lanes::send`]).
pub(super) struct LaneJob {
    pub job: Job,
    /// Each row's outputs, to which the lane appends this round's.
    pub outputs: Vec<Vec<f32>>,
    /// Each row's steps in this round.
    pub steps: Vec<usize>,
}

/// The threads rounds' forwards run on, one round at a time each, started when first used;
/// each forward's result lands in [`Queue::landed`](super::queue::Queue) and wakes the
/// scheduling thread.
pub(super) struct Lanes {
    shared: Arc<Shared>,
    senders: Vec<Option<Sender<LaneJob>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Lanes {
    pub(super) fn new(shared: Arc<Shared>, count: usize) -> Lanes {
        Lanes {
            shared,
            senders: (0..count).map(|_| None).collect(),
            threads: Vec::new(),
        }
    }

    pub(super) fn count(&self) -> usize {
        self.senders.len()
    }

    /// Runs `job` on lane `lane` (after those sent before), starting its thread if need be;
    /// the lane appends the rows' outputs to theirs before it lands.
    pub(super) fn send(&mut self, lane: usize, job: LaneJob) {
        if self.senders[lane].is_none() {
            let (tx, rx) = channel::<LaneJob>();
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name(format!("wgpu-lstm lane {lane}"))
                .spawn(move || run_lane(&shared, lane, rx))
            {
                Ok(thread) => {
                    self.threads.push(thread);
                    self.senders[lane] = Some(tx);
                }
                Err(e) => {
                    let e = Error::Internal(format!("cannot start a batcher lane: {e}"));
                    self.land(lane, Err(e), job.outputs);
                    return;
                }
            }
        }
        if let Some(Err(SendError(job))) = self.senders[lane].as_ref().map(|tx| tx.send(job)) {
            self.land(
                lane,
                Err(Error::Internal("a batcher lane has stopped".into())),
                job.outputs,
            );
        }
    }

    /// A result for lane `lane` that no thread produced.
    fn land(&self, lane: usize, done: Result<JobDone>, outputs: Vec<Vec<f32>>) {
        self.shared.lock().landed.push(Landed {
            lane,
            done,
            took: Duration::ZERO,
            outputs,
        });
    }

    /// Stops the lanes' threads once their jobs are done.
    pub(super) fn stop(mut self) {
        self.senders.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Lane `lane`'s thread: runs the jobs it is sent, one after the other.
fn run_lane(shared: &Shared, lane: usize, jobs: Receiver<LaneJob>) {
    while let Ok(LaneJob {
        job,
        mut outputs,
        steps,
    }) = jobs.recv()
    {
        let start = Instant::now();
        let done = job.run();
        let took = start.elapsed();
        let done = match done {
            Ok(d) => {
                let mut to: Vec<&mut Vec<f32>> = outputs.iter_mut().collect();
                d.append_rows(&mut to, &steps).map(|()| d)
            }
            Err(e) => Err(e),
        };
        shared.lock().landed.push(Landed {
            lane,
            done,
            took,
            outputs,
        });
        shared.wake.notify_all();
    }
}
