//! Runs every program in `examples/` and checks that it succeeds and prints what it should.
//!
//! `cargo test` builds the examples into `target/<profile>/examples/`, beside this test's own
//! directory (`target/<profile>/deps/`). A filtered run (`cargo test --test examples`) does not,
//! so the test first brings them up to date itself with `cargo build --examples` (a no-op
//! after a full `cargo test`). A binary still missing after that is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>`, the directory this test's executable (in its `deps/`) was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe
        .parent()
        .expect("the test runs from target/<profile>/deps");
    deps.parent().expect("target/<profile>").to_path_buf()
}

/// Builds the examples once per test run, with this test's profile and target directory.
fn build_examples(profile_dir: &Path) {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target_dir = profile_dir.parent().expect("target/");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--locked", "--examples", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let out = build.output().expect("cargo starts");
        assert!(
            out.status.success(),
            "cargo build --examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The example binary `name`, built by cargo beside this test.
fn example(name: &str) -> PathBuf {
    let dir = profile_dir();
    build_examples(&dir);
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example binary {} is missing after `cargo build --examples`",
        path.display()
    );
    path
}

/// Runs example `name` with `args` and returns its stdout; panics with its output unless it
/// exits with status 0.
fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("example {name} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "example {name} {args:?} exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    print!("{name} {args:?}:\n{stdout}");
    stdout
}

/// Asserts that `stdout` of example `name` contains every one of `expected`.
fn expect(name: &str, stdout: &str, expected: &[&str]) {
    for e in expected {
        assert!(
            stdout.contains(e),
            "example {name}: no `{e}` in its output:\n{stdout}"
        );
    }
}

#[test]
fn basic() {
    let out = run("basic", &[]);
    expect(
        "basic",
        &out,
        &[
            "y: [100, 8, 256]  h_n: [4, 8, 128]",
            "max |gpu - cpu| over y",
        ],
    );
}

#[test]
fn gpu_or_cpu() {
    let out = run("gpu_or_cpu", &[]);
    expect(
        "gpu_or_cpu",
        &out,
        &["device: ", "y: [20, 4, 32]  h_n: [2, 4, 32]"],
    );
    let out = run("gpu_or_cpu", &["--cpu"]);
    expect(
        "gpu_or_cpu",
        &out,
        &["device: CPU", "y: [20, 4, 32]  h_n: [2, 4, 32]"],
    );
}

#[test]
fn safetensors() {
    let out = run("safetensors", &[]);
    expect(
        "safetensors",
        &out,
        &[
            "lstm input 40 hidden 128 layers 2 bidirectional true batch_first false",
            "y: [50, 2, 256]  h_n: [4, 2, 128]",
        ],
    );
}

#[test]
fn onnx() {
    let out = run("onnx", &[]);
    expect(
        "onnx",
        &out,
        &[
            "lstm input 4 hidden 5 layers 2 bidirectional true",
            "input  input",
            "output output",
            "max |ours - torch|",
        ],
    );
}

#[test]
fn streaming() {
    let out = run("streaming", &[]);
    expect(
        "streaming",
        &out,
        &["fed 10 chunks", "chunks equal the whole sequence"],
    );
}

#[test]
fn batcher() {
    let out = run("batcher", &[]);
    expect(
        "batcher",
        &out,
        &[
            "device: ",
            "32 requests and 12 stream chunks in",
            "max |batched - alone|",
        ],
    );
}
