//! Long runs: 10,000 forwards on one model. In a test binary of its own because wgpu's object
//! counters are per process, so nothing else may run beside it.

mod common;

use common::gpu;
use ndarray::Array3;
use wgpu_lstm::{Forward, GpuModel, Input, RnnSpec, Weights};

/// 10,000 forwards create no buffer, bind group or pipeline after the first, and leave the
/// number of live GPU buffers and the process's memory flat.
#[test]
fn long_runs_stay_flat() {
    let Some(ctx) = gpu() else { return };
    let spec = RnnSpec::gru(3, 8);
    let model = GpuModel::upload(ctx, &Weights::random(&spec, 5).unwrap()).unwrap();
    let x = Array3::<f32>::from_elem((2, 2, 3), 0.5);
    let first = model.forward(&Input::new(x.view())).unwrap();
    let counters = || ctx.device().get_internal_counters().hal;
    let before = counters();
    let rss = || -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        statm
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|pages| pages * 4096)
    };
    for _ in 0..1000 {
        model.forward(&Input::new(x.view())).unwrap();
    }
    let rss_warm = rss();
    for _ in 0..9000 {
        assert_eq!(model.forward(&Input::new(x.view())).unwrap(), first);
    }
    let after = counters();
    for (what, b, a) in [
        ("buffers", before.buffers.read(), after.buffers.read()),
        (
            "bind groups",
            before.bind_groups.read(),
            after.bind_groups.read(),
        ),
        (
            "compute pipelines",
            before.compute_pipelines.read(),
            after.compute_pipelines.read(),
        ),
    ] {
        eprintln!("live {what}: {b} before, {a} after 10,000 forwards");
        assert_eq!(a, b, "live {what} changed over 10,000 forwards");
    }
    if let (Some(w), Some(end)) = (rss_warm, rss()) {
        eprintln!(
            "resident memory: {} KiB after 1,000 forwards, {} KiB after 10,000",
            w / 1024,
            end / 1024
        );
        assert!(
            end < w + 16 * 1024 * 1024,
            "memory grew by {} KiB",
            (end - w) / 1024
        );
    }
}
