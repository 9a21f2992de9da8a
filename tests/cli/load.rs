//! `load`: the three servers' table on stdout, the JSON report and the chart, and its one-line
//! errors. On the CPU with a tiny load (the GPU's tuning alone takes longer on a software
//! adapter).

use crate::{assert_fails, assert_ok, run, Case};

/// `load` on the CPU with a tiny load (a batch of 4, a fifth of a second per load point, one
/// run of each unless `extra` says) and `extra` arguments.
fn tiny_load(extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "load",
        "--device",
        "cpu",
        "--max-batch",
        "4",
        "--seconds",
        "0.2",
        "--saturation-seconds",
        "0.2",
    ];
    if !extra.contains(&"--repeats") {
        args.extend_from_slice(&["--repeats", "1"]);
    }
    args.extend_from_slice(extra);
    run(&args)
}

/// The JSON report written at `path`.
fn read_report(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A tiny CPU run: a row per server, the comparison at the padding batcher's loads, every
/// measurement in the JSON report, the chart, and no temporary file left behind.
#[test]
fn load_compares_three_servers_and_writes_a_report() {
    let case = Case::new();
    let (json, png) = (case.p("load.json"), case.p("load.png"));
    let out = tiny_load(&["--max-steps", "20", "--json", &json, "--plot", &png]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for server in ["per-request", "padding", "cellular"] {
        let row = format!("| {server} |");
        assert!(stdout.lines().any(|l| l.contains(&row)), "{stdout}");
    }
    assert!(
        stdout.contains("at the padding batcher's loads"),
        "{stdout}"
    );
    let report = read_report(&json);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for r in records {
        assert!(r["saturation"].as_f64().unwrap() > 0.0, "{r}");
        let loads = r["loads"].as_array().unwrap();
        assert_eq!(loads.len(), 3, "{r}");
        for p in loads {
            let (p50, p99) = (p["p50_ms"].as_f64().unwrap(), p["p99_ms"].as_f64().unwrap());
            assert!(p50 > 0.0 && p50 <= p99, "{p}");
            assert_eq!(p["failed"].as_u64(), Some(0), "{p}");
        }
    }
    assert!(records[2]["mean_batch"].as_f64().unwrap() >= 1.0);
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    assert_eq!(case.files(), ["load.json", "load.png"]);
}

/// Half the utterances live streams in chunks: every server answers every chunk (none
/// failed), the chunks' latency is reported beside the one-shot requests', and the report
/// says how the streams were sent.
#[test]
fn load_mixes_live_streams_with_one_shot_requests() {
    let case = Case::new();
    let json = case.p("load.json");
    let out = tiny_load(&[
        "--max-steps",
        "23",
        "--quantum",
        "3",
        "--streams",
        "0.5",
        "--chunk",
        "4",
        "--chunk-ms",
        "2",
        "--json",
        &json,
    ]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stream chunks: latency"), "{stdout}");
    let report = read_report(&json);
    assert_eq!(report["streams"].as_f64(), Some(0.5));
    assert_eq!(report["chunk"].as_u64(), Some(4));
    for r in report["records"].as_array().unwrap() {
        for p in r["loads"].as_array().unwrap() {
            assert_eq!(p["failed"].as_u64(), Some(0), "{p}");
            let (p50, p99) = (
                p["chunk_p50_ms"].as_f64().unwrap(),
                p["chunk_p99_ms"].as_f64().unwrap(),
            );
            assert!(p50 > 0.0 && p50 <= p99, "{p}");
        }
    }
    assert_eq!(case.files(), ["load.json"]);
}

/// `--servers` runs only the servers named: one row, one record.
#[test]
fn load_runs_only_the_servers_named() {
    let case = Case::new();
    let json = case.p("load.json");
    let out = tiny_load(&[
        "--max-steps",
        "20",
        "--servers",
        "cellular",
        "--json",
        &json,
    ]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| cellular |"), "{stdout}");
    assert!(
        !stdout.contains("| per-request |") && !stdout.contains("| padding |"),
        "{stdout}"
    );
    let report = read_report(&json);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["server"], "cellular");
    assert_eq!(records[0]["speedup"].as_f64(), Some(1.0));
}

/// The servers in another order: the cellular batcher named before the padding batcher is
/// still run at the padding batcher's rates (the servers take turns at each load), and the
/// "×" column is relative to the first one named.
#[test]
fn load_compares_at_the_padding_loads_in_any_order() {
    let case = Case::new();
    let json = case.p("load.json");
    let out = tiny_load(&[
        "--max-steps",
        "20",
        "--servers",
        "cellular,padding",
        "--bursts",
        "1",
        "--repeats",
        "2",
        "--json",
        &json,
    ]);
    assert_ok(&out);
    let report = read_report(&json);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["server"], "cellular");
    assert_eq!(records[0]["speedup"].as_f64(), Some(1.0));
    assert_eq!(records[1]["server"], "padding");
    let padding_rates: Vec<f64> = records[1]["loads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rate"].as_f64().unwrap())
        .collect();
    let cellular_saturation = records[0]["saturation"].as_f64().unwrap();
    let at_padding = records[0]["at_padding_loads"].as_array().unwrap();
    // Every padding load the batcher can carry, at the very same rate.
    let expected: Vec<f64> = padding_rates
        .iter()
        .copied()
        .filter(|&r| r < cellular_saturation)
        .collect();
    assert!(!expected.is_empty(), "{report}");
    let got: Vec<f64> = at_padding
        .iter()
        .map(|p| p["rate"].as_f64().unwrap())
        .collect();
    assert_eq!(got, expected, "{report}");
    // Two runs of every point: the slower of the two reported, both kept.
    for point in records
        .iter()
        .flat_map(|r| ["loads", "at_padding_loads"].map(|k| r[k].as_array().unwrap().clone()))
        .flatten()
    {
        let runs: Vec<f64> = point["p99_runs_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(runs.len(), 2, "{point}");
        assert_eq!(
            point["p99_ms"].as_f64(),
            Some(runs[0].max(runs[1])),
            "{point}"
        );
    }
}

/// An unknown shape or impossible lengths: one line, a non-zero exit, nothing written.
#[test]
fn load_refuses_bad_arguments() {
    let case = Case::new();
    let json = case.p("load.json");
    // `load --device cpu` with `args`, refused with `message`.
    let refused = |args: &[&str], message: &str| {
        let mut all = vec!["load", "--device", "cpu"];
        all.extend_from_slice(args);
        assert_fails(&case, &all, message);
    };
    refused(
        &["--shape", "nope", "--json", &json],
        "no suite shape `nope`",
    );
    refused(&["--min-steps", "0", "--json", &json], "--min-steps");
    refused(&["--min-steps", "30", "--max-steps", "20"], "--min-steps");
    refused(
        &["--streams", "2", "--json", &json],
        "--streams must be between 0 and 1",
    );
    refused(
        &["--shape", "bidir", "--streams", "0.5"],
        "--streams needs a unidirectional model",
    );
    refused(
        &["--servers", "cellular,cellular", "--json", &json],
        "--servers names each",
    );
    refused(&["--servers", "nope"], "invalid value 'nope'");
    refused(
        &["--bursts", "0", "--json", &json],
        "--bursts must be at least 1",
    );
    refused(
        &["--repeats", "0", "--json", &json],
        "--repeats must be at least 1",
    );
}
