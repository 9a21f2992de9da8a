//! The protocol's sequences on a model: a client's `sequence_id` mapped to a stream of the
//! model's batcher (its state in the batcher's state table), opened by `sequence_start`,
//! continued in the order requests arrive, closed by `sequence_end` or for standing idle.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::batcher::BatchStream;

/// A client's name for a sequence: the protocol allows an unsigned integer (not 0) or a
/// string (not empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SeqId {
    Num(u64),
    Text(String),
}

impl std::fmt::Display for SeqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeqId::Num(n) => write!(f, "{n}"),
            SeqId::Text(s) => write!(f, "\"{s}\""),
        }
    }
}

/// An open sequence: its stream and when a request last used it.
#[derive(Debug)]
pub(crate) struct Open {
    pub stream: BatchStream,
    pub last_used: Instant,
}

/// The open sequences of one model.
#[derive(Debug)]
pub(crate) struct Sequences {
    map: Mutex<HashMap<SeqId, Open>>,
    /// A sequence unused this long is forgotten (its stream, closed by the batcher after the
    /// same time, has already freed its slot).
    idle: Duration,
}

impl Sequences {
    pub fn new(idle: Duration) -> Self {
        Sequences {
            map: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// The map, locked: a request's lookup, feed and (at its end) removal happen under it, so
    /// that the requests of one sequence reach the batcher in the order they arrived.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<SeqId, Open>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open sequences.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Forgets the sequences unused for longer than the idle timeout; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, open| now.saturating_duration_since(open.last_used) <= self.idle);
        before - map.len()
    }
}
