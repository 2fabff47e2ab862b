//! The smallest real use of ezpz-tracker.
//!
//! ```text
//! cargo run --release --example quickstart -- --steps 100 --outdir outputs/quickstart
//! EZPZ_TRACKER_BACKENDS=csv,mlflow MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \
//!     cargo run --release --example quickstart -- --steps 100 --outdir outputs/q2
//! ```
//!
//! Logs a nested config, then `--steps` steps of exactly ten scalars (`train/loss =
//! 1/(1+step)`, `train/acc = 1 - train/loss`, `train/lr = 0.001`, `train/step_sq = step²`,
//! `train/m4` … `train/m9`), then one table, one in-memory image, one histogram and one
//! artifact; finishes and prints the output directory.

#[path = "shared/features.rs"]
mod features;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ezpz_tracker::{IntoMetrics, TrackerBuilder};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(
    name = "quickstart",
    about = "Log a small synthetic run through ezpz-tracker",
    version = features::version()
)]
struct Args {
    /// Number of steps to log (steps 0..N-1).
    #[arg(long, default_value_t = 100)]
    steps: u64,
    /// Output directory (files go directly into it).
    #[arg(long)]
    outdir: Option<PathBuf>,
    /// Comma-separated backends (default: EZPZ_TRACKER_BACKENDS, else the defaults).
    #[arg(long)]
    backends: Option<String>,
    /// Project name.
    #[arg(long)]
    project: Option<String>,
    /// Milliseconds to sleep between steps.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
}

/// The ten scalars of step `step`.
fn scalars(step: u64) -> [(&'static str, f64); 10] {
    let s = step as f64;
    let loss = 1.0 / (1.0 + s);
    [
        ("train/loss", loss),
        ("train/acc", 1.0 - loss),
        ("train/lr", 0.001),
        ("train/step_sq", s * s),
        ("train/m4", (s * 0.01).sin()),
        ("train/m5", (s * 0.01).cos()),
        ("train/m6", (1.0 + s).ln()),
        ("train/m7", (1.0 + s).sqrt()),
        ("train/m8", 1.0 / (1.0 + s * s)),
        ("train/m9", (-s * 1e-3).exp()),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut builder = TrackerBuilder::new().config(serde_json::json!({
        "steps": args.steps,
        "optimizer": {"name": "adamw", "lr": 0.001, "betas": [0.9, 0.999]},
        "model": {"depth": 6, "heads": 4, "dim": 128},
    }));
    if let Some(dir) = &args.outdir {
        builder = builder.outdir(dir);
    }
    if let Some(b) = &args.backends {
        builder = builder.backends(b);
    }
    if let Some(p) = &args.project {
        builder = builder.project(p);
    }
    let tracker = builder.build()?;

    for step in 0..args.steps {
        tracker.log_at(step, scalars(step).into_metrics());
        if args.interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }

    tracker.log_table(
        "predictions",
        ["id", "label", "score"],
        vec![
            vec![ezpz_tracker::Value::from(0), "cat".into(), 0.91.into()],
            vec![1.into(), "dog".into(), 0.78.into()],
            vec![2.into(), "bird".into(), 0.55.into()],
        ],
    );
    let image = image::RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 10) as u8, 128])
    });
    tracker.log_image("samples", image, Some("a gradient"));
    let weights: Vec<f64> = (0..1000).map(|i| ((i as f64) * 0.37).sin()).collect();
    tracker.log_histogram("weights", weights);
    // An artifact from outside the run directory (backends copy or upload it; it is left in
    // place because a spooled upload may still need it after this process ends).
    let notes_dir = std::env::temp_dir().join(format!("ezpz-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&notes_dir)?;
    let notes = notes_dir.join("notes.txt");
    std::fs::write(&notes, "quickstart artifact\n")?;
    tracker.log_artifacts([("notes", &notes)]);

    let summary = tracker.finish()?;
    match &summary.outdir {
        Some(dir) => println!("{}", dir.display()),
        None => println!("(no local output on this rank)"),
    }
    Ok(())
}
