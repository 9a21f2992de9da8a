//! `wgpu-lstm run --model M.onnx`: files mapped to the graph's inputs and outputs by role, on
//! the CPU (the GPU path is the library's, tested in `onnx_fixtures`).

use std::path::{Path, PathBuf};
use std::process::Command;

use wgpu_lstm::io::npy::{self, NpyArray};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx/fixtures")
        .join(case)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgpu-lstm"))
        .env("NODEVICE_SELECT", "1")
        .args(args)
        .output()
        .unwrap()
}

fn f32s(p: &Path) -> ndarray::ArrayD<f32> {
    match npy::read(p).unwrap() {
        NpyArray::F32(a) => a,
        other => panic!("{}: {}", p.display(), other.dtype()),
    }
}

/// Runs `case` with `files` (flag, fixture file) and compares the outputs (flag, expected).
fn check(case: &str, files: &[(&str, &str)], outputs: &[(&str, &str)]) {
    let d = fixture(case);
    let tmp = tempfile::tempdir().unwrap();
    let model = d.join("model.onnx").display().to_string();
    let mut args = vec!["run", "--device", "cpu", "--model", &model];
    let ins: Vec<(String, String)> = files
        .iter()
        .map(|(f, n)| (f.to_string(), d.join(n).display().to_string()))
        .collect();
    let outs: Vec<(String, String)> = outputs
        .iter()
        .map(|(f, n)| (f.to_string(), tmp.path().join(n).display().to_string()))
        .collect();
    for (f, p) in ins.iter().chain(&outs) {
        args.push(f);
        args.push(p);
    }
    let out = run(&args);
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, n) in outputs {
        let (got, want) = (f32s(&tmp.path().join(n)), f32s(&d.join(n)));
        assert_eq!(got.shape(), want.shape(), "{case}: {n}");
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 3e-5, "{case}: {n} differs by {err}");
    }
}

#[test]
fn onnx_models_run_from_the_command_line() {
    // ONNX's options: a reverse-only LSTM in layout 1, a GRU with its reset gate before the
    // linear part.
    check(
        "random/lstm_reverse_layout1_full",
        &[
            ("--input", "X.npy"),
            ("--h0", "initial_h.npy"),
            ("--c0", "initial_c.npy"),
            ("--lengths", "sequence_lens.npy"),
        ],
        &[
            ("--output", "Y.npy"),
            ("--hn", "Y_h.npy"),
            ("--cn", "Y_c.npy"),
        ],
    );
    check(
        "random/gru_lbr0_explicit_bidirectional",
        &[
            ("--input", "X.npy"),
            ("--h0", "initial_h.npy"),
            ("--lengths", "sequence_lens.npy"),
        ],
        &[("--output", "Y.npy"), ("--hn", "Y_h.npy")],
    );
    check(
        "torch/lstm_2layer_bidirectional_batch_first_states",
        &[
            ("--input", "input.npy"),
            ("--h0", "h0.npy"),
            ("--c0", "c0.npy"),
        ],
        &[
            ("--output", "output.npy"),
            ("--hn", "hn.npy"),
            ("--cn", "cn.npy"),
        ],
    );
    check(
        "random/lstm_forward_layout0_full",
        &[
            ("--input", "X.npy"),
            ("--h0", "initial_h.npy"),
            ("--c0", "initial_c.npy"),
            ("--lengths", "sequence_lens.npy"),
        ],
        &[
            ("--output", "Y.npy"),
            ("--hn", "Y_h.npy"),
            ("--cn", "Y_c.npy"),
        ],
    );
}

#[test]
fn onnx_refusals_are_one_line_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let y = tmp.path().join("y.npy").display().to_string();
    for (case, input, extra, expect) in [
        ("refuse/unsupported_op_matmul", "X.npy", None, "MatMul"),
        ("refuse/unknown_activation", "X.npy", None, "Swish"),
        // Graph inputs (lengths, states) with no file for them.
        (
            "random/lstm_forward_layout0_full",
            "X.npy",
            None,
            "is not given",
        ),
        (
            "torch/lstm_1layer",
            "input.npy",
            Some("--batch-first"),
            "--batch-first",
        ),
        ("torch/lstm_1layer", "input.npy", Some("--c0"), "--c0"),
    ] {
        let d = fixture(case);
        let model = d.join("model.onnx").display().to_string();
        let x = d.join(input).display().to_string();
        let mut args = vec!["run", "--device", "cpu", "--model", &model, "--input", &x];
        args.extend(["--output", &y]);
        match extra {
            Some("--c0") => args.extend(["--c0", &x]),
            Some(flag) => args.push(flag),
            None => {}
        }
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: succeeded");
        assert!(stderr.contains(expect), "{case}: {stderr}");
        if extra != Some("--batch-first") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: {stderr}");
        }
        assert!(!Path::new(&y).exists(), "{case}: wrote an output");
    }
}
