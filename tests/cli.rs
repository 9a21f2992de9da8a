//! End-to-end tests of the `wgpu-lstm` command: `run` on every cell and flag, on the CPU and
//! (where an adapter exists, always in CI) the GPU, each class of bad input, and `info`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_close, gpu, npy_bytes, rng, uniform};
use ndarray::{Array1, ArrayD, IxDyn};
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::io::model_file;
use wgpu_lstm::io::npy::{self, NpyArray};
use wgpu_lstm::{Cell, CpuModel, Forward, Input, RnnSpec, Weights, WeightsDtype};

/// The command, with Mesa's Vulkan device-select layer off: on a headless machine that layer
/// prints "XDG_RUNTIME_DIR is invalid" to stderr while adapters are listed, which is the
/// driver's output, not the command's.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgpu-lstm"));
    c.env("NODEVICE_SELECT", "1");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu"];
    if gpu().is_some() {
        d.push("gpu");
    }
    d
}

fn read(path: &Path) -> ArrayD<f32> {
    match npy::read(path).unwrap() {
        NpyArray::F32(a) => a,
        other => panic!("{} is {}", path.display(), other.dtype()),
    }
}

/// Writes an int `.npy` of lengths: dtype `<i4` or `<i8`.
fn write_lengths(path: &Path, values: &[i64], int32: bool) {
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

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every cell through `run`, with --hn/--cn, h0/c0 and lengths, on every device, against the
/// library's CPU forward.
#[test]
fn run_every_cell_and_flag() {
    let specs = [
        RnnSpec::lstm(3, 6).layers(2).bidirectional(true),
        RnnSpec::lstm(3, 6).proj_size(2).peephole(true),
        RnnSpec::gru(3, 6).layers(2),
        RnnSpec::new(Cell::RnnTanh, 3, 6).bidirectional(true),
        RnnSpec::new(Cell::RnnRelu, 3, 6),
    ];
    let mut r = rng(61);
    for (k, spec) in specs.iter().enumerate() {
        let case = Case::new();
        let w = Weights::random(spec, k as u64).unwrap();
        model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
        let (t, b) = (7, 3);
        let ld = spec.num_layers * spec.num_directions();
        let x: ArrayD<f32> = uniform(&mut r, IxDyn(&[t, b, 3]), 1.0);
        let h0: ArrayD<f32> = uniform(&mut r, IxDyn(&[ld, b, spec.hidden_out()]), 1.0);
        let c0: ArrayD<f32> = uniform(&mut r, IxDyn(&[ld, b, spec.hidden_size]), 1.0);
        let lengths = [7usize, 2, 5];
        npy::write(&case.path("x.npy"), &x).unwrap();
        npy::write(&case.path("h0.npy"), &h0).unwrap();
        npy::write(&case.path("c0.npy"), &c0).unwrap();
        write_lengths(&case.path("len.npy"), &[7, 2, 5], k % 2 == 0);
        let lstm = spec.cell == Cell::Lstm;
        let mut input = Input::new(x.view()).h0(h0.view()).lengths(&lengths);
        if lstm {
            input = input.c0(c0.view());
        }
        let expected = CpuModel::new(w).forward(&input).unwrap();
        for device in devices() {
            let (m, xs, y, hn, cn) = (
                case.p("m.safetensors"),
                case.p("x.npy"),
                case.p(&format!("y_{device}.npy")),
                case.p(&format!("hn_{device}.npy")),
                case.p(&format!("cn_{device}.npy")),
            );
            let (h0p, c0p, lp) = (case.p("h0.npy"), case.p("c0.npy"), case.p("len.npy"));
            let mut args = vec![
                "run",
                "--weights",
                &m,
                "--input",
                &xs,
                "--output",
                &y,
                "--h0",
                &h0p,
                "--hn",
                &hn,
                "--lengths",
                &lp,
                "--device",
                device,
            ];
            if lstm {
                args.extend(["--c0", &c0p, "--cn", &cn]);
            }
            assert_ok(&run(&args));
            let tol = Tolerance::GPU_VS_CPU;
            let what = format!("{device} {:?}", spec);
            assert_close(&format!("{what} y"), &expected.y, &read(Path::new(&y)), tol);
            assert_close(
                &format!("{what} h_n"),
                &expected.h_n,
                &read(Path::new(&hn)),
                tol,
            );
            if lstm {
                let c = expected.c_n.as_ref().unwrap();
                assert_close(&format!("{what} c_n"), c, &read(Path::new(&cn)), tol);
            }
        }
    }
}

/// `--weights-dtype f16` on the GPU: the CPU's result on the same weights rounded to float16;
/// on the CPU, a clear error.
#[test]
fn run_with_f16_weights() {
    let case = Case::new();
    let spec = RnnSpec::gru(4, 9).layers(2);
    let w = Weights::random(&spec, 5).unwrap();
    model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
    let x: ArrayD<f32> = uniform(&mut rng(62), IxDyn(&[6, 2, 4]), 1.0);
    npy::write(&case.path("x.npy"), &x).unwrap();
    let (m, xs, y) = (case.p("m.safetensors"), case.p("x.npy"), case.p("y.npy"));
    let args = ["run", "--weights", &m, "--input", &xs, "--output", &y];
    let out = run(&[&args[..], &["--device", "cpu", "--weights-dtype", "f16"]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--weights-dtype f16 applies to --device gpu"),
        "{err}"
    );
    assert!(!case.path("y.npy").exists());
    if !devices().contains(&"gpu") {
        return;
    }
    assert_ok(&run(&[
        &args[..],
        &["--device", "gpu", "--weights-dtype", "f16"],
    ]
    .concat()));
    let rounded = CpuModel::reference(w.rounded(WeightsDtype::F16));
    let expected = rounded.forward(&Input::new(x.view())).unwrap();
    let got = read(Path::new(&y));
    assert_close("f16 y", &expected.y, &got, Tolerance::GPU_VS_CPU);
}

/// Batch-first by flag and by metadata, unbatched input, float64 input, a prefixed model.
#[test]
fn run_layouts_and_formats() {
    let case = Case::new();
    let spec = RnnSpec::lstm(4, 5);
    let w = Weights::random(&spec, 9).unwrap();
    let mut r = rng(62);
    let x: ArrayD<f32> = uniform(&mut r, IxDyn(&[6, 2, 4]), 1.0);
    let expected = CpuModel::new(w.clone())
        .forward(&Input::new(x.view()))
        .unwrap();
    let mut xb = x.clone();
    xb.swap_axes(0, 1);
    let xb = xb.as_standard_layout().into_owned();
    npy::write(&case.path("xb.npy"), &xb).unwrap();
    model_file::save(&case.path("plain.safetensors"), &w, false).unwrap();
    model_file::save(&case.path("bf.safetensors"), &w, true).unwrap();
    let mut yb = expected.y.clone();
    yb.swap_axes(0, 1);
    let tol = Tolerance::GPU_VS_CPU;
    for device in devices() {
        for (model, flag) in [("plain.safetensors", true), ("bf.safetensors", false)] {
            let (m, xs, y) = (case.p(model), case.p("xb.npy"), case.p("y.npy"));
            let mut args = vec![
                "run",
                "--weights",
                &m,
                "--input",
                &xs,
                "--output",
                &y,
                "--device",
                device,
            ];
            if flag {
                args.push("--batch-first");
            }
            assert_ok(&run(&args));
            assert_close(
                &format!("{device} {model} batch-first"),
                &yb,
                &read(Path::new(&y)),
                tol,
            );
        }
        // Unbatched [T, I], written as float64.
        let x0 = x.index_axis(ndarray::Axis(1), 0).to_owned();
        let data: Vec<u8> = x0
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect();
        let f64_bytes = npy_bytes("<f8", "(6, 4)", &data);
        std::fs::write(case.path("x64.npy"), f64_bytes).unwrap();
        let (m, xs, y, hn) = (
            case.p("plain.safetensors"),
            case.p("x64.npy"),
            case.p("y1.npy"),
            case.p("hn1.npy"),
        );
        assert_ok(&run(&[
            "run",
            "--weights",
            &m,
            "--input",
            &xs,
            "--output",
            &y,
            "--hn",
            &hn,
            "--device",
            device,
        ]));
        let y0 = expected.y.index_axis(ndarray::Axis(1), 0).to_owned();
        assert_close(
            &format!("{device} unbatched"),
            &y0,
            &read(Path::new(&y)),
            tol,
        );
        assert_eq!(read(Path::new(&hn)).shape(), &[1, 5]);
    }
    // An explicit backend: the one the tests' adapter is on.
    if let Some(ctx) = gpu() {
        let backend = format!("{:?}", ctx.adapter_info().backend).to_lowercase();
        let (m, xs, y) = (
            case.p("plain.safetensors"),
            case.p("xb.npy"),
            case.p("yv.npy"),
        );
        let args = [
            "run",
            "--weights",
            &m,
            "--input",
            &xs,
            "--output",
            &y,
            "--batch-first",
            "--backend",
            &backend,
        ];
        assert_ok(&run(&args));
        assert_close("explicit backend", &yb, &read(Path::new(&y)), tol);
    }
}

/// Runs a failing command: non-zero exit, one line on stderr containing `expect`, no panic,
/// and no file added to the case's folder.
#[track_caller]
fn assert_fails(case: &Case, args: &[&str], expect: &str) {
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

#[test]
fn bad_inputs_fail_cleanly() {
    let case = Case::new();
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

    let (m, gm, x, y) = (
        case.p("m.safetensors"),
        case.p("gru.safetensors"),
        case.p("x.npy"),
        case.p("y.npy"),
    );
    let base = |input: &str| -> Vec<String> {
        [
            "run",
            "--weights",
            &m,
            "--input",
            input,
            "--output",
            &y,
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let call = |extra: &[&str], input: &str, expect: &str| {
        let mut a = base(input);
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_fails(&case, &refs, expect);
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

#[test]
fn info_lists_adapters() {
    let Some(ctx) = gpu() else { return };
    let out = run(&["info"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("adapter 0:"), "{text}");
    assert!(text.contains("max_storage_buffer_binding_size"), "{text}");
    // --backend keeps that backend's adapters only.
    let backend = format!("{:?}", ctx.adapter_info().backend);
    let out = run(&["info", "--backend", &backend.to_lowercase()]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.starts_with("adapter")) {
        assert!(line.contains(&format!("{backend} backend")), "{line}");
    }
    // --adapter that matches nothing: one clear line, non-zero exit.
    let out = run(&["info", "--adapter", "no-such-adapter"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no GPU adapter found with a name containing `no-such-adapter`"),
        "{err}"
    );
}
