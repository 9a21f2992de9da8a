//! The CPU path: the fallback where no adapter exists, the baseline of the benchmark, and the
//! reference the GPU results are tested against.
//!
//! Two engines run the same equations:
//!
//! - [`Engine::Fast`] (the default): weights packed once per model with a hidden unit's gates
//!   side by side, one product per time step with the activations and the cell update in its
//!   epilogue, SIMD kernels (AVX2/FMA when the processor has them), and one team of threads
//!   for the whole forward on the model's own pool. Work is split by hidden units, never
//!   along a sum, so results are bit-identical whatever the thread count.
//! - [`Engine::Reference`]: the equations as written, with `ndarray`; the oracle of the tests.
//!   It also runs the models whose gates have ONNX's options (other activation functions,
//!   `clip`, `input_forget`, a GRU's reset before its linear part:
//!   [`RnnSpec::plain_gates`](crate::RnnSpec::plain_gates) is false), which the fast engine's
//!   fused epilogues do not compute; [`CpuModel::engine`] tells which one a model runs.
//!
//! The two differ by float32 rounding only (the order of the sums, fused multiply-adds, σ and
//! tanh: the reference computes them from `f32::exp`, the fast engine with polynomials of its
//! own); the reference uses none of the fast engine's code.
//!
//! ```text
//! mod.rs        CpuModel and Engine: which engine a model runs, its threads
//! stream.rs     CpuStream: a sequence fed chunk by chunk
//! reference/    the plain engine: the forward (mod.rs), the cell equations (cells.rs)
//! fast/         the fast engine: the forward (mod.rs), packed weights (pack.rs), one thread's
//!               part (team.rs) and of a time step (step.rs), the product kernel
//!               (kernel.rs) and its epilogues (epilogue.rs), σ and tanh polynomials
//!               (math.rs), the threads' barrier and shared buffers (pool.rs),
//!               cache-line-aligned storage (aligned.rs)
//! ```

mod fast;
mod reference;
mod stream;
pub(crate) mod table;

pub use stream::CpuStream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::tensor::{Forward, Input, Output};
use crate::weights::{Weights, WeightsDtype};

use fast::FastModel;

/// Which implementation a [`CpuModel`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Packed weights, fused SIMD kernels, a persistent thread pool.
    Fast,
    /// The plain implementation of the equations, the tests' oracle.
    Reference,
}

/// A model that runs on the CPU.
///
/// ```
/// use ndarray::Array3;
/// use wgpu_lstm::{CpuModel, Forward, Input, RnnSpec, Weights};
/// let spec = RnnSpec::lstm(3, 5).layers(2);
/// let model = CpuModel::new(Weights::random(&spec, 7)?);
/// let x = Array3::<f32>::ones((4, 2, 3)); // [T, B, I]
/// let out = model.forward(&Input::new(x.view()))?;
/// assert_eq!(out.y.shape(), &[4, 2, 5]);
/// assert_eq!(out.h_n.shape(), &[2, 2, 5]);
/// // The same model on one thread gives the same bits.
/// let one = CpuModel::with_threads(Weights::random(&spec, 7)?, 1)?;
/// assert_eq!(one.forward(&Input::new(x.view()))?, out);
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CpuModel {
    weights: Weights,
    dtype: WeightsDtype,
    fast: Option<Arc<FastModel>>,
    threads: usize,
    min_work_per_thread: usize,
    pool: Arc<Pool>,
}

/// Multiply-adds of one time step below which a second thread does not pay: the threads meet
/// at a barrier after every step, which costs a fraction of a microsecond when both run, and a
/// step this small takes about a microsecond on one core.
pub const MIN_WORK_PER_THREAD: usize = 32_768;

/// Forwards with short steps (see `fast::SHORT_STEP_WORK`) that run on one thread after one
/// whose team went solo, before the model tries its threads again.
const SOLO_FORWARDS: usize = 16;

/// The model's worker threads, started at the first forward that uses more than one thread.
/// One forward uses them at a time (its threads wait for each other at barriers, so two
/// forwards sharing them could wait for each other forever); a forward that finds them busy
/// runs on its calling thread alone, with the same results.
#[derive(Debug, Default)]
struct Pool {
    threads: OnceLock<Option<rayon::ThreadPool>>,
    busy: Mutex<()>,
    /// Forwards with short steps left to run on one thread (see [`SOLO_FORWARDS`]).
    solo: AtomicUsize,
}

