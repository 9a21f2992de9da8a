//! Inputs that once crashed a fuzz target (see `fuzz/run.sh`), replayed through the same code:
//! each must now give a value or an error, never a panic.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".keep"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn npy_regressions() {
    let all = inputs("npy");
    assert!(!all.is_empty());
    for (name, bytes) in all {
        let r = std::panic::catch_unwind(|| wgpu_lstm::io::npy::parse(&bytes));
        assert!(r.is_ok(), "{name} panics");
        // `hostile-*`: headers that claim gigabytes over a few bytes of data, a 4 GiB header
        // length, a shape whose product overflows, lists nested hundreds deep. They are
        // errors, found before anything of the claimed size is allocated (the .npy crates
        // on crates.io allocate or parse exponentially long on some of them).
        if name.contains("hostile-") {
            assert!(matches!(r, Ok(Err(_))), "{name} is not an error");
        }
    }
}

#[test]
fn safetensors_regressions() {
    for (name, bytes) in inputs("safetensors") {
        let r = std::panic::catch_unwind(|| {
            wgpu_lstm::io::model_file::from_bytes(Path::new("fuzz.safetensors"), &bytes).is_ok()
        });
        assert!(r.is_ok(), "{name} panics");
    }
}

/// `run` argument lists (NUL-separated) replayed through the command on the CPU, in a folder
/// holding the same small model and input as the fuzz target's.
#[test]
fn run_args_regressions() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let w = wgpu_lstm::Weights::random(&wgpu_lstm::RnnSpec::lstm(3, 4), 1).unwrap();
    wgpu_lstm::io::model_file::save(&dir.path().join("m.safetensors"), &w, false).unwrap();
    let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[5, 2, 3]));
    wgpu_lstm::io::npy::write(&dir.path().join("x.npy"), &x).unwrap();
    for (name, bytes) in inputs("run_args") {
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let args: Vec<String> = text
            .split('\0')
            .map(|a| {
                if a == "gpu" {
                    "cpu".to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_wgpu-lstm"))
            .arg("run")
            .args(&args)
            .current_dir(dir.path())
            .env("NODEVICE_SELECT", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(out.status.code().is_some(), "{name}: killed by a signal");
    }
}

/// The server's HTTP infer bodies (first two bytes: the JSON header's length, 0 for none),
/// decoded and run as the `serve_http` target does: a response or an error, never a panic.
#[cfg(feature = "serve")]
#[test]
fn serve_http_regressions() {
    for (name, bytes) in inputs("serve_http") {
        let r = std::panic::catch_unwind(|| {
            let (length, body) = match bytes.as_slice() {
                [0, rest @ ..] => (None, rest),
                [a, b, rest @ ..] => (Some(((*a as usize) << 8 | *b as usize).to_string()), rest),
                _ => return,
            };
            let _ = wgpu_lstm::serve::fuzzing::http_infer(length.as_deref(), body);
        });
        assert!(r.is_ok(), "{name} panics");
    }
}

/// The server's gRPC `ModelInferRequest`s, decoded and run as the `serve_grpc` target does.
#[cfg(feature = "serve")]
#[test]
fn serve_grpc_regressions() {
    for (name, bytes) in inputs("serve_grpc") {
        let r = std::panic::catch_unwind(|| wgpu_lstm::serve::fuzzing::grpc_infer(&bytes).is_ok());
        assert!(r.is_ok(), "{name} panics");
        // The seeds are valid requests: they run.
        assert_eq!(r.ok(), Some(true), "{name} is refused");
    }
}
