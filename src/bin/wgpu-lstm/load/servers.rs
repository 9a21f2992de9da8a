//! The three servers the load test compares, on one model: one `forward` per request from
//! worker threads (what a service does without a batcher), a padding batcher (collect the
//! waiting requests, pad to the longest, one forward: TF Serving's way), and the library's
//! cellular [`Batcher`]. Each reports every finished request as a [`Done`].

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Instant;

use ndarray::{s, Array2, Array3, Axis};
use wgpu_lstm::{Batcher, Error, Forward, Input, Pending, Request, Response};

/// A finished request: when it was due to arrive, when it finished, and whether it
/// succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub scheduled: Instant,
    pub finished: Instant,
    pub ok: bool,
}

/// A request handed to a server.
pub struct Job {
    pub scheduled: Instant,
    pub x: Array2<f32>,
}

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PerRequest,
    Padding,
    Cellular,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::PerRequest, Kind::Padding, Kind::Cellular];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PerRequest => "per-request",
            Kind::Padding => "padding",
            Kind::Cellular => "cellular",
        }
    }
}

/// A running server: jobs go in through `submit`; it ends when dropped.
pub struct Server {
    input: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.input {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.input = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `forward` per request (batch 1), from `workers` threads sharing the model.
pub fn per_request(
    model: Arc<dyn Forward + Send + Sync>,
    workers: usize,
    done: Sender<Done>,
) -> Server {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = (0..workers)
        .map(|_| {
            let (rx, model, done) = (rx.clone(), model.clone(), done.clone());
            std::thread::spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let x = job.x.view().insert_axis(Axis(1));
                let ok = model.forward(&Input::new(x)).is_ok();
                let _ = done.send(Done {
                    scheduled: job.scheduled,
                    finished: Instant::now(),
                    ok,
                });
            })
        })
        .collect();
    Server {
        input: Some(tx),
        threads,
    }
}

/// Takes the requests waiting (up to `max_batch`, at least one), pads them to the longest,
/// runs one forward with their lengths, and answers them all when it ends.
pub fn padding(
    model: Arc<dyn Forward + Send + Sync>,
    max_batch: usize,
    done: Sender<Done>,
) -> Server {
    let (tx, rx) = channel::<Job>();
    let thread = std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let ok = pad_and_run(model.as_ref(), &jobs).is_ok();
            let finished = Instant::now();
            for job in jobs {
                let _ = done.send(Done {
                    scheduled: job.scheduled,
                    finished,
                    ok,
                });
            }
        }
    });
    Server {
        input: Some(tx),
        threads: vec![thread],
    }
}

/// One forward over `jobs` padded to the longest.
fn pad_and_run(model: &dyn Forward, jobs: &[Job]) -> Result<(), Error> {
    let steps = jobs.iter().map(|j| j.x.nrows()).max().unwrap_or(1);
    let width = jobs[0].x.ncols();
    let mut x = Array3::<f32>::zeros((steps, jobs.len(), width));
    let mut lens = Vec::with_capacity(jobs.len());
    for (b, job) in jobs.iter().enumerate() {
        x.slice_mut(s![..job.x.nrows(), b, ..]).assign(&job.x);
        lens.push(job.x.nrows());
    }
    model
        .forward(&Input::new(x.view()).lengths(&lens))
        .map(|_| ())
}

/// The cellular batcher: jobs submitted as they come; a collector thread answers each when
/// its `Pending` completes (woken through its `Future`, so completions are seen in the
/// order they happen).
pub fn cellular(batcher: Batcher, done: Sender<Done>) -> Server {
    let (tx, rx) = channel::<Job>();
    let (msgs, inbox) = channel::<Msg>();
    let submitter = {
        let msgs = msgs.clone();
        std::thread::spawn(move || {
            let mut id = 0u64;
            while let Ok(job) = rx.recv() {
                let pending = batcher.submit(Request::new(job.x.view()));
                let _ = msgs.send(Msg::New(id, job.scheduled, pending));
                id += 1;
            }
            let _ = msgs.send(Msg::End);
        })
    };
    let collector = std::thread::spawn(move || collect(inbox, msgs, done));
    Server {
        input: Some(tx),
        threads: vec![submitter, collector],
    }
}

/// What the collector hears.
enum Msg {
    New(u64, Instant, Result<Pending<Response>, Error>),
    Woken(u64),
    End,
}

/// Wakes the collector for request `id`.
struct Notify {
    id: u64,
    tx: Sender<Msg>,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        let _ = self.tx.send(Msg::Woken(self.id));
    }
}

/// Polls each pending request when it is woken; reports it when it is ready.
fn collect(inbox: Receiver<Msg>, tx: Sender<Msg>, done: Sender<Done>) {
    let mut waiting: std::collections::HashMap<u64, (Instant, Pending<Response>)> =
        std::collections::HashMap::new();
    let mut ended = false;
    while !(ended && waiting.is_empty()) {
        let Ok(msg) = inbox.recv() else { return };
        let id = match msg {
            Msg::End => {
                ended = true;
                continue;
            }
            Msg::New(id, scheduled, Ok(pending)) => {
                waiting.insert(id, (scheduled, pending));
                id
            }
            Msg::New(_, scheduled, Err(_)) => {
                let _ = done.send(Done {
                    scheduled,
                    finished: Instant::now(),
                    ok: false,
                });
                continue;
            }
            Msg::Woken(id) => id,
        };
        let Some((scheduled, pending)) = waiting.get_mut(&id) else {
            continue;
        };
        let waker = Waker::from(Arc::new(Notify { id, tx: tx.clone() }));
        if let Poll::Ready(result) = Pin::new(pending).poll(&mut Context::from_waker(&waker)) {
            let _ = done.send(Done {
                scheduled: *scheduled,
                finished: Instant::now(),
                ok: result.is_ok(),
            });
            waiting.remove(&id);
        }
    }
}