impl CpuModel {
    /// The fast engine on [`CpuModel::default_threads`] threads; packs the weights. (The
    /// reference engine for a model with ONNX's gate options, see the [module](self) docs.)
    pub fn new(weights: Weights) -> Self {
        Self::build(weights, Engine::Fast, Self::default_threads())
    }

    /// The fast engine on `threads` threads (at least 1); packs the weights.
    pub fn with_threads(weights: Weights, threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::InvalidInput(
                "the CPU model needs at least one thread".into(),
            ));
        }
        Ok(Self::build(weights, Engine::Fast, threads))
    }

    /// The reference engine: the equations as written, the oracle of the tests.
    pub fn reference(weights: Weights) -> Self {
        Self::build(weights, Engine::Reference, Self::default_threads())
    }

    fn build(weights: Weights, engine: Engine, threads: usize) -> Self {
        let fast = (engine == Engine::Fast && FastModel::computes(weights.spec()))
            .then(|| Arc::new(FastModel::new(&weights, false)));
        CpuModel {
            weights,
            dtype: WeightsDtype::F32,
            fast,
            threads,
            min_work_per_thread: MIN_WORK_PER_THREAD,
            pool: Arc::default(),
        }
    }

    /// The cores this process may run on (`std::thread::available_parallelism`, which follows
    /// CPU affinity: `taskset -c 0` gives 1), the default thread count.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The weights this model runs.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The model with its weight matrices stored and multiplied as `dtype`:
    /// [`WeightsDtype::I8`] repacks them as eight-bit integers with a scale per output row
    /// and computes every product in integers (the scheme: [`WeightsDtype::I8`]), for every
    /// cell, direction and option the fast engine runs; [`WeightsDtype::F32`] as given.
    /// [`CpuModel::weights`] stays the float32 weights given.
    ///
    /// # Errors
    /// [`WeightsDtype::F16`] (a GPU storage type: on the CPU, run
    /// [`Weights::rounded`](crate::Weights::rounded) weights for its results); `I8` for a model the fast engine
    /// does not run (the reference engine, or ONNX's gate options) or with more than
    /// 66 000 input features or hidden units (the int32 sums' bound).
    ///
    /// ```
    /// use ndarray::Array3;
    /// use wgpu_lstm::{CpuModel, Forward, Input, RnnSpec, Weights, WeightsDtype};
    /// let weights = Weights::random(&RnnSpec::lstm(16, 32), 7)?;
    /// let exact = CpuModel::new(weights.clone());
    /// let int8 = CpuModel::new(weights).weights_dtype(WeightsDtype::I8)?;
    /// let x = Array3::from_shape_fn((20, 3, 16), |(t, b, i)| ((t + 2 * b + 3 * i) as f32 * 0.1).sin());
    /// let (a, b) = (exact.forward(&Input::new(x.view()))?, int8.forward(&Input::new(x.view()))?);
    /// let worst = a.y.iter().zip(&b.y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    /// assert!(worst < 0.05, "{worst}");
    /// # Ok::<(), wgpu_lstm::Error>(())
    /// ```
    pub fn weights_dtype(mut self, dtype: WeightsDtype) -> Result<Self> {
        self.set_dtype(dtype)?;
        Ok(self)
    }

    /// [`CpuModel::weights_dtype`] in place; on an error the model is left as it was.
    pub(crate) fn set_dtype(&mut self, dtype: WeightsDtype) -> Result<()> {
        match dtype {
            WeightsDtype::F32 => {
                if self.dtype != WeightsDtype::F32 {
                    self.fast = Some(Arc::new(FastModel::new(&self.weights, false)));
                }
            }
            WeightsDtype::F16 => {
                return Err(Error::InvalidInput(
                    "float16 weights are a GPU storage type; on the CPU run Weights::rounded(WeightsDtype::F16)".into(),
                ))
            }
            WeightsDtype::I8 => {
                if self.fast.is_none() {
                    return Err(Error::InvalidInput(
                        "int8 weights run on the fast engine, which this model does not use (the reference engine, or ONNX's gate options)".into(),
                    ));
                }
                let spec = self.weights.spec();
                let widest = (0..spec.num_layers)
                    .map(|l| spec.layer_input_size(l))
                    .chain([spec.hidden_size, spec.hidden_out()])
                    .max()
                    .unwrap_or(0);
                if widest > crate::quant::MAX_K {
                    return Err(Error::InvalidInput(format!(
                        "int8 weights: a product over {widest} features exceeds the int32 sums' bound of {}",
                        crate::quant::MAX_K
                    )));
                }
                self.fast = Some(Arc::new(FastModel::new(&self.weights, true)));
            }
        }
        self.dtype = dtype;
        self.pool = Arc::default();
        Ok(())
    }

    /// How the weight matrices are stored and multiplied (see [`CpuModel::weights_dtype`]).
    pub fn dtype(&self) -> WeightsDtype {
        self.dtype
    }

    /// Which engine this model runs.
    pub fn engine(&self) -> Engine {
        if self.fast.is_some() {
            Engine::Fast
        } else {
            Engine::Reference
        }
    }

    /// Threads a forward may use. The fast engine uses fewer when a time step has less than
    /// [`CpuModel::min_work_per_thread`] multiply-adds per thread, or fewer tiles of hidden
    /// units than threads; the results are the same bits either way.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Sets the multiply-adds per time step and thread below which a forward uses fewer
    /// threads (default [`MIN_WORK_PER_THREAD`]; 0: always every thread that has a tile).
    pub fn min_work_per_thread(mut self, multiply_adds: usize) -> Self {
        self.min_work_per_thread = multiply_adds;
        self
    }

    /// Threads a forward over `batch` sequences uses.
    fn threads_for(&self, fast: &FastModel, batch: usize) -> usize {
        let work = fast.step_work(batch);
        let useful = work
            .checked_div(self.min_work_per_thread)
            .map_or(usize::MAX, |n| n.max(1));
        self.threads.min(useful).min(fast.step_items()).max(1)
    }

    /// The instruction set of the fast engine's kernels (`avx512`, `avx2+fma`, `neon` or
    /// `portable`), `None` for the reference engine. The best the processor has, unless the
    /// `WGPU_LSTM_CPU_ISA` environment variable names a lesser one when the model is built
    /// (`avx2` on an AVX-512 core, or `portable`), to measure that path on a faster core.
    /// With eight-bit weights the products are integer ones: `vpdpbusd` where the core has
    /// VNNI (`avx512-vnni int8`, `avx-vnni int8`), else AVX2's (`avx2 int8`) or the portable
    /// loop (`portable int8`); `WGPU_LSTM_CPU_ISA=avxvnni` or `avx2` names a lesser one.
    pub fn kernel(&self) -> Option<&'static str> {
        self.fast.as_ref().map(|f| {
            if f.int8() {
                f.int_isa().name()
            } else {
                f.isa().name()
            }
        })
    }

    /// The model's worker threads, started on first use (`None` if they cannot be).
    fn worker_pool(&self, fast: &FastModel) -> Option<&rayon::ThreadPool> {
        self.pool
            .threads
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads.min(fast.step_items()))
                    .thread_name(|i| format!("wgpu-lstm-cpu-{i}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// How many forwards may usefully run at once, each on its own thread with
    /// [`CpuModel::forward_alone`]: the model's threads (the fast engine), else 1.
    pub(crate) fn lanes(&self) -> usize {
        if self.fast.is_some() {
            self.threads
        } else {
            1
        }
    }

    /// A forward on the calling thread alone (the reference engine: its forward). Several
    /// run side by side on their own threads without meeting at a barrier at every step, as
    /// a team does: the batcher's rounds, whose steps are short, run this way.
    pub(crate) fn forward_alone(&self, input: &Input<'_>) -> Result<Output> {
        match &self.fast {
            Some(fast) => fast.forward(input, None, 1).map(|(out, _)| out),
            None => reference::forward(&self.weights, input),
        }
    }
}

impl Forward for CpuModel {
    fn forward(&self, input: &Input<'_>) -> Result<Output> {
        let Some(fast) = &self.fast else {
            return reference::forward(&self.weights, input);
        };
        let batch = input.steps_and_batch().1;
        let threads = self.threads_for(fast, batch);
        let one = |input| fast.forward(input, None, 1).map(|(out, _)| out);
        if threads <= 1 {
            return one(input);
        }
        let short = fast.step_work(batch) < fast::SHORT_STEP_WORK * threads;
        if short {
            let solo = &self.pool.solo;
            let left = solo.load(Ordering::Relaxed);
            if left > 0 {
                solo.store(left - 1, Ordering::Relaxed);
                return one(input);
            }
        }
        let Ok(_busy) = self.pool.busy.try_lock() else {
            return one(input);
        };
        let Some(pool) = self.worker_pool(fast) else {
            return one(input);
        };
        let (out, went_solo) = fast.forward(input, Some(pool), threads)?;
        if went_solo {
            self.pool.solo.store(SOLO_FORWARDS, Ordering::Relaxed);
        }
        Ok(out)
    }
}
