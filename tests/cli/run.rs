//! `run` on safetensors models: every cell and flag, float16 weights, layouts and formats,
//! and the outputs asked for.

use std::path::Path;

use crate::common::{assert_close, gpu, npy_bytes, rng, uniform};
use crate::{assert_ok, devices, read, run, write_lengths, Case};
use ndarray::{ArrayD, IxDyn};
use wgpu_lstm::compare::Tolerance;
use wgpu_lstm::io::model_file;
use wgpu_lstm::io::npy;
use wgpu_lstm::{Cell, CpuModel, Forward, Input, RnnSpec, Weights, WeightsDtype};

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

/// `--weights-dtype i8` on the CPU: the library's int8 model, bit for bit (the same scheme,
/// any thread count); on the GPU, the float32 LSTM of the weights the integers stand for.
#[test]
fn run_with_i8_weights() {
    let case = Case::new();
    let spec = RnnSpec::lstm(4, 9).layers(2);
    let w = Weights::random(&spec, 6).unwrap();
    model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
    let x: ArrayD<f32> = uniform(&mut rng(63), IxDyn(&[6, 2, 4]), 1.0);
    npy::write(&case.path("x.npy"), &x).unwrap();
    let (m, xs, y) = (case.p("m.safetensors"), case.p("x.npy"), case.p("y.npy"));
    let args = ["run", "--weights", &m, "--input", &xs, "--output", &y];
    assert_ok(&run(&[
        &args[..],
        &["--device", "cpu", "--weights-dtype", "i8"],
    ]
    .concat()));
    let model = CpuModel::new(w.clone())
        .weights_dtype(WeightsDtype::I8)
        .unwrap();
    let expected = model.forward(&Input::new(x.view())).unwrap();
    assert_eq!(read(Path::new(&y)), expected.y.into_dyn());
    std::fs::remove_file(&y).unwrap();
    if !devices().contains(&"gpu") {
        return;
    }
    assert_ok(&run(&[
        &args[..],
        &["--device", "gpu", "--weights-dtype", "i8"],
    ]
    .concat()));
    let rounded = CpuModel::reference(w.rounded(WeightsDtype::I8));
    let expected = rounded.forward(&Input::new(x.view())).unwrap();
    let got = read(Path::new(&y));
    assert_close("i8 y", &expected.y, &got, Tolerance::GPU_VS_CPU);
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

/// Each output flag alone writes that output and nothing else.
#[test]
fn run_writes_the_outputs_asked_for() {
    let case = Case::new();
    let w = Weights::random(&RnnSpec::lstm(3, 4), 3).unwrap();
    model_file::save(&case.path("m.safetensors"), &w, false).unwrap();
    let x: ArrayD<f32> = uniform(&mut rng(63), IxDyn(&[5, 2, 3]), 1.0);
    npy::write(&case.path("x.npy"), &x).unwrap();
    let expected = CpuModel::new(w).forward(&Input::new(x.view())).unwrap();
    let (m, xs) = (case.p("m.safetensors"), case.p("x.npy"));
    let c_n = expected.c_n.as_ref().unwrap();
    for (flag, file, want) in [
        ("--hn", "hn.npy", &expected.h_n),
        ("--cn", "cn.npy", c_n),
        ("--output", "y.npy", &expected.y),
    ] {
        let mut files = case.files();
        let path = case.p(file);
        assert_ok(&run(&[
            "run",
            "--weights",
            &m,
            "--input",
            &xs,
            flag,
            &path,
            "--device",
            "cpu",
        ]));
        files.push(file.to_string());
        files.sort();
        assert_eq!(case.files(), files, "{flag}");
        assert_close(flag, want, &read(&case.path(file)), Tolerance::GPU_VS_CPU);
        std::fs::remove_file(case.path(file)).unwrap();
    }
}
