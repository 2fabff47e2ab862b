//! `report.html` in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/test`) renders the page to a PNG and dumps its DOM after load; the picture is
//! not blank, shows the plots, and every image loaded. Skips outside CI without Chromium.
#![cfg(feature = "report")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ezpz_tracker::TrackerBuilder;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        });
        if found.is_some() {
            return found;
        }
    }
    let reason = "no headless Chromium (`chromium`) found: run scripts/test to install it";
    if std::env::var_os("CI").is_some() {
        panic!("oracle missing in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn browser(bin: &Path, profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1280,5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium")
}

#[test]
fn report_html_renders_with_its_images_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let tracker = TrackerBuilder::new()
        .project("html")
        .backends("csv,jsonl")
        .outdir(&outdir)
        .config(serde_json::json!({"lr": 0.01}))
        .build()
        .unwrap();
    for step in 0..60u64 {
        let loss = 2.0 / (1.0 + step as f64);
        tracker.log_at(step, [("train/loss", loss), ("train/lr", 0.01)]);
        if step % 10 == 9 {
            let norms: Vec<(String, f64)> = (0..8)
                .map(|p| {
                    (
                        format!("params/norm/layer{}.w{p}", p / 4),
                        1.0 + (p * step) as f64,
                    )
                })
                .collect();
            tracker.log_at(step, norms);
            tracker.log_at(step, [("valid/loss", loss * 1.2)]);
        }
    }
    tracker.finish().unwrap();
    let page = outdir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let images = html.matches("<img ").count();
    assert!(images >= 3, "overview, heatmap and plots: {images}");
    assert!(!html.contains("src=\"plots/"), "every image is inlined");
    // One file is enough: the page opens from anywhere.
    let alone = dir.path().join("copied-back.html");
    std::fs::copy(&page, &alone).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let dom = browser(
        &bin,
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=5000"],
        &alone,
    );
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains(&format!("data-images=\"{images}/{images}\"")),
        "not every image loaded: {}\n{}",
        text.lines().next().unwrap_or_default(),
        String::from_utf8_lossy(&dom.stderr)
    );

    let shot = dir.path().join("shot.png");
    let out = browser(
        &bin,
        profile.path(),
        &[&format!("--screenshot={}", shot.display())],
        &alone,
    );
    let img = image::open(&shot)
        .unwrap_or_else(|e| {
            panic!(
                "no screenshot ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_rgb8();
    let n = img.pixels().len() as f64;
    let mean = img.pixels().map(|p| f64::from(p.0[1])).sum::<f64>() / n;
    let var = img
        .pixels()
        .map(|p| (f64::from(p.0[1]) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(var > 50.0, "the page is (nearly) blank: variance {var}");
    // The plots' blue lines and the heatmap's viridis cells are on screen: images drew.
    let blue = img
        .pixels()
        .filter(|p| p.0[2] > 150 && p.0[0] < 90 && (90..160).contains(&p.0[1]))
        .count();
    let purple = img
        .pixels()
        .filter(|p| p.0[0] < 90 && p.0[1] < 60 && p.0[2] > 70 && p.0[2] < 150)
        .count();
    assert!(blue > 200, "no plot lines in the screenshot ({blue} px)");
    assert!(
        purple > 200,
        "no heatmap cells in the screenshot ({purple} px)"
    );
}
