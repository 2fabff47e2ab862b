//! The verbs of `ezpz`. Each returns the exit status, or a message for status 1.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ezpz_tracker::report;
use ezpz_tracker::report::runs::{self, RunOverview, RunState};
#[cfg(feature = "report")]
use ezpz_tracker::report::{build_report, ReportOptions, REPORT_HTML, REPORT_MD};
use ezpz_tracker::sync::{sync as sync_spools, SyncOptions};

type Outcome = Result<u8, String>;

/// Where runs are looked up by name.
const OUTPUTS: &str = "outputs";

/// A run given as a directory, or by its directory or run name under `./outputs`.
fn resolve(run: &str) -> Result<PathBuf, String> {
    let path = Path::new(run);
    if path.is_dir() {
        return if runs::is_run_dir(path) {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "`{run}` holds no run (no metrics.jsonl, metrics.csv or run_info.json)"
            ))
        };
    }
    let open = runs::OpenFiles::scan();
    let found: Vec<PathBuf> = runs::find_runs(Path::new(OUTPUTS), 4)
        .into_iter()
        .filter(|d| {
            d.file_name().is_some_and(|n| n == run)
                || RunOverview::read_with(d, &open).is_some_and(|o| o.name() == run)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no run `{run}`: give its directory (or a run name under ./{OUTPUTS})"
        )),
        many => Err(format!(
            "`{run}` names {} runs under ./{OUTPUTS}; give the directory: {}",
            many.len(),
            many.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `3h05m`, `4m07s`, `12s`, `0.4s`.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn local_time(t: f64) -> String {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

fn short(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.4}")
    } else if v.is_finite() {
        format!("{v:.3e}")
    } else {
        v.to_string().to_lowercase()
    }
}

pub fn ls(dir: &Path, depth: usize, json: bool) -> Outcome {
    if !dir.is_dir() {
        return Err(format!("`{}` is not a directory", dir.display()));
    }
    let open = runs::OpenFiles::scan();
    let found: Vec<RunOverview> = runs::find_runs(dir, depth)
        .iter()
        .filter_map(|d| RunOverview::read_with(d, &open))
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        for o in &found {
            let v = serde_json::json!({
                "dir": o.dir.display().to_string(),
                "name": o.name(),
                "project": o.project(),
                "status": o.state.to_string(),
                "start_time": o.start_time,
                "duration_s": o.duration_s,
                "last_step": o.last_step,
                "world_size": o.world_size,
                "last_loss": o.last_loss.as_ref().map(|(k, v)| serde_json::json!({"key": k, "value": v})),
                "backends": o.backends,
                "unsynced": o.unsynced.iter().map(|(b, n)| serde_json::json!({"backend": b, "requests": n})).collect::<Vec<_>>(),
            });
            let _ = writeln!(out, "{v}");
        }
        return Ok(0);
    }
    if found.is_empty() {
        let _ = writeln!(out, "no runs under {}", dir.display());
        return Ok(0);
    }
    let header = [
        "RUN",
        "STATUS",
        "STARTED",
        "DURATION",
        "STEP",
        "WORLD",
        "LAST LOSS",
        "BACKENDS",
        "UNSYNCED",
    ];
    let rows: Vec<[String; 9]> = found
        .iter()
        .map(|o| {
            let rel = o.dir.strip_prefix(dir).unwrap_or(&o.dir);
            let rel = if rel.as_os_str().is_empty() {
                o.dir.display().to_string()
            } else {
                rel.display().to_string()
            };
            [
                rel,
                o.state.to_string(),
                o.start_time.map_or("-".into(), local_time),
                o.duration_s.map_or("-".into(), duration),
                o.last_step.map_or("-".into(), |s| s.to_string()),
                o.world_size.map_or("-".into(), |w| w.to_string()),
                o.last_loss.as_ref().map_or("-".into(), |(k, v)| {
                    format!("{}={}", k.rsplit('/').next().unwrap_or(k), short(*v))
                }),
                if o.backends.is_empty() {
                    "-".into()
                } else {
                    o.backends.join(",")
                },
                if o.unsynced.is_empty() {
                    "-".into()
                } else {
                    o.unsynced
                        .iter()
                        .map(|(b, n)| format!("{b}:{n}"))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    Ok(0)
}

pub fn show(run: &str) -> Outcome {
    let dir = resolve(run)?;
    let text = runs::show(&dir, report::DEFAULT_MAX_POINTS).map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(0)
}

pub fn compare(names: &[String], keys: &[String], out: &Path) -> Outcome {
    let dirs = names
        .iter()
        .map(|r| resolve(r))
        .collect::<Result<Vec<_>, _>>()?;
    let c = report::compare(&dirs, keys, out, report::DEFAULT_MAX_POINTS, (450, 280))
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&c.markdown).unwrap_or_default();
    let tables = text.split("\n## Plots").next().unwrap_or(&text);
    print!("{tables}");
    println!(
        "\nwrote {} and {} plot(s) to {}",
        report::COMPARE_MD,
        c.plots.len(),
        out.display()
    );
    Ok(if c.finals.is_empty() && !keys.is_empty() {
        eprintln!("ezpz compare: no metric matches --keys {}", keys.join(","));
        1
    } else {
        0
    })
}

/// Prints the compact line of each whole line in `bytes` (a trailing partial line waits in
/// `partial` for the rest).
fn print_rows(bytes: &[u8], partial: &mut Vec<u8>) {
    partial.extend_from_slice(bytes);
    let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
        return;
    };
    let whole: Vec<u8> = partial.drain(..=end).collect();
    let mut out = std::io::stdout().lock();
    for line in String::from_utf8_lossy(&whole).lines() {
        if let Some(text) = runs::compact_line(line) {
            let _ = writeln!(out, "{text}");
        }
    }
    let _ = out.flush();
}

pub fn tail(run: &str, lines: usize, interval: f64) -> Outcome {
    let dir = resolve(run)?;
    let path = dir.join("metrics.jsonl");
    let mut file =
        std::fs::File::open(&path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    // The last `lines` rows first (from the file's last MiB at most).
    let start = len.saturating_sub(1 << 20);
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| (&mut file).take(len - start).read_to_end(&mut head))
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&head);
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    let recent: Vec<&str> = complete
        .lines()
        .skip(usize::from(start > 0))
        .filter(|l| runs::compact_line(l).is_some())
        .collect();
    let shown = recent[recent.len().saturating_sub(lines)..].join("\n");
    let mut partial = Vec::new();
    if !shown.is_empty() {
        print_rows(format!("{shown}\n").as_bytes(), &mut partial);
    }
    let mut pos = start + complete.len() as u64;
    let pause = Duration::from_secs_f64(interval.clamp(0.01, 60.0));
    loop {
        // The state first: rows written before the run ended are read below.
        let state = runs::run_state(&dir);
        let mut fresh = Vec::new();
        if file.seek(SeekFrom::Start(pos)).is_ok() {
            let _ = file.read_to_end(&mut fresh);
        }
        pos += fresh.len() as u64;
        print_rows(&fresh, &mut partial);
        match state {
            RunState::Running => std::thread::sleep(pause),
            RunState::Finished => {
                eprintln!("ezpz tail: the run finished");
                return Ok(0);
            }
            RunState::Failed => {
                eprintln!("ezpz tail: the run failed");
                return Ok(3);
            }
            RunState::Killed => {
                eprintln!("ezpz tail: the run stopped without finishing");
                return Ok(4);
            }
        }
    }
}

#[cfg(feature = "report")]
pub fn report(
    run: &Path,
    max_points: usize,
    max_plots: usize,
    norm_plots: bool,
    overview_keys: Vec<String>,
) -> Outcome {
    let options = ReportOptions {
        max_points,
        max_plots,
        norm_plots,
        overview_keys,
        ..ReportOptions::default()
    };
    let files = build_report(run, None, &options).map_err(|e| format!("report: {e}"))?;
    println!(
        "wrote {} and {} ({} plots, {} records)",
        run.join(REPORT_MD).display(),
        REPORT_HTML,
        files.plots.len(),
        files.history.records
    );
    Ok(0)
}

#[cfg(not(feature = "report"))]
pub fn report(
    _run: &Path,
    _max_points: usize,
    _max_plots: usize,
    _norm_plots: bool,
    _overview_keys: Vec<String>,
) -> Outcome {
    Err(
        "this `ezpz` was built without ezpz-tracker's `report` feature, so it cannot draw \
         report.md, report.html and plots/: build it with the feature (a default one)"
            .into(),
    )
}

pub fn sync(run: &Path, tracking_uri: Option<String>, timeout: f64, force: bool) -> Outcome {
    let options = SyncOptions {
        tracking_uri,
        timeout: Duration::from_secs_f64(timeout.min(1e9)),
        force,
    };
    let reports = sync_spools(run, &options).map_err(|e| format!("sync: {e}"))?;
    if reports.is_empty() {
        println!("ezpz sync: nothing to deliver in {}", run.display());
        return Ok(0);
    }
    let mut complete = true;
    for r in &reports {
        let url = r.run_url.as_deref().unwrap_or("(run not created yet)");
        if r.is_complete() {
            println!(
                "ezpz sync: {}: delivered {} request(s) to {url}",
                r.backend, r.delivered
            );
        } else {
            complete = false;
            println!(
                "ezpz sync: {}: delivered {}, {} left in {} ({}); run it again later",
                r.backend,
                r.delivered,
                r.remaining,
                r.spool.display(),
                r.last_failure.as_deref().unwrap_or("no answer")
            );
        }
        if !r.refused.is_empty() {
            let total: u64 = r.refused.values().sum();
            let keys: Vec<String> = r
                .refused
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect();
            println!(
                "ezpz sync: {}: the server refused {total} entr{} for good (not delivered, \
                 not kept): {}",
                r.backend,
                if total == 1 { "y" } else { "ies" },
                keys.join(", ")
            );
        }
    }
    Ok(u8::from(!complete))
}
