//! Many callers, one model: cellular batching of independent requests and live streams.
//!
//! A [`Batcher`] owns a model ([`GpuModel`] or [`CpuModel`]) and one scheduling thread. Any
//! number of threads share it (its handle is `Clone + Send + Sync`) and send it one-shot
//! [`Request`]s (a whole sequence `[T, I]`, optionally with `h0`/`c0`) or open
//! [`BatchStream`]s (unidirectional models) and feed them chunks of any length.
//!
//! **Cellular batching** (Gao et al., EuroSys 2018): the thread runs *rounds*. Each round
//! takes the sequences that have steps to run, oldest work first, up to
//! [`max_batch`](BatcherOptions::max_batch) of them, and advances each by up to
//! [`quantum`](BatcherOptions::quantum) steps in one forward with per-sequence lengths.
//! Sequences join and leave between rounds: a long request never holds a short one behind it,
//! and a stream's chunk never waits for another stream's whole utterance. A bidirectional
//! model cannot be advanced piecewise; its requests run whole, batched with others in one
//! round (lengths mask the shorter ones), and it takes no streams.
//!
//! **State stays where the model runs.** Every open sequence holds one slot of a state
//! table. On the GPU the table is two device buffers: a round's forward starts with a
//! dispatch that gathers its rows' `h`/`c` from their slots and ends with one that scatters
//! the final states back, in the same submission — no state is read back between rounds;
//! only `y` comes back (and `h_n`/`c_n` of requests that finish). On the CPU the table is one
//! host array, and a round's forward runs on one of the model's threads (its *lanes*): with
//! two threads two rounds run side by side, each on its own rows, while the scheduling thread
//! answers the rounds that ended and plans the next — no thread meets another at a barrier
//! at every step, and no core waits for the answering. A round's rows run longest first, so
//! that no step computes a row that has ended.
//!
//! **Results** are those of the same sequence run alone through
//! [`Forward::forward`](crate::Forward::forward), within
//! [`Tolerance::GPU_VS_CPU`](crate::compare::Tolerance::GPU_VS_CPU): a round runs the
//! model's own kernels on a batch whose composition changes which kernel variant and batch
//! tile the GPU's tuner picks, and how the CPU's fast engine tiles rows, and so the rounding
//! of float32 sums (worst seen in the tests: 3·10⁻⁷). With the CPU's reference engine
//! ([`CpuModel::reference`]) they are bit for bit the same.
//!
//! **Policy** ([`BatcherOptions`]): the largest round, the quantum, how long ready work may
//! wait for company, a bounded queue and table ([`Error::Busy`] beyond
//! them, nothing admitted), and an idle timeout for streams. A request's
//! [`deadline`](Request::deadline) fails it with
//! [`Error::DeadlineExceeded`]; dropping its [`Pending`]
//! cancels it. [`Batcher::stats`] gives what a service exports.
//!
//! ```
//! use ndarray::Array2;
//! use wgpu_lstm::{Batcher, BatcherOptions, CpuModel, Request, RnnSpec, Weights};
//!
//! let weights = Weights::random(&RnnSpec::lstm(8, 16), 7)?;
//! let batcher = Batcher::new(CpuModel::new(weights), BatcherOptions::default())?;
//! let handles: Vec<_> = (1..=4)
//!     .map(|t| {
//!         let batcher = batcher.clone();
//!         std::thread::spawn(move || {
//!             let x = Array2::<f32>::ones((10 * t, 8));
//!             batcher.run(Request::new(x.view()))
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     let response = h.join().unwrap()?;
//!     assert_eq!(response.h_n.shape(), &[1, 16]);
//! }
//! // A live stream: chunks of any length, the state kept in the table between them.
//! let stream = batcher.open_stream()?;
//! let y = stream.feed(Array2::<f32>::ones((3, 8)).view())?.wait()?;
//! assert_eq!(y.shape(), &[3, 16]);
//! stream.close();
//! # Ok::<(), wgpu_lstm::Error>(())
//! ```

