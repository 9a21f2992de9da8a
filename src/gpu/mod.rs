//! The GPU path. Data flows one way, each layer using only those below it:
//!
//! | module | job |
//! |---|---|
//! | `context` | adapter, device, queue and the pipeline cache ([`GpuContext`]) |
//! | `model` | [`GpuModel`]: upload once; forward = plan → workspace → execute → output |
//! | `options` | [`ForwardOptions`] and [`ForwardStats`]: per-call settings and figures |
//! | `stream`, `split` | [`GpuStream`] and [`forward_split`], built on the model |
//! | `execute` | one forward on a workspace: record, submit once, read back once |
//! | `workspace` | buffers and bind groups for a capacity, and the pool that lends them |
//! | `tune` | kernel variants chosen by measurement, per device and shape class |
//! | `weights` | the model's weights on the device |
//! | `plan` | pure arithmetic: buffer sizes, dispatches and chunks for an input and the limits |
//! | `pack` | weights repacked on the host into the kernels' layout |
//! | `kernels` | one module per WGSL file: specialisation, bindings, parameters, dispatch size |
//! | `device` | error scopes, buffers, readback and timestamps on a bare wgpu device |
//!
//! A forward of an `L`-layer model over `T` steps records `L · (T + 1)` dispatches (stepwise
//! kernel) or `2 · L` (whole-sequence kernel) into one command encoder — per layer, one input
//! projection for all time steps and both directions, then the fused steps (plus two
//! projection GEMMs per layer for an LSTM with `proj_size`) — submits once and reads back once.

mod catalog;
pub mod ceiling;
pub mod context;
mod device;
mod execute;
pub(crate) mod kernels;
mod model;
mod options;
mod pack;
mod plan;
pub mod split;
pub mod stream;
pub(crate) mod table;
mod tune;
mod weights;
mod workspace;

pub use crate::weights::WeightsDtype;
pub use catalog::{catalog as kernel_catalog, KernelSource};
pub use ceiling::{gemm_ceiling, GemmCeiling};
pub use context::{list_adapters, AdapterSummary, ContextOptions, GpuContext};
pub use kernels::gemm::GemmVariant;
pub use kernels::step::StepVariant;
pub use model::GpuModel;
pub use options::{ForwardOptions, ForwardStats, UploadOptions, WeightsStorage};
pub use split::forward_split;
pub use stream::GpuStream;
pub use tune::TuneRecord;
