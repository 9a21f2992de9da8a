//! Compute kernels, one folder of `shaders/` each, mirrored here family by family:
//!
//! | module | WGSL | job |
//! |---|---|---|
//! | [`step`] | `shaders/step/` | one fused recurrent time step (or a whole layer's steps) |
//! | [`gemm`] | `shaders/gemm/` | batched matrix products: input and output projections |
//! | [`state`] | `shaders/state/` | a batcher's state table: rows gathered from slots and scattered back |
//! | [`weights`] | `shaders/weights/` | the weight readers every family's module starts with |
//! | [`cache`] | | the pipeline cache and its key, used by the families, never the reverse |
//! | [`bindings`] | | bind-group entries and kernel parameters every family shares |
//!
//! Pipelines are created once per device and specialisation (WGSL `override` values) and kept
//! in a [`cache::KernelCache`]; nothing here is created on the per-forward path once it has
//! been seen.

pub(crate) mod bindings;
pub(crate) mod cache;
#[cfg(test)]
pub(crate) mod contract;
pub(crate) mod gemm;
pub(crate) mod state;
pub(crate) mod step;
pub(crate) mod weights;
