//! `wgpu-lstm load`: an open-loop load test of three servers on one model and device — one
//! `forward` per request from worker threads, a padding batcher, and the cellular
//! [`Batcher`] — reporting each one's throughput at saturation and its p50/p99 latency at
//! 25 %, 50 % and 80 % of it (and the cellular batcher's at the padding batcher's loads).

mod chart;
mod drive;
mod measure;
mod servers;
mod streams;
mod table;
mod turns;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Serialize;
use wgpu_lstm::bench::default_suite;
use wgpu_lstm::{
    BatcherModel, ContextOptions, CpuModel, Error, Forward, GpuContext, GpuModel, Weights,
};

use crate::gpu_args::GpuArgs;
use measure::{LoadPoint, Workload};
use servers::Kind;
use turns::{run_device, BurstRounds};

/// The fractions of a server's saturation its latency is measured at.
const FRACTIONS: [f64; 3] = [0.25, 0.5, 0.8];

/// `wgpu-lstm load` arguments.
#[derive(Args)]
pub struct LoadArgs {
    /// Which devices: the GPU adapter, the CPU, or both.
    #[arg(long, value_enum, default_value_t = LoadDevice::All)]
    pub device: LoadDevice,
    /// Backend and adapter of the GPU (default: the first adapter found).
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// The model: a benchmark suite shape's (its cell, sizes and layers; the batch and steps
    /// come from the load).
    #[arg(long, default_value = "edge")]
    pub shape: String,
    /// Shortest request, in steps (lengths are uniform in min..=max).
    #[arg(long, default_value_t = 10)]
    pub min_steps: usize,
    /// Longest request, in steps.
    #[arg(long, default_value_t = 200)]
    pub max_steps: usize,
    /// The most requests in one forward of the padding batcher and one round of the
    /// cellular batcher.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// The cellular batcher's quantum (steps per sequence per round).
    #[arg(long, default_value_t = 16)]
    pub quantum: usize,
    /// Which servers to run, in this order (the "× per-request" column is relative to the
    /// first one run).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Kind::ALL)]
    pub servers: Vec<Kind>,
    /// Worker threads of the per-request server (default: 4 on the GPU; on the CPU one per
    /// core, each running single-threaded forwards).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seconds of arrivals per load point (at least 20 requests).
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Seconds the saturation burst aims at.
    #[arg(long, default_value_t = 4.0)]
    pub saturation_seconds: f64,
    /// Saturation bursts per server, the fastest reported; the servers take turns, one burst
    /// each, so that a neighbour's work on a shared machine (which can slow a burst of a
    /// fraction of a second) falls on all of them alike.
    #[arg(long, default_value_t = 3)]
    pub bursts: usize,
    /// Runs of each load point per server, in turns (every server's first run at a load, then
    /// every server's second …), each with its own draw of arrivals; the run with the median
    /// p99 is reported (of an even number, the slower of the middle two) and every run's p99
    /// kept in the JSON: with 3 or more, a slow stretch of a shared machine during one run moves
    /// no server's figure.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// The share of utterances sent as live streams (0 to 1): each in chunks of --chunk
    /// steps, one every --chunk-ms under Poisson load, back to back in the saturation burst;
    /// the rest are one-shot requests. Streams need a unidirectional model.
    #[arg(long, default_value_t = 0.0)]
    pub streams: f64,
    /// Steps per stream chunk.
    #[arg(long, default_value_t = 10)]
    pub chunk: usize,
    /// Milliseconds between a live stream's chunks (100: 10 steps of 10 ms speech frames).
    #[arg(long, default_value_t = 100.0)]
    pub chunk_ms: f64,
    /// Seed of the request lengths, inputs and arrivals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write every measurement as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw p50 and p99 latency against offered load as a PNG here.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// The devices of a load test.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadDevice {
    All,
    Gpu,
    Cpu,
}

/// One server on one device.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRecord {
    pub device: String,
    pub server: &'static str,
    /// Requests per second at saturation.
    pub saturation: f64,
    /// Saturation over the first server run's on the same device (the per-request server's
    /// by default).
    pub speedup: f64,
    /// Mean sequences per round (cellular only).
    pub mean_batch: Option<f64>,
    /// The saturation burst's rounds (cellular only): mean rows, the share of the burst's
    /// time they took, and their time per sequence-step in microseconds.
    pub burst_rounds: Option<BurstRounds>,
    pub loads: Vec<LoadPoint>,
    /// The cellular batcher at the padding batcher's loads (cellular only).
    pub at_padding_loads: Vec<LoadPoint>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub shape: String,
    pub min_steps: usize,
    pub max_steps: usize,
    pub max_batch: usize,
    pub quantum: usize,
    /// The share of utterances that were live streams, their chunks' steps and interval.
    pub streams: f64,
    pub chunk: usize,
    pub chunk_ms: f64,
    /// Saturation bursts per server and runs per load point (`--bursts`, `--repeats`).
    pub bursts: usize,
    pub repeats: usize,
    pub records: Vec<ServerRecord>,
}

