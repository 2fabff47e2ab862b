//! One PNG per metric with `plotters` (bitmap backend, text drawn with a bundled font).
//!
//! The raw (rank-0) series is a blue line; with cross-rank aggregates the mean is an
//! orange line (under the thin raw line) over a ±std band and a lighter min–max band. A series thinned for length
//! shows each bucket's mean with its min–max envelope, so spikes stay visible.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::axis::Axis;
use super::history::MetricHistory;
use super::series::{Channel, NonFinitePoint, SeriesPoint};
use crate::{Error, Result};

const RAW: RGBColor = RGBColor(31, 119, 180);
const AGG: RGBColor = RGBColor(230, 110, 0);
const GRID: RGBColor = RGBColor(232, 232, 232);
/// Non-finite values' markers.
pub(crate) const BAD: RGBColor = RGBColor(214, 39, 40);
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans (compiled in) as plotters' `sans-serif` once; no system font is
/// ever looked up.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    })
}

/// What a drawing step returns: plotters' error as text.
pub(crate) type DrawResult = std::result::Result<(), String>;

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

pub(crate) struct Layers {
    raw: Vec<SeriesPoint>,
    mean: Vec<SeriesPoint>,
    std_band: Vec<(f64, f64, f64)>,
    range_band: Vec<(f64, f64, f64)>,
    non_finite: Vec<NonFinitePoint>,
    thinned: bool,
}

/// The smallest and largest of finite values, if any.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
        })
}

impl Layers {
    pub(crate) fn of(metric: &MetricHistory) -> Layers {
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
        let main = metric.main_channel().unwrap_or(Channel::Raw);
        Layers {
            raw: s.points(Channel::Raw),
            mean,
            std_band,
            range_band,
            non_finite: s.non_finite(main),
            thinned: s.stride() > 1,
        }
    }

    fn is_empty(&self) -> bool {
        self.raw.is_empty()
            && self.mean.is_empty()
            && self.range_band.is_empty()
            && self.non_finite.is_empty()
    }

    /// The x and y axes of everything drawn: a log y axis for a positive series over more
    /// than three decades.
    fn axes(&self, ticks: usize) -> (Axis, Axis) {
        let points = self.raw.iter().chain(&self.mean);
        let xs = points
            .clone()
            .map(|p| p.step)
            .chain(self.range_band.iter().map(|e| e.0))
            .chain(self.non_finite.iter().map(|p| p.step));
        let (x0, x1) = span(xs).unwrap_or((0.0, 1.0));
        let ys = points
            .flat_map(|p| {
                if self.thinned {
                    [p.min, p.max]
                } else {
                    [p.mean, p.mean]
                }
            })
            .chain(self.range_band.iter().flat_map(|e| [e.1, e.2]));
        let x = Axis::linear(x0, x1, 0.015, ticks);
        let Some((y0, y1)) = span(ys) else {
            return (x, Axis::linear(0.0, 1.0, 0.0, ticks));
        };
        let y = Axis::auto(y0, y1, 0.06, ticks);
        if y.is_log() {
            return (x, y);
        }
        // The ±std band is drawn in full on a linear scale.
        let with_std = self.std_band.iter().flat_map(|e| [e.1, e.2]);
        let (y0, y1) = span(with_std.chain([y0, y1])).unwrap_or((y0, y1));
        (x, Axis::linear(y0, y1, 0.06, ticks))
    }
}

/// Draws `metric` as a `width × height` RGB image; `None` when it has nothing to draw.
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
    let img = canvas((width, height), |root| {
        draw(root, metric, &layers).map_err(|e| e.to_string())
    })?;
    Ok(Some(img))
}

/// A white `width × height` canvas handed to `paint`, returned as an RGB image.
pub(crate) fn canvas<F>((width, height): (u32, u32), paint: F) -> Result<image::RgbImage>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> DrawResult,
{
    if !font_ready() {
        return Err(draw_err("the bundled font could not be loaded"));
    }
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        paint(&root).map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    image::RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| draw_err("the picture buffer has the wrong size"))
}

