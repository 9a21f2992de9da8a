//! # wgpu-lstm
//!
//! Recurrent-network inference on any GPU that [wgpu] reaches (Vulkan, Metal, DX12, GL),
//! through compute shaders written in WGSL, with a CPU implementation beside it that is the
//! reference for tests, the fallback where no GPU exists, and the baseline of the benchmark.
//!
//! Results equal PyTorch's `nn.LSTM`, `nn.GRU` and `nn.RNN` given the same weights, to float32
//! rounding; peephole LSTMs (Gers / ONNX), LSTM projections (`proj_size`) and per-sequence
//! lengths are supported on both paths.
//!
//! ```no_run
//! use ndarray::Array3;
//! use wgpu_lstm::{ContextOptions, CpuModel, Forward, GpuContext, GpuModel, Input, RnnSpec, Weights};
//!
//! // A 2-layer bidirectional LSTM, 40 input features, 128 hidden units.
//! let spec = RnnSpec::lstm(40, 128).layers(2).bidirectional(true);
//! let weights = Weights::random(&spec, 42)?; // or Weights::from_tensors(&spec, state_dict)
//!
//! let ctx = GpuContext::new(&ContextOptions::default())?; // picks the best adapter
//! let gpu = GpuModel::upload(&ctx, &weights)?;            // repack + upload once
//! let cpu = CpuModel::new(weights);
//!
//! let x = Array3::<f32>::zeros((100, 8, 40)); // [T, B, I]
//! let out = gpu.forward(&Input::new(x.view()))?;
//! assert_eq!(out.y.shape(), &[100, 8, 256]);   // [T, B, D·H]
//! assert_eq!(out.h_n.shape(), &[4, 8, 128]);   // [L·D, B, H]
//! let reference = cpu.forward(&Input::new(x.view()))?;
//! # Ok::<(), wgpu_lstm::Error>(())
//! ```
//!
//! ## Shapes
//!
//! `T` steps, `B` batch, `I` input features, `H` hidden units, `L` layers, `D` directions (2 when
//! bidirectional). Input `x` is `[T, B, I]` (time-major, like PyTorch's default), `[B, T, I]`
//! with [`Input::batch_first`], or `[T, I]` for one unbatched sequence. Optional `h0`/`c0` are
//! `[L·D, B, H]` (`[L·D, H]` unbatched) and default to zeros. The [`Output`] holds `y`
//! `[T, B, D·H]`, `h_n` and `c_n` `[L·D, B, H]`; batch-first and unbatched inputs give outputs in
//! the same convention, and `h_n`/`c_n` are never batch-first.
//!
//! ## Semantics
//!
//! [`Cell::Lstm`] is PyTorch's `nn.LSTM`, gate rows in the order i, f, g, o:
//!
//! ```text
//! i_t = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)
//! f_t = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)
//! g_t = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)
//! o_t = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)
//! c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
//! h_t = o_t ⊙ tanh(c_t)
//! ```
//!
//! With peepholes ([`RnnSpec::peephole`], `weight_ph_l{k}` = `[p_i, p_f, p_o]`), `i_t` and `f_t`
//! add `p_i ⊙ c_{t−1}`, `p_f ⊙ c_{t−1}` and `o_t` adds `p_o ⊙ c_t`. With a projection
//! ([`RnnSpec::proj_size`], `weight_hr_l{k}` `[P, H]`), `h_t = W_hr (o_t ⊙ tanh(c_t))`.
//!
//! [`Cell::Gru`] is `nn.GRU`, rows r, z, n:
//!
//! ```text
//! r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)
//! z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
//! n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
//! h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
//! ```
//!
//! [`Cell::RnnTanh`] / [`Cell::RnnRelu`] are `nn.RNN`:
//! `h_t = tanh|relu(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)`.
//!
//! Layer `k > 0` takes layer `k − 1`'s output (both directions concatenated, forward first).
//! With [`Input::lengths`], batch element `b` runs `len_b` steps: its outputs past that are 0,
//! its final states are those after its own last step, and its reverse direction starts there.
//! The reverse direction runs from `t = T − 1` down to 0. `h_n[l·D + d]` is the final state of
//! layer `l` in direction `d`. Weights use PyTorch's names and layouts, see [`Weights`].
//!
//! ## Precision
//!
//! Both paths compute in float32. The GPU sums the gate products in a different order than the
//! CPU's GEMM and uses its own exp-based σ and tanh, so results differ by float32 rounding:
//! the tests hold them within `|gpu − cpu| ≤ max(2e-5, 2e-5·|cpu|)` after up to 300 steps and
//! 3 layers (worst seen: 1.2e-6), see [`compare::Tolerance::GPU_VS_CPU`]. The activations never overflow: finite inputs give finite outputs on every backend.
//!
//! ## Platforms
//!
//! Any adapter wgpu finds: Vulkan (Linux, Windows, Android), Metal (macOS, iOS), DX12 (Windows),
//! GL/GLES. On a machine without a GPU, Mesa's software Vulkan driver (`llvmpipe`, Debian
//! package `mesa-vulkan-drivers`) gives a working adapter. Choose one with [`ContextOptions`] or
//! the `WGPU_BACKEND` environment variable.
//!
//! ## GPU strategy
//!
//! Per layer, one dispatch computes the input projection `X·W_ihᵀ + b` of every time step and
//! both directions; then one fused dispatch per time step computes the recurrent product of
//! all gates, the activations and the state update for both directions. All dispatches of a
//! forward go into one command encoder, submitted once, read back once. A second step kernel
//! walks every time step inside one workgroup (one dispatch per layer), for small batches where
//! dispatch latency dominates; see [`StepVariant`]. Which kernels run is measured per device at
//! the first forward of a shape class ([`GpuContext::tuning`]). Inputs beyond the device's limits run chunked
//! over the batch and over time. Buffers and bind groups live in workspaces that serve every
//! input up to their capacity, lent by each model's pool, so that forwards of many lengths
//! reuse a few of them and forwards on several threads run at once;
//! [`GpuModel::forward_with`] takes per-call [`ForwardOptions`] and returns that call's
//! [`ForwardStats`].
//!
//! ## Features
//!
//! `cli` (default) builds the `wgpu-lstm` command line and its dependencies (clap, plotters,
//! the chart font, the JSON report). `serve` (default) builds the network server
//! ([`serve`]: tokio, axum, tonic). A library user leaves them out with
//! `default-features = false`.