mod lanes;
mod options;
mod pending;
mod plan;
mod queue;
mod request;
mod scheduler;
mod stats;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ndarray::{Array2, ArrayView2};

pub use options::BatcherOptions;
pub use pending::Pending;
pub use request::{Request, Response};
pub use stats::{BatcherStats, Latency};

use crate::cpu::CpuModel;
use crate::error::{Error, Result};
use crate::gpu::GpuModel;
use crate::spec::RnnSpec;
use crate::stream::{check_streamable, StreamState};
use crate::table::StateTable;
use queue::{Queue, Shared};

/// The model a [`Batcher`] runs: `GpuModel` and `CpuModel` convert into it.
#[derive(Debug)]
pub enum BatcherModel {
    /// On a GPU: the state table in device buffers.
    Gpu(GpuModel),
    /// On the CPU: the state table in host memory.
    Cpu(CpuModel),
}

impl From<GpuModel> for BatcherModel {
    fn from(m: GpuModel) -> Self {
        BatcherModel::Gpu(m)
    }
}

impl From<CpuModel> for BatcherModel {
    fn from(m: CpuModel) -> Self {
        BatcherModel::Cpu(m)
    }
}

/// A model served to many callers by cellular batching (see the [module
/// documentation](self)). Cloning gives another handle to the same batcher; the last handle
/// dropped shuts it down (finishing what was admitted).
#[derive(Debug, Clone)]
pub struct Batcher {
    inner: Arc<Inner>,
}

/// The handles' shared part: the state shared with the thread, and the thread.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shut_down();
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

