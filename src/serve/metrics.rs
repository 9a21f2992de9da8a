//! `/metrics`: the server's figures in Prometheus' text format, under Triton's metric names
//! where one exists.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::model::ServedModel;

/// One metric: its name, type, help text, and its value for a model.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&ServedModel, &crate::batcher::BatcherStats) -> u64,
}

const METRICS: [Metric; 12] = [
    Metric {
        name: "nv_inference_request_success",
        kind: "counter",
        help: "Number of successful inference requests",
        value: |m, _| m.counts.success.load(Ordering::Relaxed),
    },
    Metric {
        name: "nv_inference_request_failure",
        kind: "counter",
        help: "Number of failed inference requests",
        value: |m, _| m.counts.failure.load(Ordering::Relaxed),
    },
    Metric {
        name: "nv_inference_count",
        kind: "counter",
        help: "Number of inferences performed (one per sequence or sequence chunk)",
        value: |m, _| m.counts.success.load(Ordering::Relaxed),
    },
    Metric {
        name: "nv_inference_exec_count",
        kind: "counter",
        help: "Number of model executions (the batcher's rounds)",
        value: |_, s| s.rounds,
    },
    Metric {
        name: "nv_inference_queue_duration_us",
        kind: "counter",
        help: "Cumulative time requests waited before their first round, in microseconds",
        value: |_, s| s.queue_time.total.as_micros() as u64,
    },
    Metric {
        name: "nv_inference_compute_infer_duration_us",
        kind: "counter",
        help: "Cumulative time of the batcher's rounds, in microseconds",
        value: |_, s| s.compute_time.total.as_micros() as u64,
    },
    Metric {
        name: "wgpu_lstm_admitted",
        kind: "counter",
        help: "Requests and sequence chunks the batcher admitted to its queue",
        value: |_, s| s.admitted,
    },
    Metric {
        name: "wgpu_lstm_cancelled",
        kind: "counter",
        help: "Admitted requests dropped before their answer (their client went away)",
        value: |_, s| s.cancelled,
    },
    Metric {
        name: "wgpu_lstm_open_sequences",
        kind: "gauge",
        help: "Sequences open (sequence_start received, not yet ended or expired)",
        value: |m, _| m.sequences.len() as u64,
    },
    Metric {
        name: "wgpu_lstm_slots_in_use",
        kind: "gauge",
        help: "Slots of the state table in use (requests in flight and open streams)",
        value: |_, s| s.slots_in_use as u64,
    },
    Metric {
        name: "wgpu_lstm_state_table_bytes",
        kind: "gauge",
        help: "Bytes of the state table",
        value: |_, s| s.state_table_bytes,
    },
    Metric {
        name: "wgpu_lstm_queued",
        kind: "gauge",
        help: "Requests and chunks admitted and not yet answered",
        value: |_, s| s.queued as u64,
    },
];

/// The text of `/metrics` for `models`.
pub(crate) fn render<'a>(models: impl IntoIterator<Item = &'a ServedModel>) -> String {
    let models: Vec<(&ServedModel, crate::batcher::BatcherStats)> = models
        .into_iter()
        .map(|m| (m, m.batcher().stats()))
        .collect();
    let mut out = String::new();
    for metric in &METRICS {
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} {}", metric.name, metric.kind);
        for (m, stats) in &models {
            let _ = writeln!(
                out,
                "{}{{model=\"{}\",version=\"{}\"}} {}",
                metric.name,
                m.name(),
                super::describe::VERSION,
                (metric.value)(m, stats)
            );
        }
    }
    out
}