#![warn(missing_docs)]

mod activation;
pub mod batcher;
pub mod bench;
pub mod compare;
pub mod cpu;
mod error;
pub mod gpu;
pub mod io;
mod quant;
#[cfg(feature = "serve")]
pub mod serve;
mod spec;
pub mod stream;
mod table;
mod tensor;
mod weights;

pub use activation::{Activation, Activations};
pub use batcher::{
    BatchStream, Batcher, BatcherModel, BatcherOptions, BatcherStats, Latency, Pending, Request,
    Response,
};
pub use cpu::{CpuModel, CpuStream, Engine};
pub use error::{Error, Result, Shape};
pub use gpu::{
    gemm_ceiling, list_adapters, AdapterSummary, ContextOptions, ForwardOptions, ForwardStats,
    GemmVariant, GpuContext, GpuModel, GpuStream, StepVariant, TuneRecord, UploadOptions,
    WeightsStorage,
};
pub use spec::{Cell, Direction, RnnSpec};
pub use stream::{Stream, StreamState};
pub use tensor::{Forward, Input, Output};
pub use weights::{param_name, DirectionWeights, Weights, WeightsDtype};

/// The README's Rust examples, compiled as doctests so that they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

/// The Rust examples of `docs/ONNX.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/ONNX.md")]
struct OnnxDocExamples;
