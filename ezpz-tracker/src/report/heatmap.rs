//! Per-parameter norms as heatmaps: `params/norm/*` and `grads/norm/*` each become one
//! picture, one row per parameter path (grouped by module path), one column per logged
//! step, colour on a log scale — instead of one plot per parameter.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::history::{History, MetricHistory};
use super::keys::HEATMAP_PREFIXES;
use super::plot::{canvas, save, BAD, FONT};
use super::text::number;
use crate::Result;

/// Cells of a row with no value at that step.
const MISSING: RGBColor = RGBColor(255, 255, 255);
/// Cells holding zero or a negative value (no place on a log scale).
const NON_POSITIVE: RGBColor = RGBColor(200, 200, 200);

/// One heatmap: its metrics (rows) and logged steps (columns).
#[derive(Debug, Clone)]
pub(crate) struct Heatmap<'a> {
    /// `params/norm/` or `grads/norm/`.
    pub prefix: &'static str,
    /// Parameter path and metric, grouped by module path.
    pub rows: Vec<(&'a str, &'a MetricHistory)>,
    /// The steps logged (bucket middles for a thinned series), increasing.
    pub columns: Vec<f64>,
}

/// What a heatmap file shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapInfo {
    /// The metric prefix (`params/norm/`).
    pub prefix: String,
    /// The PNG, relative to the run directory.
    pub file: String,
    /// Parameters (rows).
    pub rows: usize,
    /// Logged steps (columns).
    pub columns: usize,
}

/// `encoder.layers.0.mlp.weight` → `encoder.layers.0.mlp`.
fn module_of(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(m, _)| m)
}

/// The heatmaps `history` has (none without per-parameter norms).
pub(crate) fn heatmaps(history: &History) -> Vec<Heatmap<'_>> {
    let mut out = Vec::new();
    for prefix in HEATMAP_PREFIXES {
        let mut rows: Vec<(&str, &MetricHistory)> = history
            .metrics()
            .iter()
            .filter(|m| m.main_channel().is_some())
            .filter_map(|m| Some((m.name().strip_prefix(prefix)?, m)))
            .filter(|(path, _)| !path.is_empty())
            .collect();
        if rows.is_empty() {
            continue;
        }
        // Group by module in order of first appearance, rows in their own order within.
        let mut modules: Vec<&str> = Vec::new();
        for (path, _) in &rows {
            if !modules.contains(&module_of(path)) {
                modules.push(module_of(path));
            }
        }
        rows.sort_by_key(|(path, _)| modules.iter().position(|m| *m == module_of(path)));
        let mut columns: Vec<f64> = rows
            .iter()
            .flat_map(|(_, m)| main_points(m).into_iter().map(|p| p.0))
            .collect();
        columns.sort_by(f64::total_cmp);
        columns.dedup();
        out.push(Heatmap {
            prefix,
            rows,
            columns,
        });
    }
    out
}

