//! One PNG per metric with `plotters` (bitmap backend, text drawn with a bundled font).
//!
//! The raw (rank-0) series is a blue line; with cross-rank aggregates the mean is an
//! orange line (under the thin raw line) over a ±std band and a lighter min–max band. A series thinned for length
//! shows each bucket's mean with its min–max envelope, so spikes stay visible.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::history::MetricHistory;
use super::series::{Channel, SeriesPoint};
use super::text::number;
use crate::{Error, Result};

const RAW: RGBColor = RGBColor(31, 119, 180);
const AGG: RGBColor = RGBColor(230, 110, 0);
const GRID: RGBColor = RGBColor(232, 232, 232);
const FONT: &str = "sans-serif";

/// Plot size unless told otherwise, in pixels.
pub const DEFAULT_PLOT_SIZE: (u32, u32) = (900, 500);

/// Registers DejaVu Sans (compiled in) as plotters' `sans-serif` once; no system font is
/// ever looked up.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    })
}

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::backend("report", format!("cannot draw a plot: {e}"))
}

/// Points of `a` and `b` at the same steps (both come from the same buckets).
fn paired(a: &[SeriesPoint], b: &[SeriesPoint]) -> Vec<(f64, SeriesPoint, SeriesPoint)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i].step == b[j].step {
            out.push((a[i].step, a[i], b[j]));
            i += 1;
            j += 1;
        } else if a[i].step < b[j].step {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// A closed band from lower and upper edges at each step.
fn band(edges: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    edges
        .iter()
        .map(|(x, lo, _)| (*x, *lo))
        .chain(edges.iter().rev().map(|(x, _, hi)| (*x, *hi)))
        .collect()
}

struct Layers {
    raw: Vec<SeriesPoint>,
    mean: Vec<SeriesPoint>,
    std_band: Vec<(f64, f64, f64)>,
    range_band: Vec<(f64, f64, f64)>,
    thinned: bool,
}

impl Layers {
    fn of(metric: &MetricHistory) -> Layers {
        let s = metric.series();
        let mean = s.points(Channel::Mean);
        let std_band = paired(&mean, &s.points(Channel::Std))
            .into_iter()
            .map(|(x, m, sd)| (x, m.mean - sd.mean, m.mean + sd.mean))
            .collect();
        let range_band = paired(&s.points(Channel::Min), &s.points(Channel::Max))
            .into_iter()
            .map(|(x, lo, hi)| (x, lo.min, hi.max))
            .collect();
        Layers {
            raw: s.points(Channel::Raw),
            mean,
            std_band,
            range_band,
            thinned: s.stride() > 1,
        }
    }

    fn is_empty(&self) -> bool {
        self.raw.is_empty() && self.mean.is_empty() && self.range_band.is_empty()
    }

    /// The x and y extents of everything drawn.
    fn extent(&self) -> ((f64, f64), (f64, f64)) {
        let mut x = (f64::INFINITY, f64::NEG_INFINITY);
        let mut y = (f64::INFINITY, f64::NEG_INFINITY);
        let mut add = |px: f64, lo: f64, hi: f64| {
            x = (x.0.min(px), x.1.max(px));
            y = (y.0.min(lo), y.1.max(hi));
        };
        for p in self.raw.iter().chain(&self.mean) {
            if self.thinned {
                add(p.step, p.min, p.max);
            } else {
                add(p.step, p.mean, p.mean);
            }
        }
        for (px, lo, hi) in self.std_band.iter().chain(&self.range_band) {
            add(*px, *lo, *hi);
        }
        (widen(x, 0.015), widen(y, 0.06))
    }
}

/// Pads a range by `frac` of its span; a single value gets a span of its own.
fn widen((lo, hi): (f64, f64), frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 && span.is_finite() {
        let pad = span * frac;
        return (lo - pad, hi + pad);
    }
    let pad = if lo != 0.0 { lo.abs() * 0.1 } else { 1.0 };
    (lo - pad, hi + pad)
}

/// Draws `metric` as a `width × height` RGB image; `None` when it has no finite value.
///
/// # Errors
/// Drawing failed (the bundled font could not be loaded, say).
pub(crate) fn render(
    metric: &MetricHistory,
    (width, height): (u32, u32),
) -> Result<Option<image::RgbImage>> {
    let layers = Layers::of(metric);
    if layers.is_empty() {
        return Ok(None);
    }
    if !font_ready() {
        return Err(draw_err("the bundled font could not be loaded"));
    }
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root, metric, &layers).map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(image::RgbImage::from_raw(width, height, buf))
}

