//! The closing summary on rank 0: results, throughput, and where everything went.

use std::path::Path;

use ezpz_tracker::Summary;

/// What training achieved, for the summary.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Training images seen by all ranks.
    pub images: usize,
    /// Wall time of training (validation included), in seconds.
    pub train_secs: f64,
    /// Wall time of the training splits alone, in seconds.
    pub train_only_secs: f64,
    /// Ranks.
    pub world_size: usize,
    /// Validation accuracy of the last epoch (percent), when known.
    pub valid_accuracy: Option<f64>,
    /// Validation loss of the last epoch, when known.
    pub valid_loss: Option<f64>,
    /// Sum of all parameters (the cross-rank identity check).
    pub checksum: f64,
}

/// Prints the summary: outcome, then the output directory and its files, then each
/// backend's run URL or command (MLflow URL, `wandb sync …`, `tensorboard --logdir …`).
pub fn print(outcome: &Outcome, tracking: &Summary) {
    println!("\n== ViT training done ==");
    println!(
        "steps: {}  images: {}  time: {:.1}s ({:.1}s training, the rest validation)",
        outcome.steps, outcome.images, outcome.train_secs, outcome.train_only_secs,
    );
    // One fixed-format line for scripts (scripts/bench-vit reads it).
    println!(
        "train throughput: {:.2} images/s over {} rank(s)",
        outcome.images as f64 / outcome.train_only_secs.max(1e-9),
        outcome.world_size
    );
    if let (Some(acc), Some(loss)) = (outcome.valid_accuracy, outcome.valid_loss) {
        println!("final validation: accuracy {acc:.2}%  loss {loss:.4}");
    }
    println!(
        "parameter checksum: {:.9e} (identical on all ranks)",
        outcome.checksum
    );
    match &tracking.outdir {
        Some(dir) => {
            println!("outputs: {}", dir.display());
            for file in files(dir) {
                println!("  {file}");
            }
        }
        None => println!("outputs: none (no backend writes files)"),
    }
    for b in &tracking.backends {
        let Some(info) = &b.run_info else { continue };
        if let Some(url) = &info.url {
            println!("{}: {url}", b.name);
        }
        if let Some(cmd) = &info.command {
            println!("{}: {cmd}", b.name);
        }
        if b.dropped > 0 || b.errors > 0 {
            println!("{}: {} dropped, {} errors", b.name, b.dropped, b.errors);
        }
    }
    // The report first: the page to open, and the one picture that sums the run up.
    if let Some(dir) = &tracking.outdir {
        for (what, file) in [
            ("report", "report.html"),
            ("overview", "plots/overview.png"),
        ] {
            let path = dir.join(file);
            if path.is_file() {
                println!("{what}: {}", path.display());
            }
        }
    }
    if tracking.backends.iter().any(|b| b.name == "tensorboard")
        && !tracking.backends.iter().any(|b| {
            b.name == "tensorboard" && b.run_info.as_ref().is_some_and(|i| i.command.is_some())
        })
    {
        if let Some(dir) = &tracking.outdir {
            println!("tensorboard: tensorboard --logdir {}", dir.display());
        }
    }
}

/// Relative paths of the files under `dir`, sorted, directories shown with their file count.
fn files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                let n = walk_count(&e.path());
                format!("{name}/ ({n} files)")
            } else {
                name
            }
        })
        .collect();
    out.sort();
    out
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
