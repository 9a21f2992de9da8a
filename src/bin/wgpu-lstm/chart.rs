//! The benchmark's chart: throughput per suite shape as grouped bars, one bar per device (and
//! weight type) in each shape's group, on a log scale (the shapes differ by orders of
//! magnitude, and a line between unrelated shapes would suggest a trend that is not there).

use std::path::Path;

use wgpu_lstm::Error;

use crate::report::{Record, Report};

/// Draws the chosen records of `report` as a PNG at `path` (written under a temporary name,
/// renamed when complete).
pub fn draw(path: &Path, report: &Report) -> Result<(), Error> {
    use plotters::prelude::*;
    let chosen: Vec<&Record> = report.records.iter().filter(|r| r.chosen).collect();
    let mut shapes: Vec<&str> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for r in &chosen {
        if !shapes.contains(&r.shape.as_str()) {
            shapes.push(&r.shape);
        }
        let name = label(r);
        if !series.contains(&name) {
            series.push(name);
        }
    }
    let gflops = chosen.iter().map(|r| r.gflops);
    let max = gflops.clone().fold(1.0, f64::max) * 2.0;
    let min = gflops.fold(max, f64::min).max(1e-3) / 2.0;
    let group = 0.8; // width of a shape's group of bars, in shapes
    let bar = group / series.len().max(1) as f64;
    render(path, |temp| {
        let root = BitMapBackend::new(temp, (1000, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "wgpu-lstm: throughput per shape and device",
                ("sans-serif", 24),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(shapes.len() as f64 - 0.5), (min..max).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(shapes.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    shapes
                        .get(i as usize)
                        .map_or(String::new(), |s| s.to_string())
                } else {
                    String::new()
                }
            })
            .y_desc("GFLOP/s (log scale)")
            .draw()?;
        for (i, name) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let bars = chosen.iter().filter(|r| label(r) == *name).map(|r| {
                let x = shapes.iter().position(|s| *s == r.shape).unwrap_or(0) as f64;
                let left = x - group / 2.0 + i as f64 * bar;
                Rectangle::new([(left, min), (left + bar * 0.9, r.gflops)], color.filled())
            });
            chart
                .draw_series(bars)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Registers the chart font, runs `draw` on a temporary file beside `path`, and renames it to
/// `path` when complete (removed on failure): every chart of the command is written this way.
pub fn render(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Error> {
    use plotters::prelude::FontStyle;
    let font = dejavu::sans::regular();
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| Error::encode("chart", "cannot load the chart font"))?;
    let temp = path.with_extension("tmp.png");
    draw(&temp).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::encode(format!("chart `{}`", path.display()), e)
    })?;
    std::fs::rename(&temp, path).map_err(|e| Error::io(path, e))
}

/// A record's bar: the CPU or a GPU adapter, with its weight type where not float32.
fn label(r: &Record) -> String {
    let weights = r.weights.as_deref().filter(|w| *w != "f32");
    match &r.adapter {
        Some(a) => {
            let weights = weights.map_or(String::new(), |w| format!(", {w} weights"));
            format!("gpu: {} ({}{weights})", a.name, a.backend)
        }
        None => weights.map_or("cpu".to_string(), |w| format!("cpu ({w} weights)")),
    }
}
