//! End-to-end tests of the `wgpu-lstm` command: `run` on every cell and flag, on the CPU and
//! (where an adapter exists, always in CI) the GPU, each class of bad input, `info`, `bench`,
//! `load` and `serve`. The shared helpers are here; the tests are in `tests/cli/`.

mod common;

#[path = "cli/bench.rs"]
mod bench;
#[path = "cli/failures.rs"]
mod failures;
#[path = "cli/info.rs"]
mod info;
#[path = "cli/load.rs"]
mod load;
#[path = "cli/run.rs"]
mod run_tests;
#[cfg(feature = "serve")]
#[path = "cli/serve.rs"]
mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{gpu, npy_bytes};
use ndarray::ArrayD;
use wgpu_lstm::io::npy::{self, NpyArray};

/// The command, with Mesa's Vulkan device-select layer off: on a headless machine that layer
/// prints "XDG_RUNTIME_DIR is invalid" to stderr while adapters are listed, which is the
/// driver's output, not the command's.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgpu-lstm"));
    c.env("NODEVICE_SELECT", "1");
    c
}

/// Runs the command with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

/// The `--device` values to test: `cpu`, and `gpu` where the tests have an adapter.
pub fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu"];
    if gpu().is_some() {
        d.push("gpu");
    }
    d
}

/// A float32 `.npy`.
pub fn read(path: &Path) -> ArrayD<f32> {
    match npy::read(path).unwrap() {
        NpyArray::F32(a) => a,
        other => panic!("{} is {}", path.display(), other.dtype()),
    }
}

/// Writes an int `.npy` of lengths: dtype `<i4` or `<i8`.
pub fn write_lengths(path: &Path, values: &[i64], int32: bool) {
    let (descr, data): (&str, Vec<u8>) = if int32 {
        (
            "<i4",
            values
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect(),
        )
    } else {
        ("<i8", values.iter().flat_map(|v| v.to_le_bytes()).collect())
    };
    std::fs::write(
        path,
        npy_bytes(descr, &format!("({},)", values.len()), &data),
    )
    .unwrap();
}

/// A temporary folder for one test's files.
pub struct Case {
    /// The folder, removed when dropped.
    dir: tempfile::TempDir,
}

impl Default for Case {
    fn default() -> Self {
        Self::new()
    }
}

impl Case {
    /// A fresh empty folder.
    pub fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    /// `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// `name` in the folder, as a string for the command line.
    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    /// The names of the files in the folder, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }
}

/// Asserts that the command succeeded, showing its stderr where not.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a failing command: non-zero exit, one line on stderr containing `expect`, no panic,
/// and no file added to the case's folder.
#[track_caller]
pub fn assert_fails(case: &Case, args: &[&str], expect: &str) {
    let before = case.files();
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {args:?}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(
        stderr.contains(expect),
        "stderr `{stderr}` lacks `{expect}`"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(case.files(), before, "files changed by a failing run");
}