impl Batcher {
    /// Starts a batcher on `model` with `options`: creates the state table
    /// ([`max_sequences`](BatcherOptions::max_sequences) slots) and the scheduling thread.
    /// Fails where an option is 0, the table exceeds the device's limits, or (unidirectional
    /// models) a round of `quantum` steps × `max_batch` rows does not fit the device in one
    /// forward.
    pub fn new(model: impl Into<BatcherModel>, options: BatcherOptions) -> Result<Batcher> {
        options.check()?;
        let table: Box<dyn StateTable> = match model.into() {
            BatcherModel::Gpu(m) => Box::new(crate::gpu::table::GpuTable::new(
                m,
                options.max_sequences,
                options.max_batch,
                options.quantum,
            )?),
            BatcherModel::Cpu(m) => {
                Box::new(crate::cpu::table::CpuTable::new(m, options.max_sequences))
            }
        };
        let spec = table.spec().clone();
        if spec.num_directions() == 1 && !table.fits(options.quantum, options.max_batch) {
            return Err(Error::InvalidInput(format!(
                "a round of {} steps (quantum) × {} sequences (max_batch) exceeds the device's \
                 limits; lower one of them",
                options.quantum, options.max_batch
            )));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue::new(options.max_sequences)),
            wake: std::sync::Condvar::new(),
            table_bytes: table.bytes(),
            options,
            spec,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wgpu-lstm batcher".into())
            .spawn(move || scheduler::run(thread_shared, table))
            .map_err(|e| Error::Internal(format!("cannot start the batcher's thread: {e}")))?;
        Ok(Batcher {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The model's description.
    pub fn spec(&self) -> &RnnSpec {
        &self.shared().spec
    }

    /// The policy it runs with.
    pub fn options(&self) -> &BatcherOptions {
        &self.shared().options
    }

    /// Admits a one-shot request; its [`Response`] comes through the returned [`Pending`]
    /// (block with [`Pending::wait`] or `.await` it). Fails at once — nothing admitted — on a
    /// shape error, with [`Error::Busy`] when the queue or the state table is full, and with
    /// [`Error::Closed`] after [`shutdown`](Self::shutdown).
    pub fn submit(&self, request: Request<'_>) -> Result<Pending<Response>> {
        let admitted = request.admit(self.spec())?;
        self.shared().submit(admitted)
    }

    /// [`submit`](Self::submit), then waits for the response.
    pub fn run(&self, request: Request<'_>) -> Result<Response> {
        self.submit(request)?.wait()
    }

    /// Opens a stream from zero state (unidirectional models only). It holds a slot of the
    /// state table until closed, dropped, or idle for
    /// [`stream_idle_timeout`](BatcherOptions::stream_idle_timeout).
    pub fn open_stream(&self) -> Result<BatchStream> {
        self.open_stream_from(None, None)
    }

    /// Opens a stream from `h0` `[L, H_out]` and, for an LSTM, `c0` `[L, H]` (zeros for
    /// those not given).
    pub fn open_stream_from(
        &self,
        h0: Option<ArrayView2<'_, f32>>,
        c0: Option<ArrayView2<'_, f32>>,
    ) -> Result<BatchStream> {
        check_streamable(self.spec())?;
        let state = request::initial_state(self.spec(), h0, c0)?;
        let id = self.shared().open_stream(state)?;
        Ok(BatchStream {
            batcher: self.clone(),
            id,
            closed: false,
        })
    }

    /// The figures since the batcher started.
    pub fn stats(&self) -> BatcherStats {
        let shared = self.shared();
        let q = shared.lock();
        q.counters
            .snapshot(q.queued, q.open_streams, q.seqs.len(), shared.table_bytes)
    }

    /// Stops admitting work ([`Error::Closed`] from then on), finishes what was admitted
    /// (closing streams once their queued chunks have run), and waits for the thread to end.
    pub fn shutdown(&self) {
        self.shared().shut_down();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// A live stream on a [`Batcher`]: each chunk continues from the state the previous one left
/// in its slot of the state table. Chunks run in the order fed. Dropping the handle (or
/// [`close`](Self::close)) closes the stream once its queued chunks have run.
#[derive(Debug)]
pub struct BatchStream {
    batcher: Batcher,
    id: u64,
    closed: bool,
}

impl BatchStream {
    /// Queues a chunk `[t, I]` (any `t ≥ 1`); its output `[t, H_out]` comes through the
    /// [`Pending`]. Dropping that `Pending` does not cancel the chunk: it runs anyway, so
    /// that the stream's state stays defined. Fails at once with [`Error::Busy`] when the
    /// queue is full and with [`Error::Closed`] once the stream is closed.
    pub fn feed(&self, chunk: ArrayView2<'_, f32>) -> Result<Pending<Array2<f32>>> {
        let spec = self.batcher.spec();
        let x = request::check_steps(spec, chunk, "chunk")?;
        self.batcher.shared().feed(self.id, x)
    }

    /// The stream's state once the chunks fed before have run: `h` `[L, 1, H_out]` and,
    /// for an LSTM, `c` `[L, 1, H]` (the layout of [`Stream::state`](crate::Stream::state)).
    pub fn state(&self) -> Result<StreamState> {
        let s = self.batcher.shared().read_state(self.id)?.wait()?;
        let (l, w) = s.h.dim();
        let h = s.h.into_shape_with_order((l, 1, w));
        let c = s.c.map(|c| {
            let (l, w) = c.dim();
            c.into_shape_with_order((l, 1, w))
        });
        let err = |e: ndarray::ShapeError| Error::Internal(format!("stream state: {e}"));
        Ok(StreamState {
            h: h.map_err(err)?,
            c: c.transpose().map_err(err)?,
        })
    }

    /// Queues a read of the state after the chunks fed before; the state comes through the
    /// `Pending` as the table holds it (`h` `[L, H_out]`, `c` `[L, H]`).
    #[cfg(feature = "serve")]
    pub(crate) fn queue_state_read(&self) -> Result<Pending<crate::table::SlotState>> {
        self.batcher.shared().read_state(self.id)
    }

    /// Closes the stream once its queued chunks have run, freeing its slot.
    pub fn close(mut self) {
        self.closed = true;
        self.batcher.shared().close(self.id);
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        if !self.closed {
            self.batcher.shared().close(self.id);
        }
    }
}
