//! The load generator's loop: hands each request to a server when it is due, and each live
//! stream's next chunk when its previous one has been answered and its own time has come
//! (a stream's chunks cannot overtake each other: each continues from the state the one
//! before it left).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ndarray::{s, Array2};

use super::servers::{Done, Job, Server};
use super::streams::Part;

/// One caller's work: a one-shot request, or a live stream sent in chunks.
pub struct Utterance {
    /// When it arrives (a stream: when its first chunk does).
    pub due: Instant,
    pub x: Array2<f32>,
    pub stream: bool,
}

/// How a stream's chunks come.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    /// Steps per chunk.
    pub steps: usize,
    /// Time between a live stream's chunks (`None`: each as soon as the one before it is
    /// answered).
    pub interval: Option<Duration>,
}

/// What a run's requests met: one record per utterance (from its arrival to its last
/// answer), the one-shot requests' among them, and one per stream chunk (from the chunk's
/// own arrival).
pub struct Outcome {
    pub utterances: Vec<Done>,
    pub whole: Vec<Done>,
    pub chunks: Vec<Done>,
}

/// Runs `utterances` through `server` (whose answers arrive on `done`) until every one has
/// been answered or failed.
pub fn drive(
    server: &Server,
    done: &Receiver<Done>,
    utterances: &[Utterance],
    chunking: Chunking,
) -> Outcome {
    let chunks_of = |u: &Utterance| {
        if u.stream {
            u.x.nrows().div_ceil(chunking.steps)
        } else {
            1
        }
    };
    // (due, utterance, chunk), earliest first.
    let mut queue: BinaryHeap<Reverse<(Instant, usize, usize)>> = utterances
        .iter()
        .enumerate()
        .map(|(i, u)| Reverse((u.due, i, 0)))
        .collect();
    // Per tag (one per job handed over): its utterance and chunk.
    let mut tags: Vec<(usize, usize)> = Vec::new();
    let mut out = Outcome {
        utterances: Vec::with_capacity(utterances.len()),
        whole: Vec::new(),
        chunks: Vec::new(),
    };
    while out.utterances.len() < utterances.len() {
        let now = Instant::now();
        while let Some(&Reverse((due, i, k))) = queue.peek() {
            if due > now {
                break;
            }
            queue.pop();
            server.submit(job(&utterances[i], k, i, tags.len() as u64, due, chunking));
            tags.push((i, k));
        }
        let answer = match queue.peek() {
            Some(Reverse((due, ..))) => match done.recv_timeout(due.saturating_duration_since(now))
            {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match done.recv() {
                Ok(answer) => answer,
                Err(_) => break,
            },
        };
        let Some(&(i, k)) = tags.get(answer.tag as usize) else {
            continue;
        };
        let u = &utterances[i];
        if u.stream {
            out.chunks.push(answer);
        }
        if answer.ok && k + 1 < chunks_of(u) {
            let due = chunking
                .interval
                .map_or(answer.finished, |every| u.due + every * (k as u32 + 1));
            queue.push(Reverse((due.max(answer.finished), i, k + 1)));
        } else {
            let finished = Done {
                scheduled: u.due,
                ..answer
            };
            out.utterances.push(finished);
            if !u.stream {
                out.whole.push(finished);
            }
        }
    }
    out
}

/// Chunk `k` of utterance `i` (the whole of a one-shot request) as a job due at `due`.
fn job(u: &Utterance, k: usize, i: usize, tag: u64, due: Instant, chunking: Chunking) -> Job {
    if !u.stream {
        return Job {
            tag,
            scheduled: due,
            x: u.x.clone(),
            part: Part::Whole,
        };
    }
    let start = k * chunking.steps;
    let end = (start + chunking.steps).min(u.x.nrows());
    Job {
        tag,
        scheduled: due,
        x: u.x.slice(s![start..end, ..]).to_owned(),
        part: Part::Chunk {
            stream: i as u64,
            first: k == 0,
            last: end == u.x.nrows(),
        },
    }
}