/// (step, value) of the metric's main channel, and its non-finite buckets as NaN.
fn main_points(m: &MetricHistory) -> Vec<(f64, f64)> {
    let Some(channel) = m.main_channel() else {
        return Vec::new();
    };
    let s = m.series();
    let mut points: Vec<(f64, f64)> = s
        .points(channel)
        .into_iter()
        .map(|p| (p.step, p.mean))
        .collect();
    for bad in s.non_finite(channel) {
        if !points.iter().any(|p| p.0 == bad.step) {
            points.push((bad.step, f64::NAN));
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Viridis, from dark blue-purple (low) to yellow (high).
fn colour(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Layout of a heatmap picture, in pixels.
struct Layout {
    width: u32,
    label_w: u32,
    top: u32,
    row_h: u32,
    plot_w: u32,
    height: u32,
}

impl Layout {
    fn of(h: &Heatmap<'_>, width: u32) -> Layout {
        let rows = h.rows.len() as u32;
        let row_h = (640 / rows.max(1)).clamp(3, 18);
        let longest = h
            .rows
            .iter()
            .map(|(p, _)| p.chars().count())
            .max()
            .unwrap_or(8) as u32;
        let label_w = (longest * 7 + 16).clamp(80, 360);
        let top = 44;
        let plot_w = width.saturating_sub(label_w + 110).max(50);
        Layout {
            width,
            label_w,
            top,
            row_h,
            plot_w,
            height: top + rows * row_h + 60,
        }
    }

    /// The pixel columns of cell `j` of `n`.
    fn cell_x(&self, j: usize, n: usize) -> (i32, i32) {
        let x0 = self.label_w as usize + j * self.plot_w as usize / n.max(1);
        let x1 = self.label_w as usize + (j + 1) * self.plot_w as usize / n.max(1);
        (x0 as i32, (x1.max(x0 + 1)) as i32)
    }
}

/// Renders `h`, `width` pixels wide (the height follows from the number of rows).
///
/// # Errors
/// Drawing failed.
pub(crate) fn render(h: &Heatmap<'_>, width: u32) -> Result<image::RgbImage> {
    let l = Layout::of(h, width);
    let values: Vec<Vec<(f64, f64)>> = h.rows.iter().map(|(_, m)| main_points(m)).collect();
    let positive = values
        .iter()
        .flatten()
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0);
    let (vmin, vmax) = positive.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lmin, lmax) = if vmin <= vmax {
        (vmin.log10(), vmax.log10())
    } else {
        (0.0, 1.0)
    };
    let scale = |v: f64| {
        if lmax > lmin {
            (v.log10() - lmin) / (lmax - lmin)
        } else {
            0.5
        }
    };
    canvas((l.width, l.height), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let title = format!(
            "{}*  ({} parameters × {} steps, log colour scale)",
            h.prefix,
            h.rows.len(),
            h.columns.len()
        );
        root.draw(&Text::new(title, (12, 12), (FONT, 20).into_font()))
            .map_err(e)?;
        let n = h.columns.len();
        let mut last_module: Option<&str> = None;
        let mut last_label_y = i32::MIN;
        for (r, ((path, _), row)) in h.rows.iter().zip(&values).enumerate() {
            let y0 = (l.top + r as u32 * l.row_h) as i32;
            let y1 = y0 + l.row_h as i32;
            let mut k = 0;
            for (j, step) in h.columns.iter().enumerate() {
                while k < row.len() && row[k].0 < *step {
                    k += 1;
                }
                let c = match row.get(k).filter(|p| p.0 == *step).map(|p| p.1) {
                    None => MISSING,
                    Some(v) if !v.is_finite() => BAD,
                    Some(v) if v <= 0.0 => NON_POSITIVE,
                    Some(v) => colour(scale(v)),
                };
                let (x0, x1) = l.cell_x(j, n);
                root.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.filled()))
                    .map_err(e)?;
            }
            let module = module_of(path);
            let new_group = last_module != Some(module);
            if new_group && r > 0 && l.row_h >= 4 {
                let (x0, _) = l.cell_x(0, n);
                let (_, x1) = l.cell_x(n.saturating_sub(1), n);
                root.draw(&PathElement::new(
                    [(x0, y0), (x1, y0)],
                    WHITE.stroke_width(1),
                ))
                .map_err(e)?;
            }
            // Every path when rows are tall enough to read, else each module's first row.
            let label = if l.row_h >= 9 {
                Some(path.to_string())
            } else if new_group {
                Some(format!(
                    "{}.*",
                    if module.is_empty() { path } else { module }
                ))
            } else {
                None
            };
            if let Some(label) = label {
                let size = l.row_h.clamp(9, 13);
                if y0 >= last_label_y + size as i32 {
                    // Left-anchored at a measured offset: plotters' right or centred
                    // anchors place each glyph on its own (dots float mid-line).
                    let style = TextStyle::from((FONT, size).into_font());
                    let width = root
                        .estimate_text_size(&label, &style)
                        .map_or(0, |(w, _)| w as i32);
                    let y = if l.row_h >= 9 {
                        (y0 + y1) / 2 - size as i32 * 6 / 10
                    } else {
                        y0
                    };
                    root.draw(&Text::new(label, (l.label_w as i32 - 6 - width, y), style))
                        .map_err(e)?;
                    last_label_y = y0;
                }
            }
            last_module = Some(module);
        }
        // Step ticks under the columns.
        let bottom = (l.top + h.rows.len() as u32 * l.row_h) as i32;
        let ticks = n.min(6);
        let tick_style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for t in 0..ticks {
            let j = if ticks > 1 {
                t * (n - 1) / (ticks - 1)
            } else {
                0
            };
            let (x0, x1) = l.cell_x(j, n);
            let x = (x0 + x1) / 2;
            root.draw(&PathElement::new([(x, bottom), (x, bottom + 4)], BLACK))
                .map_err(e)?;
            root.draw(&Text::new(
                number(h.columns[j], 6),
                (x, bottom + 6),
                tick_style.clone(),
            ))
            .map_err(e)?;
        }
        let mid = (l.label_w + l.plot_w / 2) as i32;
        root.draw(&Text::new("step", (mid, bottom + 26), tick_style.clone()))
            .map_err(e)?;
        // The colour bar, with its value range.
        let bar_x = (l.label_w + l.plot_w + 20) as i32;
        let bar_h = (h.rows.len() as u32 * l.row_h).max(40) as i32;
        let top = l.top as i32;
        for y in 0..bar_h {
            let t = 1.0 - f64::from(y) / f64::from(bar_h.max(2) - 1);
            root.draw(&Rectangle::new(
                [(bar_x, top + y), (bar_x + 16, top + y + 1)],
                colour(t).filled(),
            ))
            .map_err(e)?;
        }
        let bar_label = TextStyle::from((FONT, 11).into_font());
        if vmin <= vmax {
            root.draw(&Text::new(
                number(vmax, 3),
                (bar_x + 20, top),
                bar_label.clone(),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                number(vmin, 3),
                (bar_x + 20, top + bar_h - 12),
                bar_label,
            ))
            .map_err(e)?;
        }
        Ok(())
    })
}

