//! A network server for the batcher: the Open Inference Protocol (KServe's "v2" protocol,
//! which Triton, KServe and Seldon MLServer speak) over HTTP/REST and gRPC, so that clients
//! such as `tritonclient` and `perf_analyzer` use a model unchanged. Behind the `serve`
//! feature (on by default; a library built without it has no async runtime, HTTP or gRPC
//! dependency). The command line's `wgpu-lstm serve` runs it; `docs/SERVING.md` has the
//! protocol's coverage, the flags and deployment.
//!
//! Each [`ServedModel`] is a [`Batcher`](crate::Batcher): requests from every connection join
//! its rounds (cellular batching). A model takes `x` `[T, I]` (FP32) and optionally `h0`
//! `[L·D, H_out]` and `c0` `[L·D, H]`, and gives `y` `[T, D·H_out]`, `h_n`, `c_n` — PyTorch's
//! unbatched layout, under the names of [`TensorNames`]. Triton's **sequence** extension maps
//! onto the batcher's streams: a request with `sequence_id` and `sequence_start` opens one
//! (from its `h0`/`c0`, if given), each later request with that id continues it from the state
//! kept in the batcher's state table (on the GPU: in device memory), and `sequence_end` closes
//! it; `h_n`/`c_n` of such a request are the state after its chunk.
//!
//! ```no_run
//! use wgpu_lstm::serve::{ServeOptions, ServedModel, Server, TensorNames};
//! use wgpu_lstm::{Batcher, BatcherOptions, CpuModel, RnnSpec, Weights};
//!
//! # async fn f() -> Result<(), wgpu_lstm::Error> {
//! let weights = Weights::random(&RnnSpec::lstm(40, 128), 7)?;
//! let batcher = Batcher::new(CpuModel::new(weights), BatcherOptions::default())?;
//! let server = Server::new(vec![ServedModel::new("kws", batcher, TensorNames::default())?])?;
//! let running = server.start(&ServeOptions::default()).await?;
//! println!("HTTP on {:?}, gRPC on {:?}", running.http_addr(), running.grpc_addr());
//! running
//!     .serve_until(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await;
//! # Ok(())
//! # }
//! ```

mod describe;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
mod http;
mod infer;
mod metrics;
mod model;
mod sequences;
mod server;
mod shared;

pub use model::{load_model_file, ServedModel, TensorNames};
pub use server::{Running, ServeOptions, Server};
