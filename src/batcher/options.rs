//! The batcher's policy: how large a round may be, how far it advances each sequence, how
//! long work may wait for company, and how much it admits.

use std::time::Duration;

use crate::error::{Error, Result};

/// The policy of a [`Batcher`](crate::Batcher). Every field has a builder method of its name.
///
/// ```
/// use std::time::Duration;
/// use wgpu_lstm::BatcherOptions;
///
/// let options = BatcherOptions::default()
///     .max_batch(32)
///     .quantum(8)
///     .max_queue_delay(Duration::from_millis(2))
///     .max_sequences(512);
/// assert_eq!(options.max_batch, 32);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BatcherOptions {
    /// The most sequences one round advances (default 64). Larger rounds use the device
    /// better; each round then takes longer.
    pub max_batch: usize,
    /// The most steps a round advances each sequence of a unidirectional model (default 16).
    /// A small quantum lets sequences join and leave often (short requests and stream chunks
    /// wait less behind long ones); a large one makes fewer, longer rounds. When every
    /// sequence ready to run fits in the round (no one waits to join), the round runs up to
    /// 4 quanta: fewer fixed costs per step at light load (a sequence arriving meanwhile
    /// waits for it, unless another lane is free: on the CPU, one per thread).
    /// Bidirectional models run each request whole in one round.
    pub quantum: usize,
    /// How long ready work may wait for more to join its round before the round runs anyway
    /// (default 0: a round starts as soon as the device is free).
    pub max_queue_delay: Duration,
    /// The most requests and stream chunks admitted and not yet finished (default 4096);
    /// beyond it a submission fails with [`Error::Busy`] instead of queueing without limit.
    pub max_queue: usize,
    /// Slots of the state table: the most one-shot requests in flight and streams open at
    /// once (default 1024). Each holds one slot from admission to its end; beyond it a
    /// submission or an `open_stream` fails with [`Error::Busy`].
    pub max_sequences: usize,
    /// A stream with no work for this long is closed and its slot freed (default 60 s).
    pub stream_idle_timeout: Duration,
}

impl Default for BatcherOptions {
    fn default() -> Self {
        BatcherOptions {
            max_batch: 64,
            quantum: 16,
            max_queue_delay: Duration::ZERO,
            max_queue: 4096,
            max_sequences: 1024,
            stream_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl BatcherOptions {
    /// Sets [`max_batch`](Self::max_batch).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Sets [`quantum`](Self::quantum).
    pub fn quantum(mut self, steps: usize) -> Self {
        self.quantum = steps;
        self
    }

    /// Sets [`max_queue_delay`](Self::max_queue_delay).
    pub fn max_queue_delay(mut self, delay: Duration) -> Self {
        self.max_queue_delay = delay;
        self
    }

    /// Sets [`max_queue`](Self::max_queue).
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n;
        self
    }

    /// Sets [`max_sequences`](Self::max_sequences).
    pub fn max_sequences(mut self, n: usize) -> Self {
        self.max_sequences = n;
        self
    }

    /// Sets [`stream_idle_timeout`](Self::stream_idle_timeout).
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// Checks that every count is at least 1.
    pub(crate) fn check(&self) -> Result<()> {
        for (name, v) in [
            ("max_batch", self.max_batch),
            ("quantum", self.quantum),
            ("max_queue", self.max_queue),
            ("max_sequences", self.max_sequences),
        ] {
            if v == 0 {
                return Err(Error::InvalidInput(format!(
                    "batcher option `{name}` must be at least 1"
                )));
            }
        }
        Ok(())
    }
}
