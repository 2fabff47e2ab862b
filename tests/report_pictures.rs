//! Picture checks on the end-of-run report of the ViT debug preset and of the quickstart:
//! the overview has one panel per key series and is drawn in every cell, the norm heatmaps
//! have one row per parameter and one column per logged step, report.html sits beside
//! report.md, and the ViT's final console block points at both.

mod common;
#[path = "../ezpz-tracker/tests/support/png.rs"]
mod png;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::examples::{example_binary, output_within, VIT_TINY};

/// Panel titles listed under the overview in `report.md`.
fn overview_panels(report: &str) -> Vec<String> {
    let line = report
        .lines()
        .find_map(|l| l.strip_prefix("_Overview: "))
        .unwrap_or_else(|| panic!("no overview line in report.md:\n{report}"));
    line.trim_end_matches("._")
        .split(", ")
        .map(str::to_string)
        .collect()
}

/// Columns and rows of the overview grid (the report's layout rule).
fn grid(n: usize) -> (u32, u32) {
    let cols = match n {
        0 | 1 => 1,
        2 | 4 => 2,
        _ => 3,
    };
    (cols, n.div_ceil(cols as usize) as u32)
}

/// The overview: its size fits the panel count, and every cell has a title and a line.
fn check_overview(outdir: &Path, panels: usize) {
    let img = image::open(outdir.join("plots/overview.png"))
        .expect("plots/overview.png decodes")
        .to_rgb8();
    let (cols, rows) = grid(panels);
    assert_eq!(
        img.dimensions(),
        (cols * 450, rows * 250),
        "{panels} panels"
    );
    for i in 0..panels as u32 {
        let (x0, y0) = ((i % cols) * 450, (i / cols) * 250);
        let mut dark = 0;
        let mut colour = 0;
        for y in y0..y0 + 250 {
            for x in x0..x0 + 450 {
                let [r, g, b] = img.get_pixel(x, y).0;
                if r < 80 && g < 80 && b < 80 {
                    dark += 1;
                }
                let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
                if hi - lo > 100 {
                    colour += 1;
                }
            }
        }
        assert!(dark > 100, "panel {i}: no text ({dark} px)");
        assert!(colour > 100, "panel {i}: no series drawn ({colour} px)");
    }
}

/// Distinct keys with `prefix` and the steps they were logged at, from `metrics.jsonl`.
fn logged(outdir: &Path, prefix: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(outdir.join("metrics.jsonl")).unwrap();
    let mut keys = BTreeSet::new();
    let mut steps = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let m: HashMap<String, serde_json::Value> =
            serde_json::from_value(v["metrics"].clone()).unwrap();
        for k in m.keys().filter(|k| k.starts_with(prefix)) {
            keys.insert(k.clone());
            steps.insert(v["step"].as_u64().unwrap());
        }
    }
    (keys.len(), steps.len())
}

#[test]
fn vit_debug_preset_report_pictures() {
    let work = tempfile::tempdir().unwrap();
    let outdir = work.path().join("run");
    let mut cmd = Command::new(example_binary("vit"));
    cmd.args(VIT_TINY)
        .arg("--outdir")
        .arg(&outdir)
        .current_dir(work.path());
    let out = output_within(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(outdir.join("report.md")).unwrap();
    assert!(
        report.starts_with("# Run report: ")
            && report.contains("\n![overview](plots/overview.png)\n"),
        "{report}"
    );
    let panels = overview_panels(&report);
    for want in ["loss", "accuracy", "learning_rate", "grads/global_norm"] {
        assert!(
            panels.iter().any(|p| p == want),
            "no `{want}` panel: {panels:?}"
        );
    }
    check_overview(&outdir, panels.len());

    // One heatmap per norm kind: parameters × logged steps, no plot per parameter.
    for (prefix, file) in [
        ("params/norm/", "params_norm.png"),
        ("grads/norm/", "grads_norm.png"),
    ] {
        let (params, steps) = logged(&outdir, prefix);
        assert!(params > 10 && steps >= 2, "{prefix}: {params} × {steps}");
        let caption = format!("{params} parameters × {steps} logged steps");
        assert!(report.contains(&caption), "no `{caption}` in report.md");
        let img = image::open(outdir.join("plots").join(file))
            .unwrap()
            .to_rgb8();
        let cells = img
            .pixels()
            .filter(|p| {
                let [r, g, b] = p.0;
                r.max(g).max(b) - r.min(g).min(b) > 60
            })
            .count();
        assert!(
            cells > params * steps * 4,
            "{file}: {cells} coloured px for {params} × {steps} cells"
        );
    }
    let per_param = std::fs::read_dir(outdir.join("plots"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("params_norm_") || name.starts_with("grads_norm_")
        })
        .count();
    assert_eq!(per_param, 0, "per-parameter plots only on request");

    // report.html beside it, and the final console block points at both.
    assert!(outdir.join("report.html").is_file());
    for file in ["report.html", "plots/overview.png"] {
        let path = outdir.join(file).display().to_string();
        assert!(
            stdout.contains(&path),
            "console does not point at {file}:\n{stdout}"
        );
    }
}

#[test]
fn quickstart_report_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let out = Command::new(example_binary("quickstart"))
        .args(["--steps", "3000", "--backends", "csv,jsonl", "--outdir"])
        .arg(&outdir)
        .env_remove("EZPZ_TRACKER_BACKENDS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(outdir.join("report.md")).unwrap();
    let panels = overview_panels(&report);
    assert_eq!(panels, ["loss", "acc", "lr"], "{report}");
    check_overview(&outdir, panels.len());
    // Every plotted metric links to a PNG that is drawn (not blank).
    let mut pngs = 0;
    for entry in std::fs::read_dir(outdir.join("plots")).unwrap() {
        png::assert_drawn(&entry.unwrap().path());
        pngs += 1;
    }
    assert!(pngs >= 8, "{pngs} plots");
}
