//! The load test's results as Markdown tables on stdout: each server's saturation and
//! latencies, the streams' chunks, and the cellular batcher at the padding batcher's loads.

use super::measure::LoadPoint;
use super::servers::Kind;
use super::{LoadArgs, ServerRecord};

/// The results as a table on stdout.
pub fn print(args: &LoadArgs, records: &[ServerRecord]) {
    println!(
        "\nmodel `{}`, requests uniform in {}..={} steps, max batch {}, quantum {}; latency p50 / p99 in ms at 25 %, 50 %, 80 % of each server's saturation",
        args.shape, args.min_steps, args.max_steps, args.max_batch, args.quantum
    );
    if args.streams > 0.0 {
        println!(
            "{:.0} % of the utterances live streams in chunks of {} steps every {} ms; saturation in utterances/s, latency of the one-shot requests (the chunks' below)",
            args.streams * 100.0,
            args.chunk,
            args.chunk_ms
        );
    }
    println!("| device | server | saturation (req/s) | × per-request | mean batch | 25 % | 50 % | 80 % |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in records {
        let cell = |p: &LoadPoint| format!("{:.1} / {:.1}", p.p50_ms, p.p99_ms);
        let loads: Vec<String> = r.loads.iter().map(cell).collect();
        println!(
            "| {} | {} | {:.1} | {:.2} | {} | {} |",
            r.device,
            r.server,
            r.saturation,
            r.speedup,
            r.mean_batch.map_or("—".into(), |m| format!("{m:.1}")),
            loads.join(" | ")
        );
    }
    if args.streams > 0.0 {
        println!("\nstream chunks: latency p50 / p99 in ms, each from its own arrival");
        println!("| device | server | 25 % | 50 % | 80 % |");
        println!("|---|---|---:|---:|---:|");
        for r in records {
            let cell = |p: &LoadPoint| match (p.chunk_p50_ms, p.chunk_p99_ms) {
                (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
                _ => "—".into(),
            };
            let loads: Vec<String> = r.loads.iter().map(cell).collect();
            println!("| {} | {} | {} |", r.device, r.server, loads.join(" | "));
        }
    }
    for r in records.iter().filter(|r| !r.at_padding_loads.is_empty()) {
        let padding = records
            .iter()
            .find(|p| p.device == r.device && p.server == Kind::Padding.name());
        println!(
            "\n{}: p99 ms at the padding batcher's loads (cellular vs padding)",
            r.device
        );
        for (c, p) in r
            .at_padding_loads
            .iter()
            .zip(padding.map(|p| &p.loads[..]).unwrap_or(&[]))
        {
            println!(
                "  {:.1} requests/s: cellular {:.1}, padding {:.1}",
                c.rate, c.p99_ms, p.p99_ms
            );
        }
    }
}
