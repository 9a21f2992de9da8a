//! `wgpu-lstm run --model M.onnx`: files mapped to the graph's inputs and outputs by role.
//! Every committed fixture runs from the command line on the CPU (the GPU path is the
//! library's, tested in `onnx_fixtures`; here only the final-state-only models run on it).

mod common;

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

/// Runs `case` on the CPU with `files` (flag, fixture file) and compares the outputs (flag,
/// expected) within 3e-5.
fn check(case: &str, files: &[(&str, &str)], outputs: &[(&str, &str)]) {
    check_with(case, &["--device", "cpu"], files, outputs, 3e-5);
}

/// Runs `case` with the flags `extra` and `files` (flag, fixture file) and compares the
/// outputs (flag, expected file) within `tol`.
fn check_with(
    case: &str,
    extra: &[&str],
    files: &[(&str, &str)],
    outputs: &[(&str, &str)],
    tol: f32,
) {
    let d = fixture(case);
    let tmp = tempfile::tempdir().unwrap();
    let model = d.join("model.onnx").display().to_string();
    let mut args = vec!["run", "--model", &model];
    args.extend_from_slice(extra);
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
        assert!(err <= tol, "{case} {extra:?}: {n} differs by {err}");
    }
}

/// onnxruntime's quantized LSTM (`DynamicQuantizeLSTM`): on the CPU its int8 weights by
/// default (onnxruntime's int8 outputs, within the case's tolerance), `--weights-dtype f32`
/// and the GPU the float LSTM of the values its integers stand for (to float32 rounding);
/// `--weights-dtype i8` on a float model quantizes it.
#[test]
fn quantized_models_run_from_the_command_line() {
    let case = "quantized/per_channel_bidirectional_states";
    let files = [
        ("--input", "X.npy"),
        ("--h0", "initial_h.npy"),
        ("--c0", "initial_c.npy"),
        ("--lengths", "sequence_lens.npy"),
    ];
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(case).join("case.json")).unwrap())
            .unwrap();
    let tol = json["tolerance"]["abs"].as_f64().unwrap() as f32;
    let int8 = [
        ("--output", "Y.npy"),
        ("--hn", "Y_h.npy"),
        ("--cn", "Y_c.npy"),
    ];
    check_with(case, &["--device", "cpu"], &files, &int8, tol);
    let float = [
        ("--output", "float_Y.npy"),
        ("--hn", "float_Y_h.npy"),
        ("--cn", "float_Y_c.npy"),
    ];
    let f32_cpu = ["--device", "cpu", "--weights-dtype", "f32"];
    check_with(case, &f32_cpu, &files, &float, 1e-5);
    if common::gpu().is_some() {
        check_with(case, &["--device", "gpu"], &files, &float, 1e-5);
    }
    // A float model quantized with --weights-dtype i8: close to its float outputs.
    // (The same graph inputs and output names as the quantized case.)
    let float_model = "random/lstm_reverse_layout1_full";
    let i8_cpu = ["--device", "cpu", "--weights-dtype", "i8"];
    check_with(float_model, &i8_cpu, &files, &int8, 0.05);
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

/// The command-line flag of each input role and each output role (tests/onnx/README.md).
const INPUT_FLAGS: [(&str, &str); 4] = [
    ("input", "--input"),
    ("h0", "--h0"),
    ("c0", "--c0"),
    ("lengths", "--lengths"),
];
const OUTPUT_FLAGS: [(&str, &str); 3] = [("output", "--output"), ("hn", "--hn"), ("cn", "--cn")];

/// A fixture run from the command line: the command's result and, per graph output asked
/// for, the file it was to be written to.
struct FixtureRun {
    out: std::process::Output,
    written: Vec<(String, PathBuf)>,
}

