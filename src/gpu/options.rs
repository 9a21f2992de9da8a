//! The settings a GPU forward takes and the statistics it returns, per call, so that threads
//! sharing one model neither change each other's behaviour nor read each other's figures.

use crate::gpu::kernels::bindings::WeightsBinding;
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::kernels::step::StepVariant;
use crate::weights::WeightsDtype;

/// Where a model's weights live on the device and how the kernels read them; the values read
/// are the same bits either way, so results do not depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WeightsStorage {
    /// Chosen by measurement on the device at the first upload (a GEMM timed reading its
    /// weights each way; kept with the context and in the tuning cache).
    #[default]
    Auto,
    /// A read-only storage buffer.
    Buffer,
    /// A 2D texture (`rgba32float`, or `rgba16float` for float16 weights) read with
    /// `textureLoad`; models whose weights exceed the device's texture size, and int8
    /// weights, use a buffer.
    Texture,
}

impl WeightsStorage {
    /// The storages a choice is made between.
    pub const CHOICES: [WeightsStorage; 2] = [WeightsStorage::Buffer, WeightsStorage::Texture];

    /// Lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WeightsStorage::Auto => "auto",
            WeightsStorage::Buffer => "buffer",
            WeightsStorage::Texture => "texture",
        }
    }

    /// How the kernels bind weights kept here (`Auto`, before a choice: a buffer).
    pub(crate) fn binding(self) -> WeightsBinding {
        match self {
            WeightsStorage::Texture => WeightsBinding::Texture,
            WeightsStorage::Auto | WeightsStorage::Buffer => WeightsBinding::Buffer,
        }
    }
}

/// Settings of an upload ([`GpuModel::upload_with`](crate::GpuModel::upload_with)), fixed for
/// the model's life.
///
/// ```
/// use wgpu_lstm::{UploadOptions, WeightsDtype, WeightsStorage};
/// let options = UploadOptions::default()
///     .weights(WeightsDtype::F16)
///     .storage(WeightsStorage::Texture);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadOptions {
    /// The type of the weights on the device (default [`WeightsDtype::F32`]).
    pub weights: WeightsDtype,
    /// Where the weights live on the device (default [`WeightsStorage::Auto`]: chosen by
    /// measurement, once per context); results are the same bits in either.
    pub storage: WeightsStorage,
}

impl UploadOptions {
    /// Sets [`UploadOptions::weights`].
    pub fn weights(mut self, weights: WeightsDtype) -> Self {
        self.weights = weights;
        self
    }

    /// Sets [`UploadOptions::storage`].
    pub fn storage(mut self, storage: WeightsStorage) -> Self {
        self.storage = storage;
        self
    }
}

/// Settings of one GPU forward ([`GpuModel::forward_with`](crate::GpuModel::forward_with)).
///
/// ```
/// use wgpu_lstm::{ForwardOptions, StepVariant};
/// let options = ForwardOptions::default().variant(StepVariant::Stepwise).timing(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardOptions {
    /// How the time steps are dispatched (default [`StepVariant::Auto`]); every variant gives the
    /// same results within float32 rounding.
    pub variant: StepVariant,
    /// Time the forward's compute passes with timestamp queries, where the device supports
    /// them ([`GpuContext::supports_timestamps`](crate::GpuContext::supports_timestamps)); the time comes back in
    /// [`ForwardStats::device_ms`].
    pub timing: bool,
    /// The GEMM kernel of the input and output projections (default [`GemmVariant::Auto`]:
    /// chosen by measurement on the device, for the shape class of the first layer's input
    /// projection); every variant gives bit-identical results.
    pub gemm: GemmVariant,
    /// Batch rows each invocation of the step kernel computes, 1 to 8 (more rows reuse each
    /// weight loaded; fewer give more invocations); results do not depend on it. 0, the
    /// default: chosen by measurement among 1, 2, 4 and 8 for the step kernel that runs and
    /// the shape class. Never more than the batch.
    pub batch_tile: usize,
}

impl ForwardOptions {
    /// Sets [`ForwardOptions::variant`].
    pub fn variant(mut self, variant: StepVariant) -> Self {
        self.variant = variant;
        self
    }

    /// Sets [`ForwardOptions::gemm`].
    pub fn gemm(mut self, gemm: GemmVariant) -> Self {
        self.gemm = gemm;
        self
    }

    /// Sets [`ForwardOptions::batch_tile`].
    pub fn batch_tile(mut self, rows: usize) -> Self {
        self.batch_tile = rows;
        self
    }

    /// Sets [`ForwardOptions::timing`].
    pub fn timing(mut self, timing: bool) -> Self {
        self.timing = timing;
        self
    }
}

/// What one GPU forward did, returned with its result.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Compute dispatches recorded: per layer one input projection and one fused step per
    /// time step (stepwise) or one per layer (sequence), plus two projection GEMMs for an LSTM
    /// with `proj_size`; summed over chunks.
    pub dispatches: usize,
    /// Command submissions (one per chunk).
    pub submits: usize,
    /// Chunks the input ran in (1 unless it exceeded the device's limits).
    pub chunks: usize,
    /// The step kernel that ran (never [`StepVariant::Auto`]; of the first chunk where the input
    /// ran chunked).
    pub variant: StepVariant,
    /// The GEMM kernel that ran (never [`GemmVariant::Auto`]).
    pub gemm: GemmVariant,
    /// Batch rows per invocation of the step kernel that ran.
    pub batch_tile: usize,
    /// Device time of the compute passes in milliseconds, summed over chunks, when timing was
    /// asked for and the device supports it.
    pub device_ms: Option<f64>,
}
