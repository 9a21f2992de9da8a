//! `wgpu-lstm serve`: models from files served over the Open Inference Protocol (HTTP and
//! gRPC) by the library's server, each on a batcher on the GPU or the CPU, until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wgpu_lstm::serve::{load_model_file, ServeOptions, ServedModel, Server};
use wgpu_lstm::{
    Batcher, BatcherModel, BatcherOptions, CpuModel, Error, GpuContext, GpuModel, Weights,
};

use crate::gpu_args::GpuArgs;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeDevice {
    /// The GPU adapter (--backend, --adapter choose it).
    Gpu,
    /// The CPU.
    Cpu,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A model to serve, as NAME=PATH (a .safetensors file or an .onnx model of one
    /// recurrent stack); repeat for more.
    #[arg(long = "model", value_name = "NAME=PATH", required = true)]
    pub models: Vec<String>,
    /// Where the models run.
    #[arg(long, value_enum, default_value_t = ServeDevice::Gpu)]
    pub device: ServeDevice,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// The HTTP/REST listener (port 0 picks a free port); `off` for none.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR")]
    pub http: String,
    /// The gRPC listener; `off` for none.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDR")]
    pub grpc: String,
    /// The most sequences one round of a model's batcher advances.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// The most steps a round advances each sequence.
    #[arg(long, default_value_t = 16)]
    pub quantum: usize,
    /// How long ready work may wait for company before its round runs, in ms.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub max_queue_delay_ms: f64,
    /// The most requests admitted and not yet answered per model (beyond: 429 /
    /// RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = 4096)]
    pub max_queue: usize,
    /// The most requests in flight plus open sequences per model (the state table's slots).
    #[arg(long, default_value_t = 1024)]
    pub max_sequences: usize,
    /// A sequence unused this long is closed and its slot freed, in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    pub sequence_idle_s: f64,
    /// The largest request body (HTTP) or message (gRPC), in MiB.
    #[arg(long, default_value_t = 64.0, value_name = "MIB")]
    pub max_body_mib: f64,
}

/// An address, or `None` for `off`.
fn listener(flag: &str, value: &str) -> Result<Option<SocketAddr>, Error> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        Error::InvalidInput(format!(
            "--{flag} `{value}` is not an address such as 127.0.0.1:8000 (or `off`)"
        ))
    })
}

/// A positive finite number of seconds.
fn seconds(flag: &str, s: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Error::InvalidInput(format!("--{flag} must be a number ≥ 0, not {s}")))
}

/// The models of `--model NAME=PATH`, each on its own batcher.
fn models(args: &ServeArgs, options: &BatcherOptions) -> Result<Vec<ServedModel>, Error> {
    let ctx = match args.device {
        ServeDevice::Gpu => Some(GpuContext::new(&args.gpu.options())?),
        ServeDevice::Cpu => None,
    };
    let mut out = Vec::new();
    for m in &args.models {
        let (name, path) = m
            .split_once('=')
            .ok_or_else(|| Error::InvalidInput(format!("--model `{m}` is not NAME=PATH")))?;
        let (weights, names): (Weights, _) = load_model_file(&PathBuf::from(path))?;
        let model: BatcherModel = match &ctx {
            Some(ctx) => GpuModel::upload(ctx, &weights)?.into(),
            None => CpuModel::new(weights).into(),
        };
        let batcher = Batcher::new(model, options.clone())?;
        out.push(ServedModel::new(name, batcher, names)?);
    }
    Ok(out)
}

/// The SIGTERM handler, installed before the server answers anyone: a SIGTERM that came
/// between the first answer and the first wait would otherwise end the process by the
/// signal's default action, without a graceful shutdown.
#[cfg(unix)]
type Termination = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Termination = ();

/// Installs the SIGTERM handler (inside the async runtime).
fn watch_termination() -> Termination {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate()).ok()
    }
}

/// Resolves at SIGINT (Ctrl-C) or at SIGTERM (`term`, where it could be installed).
async fn terminated(term: Termination) {
    #[cfg(unix)]
    if let Some(mut term) = term {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    #[cfg(not(unix))]
    let () = term;
    let _ = tokio::signal::ctrl_c().await;
}

pub fn run_serve(args: &ServeArgs) -> Result<(), Error> {
    let options = ServeOptions {
        http: listener("http", &args.http)?,
        grpc: listener("grpc", &args.grpc)?,
        max_body_bytes: (args.max_body_mib * (1 << 20) as f64) as usize,
        ..ServeOptions::default()
    };
    if !(args.max_body_mib > 0.0 && args.max_body_mib.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "--max-body-mib must be positive, not {}",
            args.max_body_mib
        )));
    }
    let batcher = BatcherOptions::default()
        .max_batch(args.max_batch)
        .quantum(args.quantum)
        .max_queue_delay(seconds(
            "max-queue-delay-ms",
            args.max_queue_delay_ms / 1e3,
        )?)
        .max_queue(args.max_queue)
        .max_sequences(args.max_sequences)
        .stream_idle_timeout(seconds("sequence-idle-s", args.sequence_idle_s)?);
    let models = models(args, &batcher)?;
    for m in &models {
        let s = m.spec();
        eprintln!(
            "model `{}`: {} {} → {}, {} layer(s){}, on the {}",
            m.name(),
            s.cell.name(),
            s.input_size,
            s.hidden_size,
            s.num_layers,
            if s.bidirectional {
                ", bidirectional"
            } else {
                ""
            },
            match args.device {
                ServeDevice::Gpu => "GPU",
                ServeDevice::Cpu => "CPU",
            }
        );
    }
    let server = Server::new(models)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let term = watch_termination();
        let running = server.start(&options).await?;
        let show = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        eprintln!(
            "listening: http={} grpc={}",
            show(running.http_addr()),
            show(running.grpc_addr())
        );
        running.serve_until(terminated(term)).await;
        eprintln!("shut down");
        Ok(())
    })
}