/// Runs the fixture in `dir` through `run --model` on `device`, with a flag for every input
/// role that has a file and for every output role its graph declares, outputs into `tmp`.
fn run_fixture(dir: &Path, case: &serde_json::Value, device: &str, tmp: &Path) -> FixtureRun {
    let roles = case["roles"].as_object().cloned().unwrap_or_default();
    let inputs = case["inputs"].as_object().cloned().unwrap_or_default();
    let model = dir.join("model.onnx").display().to_string();
    let mut args: Vec<String> = ["run", "--device", device, "--model", &model]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (role, flag) in INPUT_FLAGS {
        let file = roles
            .get(role)
            .and_then(|name| inputs.get(name.as_str().unwrap()));
        if let Some(file) = file {
            args.push(flag.into());
            args.push(dir.join(file.as_str().unwrap()).display().to_string());
        }
    }
    let mut written = Vec::new();
    for (role, flag) in OUTPUT_FLAGS {
        if let Some(name) = roles.get(role) {
            let path = tmp.join(format!("{role}.npy"));
            args.push(flag.into());
            args.push(path.display().to_string());
            written.push((name.as_str().unwrap().to_string(), path));
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    FixtureRun {
        out: run(&refs),
        written,
    }
}

/// Whether `r` failed with one line on stderr that contains one of `expect`, and wrote
/// nothing; else what went wrong.
fn refused(r: &FixtureRun, expect: &[&str]) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    if r.out.status.success() {
        return Err("succeeded, expected an error".into());
    }
    if !expect.iter().any(|e| stderr.contains(e)) {
        return Err(format!(
            "error `{}` names none of {expect:?}",
            stderr.trim()
        ));
    }
    if stderr.trim_end().lines().count() != 1 {
        return Err(format!("error is not one line: {stderr}"));
    }
    if let Some((_, p)) = r.written.iter().find(|(_, p)| p.exists()) {
        return Err(format!("wrote {} on error", p.display()));
    }
    Ok(())
}

/// Every file `r` wrote against the fixture's expected outputs, element-wise within the case's
/// tolerance `|a − e| ≤ abs + rel·|e|`: the worst absolute error, or what went wrong.
fn matches_expected(dir: &Path, case: &serde_json::Value, r: &FixtureRun) -> Result<f32, String> {
    if !r.out.status.success() {
        return Err(format!(
            "failed: {}",
            String::from_utf8_lossy(&r.out.stderr).trim()
        ));
    }
    let expected = case["outputs"].as_object().unwrap();
    let mut asked: Vec<&str> = r.written.iter().map(|(n, _)| n.as_str()).collect();
    asked.sort_unstable();
    let declared: Vec<&str> = expected.keys().map(String::as_str).collect();
    if asked != declared {
        return Err(format!(
            "outputs asked for {asked:?}, the fixture expects {declared:?}"
        ));
    }
    let tol = &case["tolerance"];
    let (abs, rel) = (
        tol["abs"].as_f64().unwrap() as f32,
        tol["rel"].as_f64().unwrap() as f32,
    );
    let mut worst = 0.0f32;
    for (name, path) in &r.written {
        let want = read_any_float(&dir.join(expected[name].as_str().unwrap()));
        let got = f32s(path);
        if got.shape() != want.shape() {
            return Err(format!(
                "`{name}`: shape {:?}, expected {:?}",
                got.shape(),
                want.shape()
            ));
        }
        for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
            let err = (a - e).abs();
            // NaN anywhere fails: it compares as neither less nor equal.
            let within = err.partial_cmp(&(abs + rel * e.abs()));
            if !matches!(
                within,
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            ) {
                return Err(format!(
                    "`{name}` element {i}: expected {e}, got {a} (tolerance {abs:e} + {rel:e}·|e|)"
                ));
            }
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// An expected output: float32, or float64 read as float32.
fn read_any_float(p: &Path) -> ndarray::ArrayD<f32> {
    match npy::read(p).unwrap() {
        NpyArray::F32(a) => a,
        NpyArray::F64(a) => a.mapv(|v| v as f32),
        other => panic!("{}: {}", p.display(), other.dtype()),
    }
}

/// Checks one fixture from the command line on `device`: a refusal case fails with its
/// error; a case whose graph needs value-computing ops (`requires_ops`) is refused naming one
/// of them or matches; every other case writes exactly the outputs its graph declares, each
/// matching the expected values. Returns what happened, or what went wrong.
fn check_fixture(dir: &Path, device: &str) -> Result<String, String> {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let r = run_fixture(dir, &case, device, tmp.path());
    if let Some(expect) = case["expect_error"].as_str() {
        refused(&r, &[expect])?;
        return Ok("refused".into());
    }
    if let Some(ops) = case["requires_ops"].as_array() {
        let ops: Vec<&str> = ops.iter().map(|o| o.as_str().unwrap()).collect();
        if !r.out.status.success() {
            refused(&r, &ops)?;
            return Ok("refused (requires_ops)".into());
        }
    }
    let worst = matches_expected(dir, &case, &r)?;
    Ok(format!("ok, worst |diff| {worst:.1e}"))
}

/// Every committed ONNX fixture through `wgpu-lstm run --model` on the CPU, and the final-state
/// only ONNX operator tests on the GPU where there is one.
#[test]
fn every_onnx_fixture_runs_from_the_command_line() {
    let all = common::onnx_fixture_dirs();
    assert!(all.len() >= 130, "only {} fixtures found", all.len());
    let gpu_cases = [
        "test_lstm_defaults",
        "test_gru_defaults",
        "test_simple_rnn_defaults",
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in &all {
        let case = dir.file_name().unwrap().to_string_lossy().to_string();
        let group = dir.parent().unwrap().file_name().unwrap().to_string_lossy();
        let mut devices = vec!["cpu"];
        if gpu_cases.contains(&case.as_str()) && common::gpu().is_some() {
            devices.push("gpu");
        }
        for device in devices {
            ran += 1;
            match check_fixture(dir, device) {
                Ok(what) => eprintln!("  {group}/{case} {device}: {what}"),
                Err(e) => failures.push(format!("{group}/{case} {device}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} command-line runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A model that gives only final states runs with the output flags it has; an output flag
/// the graph lacks, or none at all, is a one-line error that writes nothing.
#[test]
fn output_flags_follow_the_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    let (y, hn, cn) = (p("y.npy"), p("hn.npy"), p("cn.npy"));
    let files = |d: &Path| {
        (
            d.join("model.onnx").display().to_string(),
            d.join("X.npy").display().to_string(),
        )
    };
    let nothing_written = || {
        for f in [&y, &hn, &cn] {
            assert!(!Path::new(f).exists(), "{f} written");
        }
    };
    let fails = |args: &[&str], expect: &str| {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expect), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        nothing_written();
    };

    let (lstm, x) = files(&fixture("onnx_node/test_lstm_defaults"));
    let base = ["run", "--device", "cpu", "--model", &lstm, "--input", &x];
    // No output flag at all.
    fails(&base, "--output");
    fails(&base, "--hn");
    // The graph has Y_h only: --output and --cn are refused, even beside --hn.
    fails(
        &[&base[..], &["--hn", &hn, "--output", &y]].concat(),
        "has no graph output carrying the sequence",
    );
    fails(
        &[&base[..], &["--cn", &cn]].concat(),
        "has no graph output carrying the final cell state",
    );
    let out = run(&[&base[..], &["--hn", &hn]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f32s(Path::new(&hn)).shape(), &[1, 3, 3]);
    std::fs::remove_file(&hn).unwrap();

    // Y_h and Y_c without Y: --cn alone writes the cell state only.
    let d = fixture("random/lstm_reverse_layout0_bare");
    let (m, x) = files(&d);
    let out = run(&[
        "run", "--device", "cpu", "--model", &m, "--input", &x, "--cn", &cn,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        f32s(Path::new(&cn)).shape(),
        f32s(&d.join("Y_c.npy")).shape()
    );
    assert!(!Path::new(&hn).exists() && !Path::new(&y).exists());
}
