//! The three servers the load test compares, on one model: one `forward` per request from
//! worker threads (what a service does without a batcher), a padding batcher (collect the
//! waiting requests, pad to the longest, one forward: TF Serving's way), and the library's
//! cellular [`Batcher`]. Each reports every finished request as a [`Done`]. A request is a
//! one-shot sequence or a chunk of a live stream: the first two keep each stream's state
//! between its chunks by hand ([`Store`]), the batcher in its state table (its streams).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Instant;

use ndarray::{s, Array2, Array3, Axis};
use wgpu_lstm::{BatchStream, Batcher, Error, Forward, Input, Pending, Request, Response, RnnSpec};

use super::streams::{Part, Store};

/// A finished request: which, when it was due to arrive, when it finished, and whether it
/// succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub tag: u64,
    pub scheduled: Instant,
    pub finished: Instant,
    pub ok: bool,
}

/// A request handed to a server.
pub struct Job {
    pub tag: u64,
    pub scheduled: Instant,
    pub x: Array2<f32>,
    pub part: Part,
}

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// The cellular batcher, handed each job on the submitting thread.
    direct: Option<Direct>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn submit(&self, job: Job) {
        if let Some(direct) = &self.direct {
            direct.submit(job);
        } else if let Some(tx) = &self.input {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.input = None;
        self.direct = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `forward` per request (batch 1), from `workers` threads sharing the model.
pub fn per_request(
    model: Arc<dyn Forward + Send + Sync>,
    spec: &RnnSpec,
    workers: usize,
    done: Sender<Done>,
) -> Server {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let store = Arc::new(Store::new(spec));
    let threads = (0..workers)
        .map(|_| {
            let (rx, model, done, store) = (rx.clone(), model.clone(), done.clone(), store.clone());
            std::thread::spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let ok = run_batch(model.as_ref(), &store, std::slice::from_ref(&job)).is_ok();
                let _ = done.send(Done {
                    tag: job.tag,
                    scheduled: job.scheduled,
                    finished: Instant::now(),
                    ok,
                });
            })
        })
        .collect();
    Server {
        input: Some(tx),
        direct: None,
        threads,
    }
}

/// Takes the requests waiting (up to `max_batch`, at least one), pads them to the longest,
/// runs one forward with their lengths, and answers them all when it ends.
pub fn padding(
    model: Arc<dyn Forward + Send + Sync>,
    spec: &RnnSpec,
    max_batch: usize,
    done: Sender<Done>,
) -> Server {
    let (tx, rx) = channel::<Job>();
    let store = Store::new(spec);
    let thread = std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let ok = run_batch(model.as_ref(), &store, &jobs).is_ok();
            let finished = Instant::now();
            for job in jobs {
                let _ = done.send(Done {
                    tag: job.tag,
                    scheduled: job.scheduled,
                    finished,
                    ok,
                });
            }
        }
    });
    Server {
        input: Some(tx),
        direct: None,
        threads: vec![thread],
    }
}

/// One forward over `jobs` (a single request as it is, several padded to the longest), each
/// stream's chunk from its stream's state, which is kept for its next chunk.
fn run_batch(model: &dyn Forward, store: &Store, jobs: &[Job]) -> Result<(), Error> {
    let padded = (jobs.len() > 1).then(|| pad(jobs));
    let mut input = match (&padded, jobs) {
        (Some((x, lens)), _) => Input::new(x.view()).lengths(lens),
        (None, [job, ..]) => Input::new(job.x.view().insert_axis(Axis(1))),
        (None, []) => return Ok(()),
    };
    let parts: Vec<Part> = jobs.iter().map(|j| j.part).collect();
    let states = store.take(&parts);
    if let Some(states) = &states {
        input = input.h0(states.h0.view());
        if let Some(c0) = &states.c0 {
            input = input.c0(c0.view());
        }
    }
    let out = model.forward(&input)?;
    store.keep(&parts, &out)
}

