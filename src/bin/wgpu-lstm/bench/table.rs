//! The benchmark's text output: the GEMM ceilings, one row per record, and the kernel
//! variants each adapter's tuner chose.

use crate::report::{CeilingRecord, Record, TuningRecord};

/// The kernel variants each adapter chose by measurement, and the time that took.
pub fn print_tuning(tuning: &[TuningRecord]) {
    if tuning.is_empty() {
        return;
    }
    println!("kernel variants chosen by measurement (ms per product of the class's timed shape):");
    for t in tuning {
        let candidates: Vec<String> = t
            .candidates
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.3}"))
            .collect();
        println!(
            "  {} {}: {} {}: {} [{}] (spent {:.0} ms{})",
            t.adapter.backend.to_lowercase(),
            t.adapter.name,
            t.family,
            t.class,
            t.chosen,
            candidates.join(", "),
            t.spent_ms,
            if t.from_cache {
                ", from the cache file"
            } else {
                ""
            }
        );
    }
    let spent: f64 = tuning.iter().map(|t| t.spent_ms).sum();
    println!("  time spent choosing: {spent:.0} ms in all");
}

/// The GEMM ceilings, then one row per record; `exhaustive`: the GPU rows are every step
/// kernel, the fastest marked, else the tuner's choice.
pub fn print_report(ceilings: &[CeilingRecord], records: &[Record], exhaustive: bool) {
    for c in ceilings {
        let dev = c
            .device_gflops
            .map_or(String::new(), |g| format!(" (device time: {g:.2})"));
        println!(
            "GEMM ceiling, {} ({}), {}: {n}×{n}×{n}: {:.2} GFLOP/s{dev}",
            c.adapter.name,
            c.adapter.backend,
            c.variant,
            c.gflops,
            n = c.n
        );
    }
    println!(
        "{:<6} {:<30} {:<18} {:>10} {:>9} {:>10} {:>8} {:>7} {:>10} {:>8} {:>6} {:>5} {:>8}",
        "shape",
        "device",
        "variant",
        "median ms",
        "peak MiB",
        "device ms",
        "GFLOP/s",
        "%GEMM",
        "B·T/s",
        "vs CPU",
        "disp",
        "objs",
        "max err"
    );
    for r in records {
        let device = match &r.adapter {
            Some(a) => format!("{} {}", a.backend.to_lowercase(), a.name),
            None => format!("cpu {} threads", r.threads.unwrap_or(1)),
        };
        let device: String = device.chars().take(30).collect();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<6} {:<30} {:<18} {:>10.3} {:>9} {:>10} {:>8.2} {:>7} {:>10.0} {:>8} {:>6} {:>5} {:>8}",
            r.shape,
            device,
            format!(
                "{}{}{}{}",
                r.variant,
                r.batch_tile.map_or(String::new(), |t| format!(" bt{t}")),
                r.weights
                    .as_deref()
                    .filter(|w| *w != "f32")
                    .map_or(String::new(), |w| format!(" {w}")),
                if exhaustive && r.chosen && r.adapter.is_some() {
                    "*"
                } else {
                    ""
                }
            ),
            r.median_ms,
            opt(r.peak_bytes.map(|b| format!("{:.2}", b as f64 / (1 << 20) as f64))),
            opt(r.device_ms.map(|v| format!("{v:.3}"))),
            r.gflops,
            opt(r.fraction_of_gemm.map(|f| format!("{:.0}%", f * 100.0))),
            r.batch_steps_per_s,
            opt(r.speedup_vs_cpu.map(|s| format!("{s:.2}x"))),
            opt(r.dispatches.map(|d| d.to_string())),
            opt(r.objects_created_in_timed_loop.map(|d| d.to_string())),
            opt(r.max_abs_err.map(|e| format!("{e:.1e}"))),
        );
    }
    if exhaustive {
        println!("(* the fastest GPU kernel of each shape, adapter, weight type and storage; objs: GPU objects created in the timed loop;");
    } else {
        println!("(GPU rows: the step kernel and batch tile (bt) the tuner chose; --exhaustive times every kernel;");
        println!(" objs: GPU objects created in the timed loop;");
    }
    println!(" peak MiB: host memory allocated during one forward, GPU buffers not included)");
}
