//! The run at a glance: one SVG with submit throughput on top and submit latency below, sharing
//! the time axis, every fault window shaded in its family's color.
//!
//! 1. The x range covers the run, the data and every window, so nothing is clipped.
//! 2. Each chart first shades the windows (translucent, one color per family), then draws its
//!    lines over them.
//! 3. The top chart carries the fault legend; the bottom one the p50/p99 legend.
//!
//! Text needs no font library: without plotters' `ttf` feature the SVG backend writes `<text>`
//! elements and leaves glyphs to the viewer, estimating their size only for layout. So axis
//! labels and legends work on a machine without fontconfig/freetype.
//!
//! Latency uses a log scale because the interesting spikes (timeouts of seconds) sit orders of
//! magnitude above normal answers (milliseconds).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::measure::FaultWindow;
use super::measure::SecondBucket;

/// Size of the whole picture in pixels.
const SIZE: (u32, u32) = (1200, 800);

/// Opacity of a fault window's shading: light enough that lines stay readable over two overlapping
/// windows.
const SHADE_ALPHA: f64 = 0.18;

/// Lowest latency shown (ms); the log axis cannot reach 0 and sub-0.1 ms answers are noise here.
const MIN_LATENCY_MS: f64 = 0.1;

const THROUGHPUT_COLOR: RGBColor = RGBColor(31, 31, 31);
const P50_COLOR: RGBColor = RGBColor(31, 31, 31);
const P99_COLOR: RGBColor = RGBColor(120, 0, 120);

/// Colors for the known fault families (a categorical palette, so adjacent windows differ).
const FAMILY_COLORS: [(&str, RGBColor); 8] = [
    ("kill", RGBColor(214, 39, 40)),
    ("pause", RGBColor(255, 127, 14)),
    ("partition", RGBColor(31, 119, 180)),
    ("loss", RGBColor(148, 103, 189)),
    ("membership", RGBColor(44, 160, 44)),
    ("clock", RGBColor(140, 86, 75)),
    ("worker-kill", RGBColor(227, 119, 194)),
    ("worker-pause", RGBColor(23, 190, 207)),
];

/// Colors handed out, in name order, to families the palette above does not know.
const SPARE_COLORS: [RGBColor; 3] = [RGBColor(188, 189, 34), RGBColor(127, 127, 127), RGBColor(0, 0, 128)];

/// Writes the throughput/latency plot of a run to `path` (SVG).
///
/// `duration_s` is the run's length; the time axis extends further if data or windows do. Works on
/// empty input (axes only).
pub fn write_plot(
    path: &Path,
    series: &[SecondBucket],
    windows: &[FaultWindow],
    duration_s: f64,
) -> anyhow::Result<()> {
    let end_s = time_extent(series, windows, duration_s);
    let families = family_colors(windows);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);
    draw_throughput(&top, series, windows, &families, end_s)?;
    draw_latency(&bottom, series, windows, &families, end_s)?;
    root.present()?;
    Ok(())
}

/// End of the time axis in seconds: at least 1 so an empty run still has an axis.
fn time_extent(series: &[SecondBucket], windows: &[FaultWindow], duration_s: f64) -> f64 {
    let data = series.last().map_or(0.0, |b| b.second as f64 + 1.0);
    let faults = windows.iter().map(|w| ns_to_s(w.end_ns.unwrap_or(w.start_ns))).fold(0.0, f64::max);
    [duration_s, data, faults, 1.0].into_iter().filter(|v| v.is_finite()).fold(0.0, f64::max)
}

/// One color per family present, by name.
fn family_colors(windows: &[FaultWindow]) -> BTreeMap<&str, RGBColor> {
    let mut colors = BTreeMap::new();
    for w in windows {
        let known = FAMILY_COLORS.iter().find(|(name, _)| *name == w.fault).map(|(_, c)| *c);
        colors.entry(w.fault.as_str()).or_insert(known);
    }
    let mut spare = SPARE_COLORS.iter().cycle();
    colors.into_iter().map(|(name, c)| (name, c.unwrap_or_else(|| *spare.next().expect("cycle is endless")))).collect()
}

fn draw_throughput(
    area: &DrawingArea<SVGBackend, Shift>,
    series: &[SecondBucket],
    windows: &[FaultWindow],
    families: &BTreeMap<&str, RGBColor>,
    end_s: f64,
) -> anyhow::Result<()> {
    let top = series.iter().map(|b| b.ok_submits).max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end_s, 0.0..top)?;
    chart.configure_mesh().x_desc("time (s)").y_desc("ok submits / s").draw()?;
    for (family, color) in families {
        let rects = shade(windows, family, *color, end_s, 0.0..top);
        chart.draw_series(rects)?.label(*family).legend(move |(x, y)| legend_swatch(x, y, *color));
    }
    let points = series.iter().map(|b| (b.second as f64 + 0.5, b.ok_submits as f64));
    chart.draw_series(LineSeries::new(points, THROUGHPUT_COLOR.stroke_width(2)))?;
    if !families.is_empty() {
        draw_legend(&mut chart)?;
    }
    Ok(())
}

