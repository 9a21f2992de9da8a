//! The load test's chart: p99 (solid) and p50 (thin) latency against offered load, one
//! line per device and server, and the cellular batcher's p99 at the padding batcher's rates
//! as triangles; both axes logarithmic (the servers' loads differ by orders of magnitude).

use std::path::Path;

use wgpu_lstm::Error;

use super::LoadReport;

/// Draws `report` as a PNG at `path` (written under a temporary name, renamed when complete).
pub fn draw(path: &Path, report: &LoadReport) -> Result<(), Error> {
    use plotters::prelude::*;
    let points = report
        .records
        .iter()
        .flat_map(|r| r.loads.iter().chain(&r.at_padding_loads));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, 0.0f64, f64::MAX, 0.0f64);
    for p in points {
        x0 = x0.min(p.rate);
        x1 = x1.max(p.rate);
        y0 = y0.min(p.p50_ms);
        y1 = y1.max(p.p99_ms);
    }
    if x1 <= 0.0 {
        return Err(Error::encode("chart", "no load points to draw"));
    }
    crate::chart::render(path, |temp| {
        let root = BitMapBackend::new(temp, (1000, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "wgpu-lstm load: `{}`, {}..={} steps, latency vs offered load",
            report.shape, report.min_steps, report.max_steps
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (x0 / 1.5..x1 * 1.5).log_scale(),
                (y0.max(1e-3) / 1.5..y1 * 1.5).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("offered load (requests/s, log scale)")
            .y_desc("latency ms (p99 solid, p50 thin; log scale)")
            .draw()?;
        for (i, r) in report.records.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let p99 = r.loads.iter().map(|p| (p.rate, p.p99_ms));
            chart
                .draw_series(LineSeries::new(p99, color.stroke_width(3)))?
                .label(format!("{}: {}", r.device, r.server))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(3))
                });
            let p50 = r.loads.iter().map(|p| (p.rate, p.p50_ms));
            chart.draw_series(LineSeries::new(p50, color.stroke_width(1)))?;
            chart.draw_series(
                r.loads
                    .iter()
                    .map(|p| Circle::new((p.rate, p.p99_ms), 3, color.filled())),
            )?;
            if !r.at_padding_loads.is_empty() {
                // The cellular batcher's p99 at the padding batcher's own rates: triangles
                // beside that server's points.
                chart
                    .draw_series(r.at_padding_loads.iter().map(|p| {
                        TriangleMarker::new((p.rate, p.p99_ms), 6, color.stroke_width(2))
                    }))?
                    .label(format!(
                        "{}: {} at the padding batcher's loads (p99)",
                        r.device, r.server
                    ))
                    .legend(move |(x, y)| {
                        TriangleMarker::new((x + 7, y), 6, color.stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
        root.present()?;
        Ok(())
    })
}
