//! The GPU path: wgpu context, WGSL kernels, and the uploaded model.
//!
//! A forward of an `L`-layer model over `T` steps records `L · (T + 1)` dispatches into one
//! command encoder — per layer, one input projection for all time steps and both directions,
//! then one fused step per time step for both directions (plus two projection GEMMs per layer
//! for an LSTM with `proj_size`) — submits once and reads back once.

pub mod ceiling;
pub mod context;
pub(crate) mod kernels;
pub mod model;
mod pack;
pub mod split;
pub mod stream;

pub use ceiling::{gemm_ceiling, GemmCeiling};
pub use context::{list_adapters, AdapterSummary, ContextOptions, GpuContext};
pub use kernels::step::Variant;
pub use kernels::{catalog as kernel_catalog, KernelSource};
pub use model::GpuModel;
pub use split::forward_split;
pub use stream::GpuStream;
