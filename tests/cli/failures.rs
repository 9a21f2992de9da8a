//! Each class of bad input to `run`: non-zero exit, one line on stderr, no file written.

use crate::common::{gpu, npy_bytes};
use crate::{assert_fails, write_lengths, Case};
use ndarray::{Array1, ArrayD, IxDyn};
use wgpu_lstm::io::model_file;
use wgpu_lstm::io::npy;
use wgpu_lstm::{RnnSpec, Weights};

/// The files the refusal tests run on, written into `case`'s folder: a 2-layer LSTM and a
/// GRU model, inputs of every wrong shape, type and size, bad lengths, and junk.
fn bad_input_files(case: &Case) {
    let w = Weights::random(&RnnSpec::lstm(4, 5).layers(2), 1).unwrap();
    model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
    let g = Weights::random(&RnnSpec::gru(4, 5), 1).unwrap();
    model_file::save(&case.path("gru.safetensors"), &g, false).unwrap();
    npy::write(&case.path("x.npy"), &ArrayD::zeros(IxDyn(&[6, 2, 4]))).unwrap();
    npy::write(&case.path("x5.npy"), &ArrayD::zeros(IxDyn(&[6, 2, 5]))).unwrap();
    npy::write(&case.path("x4d.npy"), &ArrayD::zeros(IxDyn(&[1, 6, 2, 4]))).unwrap();
    npy::write(&case.path("h0bad.npy"), &ArrayD::zeros(IxDyn(&[1, 2, 5]))).unwrap();
    npy::write(
        &case.path("lenf.npy"),
        &Array1::from_elem(2, 1.0f32).into_dyn(),
    )
    .unwrap();
    write_lengths(&case.path("len7.npy"), &[6, 7], false);
    write_lengths(&case.path("lenneg.npy"), &[-1, 3], true);
    write_lengths(&case.path("xint.npy"), &[1, 2], true);
    std::fs::write(case.path("junk.npy"), b"\x93NUMPY\x01\x00garbage").unwrap();
    // A header that claims 10^12 elements over 8 bytes of data.
    let huge = npy_bytes("<f4", "(1000000, 1000000, 4)", &[0; 8]);
    std::fs::write(case.path("huge.npy"), huge).unwrap();
    std::fs::write(case.path("junk.safetensors"), b"not a model").unwrap();
}

/// Runs the 2-layer LSTM of `case` (`model`) on the CPU over `input` with `extra` flags, writing
/// `y.npy`, and asserts that it fails with `expect`.
#[track_caller]
fn fails_on_cpu(case: &Case, model: &str, input: &str, extra: &[&str], expect: &str) {
    let y = case.p("y.npy");
    let mut args = vec![
        "run",
        "--weights",
        model,
        "--input",
        input,
        "--output",
        &y,
        "--device",
        "cpu",
    ];
    args.extend(extra);
    assert_fails(case, &args, expect);
}

/// An input, state or lengths file that cannot run, or an output that cannot be written: one
/// line naming it, a non-zero exit, no file written.
#[test]
fn bad_inputs_fail_cleanly() {
    let case = Case::new();
    bad_input_files(&case);
    let x = case.p("x.npy");
    let call = |extra: &[&str], input: &str, expect: &str| {
        fails_on_cpu(&case, &case.p("m.safetensors"), input, extra, expect);
    };
    call(
        &[],
        &case.p("x5.npy"),
        "tensor `x`: expected shape [6, 2, 4], got [6, 2, 5]",
    );
    call(
        &[],
        &case.p("x4d.npy"),
        "expected [T, B, 4], batch-first [B, T, 4] or unbatched [T, 4], got shape [1, 6, 2, 4]",
    );
    call(
        &[],
        &case.p("xint.npy"),
        "expected float32 or float64, got int32",
    );
    call(&[], &case.p("junk.npy"), "junk.npy");
    call(
        &[],
        &case.p("huge.npy"),
        "the header claims shape [1000000, 1000000, 4]",
    );
    call(&[], &case.p("missing.npy"), "missing.npy");
    call(
        &["--h0", &case.p("h0bad.npy")],
        &x,
        "tensor `h0`: expected shape [2, 2, 5], got [1, 2, 5]",
    );
    call(
        &["--lengths", &case.p("len7.npy")],
        &x,
        "`lengths[1]` is 7; each length must be in 0..=6",
    );
    call(
        &["--lengths", &case.p("lenneg.npy")],
        &x,
        "lengths[0] is -1; a length cannot be negative",
    );
    call(
        &["--lengths", &case.p("lenf.npy")],
        &x,
        "expected int32 or int64, got float32",
    );
    call(
        &["--hn", &case.p("no/such/dir/hn.npy")],
        &x,
        "no/such/dir/hn.npy",
    );
}

/// A model or flag that cannot run: one line naming it, a non-zero exit, no file written.
#[test]
fn bad_models_and_flags_fail_cleanly() {
    let case = Case::new();
    bad_input_files(&case);
    let (m, gm, x, y) = (
        case.p("m.safetensors"),
        case.p("gru.safetensors"),
        case.p("x.npy"),
        case.p("y.npy"),
    );
    let call = |extra: &[&str], input: &str, expect: &str| {
        fails_on_cpu(&case, &case.p("m.safetensors"), input, extra, expect);
    };
    let gru = |extra: &[&str], expect: &str| {
        let mut a = vec![
            "run",
            "--weights",
            &gm,
            "--input",
            &x,
            "--output",
            &y,
            "--device",
            "cpu",
        ];
        a.extend(extra);
        assert_fails(&case, &a, expect);
    };
    gru(&["--cn", &case.p("cn.npy")], "--cn: ");
    gru(&["--c0", &case.p("x.npy")], "which has no cell state");

    let js = case.p("junk.safetensors");
    assert_fails(
        &case,
        &["run", "--weights", &js, "--input", &x, "--output", &y],
        "not a valid safetensors file",
    );
    assert_fails(&case, &["run", "--weights", &m, "--output", &y], "--input");
    // No output asked for: a usage error naming the output flags.
    assert_fails(
        &case,
        &["run", "--weights", &m, "--input", &x, "--device", "cpu"],
        "--output <Y.npy>|--hn <HN.npy>|--cn <CN.npy>",
    );
    assert_fails(
        &case,
        &[
            "run",
            "--weights",
            &m,
            "--input",
            &x,
            "--output",
            &y,
            "--device",
            "tpu",
        ],
        "tpu",
    );
    // Two outputs to one path: the conflict is named, nothing is written.
    call(&["--hn", &y], &x, "--output and --hn name the same file");
    let hn = case.p("hn.npy");
    call(
        &["--hn", &hn, "--cn", &hn],
        &x,
        "--hn and --cn name the same file",
    );
    // The same checks when running on the GPU: still one line, nothing written.
    if gpu().is_some() {
        let h0 = case.p("h0bad.npy");
        assert_fails(
            &case,
            &[
                "run",
                "--weights",
                &m,
                "--input",
                &x,
                "--output",
                &y,
                "--h0",
                &h0,
            ],
            "tensor `h0`: expected shape [2, 2, 5], got [1, 2, 5]",
        );
    }
    // A backend without an adapter on this machine (Metal exists only on Apple platforms).
    if !cfg!(target_vendor = "apple") {
        assert_fails(
            &case,
            &[
                "run",
                "--weights",
                &m,
                "--input",
                &x,
                "--output",
                &y,
                "--backend",
                "metal",
            ],
            "or run with --device cpu",
        );
    }
}