/// `jobs`' inputs padded to the longest, `[T, B, I]`, and their lengths.
fn pad(jobs: &[Job]) -> (Array3<f32>, Vec<usize>) {
    let steps = jobs.iter().map(|j| j.x.nrows()).max().unwrap_or(1);
    let width = jobs[0].x.ncols();
    let mut x = Array3::<f32>::zeros((steps, jobs.len(), width));
    let mut lens = Vec::with_capacity(jobs.len());
    for (b, job) in jobs.iter().enumerate() {
        x.slice_mut(s![..job.x.nrows(), b, ..]).assign(&job.x);
        lens.push(job.x.nrows());
    }
    (x, lens)
}

/// The cellular batcher: each job submitted on the thread that hands it over (a stream's
/// chunks fed to the stream the first one opens, which the last one closes), and reported
/// from its `Pending`'s waker, on the batcher's thread, the moment its answer is delivered —
/// no thread of the load generator's own between the two.
pub fn cellular(batcher: Batcher, done: Sender<Done>) -> Server {
    Server {
        input: None,
        direct: Some(Direct {
            batcher,
            streams: Mutex::new(HashMap::new()),
            done,
        }),
        threads: Vec::new(),
    }
}

/// The cellular batcher and the streams open on it.
struct Direct {
    batcher: Batcher,
    streams: Mutex<HashMap<u64, BatchStream>>,
    done: Sender<Done>,
}

impl Direct {
    fn submit(&self, job: Job) {
        let waiting = {
            let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            submit(&self.batcher, &mut streams, &job)
        };
        match waiting {
            Ok(waiting) => Arc::new(Notify {
                tag: job.tag,
                scheduled: job.scheduled,
                waiting: Mutex::new(Some(waiting)),
                done: self.done.clone(),
            })
            .poll(),
            Err(_) => {
                let _ = self.done.send(Done {
                    tag: job.tag,
                    scheduled: job.scheduled,
                    finished: Instant::now(),
                    ok: false,
                });
            }
        }
    }
}

/// Hands `job` to the batcher.
fn submit(
    batcher: &Batcher,
    streams: &mut HashMap<u64, BatchStream>,
    job: &Job,
) -> Result<Waiting, Error> {
    let Part::Chunk {
        stream,
        first,
        last,
    } = job.part
    else {
        return Ok(Waiting::Whole(batcher.submit(Request::new(job.x.view()))?));
    };
    if first {
        streams.insert(stream, batcher.open_stream()?);
    }
    let open = streams
        .get(&stream)
        .ok_or_else(|| Error::Internal(format!("stream {stream} continued before its start")))?;
    let pending = open.feed(job.x.view());
    if last {
        if let Some(open) = streams.remove(&stream) {
            open.close();
        }
    }
    Ok(Waiting::Chunk(pending?))
}

/// A request the batcher has not answered yet.
enum Waiting {
    Whole(Pending<Response>),
    Chunk(Pending<Array2<f32>>),
}

impl Waiting {
    /// Whether it has been answered, and with success.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        match self {
            Waiting::Whole(p) => Pin::new(p).poll(cx).map(|r| r.is_ok()),
            Waiting::Chunk(p) => Pin::new(p).poll(cx).map(|r| r.is_ok()),
        }
    }
}

/// A request waiting for its answer; polled when submitted and again when woken.
struct Notify {
    tag: u64,
    scheduled: Instant,
    waiting: Mutex<Option<Waiting>>,
    done: Sender<Done>,
}

impl Notify {
    /// Reports the request if its answer has come (once).
    fn poll(self: Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = waiting.as_mut() else {
            return;
        };
        if let Poll::Ready(ok) = pending.poll(&mut Context::from_waker(&waker)) {
            *waiting = None;
            let _ = self.done.send(Done {
                tag: self.tag,
                scheduled: self.scheduled,
                finished: Instant::now(),
                ok,
            });
        }
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.poll();
    }
}
