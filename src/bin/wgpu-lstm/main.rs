//! The `wgpu-lstm` command: `run` a model on `.npy` inputs, `info` lists adapters, `bench`
//! compares GPU and CPU, `load` load-tests the batcher against per-request and padding
//! servers, `serve` serves models over the network. Each subcommand is a thin layer over the library, in its own module.

use std::process::ExitCode;

mod bench;
mod chart;
mod concurrency;
mod gpu_args;
mod info;
mod load;
mod memory;
mod report;
mod run;
#[cfg(feature = "serve")]
mod serve;

use clap::{Parser, Subcommand, ValueEnum};

/// The command line: one subcommand.
#[derive(Parser)]
#[command(
    name = "wgpu-lstm",
    version,
    about = "LSTM inference on any GPU through wgpu, with a CPU reference"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
enum Command {
    /// Run a model from a safetensors or ONNX file on .npy inputs and write the outputs asked
    /// for (--output, --hn, --cn; at least one) as .npy.
    Run(run::RunArgs),
    /// List every adapter wgpu finds on every backend, with the limits that matter here.
    Info(gpu_args::GpuArgs),
    /// Time forwards of the benchmark suite on every GPU adapter and the CPU as a user gets
    /// them (--exhaustive: every kernel variant) and print a table; progress on stderr.
    Bench(bench::BenchArgs),
    /// Load-test three servers of one model on the GPU and the CPU — one forward per request,
    /// a padding batcher, the cellular batcher — under open-loop Poisson arrivals: throughput
    /// at saturation and p50/p99 latency at 25, 50 and 80 % of it.
    Load(load::LoadArgs),
    /// Serve models over the Open Inference Protocol (KServe v2, as Triton speaks it) on HTTP
    /// and gRPC, each on a cellular batcher on the GPU or the CPU, until SIGINT or SIGTERM.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// The GPU adapter and the CPU.
    All,
    /// The GPU adapter only.
    Gpu,
    /// The CPU only.
    Cpu,
}

/// Runs the subcommand; an error is one line on stderr and a non-zero exit (2 for a usage
/// error).
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Info(gpu) => info::info(&gpu),
        Command::Bench(args) => bench::run_bench(&args),
        Command::Load(args) => load::run_load(&args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::run_serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap's argument error on one line: the lines before its usage block, joined.
fn one_line_usage_error(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    format!("{} (see --help)", lines.join(" "))
}