/// A device to test on: its name and how to make its models.
struct Device {
    name: String,
    /// A model shared by the per-request server's workers (on the CPU each forward on one
    /// thread).
    shared: Arc<dyn Forward + Send + Sync>,
    /// The padding server's model (on the CPU each forward on every core, as a team).
    team: Arc<dyn Forward + Send + Sync>,
    /// A model of the batcher's own.
    owned: Box<dyn Fn() -> Result<BatcherModel, Error>>,
    workers: usize,
}

pub fn run_load(args: &LoadArgs) -> Result<(), Error> {
    let shape = default_suite()
        .into_iter()
        .find(|s| s.name == args.shape)
        .ok_or_else(|| Error::InvalidInput(format!("no suite shape `{}`", args.shape)))?;
    if args.min_steps == 0 || args.min_steps > args.max_steps {
        return Err(Error::InvalidInput(
            "--min-steps must be at least 1 and at most --max-steps".into(),
        ));
    }
    if args.bursts == 0 {
        return Err(Error::InvalidInput("--bursts must be at least 1".into()));
    }
    if args.repeats == 0 {
        return Err(Error::InvalidInput("--repeats must be at least 1".into()));
    }
    if !(args.seconds > 0.0 && args.saturation_seconds > 0.0) {
        return Err(Error::InvalidInput(
            "--seconds and --saturation-seconds must be positive".into(),
        ));
    }
    if !(0.0..=1.0).contains(&args.streams) {
        return Err(Error::InvalidInput(
            "--streams must be between 0 and 1".into(),
        ));
    }
    if args.streams > 0.0 && shape.spec.bidirectional {
        return Err(Error::InvalidInput(format!(
            "--streams needs a unidirectional model; `{}` is bidirectional",
            args.shape
        )));
    }
    if args.chunk == 0 || !(args.chunk_ms >= 0.0 && args.chunk_ms.is_finite()) {
        return Err(Error::InvalidInput(
            "--chunk must be at least 1 and --chunk-ms at least 0".into(),
        ));
    }
    if args.servers.is_empty()
        || (1..args.servers.len()).any(|i| args.servers[..i].contains(&args.servers[i]))
    {
        return Err(Error::InvalidInput(
            "--servers names each of per-request, padding, cellular at most once".into(),
        ));
    }
    let weights = Weights::random(&shape.spec, args.seed)?;
    let work = Workload::new(
        shape.spec.input_size,
        args.min_steps,
        args.max_steps,
        args.seed,
    )
    .with_streams(
        args.streams,
        args.chunk,
        std::time::Duration::from_secs_f64(args.chunk_ms / 1e3),
    );
    let mut devices = Vec::new();
    if args.device != LoadDevice::Cpu {
        let options = ContextOptions {
            backends: args.gpu.backends(),
            adapter_name: args.gpu.adapter_filter(),
            ..ContextOptions::default()
        };
        let ctx = GpuContext::new(&options)?;
        let info = ctx.adapter_info();
        let w = weights.clone();
        let owned_ctx = ctx.clone();
        let shared: Arc<dyn Forward + Send + Sync> = Arc::new(GpuModel::upload(&ctx, &weights)?);
        devices.push(Device {
            name: format!("{:?} {}", info.backend, info.name).to_lowercase(),
            team: shared.clone(),
            shared,
            owned: Box::new(move || Ok(GpuModel::upload(&owned_ctx, &w)?.into())),
            workers: args.workers.unwrap_or(4),
        });
    }
    if args.device != LoadDevice::Gpu {
        let cores = CpuModel::default_threads();
        let w = weights.clone();
        devices.push(Device {
            name: format!("cpu ({cores} threads)"),
            shared: Arc::new(CpuModel::with_threads(weights.clone(), 1)?),
            team: Arc::new(CpuModel::new(weights.clone())),
            owned: Box::new(move || Ok(CpuModel::new(w.clone()).into())),
            workers: args.workers.unwrap_or(cores),
        });
    }
    let mut records = Vec::new();
    for device in &devices {
        records.extend(run_device(args, &shape.spec, device, &work)?);
    }
    table::print(args, &records);
    let report = LoadReport {
        shape: args.shape.clone(),
        min_steps: args.min_steps,
        max_steps: args.max_steps,
        max_batch: args.max_batch,
        quantum: args.quantum,
        streams: args.streams,
        chunk: args.chunk,
        chunk_ms: args.chunk_ms,
        bursts: args.bursts,
        repeats: args.repeats,
        records,
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::encode(format!("`{}`", path.display()), e))?;
        wgpu_lstm::io::write_atomic(path, &text)?;
    }
    if let Some(path) = &args.plot {
        chart::draw(path, &report)?;
    }
    Ok(())
}