/// Renders `metric` into the PNG file `path`; returns whether there was anything to draw.
///
/// # Errors
/// Drawing, encoding or writing failed.
pub(crate) fn write_png(metric: &MetricHistory, size: (u32, u32), path: &Path) -> Result<bool> {
    let Some(img) = render(metric, size)? else {
        return Ok(false);
    };
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::backend("report", format!("cannot write `{}`: {e}", path.display())))?;
    Ok(true)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    metric: &MetricHistory,
    layers: &Layers,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ((x0, x1), (y0, y1)) = layers.extent();
    let mut chart = ChartBuilder::on(root)
        .caption(metric.name(), (FONT, 24))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(84)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let stride = metric.series().stride();
    let x_desc = if layers.thinned {
        format!("step  (each point: mean of {stride} steps, band: their min–max)")
    } else {
        "step".to_string()
    };
    let tick = |v: &f64| number(*v, 4);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(metric.name())
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_labels(8)
        .y_labels(8)
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .draw()?;

    let aggregated = !layers.mean.is_empty() || !layers.range_band.is_empty();
    let legend_box = |c: RGBAColor| {
        move |(x, y): (i32, i32)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled())
    };
    if !layers.range_band.is_empty() {
        let c = AGG.mix(0.12);
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(&layers.range_band),
                c.filled(),
            )))?
            .label("min–max over ranks")
            .legend(legend_box(c));
    }
    if !layers.std_band.is_empty() {
        let c = AGG.mix(0.3);
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(&layers.std_band),
                c.filled(),
            )))?
            .label("mean ± std over ranks")
            .legend(legend_box(c));
    }
    if layers.thinned && layers.raw.len() > 1 {
        let c = RAW.mix(0.2);
        let edges: Vec<_> = layers.raw.iter().map(|p| (p.step, p.min, p.max)).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band(&edges), c.filled())))?
            .label("min–max per point")
            .legend(legend_box(c));
    }
    if !layers.mean.is_empty() {
        let style = AGG.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                layers.mean.iter().map(|p| (p.step, p.mean)),
                style,
            ))?
            .label("mean over ranks")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        if layers.mean.len() <= 40 {
            chart.draw_series(
                layers
                    .mean
                    .iter()
                    .map(|p| Circle::new((p.step, p.mean), 3, AGG.filled())),
            )?;
        }
    }
    if !layers.raw.is_empty() {
        let label = if aggregated { "rank 0" } else { "value" };
        let style = RAW.stroke_width(if aggregated { 1 } else { 2 });
        chart
            .draw_series(LineSeries::new(
                layers.raw.iter().map(|p| (p.step, p.mean)),
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        if layers.raw.len() <= 40 {
            chart.draw_series(
                layers
                    .raw
                    .iter()
                    .map(|p| Circle::new((p.step, p.mean), 3, RAW.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::History;

    fn history(lines: &str) -> History {
        History::from_reader(lines.as_bytes(), 100).unwrap()
    }

    /// Dark pixels in a rectangle (text is black on white).
    fn dark_pixels(
        img: &image::RgbImage,
        x: std::ops::Range<u32>,
        y: std::ops::Range<u32>,
    ) -> usize {
        y.flat_map(|yy| x.clone().map(move |xx| (xx, yy)))
            .filter(|(xx, yy)| img.get_pixel(*xx, *yy).0.iter().all(|c| *c < 100))
            .count()
    }

    #[test]
    fn plots_have_visible_text_and_lines() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!(
                "{{\"step\":{i},\"metrics\":{{\"train/loss\":{},\"train/loss/mean\":{},\"train/loss/std\":0.1,\"train/loss/min\":0.0,\"train/loss/max\":3.0}}}}\n",
                1.0 / (1.0 + i as f64),
                1.2 / (1.0 + i as f64)
            ));
        }
        let h = history(&text);
        let img = render(h.get("train/loss").unwrap(), (600, 400))
            .unwrap()
            .unwrap();
        assert_eq!(img.dimensions(), (600, 400));
        // The title is drawn in the middle of the top band: text needs a working font.
        assert!(dark_pixels(&img, 200..400, 0..36) > 40, "no title text");
        // Tick labels left of the y axis.
        assert!(dark_pixels(&img, 0..90, 60..340) > 40, "no y tick labels");
        let blue = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        let orange = img.pixels().filter(|p| p.0 == [230, 110, 0]).count();
        assert!(
            blue > 100 && orange > 100,
            "lines missing: {blue} blue, {orange} orange"
        );
    }

    #[test]
    fn nothing_finite_draws_nothing_and_one_point_draws() {
        let h = history(
            "{\"step\":0,\"metrics\":{\"bad\":\"NaN\",\"one\":5}}\n{\"step\":1,\"metrics\":{\"bad\":\"NaN\"}}\n",
        );
        assert!(render(h.get("bad").unwrap(), (300, 200)).unwrap().is_none());
        let img = render(h.get("one").unwrap(), (300, 200)).unwrap().unwrap();
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
    }
}