/// Writes `img` as a PNG file.
///
/// # Errors
/// Encoding or writing failed.
pub(crate) fn save(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::backend("report", format!("cannot write `{}`: {e}", path.display())))
}

/// Renders `metric` into the PNG file `path`; returns whether there was anything to draw.
///
/// # Errors
/// Drawing, encoding or writing failed.
pub(crate) fn write_png(metric: &MetricHistory, size: (u32, u32), path: &Path) -> Result<bool> {
    let Some(img) = render(metric, size)? else {
        return Ok(false);
    };
    save(&img, path)?;
    Ok(true)
}

/// Draws one metric's panel into `area`; nothing when it has no point, finite or not.
fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    metric: &MetricHistory,
    layers: &Layers,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if layers.is_empty() {
        return Ok(());
    }
    let (x_axis, y_axis) = layers.axes(8);
    let longest = y_axis
        .ticks()
        .iter()
        .map(|t| y_axis.label(*t).chars().count())
        .max()
        .unwrap_or(4) as u32;
    let label_px = 13;
    let mut chart = ChartBuilder::on(area)
        .caption(metric.name(), (FONT, 24))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(longest * label_px * 6 / 10 + 40)
        .build_cartesian_2d(x_axis.clone(), y_axis.clone())?;
    let stride = metric.series().stride();
    let x_desc = if layers.thinned {
        format!("step  (each point: mean of {stride} steps, band: their min–max)")
    } else {
        "step".to_string()
    };
    let mut y_desc = metric.name().to_string();
    if y_axis.is_log() {
        y_desc.push_str("  (log scale)");
    }
    let x_tick = |v: &f64| x_axis.label(*v);
    let y_tick = |v: &f64| y_axis.label(*v);
    let ticks = 8;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, label_px))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .x_labels(ticks)
        .y_labels(ticks)
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
    let dots = 40;
    if !layers.mean.is_empty() {
        let style = AGG.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                layers.mean.iter().map(|p| (p.step, p.mean)),
                style,
            ))?
            .label("mean over ranks")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        if layers.mean.len() <= dots {
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
        if layers.raw.len() <= dots {
            chart.draw_series(
                layers
                    .raw
                    .iter()
                    .map(|p| Circle::new((p.step, p.mean), 3, RAW.filled())),
            )?;
        }
    }
    if !layers.non_finite.is_empty() {
        // At the top edge: a NaN or infinity has no place on the value axis.
        let top = y_axis.bounds().1;
        let n: u64 = layers.non_finite.iter().map(|p| u64::from(p.count)).sum();
        let size = 6;
        chart
            .draw_series(
                layers
                    .non_finite
                    .iter()
                    .map(|p| TriangleMarker::new((p.step, top), size, BAD.filled())),
            )?
            .label(format!("NaN/±inf ({n} values, top edge)"))
            .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 5, BAD.filled()));
    }
    draw_legend(&mut chart, 13)
}

/// Draws the chart's series labels in its upper right corner, in `font_size`-point text on a
/// translucent white box with a grey border (every report plot's legend).
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    font_size: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, f64::from(font_size)))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
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
    fn nothing_finite_draws_markers_and_one_point_draws() {
        let h = history(
            "{\"step\":0,\"metrics\":{\"bad\":\"NaN\",\"one\":5}}\n{\"step\":1,\"metrics\":{\"bad\":\"NaN\"}}\n",
        );
        // No finite value: the non-finite points are marked.
        let bad = render(h.get("bad").unwrap(), (300, 200)).unwrap().unwrap();
        assert!(bad.pixels().filter(|p| p.0 == [214, 39, 40]).count() > 20);
        let img = render(h.get("one").unwrap(), (300, 200)).unwrap().unwrap();
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
    }
}
