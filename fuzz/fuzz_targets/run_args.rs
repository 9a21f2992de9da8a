//! The `run` command's argument parsing and checking on arbitrary argument lists, run in a
//! scratch folder holding a small valid model and input, so that the fuzzer can reach every
//! check and the forward itself (on the CPU). Arguments are NUL-separated in the input.
#![no_main]

use std::sync::OnceLock;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

#[path = "../../src/bin/wgpu-lstm/gpu_args.rs"]
mod gpu_args;
#[path = "../../src/bin/wgpu-lstm/run.rs"]
mod run;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: run::RunArgs,
}

fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = wgpu_lstm::RnnSpec::lstm(3, 4);
        let w = wgpu_lstm::Weights::random(&spec, 1).unwrap();
        wgpu_lstm::io::model_file::save(&dir.path().join("m.safetensors"), &w, false).unwrap();
        let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[5, 2, 3]));
        wgpu_lstm::io::npy::write(&dir.path().join("x.npy"), &x).unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    scratch();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let argv = std::iter::once("run").chain(text.split('\0'));
    if let Ok(mut cli) = Cli::try_parse_from(argv) {
        cli.args.device = run::Device::Cpu;
        let _ = run::run(&cli.args);
    }
});
