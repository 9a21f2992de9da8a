//! `bench`: progress and the time left on stderr, the table on stdout, the JSON report, and
//! its one-line errors. On the CPU only (the GPU's GEMM ceiling alone takes minutes on a
//! software adapter).

use crate::{assert_fails, assert_ok, run, Case};

/// A quick CPU run: each step on stderr with the time elapsed and left, a row per shape and
/// weight type (f32, and i8 with its error against f32), and the JSON report; `--exhaustive`
/// is accepted.
#[test]
fn bench_shows_progress_and_writes_a_report() {
    let case = Case::new();
    let json = case.p("bench.json");
    for exhaustive in [false, true] {
        let mut args = vec![
            "bench",
            "--quick",
            "--suite",
            "edge,gru",
            "--device",
            "cpu",
            "--concurrency-shape",
            "none",
            "--json",
            &json,
        ];
        if exhaustive {
            args.push("--exhaustive");
        }
        let out = run(&args);
        assert_ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stderr.contains("[1/4] edge"), "{stderr}");
        assert!(stderr.contains("[2/4] edge"), "{stderr}");
        assert!(stderr.contains(", int8 ("), "{stderr}");
        assert!(stderr.contains("[4/4] gru"), "{stderr}");
        assert!(stderr.contains("elapsed, about "), "{stderr}");
        assert!(stderr.contains(" left)"), "{stderr}");
        assert!(stderr.contains("benchmark done in "), "{stderr}");
        assert!(stdout.lines().any(|l| l.starts_with("edge ")), "{stdout}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let records = report["records"].as_array().unwrap();
        assert_eq!(records.len(), 4, "{report}");
        assert!(records.iter().all(|r| r["device"] == "cpu"), "{report}");
        let weights: Vec<&str> = records
            .iter()
            .map(|r| r["weights"].as_str().unwrap())
            .collect();
        assert_eq!(weights, ["f32", "i8", "f32", "i8"], "{report}");
        for r in records.iter().filter(|r| r["weights"] == "i8") {
            let err = r["max_abs_err"].as_f64().unwrap();
            assert!(err > 0.0 && err < 0.05, "int8 error {err}: {report}");
        }
    }
}

/// Unknown shapes: one line, non-zero exit, nothing written.
#[test]
fn bench_refuses_unknown_shapes() {
    let case = Case::new();
    let json = case.p("bench.json");
    assert_fails(
        &case,
        &[
            "bench",
            "--suite",
            "edge,nope",
            "--device",
            "cpu",
            "--json",
            &json,
        ],
        "unknown suite shape `nope`",
    );
    assert_fails(
        &case,
        &[
            "bench",
            "--concurrency-shape",
            "nope",
            "--device",
            "cpu",
            "--json",
            &json,
        ],
        "--concurrency-shape: unknown suite shape `nope`",
    );
}
