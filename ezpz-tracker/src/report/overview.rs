//! `plots/overview.png`: the run's key series in one grid — loss, accuracy, learning rate,
//! throughput, global gradient and parameter norms, and the metrics the user names — with
//! validation drawn over training on the same step axis.
//!
//! Metrics are chosen by their last name segment (`train/loss` → a loss) and put in one
//! panel per name with the split removed (`train/loss` and `valid/loss` share `loss`).

use plotters::prelude::*;

use super::axis::Axis;
use super::history::{History, MetricHistory};
use super::panels::MAX_SERIES;
pub(crate) use super::panels::{panels, Panel, MAX_PANELS};
use super::plot::{canvas, draw_legend, BAD, FONT};
use super::series::Channel;
use crate::Result;

/// Series colours, in order of appearance within a panel (training first).
pub(crate) const COLOURS: [RGBColor; MAX_SERIES] = [
    RGBColor(31, 119, 180),
    RGBColor(230, 110, 0),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Columns and rows of a grid of `n` panels.
pub(crate) fn grid(n: usize) -> (usize, usize) {
    let cols = match n {
        0 | 1 => 1,
        2 | 4 => 2,
        _ => 3,
    };
    (cols, n.div_ceil(cols).max(1))
}

/// Renders the overview of `panels`, each cell `cell` pixels; `None` without panels.
///
/// # Errors
/// Drawing failed.
pub(crate) fn render(panels: &[Panel<'_>], cell: (u32, u32)) -> Result<Option<image::RgbImage>> {
    if panels.is_empty() {
        return Ok(None);
    }
    let (cols, rows) = grid(panels.len());
    let size = (cell.0 * cols as u32, cell.1 * rows as u32);
    let img = canvas(size, |root| {
        let cells = root.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(cells.iter()) {
            draw_panel(area, panel).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    Ok(Some(img))
}

/// What one series of a panel draws: its line and, when aggregates exist, its bands.
struct Layer {
    label: String,
    colour: RGBColor,
    line: Vec<(f64, f64)>,
    std_band: Vec<(f64, f64, f64)>,
    range_band: Vec<(f64, f64, f64)>,
    non_finite: Vec<f64>,
}

fn layer(label: &str, m: &MetricHistory, colour: RGBColor) -> Layer {
    let s = m.series();
    let main = m.main_channel().unwrap_or(Channel::Raw);
    let by_step = |c: Channel| -> Vec<(f64, f64, f64)> {
        s.points(c)
            .into_iter()
            .map(|p| (p.step, p.min, p.max))
            .collect()
    };
    // The cross-rank mean stands for the metric when aggregates exist.
    let line_channel = if m.stats(Channel::Mean).is_some() {
        Channel::Mean
    } else {
        main
    };
    let line: Vec<(f64, f64)> = s
        .points(line_channel)
        .into_iter()
        .map(|p| (p.step, p.mean))
        .collect();
    let std_band = {
        let sd = s.points(Channel::Std);
        line.iter()
            .filter_map(|(x, m)| {
                sd.iter()
                    .find(|p| p.step == *x)
                    .map(|p| (*x, m - p.mean, m + p.mean))
            })
            .collect()
    };
    let (lo, hi) = (by_step(Channel::Min), by_step(Channel::Max));
    let range_band = lo
        .iter()
        .filter_map(|(x, l, _)| hi.iter().find(|p| p.0 == *x).map(|(_, _, h)| (*x, *l, *h)))
        .collect();
    Layer {
        label: label.to_string(),
        colour,
        line,
        std_band,
        range_band,
        non_finite: s.non_finite(main).into_iter().map(|p| p.step).collect(),
    }
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
        })
}

fn band(edges: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    edges
        .iter()
        .map(|(x, lo, _)| (*x, *lo))
        .chain(edges.iter().rev().map(|(x, _, hi)| (*x, *hi)))
        .collect()
}

pub(crate) fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel<'_>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let layers: Vec<Layer> = panel
        .series
        .iter()
        .zip(COLOURS)
        .map(|((label, m), c)| layer(label, m, c))
        .collect();
    let xs = layers.iter().flat_map(|l| {
        l.line
            .iter()
            .map(|p| p.0)
            .chain(l.non_finite.iter().copied())
    });
    let (x0, x1) = span(xs).unwrap_or((0.0, 1.0));
    let ys = layers.iter().flat_map(|l| {
        l.line
            .iter()
            .map(|p| p.1)
            .chain(l.range_band.iter().flat_map(|e| [e.1, e.2]))
    });
    let (y0, y1) = span(ys).unwrap_or((0.0, 1.0));
    let mut y = Axis::auto(y0, y1, 0.06, 5);
    if !y.is_log() {
        let with_std = layers
            .iter()
            .flat_map(|l| l.std_band.iter().flat_map(|e| [e.1, e.2]));
        if let Some((a, b)) = span(with_std.chain([y0, y1])) {
            y = Axis::linear(a, b, 0.06, 5);
        }
    }
    let x = Axis::linear(x0, x1, 0.015, 5);
    let longest = y
        .ticks()
        .iter()
        .map(|t| y.label(*t).chars().count())
        .max()
        .unwrap_or(4) as u32;
    let mut title = panel.title.clone();
    if y.is_log() {
        title.push_str(" (log)");
    }
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(longest * 7 + 10)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let x_tick = |v: &f64| x.label(*v);
    let y_tick = |v: &f64| y.label(*v);
    chart
        .configure_mesh()
        .label_style((FONT, 11))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .x_labels(5)
        .y_labels(5)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(232, 232, 232))
        .draw()?;
    let top = y.bounds().1;
    for l in &layers {
        if !l.range_band.is_empty() {
            chart.draw_series(std::iter::once(Polygon::new(
                band(&l.range_band),
                l.colour.mix(0.1).filled(),
            )))?;
        }
        if !l.std_band.is_empty() {
            chart.draw_series(std::iter::once(Polygon::new(
                band(&l.std_band),
                l.colour.mix(0.25).filled(),
            )))?;
        }
    }
    for l in &layers {
        let style = l.colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(l.line.iter().copied(), style))?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], style));
        if l.line.len() <= 15 {
            let c = l.colour;
            chart.draw_series(l.line.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
        }
        chart.draw_series(
            l.non_finite
                .iter()
                .map(|s| TriangleMarker::new((*s, top), 4, BAD.filled())),
        )?;
    }
    if layers.len() > 1 || layers.iter().any(|l| !l.std_band.is_empty()) {
        draw_legend(&mut chart, 11)?;
    }
    Ok(())
}