fn draw_latency(
    area: &DrawingArea<SVGBackend, Shift>,
    series: &[SecondBucket],
    windows: &[FaultWindow],
    families: &BTreeMap<&str, RGBColor>,
    end_s: f64,
) -> anyhow::Result<()> {
    let highest = series.iter().flat_map(|b| [b.submit_p50_ms, b.submit_p99_ms]).flatten().fold(0.0, f64::max);
    let y = MIN_LATENCY_MS..(highest * 1.5).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .caption("submit latency (invoke to completion, log scale)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end_s, y.clone().log_scale())?;
    chart.configure_mesh().x_desc("time (s)").y_desc("ms").draw()?;
    for (family, color) in families {
        chart.draw_series(shade(windows, family, *color, end_s, y.clone()))?;
    }
    let mut labeled = false;
    let p50 = runs(series.iter().map(|b| (b.second, b.submit_p50_ms)));
    let p99 = runs(series.iter().map(|b| (b.second, b.submit_p99_ms)));
    for (name, color, runs) in [("p50", P50_COLOR, p50), ("p99", P99_COLOR, p99)] {
        // A second without completed submits is a gap, not a zero: draw each run separately.
        for (i, run) in runs.into_iter().enumerate() {
            let drawn = chart.draw_series(LineSeries::new(run, color.stroke_width(2)))?;
            if i == 0 {
                drawn.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
                labeled = true;
            }
        }
    }
    if labeled {
        draw_legend(&mut chart)?;
    }
    Ok(())
}

/// The legend box, top right, of whatever series were labeled.
fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'b>, CT>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The shaded rectangles of one family's windows over the full height `y`.
fn shade<'a>(
    windows: &'a [FaultWindow],
    family: &'a str,
    color: RGBColor,
    end_s: f64,
    y: Range<f64>,
) -> impl Iterator<Item = Rectangle<(f64, f64)>> + 'a {
    windows.iter().filter(move |w| w.fault == family).map(move |w| {
        let start = ns_to_s(w.start_ns);
        let end = w.end_ns.map_or(end_s, ns_to_s);
        Rectangle::new([(start, y.start), (end, y.end)], color.mix(SHADE_ALPHA).filled())
    })
}

fn legend_swatch(x: i32, y: i32, color: RGBColor) -> Rectangle<(i32, i32)> {
    Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.mix(SHADE_ALPHA * 2.0).filled())
}

/// Maximal runs of consecutive seconds that have a value, as plot points (latency clamped to the
/// axis floor).
fn runs(values: impl Iterator<Item = (u64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (second, value) in values {
        match value {
            Some(v) => current.push((second as f64 + 0.5, v.max(MIN_LATENCY_MS))),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_svg(name: &str) -> std::path::PathBuf {
        let unique = format!("taskraft-plot-{name}-{}-{:?}.svg", std::process::id(), std::time::Instant::now());
        std::env::temp_dir().join(unique.replace([' ', ':', '{', '}', ','], "_"))
    }

    fn bucket(second: u64, ok: u64, p50: Option<f64>, p99: Option<f64>) -> SecondBucket {
        SecondBucket { second, ok_submits: ok, submits_completed: ok, submit_p50_ms: p50, submit_p99_ms: p99 }
    }

    #[test]
    fn plot_shades_windows_and_labels_axes() {
        let series = vec![
            bucket(0, 10, Some(5.0), Some(20.0)),
            bucket(1, 0, None, None),
            bucket(2, 3, Some(900.0), Some(4000.0)),
            bucket(3, 12, Some(4.0), Some(10.0)),
        ];
        let windows = vec![
            FaultWindow {
                fault: "kill".into(),
                detail: "kill leader n1".into(),
                start_ns: 1_000_000_000,
                end_ns: Some(2_500_000_000),
            },
            FaultWindow { fault: "odd".into(), detail: "x".into(), start_ns: 3_000_000_000, end_ns: None },
        ];
        let path = temp_svg("faults");
        write_plot(&path, &series, &windows, 4.0).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains(r##"opacity="0.18" fill="#D62728""##), "kill window is shaded");
        assert!(svg.contains("<text") && svg.contains("throughput"), "labels render without font libraries");
        assert!(svg.contains(">\nkill\n</text>"), "legend names the family");
    }

    #[test]
    fn plot_of_an_empty_run_has_axes_only() {
        let path = temp_svg("empty");
        write_plot(&path, &[], &[], 0.0).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(!svg.is_empty() && svg.contains("<svg"));
    }
}