/// Draws and writes every heatmap of `history` into `dir`.
pub(crate) fn write(
    history: &History,
    width: u32,
    dir: &Path,
    plots_rel: &str,
) -> Result<Vec<HeatmapInfo>> {
    let mut out = Vec::new();
    for h in heatmaps(history) {
        let stem = h.prefix.trim_end_matches('/').replace('/', "_");
        let name = format!("{stem}.png");
        let img = render(&h, width)?;
        save(&img, &dir.join(&name))?;
        out.push(HeatmapInfo {
            prefix: h.prefix.to_string(),
            file: format!("{plots_rel}/{name}"),
            rows: h.rows.len(),
            columns: h.columns.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `params` parameters in two modules, logged every 10th step of `steps`.
    fn norms(params: usize, steps: u64) -> History {
        let mut text = String::new();
        for step in (10..=steps).step_by(10) {
            let mut m = serde_json::Map::new();
            for p in 0..params {
                let module = if p < params / 2 { "enc" } else { "dec" };
                // Adjacent rows differ by a factor of 10: distinct colours.
                let v = 10f64.powi((p % 2) as i32 * 2) * (1.0 + step as f64 / 10.0);
                m.insert(format!("params/norm/{module}.w{p}"), v.into());
                m.insert(format!("grads/norm/{module}.w{p}"), (v * 1e-3).into());
            }
            m.insert("train/loss".into(), 1.0.into());
            text.push_str(&format!(
                "{}\n",
                serde_json::json!({"step": step, "metrics": m})
            ));
        }
        History::from_reader(text.as_bytes(), 1000).unwrap()
    }

    #[test]
    fn one_row_per_parameter_one_column_per_logged_step() {
        let h = norms(12, 200);
        let maps = heatmaps(&h);
        assert_eq!(maps.len(), 2);
        assert_eq!((maps[0].prefix, maps[1].prefix), HEATMAP_PREFIXES.into());
        assert_eq!((maps[0].rows.len(), maps[0].columns.len()), (12, 20));
        // Grouped by module, in order of first appearance.
        assert!(maps[0].rows[..6].iter().all(|(p, _)| p.starts_with("enc.")));
        let img = render(&maps[0], 1000).unwrap();
        let l = Layout::of(&maps[0], 1000);
        // Down the middle column: one colour run per parameter row.
        let x = l.label_w + l.plot_w / 2;
        let mut runs = 0;
        let mut prev = None;
        for y in l.top..l.top + 12 * l.row_h {
            let p = img.get_pixel(x, y).0;
            if p != [255, 255, 255] && Some(p) != prev {
                runs += 1;
            }
            prev = Some(p);
        }
        assert_eq!(runs, 12);
        // Along a row: one cell per column (values grow with the step).
        let y = l.top + l.row_h / 2;
        let mut cells = 0;
        let mut prev = None;
        for x in l.label_w..l.label_w + l.plot_w {
            let p = img.get_pixel(x, y).0;
            if Some(p) != prev {
                cells += 1;
            }
            prev = Some(p);
        }
        assert!(
            (10..=20).contains(&cells),
            "{cells} colour changes along a row"
        );
        // Row labels are drawn left of the cells.
        let dark = (0..l.label_w)
            .flat_map(|x| (l.top..l.top + 12 * l.row_h).map(move |y| (x, y)))
            .filter(|(x, y)| img.get_pixel(*x, *y).0.iter().all(|c| *c < 100))
            .count();
        assert!(dark > 200, "no row labels");
    }

    #[test]
    fn many_parameters_fit_and_label_their_modules() {
        let h = norms(300, 30);
        let maps = heatmaps(&h);
        let img = render(&maps[0], 1000).unwrap();
        assert!(img.height() < 1200, "{}", img.height());
        assert_eq!(maps[0].rows.len(), 300);
    }
}