/// Draws and writes the overview; returns the panels' titles, empty when nothing was drawn.
pub(crate) fn write(
    history: &History,
    extra: &[String],
    cell: (u32, u32),
    path: &std::path::Path,
) -> Result<Vec<String>> {
    let panels = panels(history, extra);
    let Some(img) = render(&panels, cell)? else {
        return Ok(Vec::new());
    };
    super::plot::save(&img, path)?;
    Ok(panels.into_iter().map(|p| p.title).collect())
}

#[cfg(test)]
mod tests {
    use super::super::panels::panel_key;
    use super::*;

    fn history(lines: &str) -> History {
        History::from_reader(lines.as_bytes(), 100).unwrap()
    }

    #[test]
    fn key_series_are_chosen_and_validation_shares_the_training_panel() {
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!(
                "{{\"step\":{i},\"metrics\":{{\"train/loss\":{},\"train/iter\":{i},\"train/accuracy\":0.5,\"train/lr\":0.001,\"params/norm/a.weight\":1.0,\"grads/global_norm\":2.0,\"other\":1.0,\"train/items_per_sec\":100.0}}}}\n",
                1.0 / (1.0 + f64::from(i))
            ));
            if i % 5 == 4 {
                text.push_str(&format!(
                    "{{\"step\":{i},\"metrics\":{{\"valid/loss\":0.5,\"valid/accuracy\":0.6}}}}\n"
                ));
            }
        }
        let h = history(&text);
        let p = panels(&h, &[]);
        let titles: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "loss",
                "accuracy",
                "lr",
                "items_per_sec",
                "grads/global_norm"
            ]
        );
        let loss: Vec<&str> = p[0].series.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(loss, ["train/loss", "valid/loss"]);
        assert_eq!(panel_key("valid/epoch/loss"), ("loss".to_string(), 3));
        assert_eq!(panel_key("train/epoch/loss"), ("loss".to_string(), 1));
        assert_eq!(panel_key("epoch/loss"), ("loss".to_string(), 1));
        let with_extra = panels(&h, &["other".to_string()]);
        assert_eq!(with_extra.last().unwrap().title, "other");

        let img = render(&p, (400, 250)).unwrap().unwrap();
        assert_eq!(img.dimensions(), (1200, 500));
        // Both splits are drawn in the loss panel (top-left cell).
        let count = |c: [u8; 3]| {
            (0..400u32)
                .flat_map(|x| (0..250u32).map(move |y| (x, y)))
                .filter(|(x, y)| img.get_pixel(*x, *y).0 == c)
                .count()
        };
        assert!(count([31, 119, 180]) > 50 && count([230, 110, 0]) > 20);
    }

    #[test]
    fn grid_shapes() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (3, 2));
        assert_eq!(grid(7), (3, 3));
    }
}
