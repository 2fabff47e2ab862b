//! Run directories as `ezpz ls`, `show` and `tail` see them: found under an outputs folder,
//! read without loading their history (first and last lines of `metrics.jsonl`,
//! `run_info.json`, `report.json`).

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::history::{Cell, Line};
use super::identity::{RunIdentity, RUN_INFO_JSON};
use super::ReportManifest;
use crate::backends::jsonl::METRICS_JSONL;
use crate::value::Value;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// A process on this host still writes its files.
    Running,
    /// It finished normally (its report says so, or its identity has an end).
    Finished,
    /// It finished while failing (a panic unwound through the tracker).
    Failed,
    /// It stopped without finishing (killed, or a run on another host that is still
    /// live: only this host's processes can be seen).
    Killed,
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Killed => "killed",
        })
    }
}

/// What `ezpz ls` shows of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOverview {
    /// The run directory.
    pub dir: PathBuf,
    /// How it stands.
    pub state: RunState,
    /// Its identity, when `run_info.json` exists (written at finish).
    pub identity: Option<RunIdentity>,
    /// First record's time, in seconds since the Unix epoch.
    pub start_time: Option<f64>,
    /// Seconds from the first to the last record (or the identity's duration).
    pub duration_s: Option<f64>,
    /// The last step logged.
    pub last_step: Option<u64>,
    /// Number of ranks, when known.
    pub world_size: Option<usize>,
    /// The latest loss-like value (a key whose last segment holds `loss`) and its key.
    pub last_loss: Option<(String, f64)>,
    /// Backends the run used (from its identity, else from the files it left).
    pub backends: Vec<String>,
    /// Requests left undelivered in its spool, per backend (`ezpz sync` delivers them).
    pub unsynced: Vec<(String, u64)>,
}

/// Whether `dir` holds a run (its metrics or identity).
pub fn is_run_dir(dir: &Path) -> bool {
    [METRICS_JSONL, "metrics.csv", RUN_INFO_JSON]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// Every run directory under `root` (itself included), at most `depth` levels down, in
/// path order. A run's own subdirectories are not searched.
pub fn find_runs(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(root, depth, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if is_run_dir(dir) {
        out.push(dir.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        // Symbolic links are not followed: a link to a parent would loop.
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, out);
        }
    }
}

/// The first whole record of a JSONL file.
pub(crate) fn first_record(path: &Path) -> Option<Line> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(rec) = Line::parse(&line) {
            return Some(rec);
        }
    }
    None
}

/// The last records of a JSONL file, newest first, from at most its last `bytes` bytes.
pub(crate) fn last_records(path: &Path, bytes: u64) -> Vec<Line> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(bytes);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if file.take(bytes).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    lines.iter().rev().filter_map(|l| Line::parse(l)).collect()
}

/// The files other processes on this host have open, read once from `/proc` (Linux);
/// unknown elsewhere. `ezpz ls` takes one snapshot for all its runs.
#[derive(Debug, Clone, Default)]
pub struct OpenFiles(Option<HashSet<PathBuf>>);

impl OpenFiles {
    /// Every file another process has open now.
    pub fn scan() -> OpenFiles {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return OpenFiles(None);
        };
        let me = std::process::id().to_string();
        let mut open = HashSet::new();
        for p in procs.flatten() {
            let name = p.file_name();
            let name = name.to_string_lossy();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                // Files only: pipes and sockets read `pipe:[…]`, `socket:[…]`.
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if target.is_absolute() {
                        open.insert(target);
                    }
                }
            }
        }
        OpenFiles(Some(open))
    }

    /// Whether `path` is open: `None` when this host cannot tell.
    pub fn contains(&self, path: &Path) -> Option<bool> {
        let open = self.0.as_ref()?;
        Some(path.canonicalize().is_ok_and(|p| open.contains(&p)))
    }
}

/// Whether a process on this host has `path` open: `Some(true)`/`Some(false)` where
/// `/proc` can tell (Linux), `None` elsewhere.
pub fn open_by_a_process(path: &Path) -> Option<bool> {
    OpenFiles::scan().contains(path)
}

/// Whether a process on this host writes the run in `dir`: `None` where `/proc` cannot
/// tell (not Linux).
fn written_by_a_process(dir: &Path, open: &OpenFiles) -> Option<bool> {
    let mut answer = Some(false);
    for f in [dir.join(METRICS_JSONL), dir.join("metrics.csv")] {
        if !f.is_file() {
            continue;
        }
        match open.contains(&f) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => answer = None,
        }
    }
    answer
}

/// Whether the run's metrics were written in the last minute.
fn recently_written(dir: &Path) -> bool {
    [dir.join(METRICS_JSONL), dir.join("metrics.csv")]
        .iter()
        .any(|f| {
            f.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() < 60)
        })
}

/// Whether the run in `dir` is being written now: a process on this host has its metrics
/// open (Linux), or, where that cannot be seen, they were written in the last minute.
pub fn is_live(dir: &Path) -> bool {
    written_by_a_process(dir, &OpenFiles::scan()).unwrap_or_else(|| recently_written(dir))
}

/// How the run in `dir` stands (see [`RunState`]).
pub fn run_state(dir: &Path) -> RunState {
    run_state_with(dir, &OpenFiles::scan())
}

/// [`run_state`] against a snapshot of the open files (one for many runs).
pub fn run_state_with(dir: &Path, open: &OpenFiles) -> RunState {
    let by_process = written_by_a_process(dir, open);
    // Live first: a resumed run (`EZPZ_RESUME`) still has its earlier report.
    if by_process == Some(true) {
        return RunState::Running;
    }
    if let Some(m) = ReportManifest::load(dir) {
        match m.status.as_deref() {
            Some("failed") => return RunState::Failed,
            Some("finished") => return RunState::Finished,
            Some("killed") => return RunState::Killed,
            _ => {}
        }
    }
    if by_process.is_none() && recently_written(dir) {
        return RunState::Running;
    }
    let ended = RunIdentity::load(&dir.join(RUN_INFO_JSON))
        .ok()
        .is_some_and(|id| id.end_time.is_some());
    if ended {
        RunState::Finished
    } else {
        RunState::Killed
    }
}

/// Whether `key`'s last segment names a loss (`train/loss`, `valid/epoch/loss`), aggregates
/// (`loss/mean`) left out.
pub(crate) fn is_loss(key: &str) -> bool {
    let (base, channel) = super::series::Channel::split(key);
    channel == super::series::Channel::Raw
        && base.rsplit('/').next().unwrap_or(base).contains("loss")
}

/// Requests left in each spool under `dir/spool/`: entries not acknowledged.
pub fn unsynced(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir.join("spool")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let spool = e.path();
        let Ok(text) = std::fs::read_to_string(spool.join("entries.log")) else {
            continue;
        };
        let acked: std::collections::HashSet<String> =
            std::fs::read_to_string(spool.join("acked.log"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().to_string())
                .collect();
        // Whole lines only: a torn last line was never an entry.
        let whole = text.rsplit_once('\n').map_or("", |(w, _)| w);
        let left = whole
            .lines()
            .filter_map(|l| l.split(' ').next())
            .filter(|id| !id.is_empty() && !acked.contains(*id))
            .count() as u64;
        if left > 0 {
            out.push((e.file_name().to_string_lossy().to_string(), left));
        }
    }
    out.sort();
    out
}

/// Backends a run left files of, for a run without `run_info.json`.
fn backends_from_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (file, name) in [
        ("metrics.csv", "csv"),
        (METRICS_JSONL, "jsonl"),
        ("tensorboard", "tensorboard"),
        ("spool/mlflow", "mlflow"),
        ("wandb", "wandb"),
    ] {
        if dir.join(file).exists() {
            out.push(name.to_string());
        }
    }
    out
}

impl RunOverview {
    /// Reads what `dir` tells of its run; `None` when it holds no run.
    pub fn read(dir: &Path) -> Option<RunOverview> {
        Self::read_with(dir, &OpenFiles::scan())
    }

    /// [`read`](Self::read) against a snapshot of the open files (one for many runs).
    pub fn read_with(dir: &Path, open: &OpenFiles) -> Option<RunOverview> {
        if !is_run_dir(dir) {
            return None;
        }
        let identity = RunIdentity::load(&dir.join(RUN_INFO_JSON)).ok();
        let jsonl = dir.join(METRICS_JSONL);
        let first = first_record(&jsonl);
        let last = last_records(&jsonl, 256 * 1024);
        let start_time = identity
            .as_ref()
            .and_then(|i| i.start_time)
            .or_else(|| first.as_ref().and_then(|r| r.timestamp));
        let last_time = last.iter().find_map(|r| r.timestamp);
        let duration_s = identity
            .as_ref()
            .and_then(|i| i.duration_s)
            .or_else(|| Some(last_time? - first.as_ref()?.timestamp?).filter(|d| *d >= 0.0));
        let last_step = last.iter().filter_map(|r| r.step).max();
        let last_loss = last.iter().find_map(|r| {
            r.metrics.iter().find_map(|(k, v)| match Cell::decode(v)? {
                Cell::Num(x) if is_loss(k) => Some((k.clone(), x)),
                Cell::Int(x) if is_loss(k) => Some((k.clone(), x as f64)),
                _ => None,
            })
        });
        let world_size = identity.as_ref().and_then(|i| i.world_size);
        let backends = match &identity {
            Some(i) if !i.backends.is_empty() => {
                i.backends.iter().map(|b| b.name.clone()).collect()
            }
            _ => backends_from_files(dir),
        };
        Some(RunOverview {
            dir: dir.to_path_buf(),
            state: run_state_with(dir, open),
            identity,
            start_time,
            duration_s,
            last_step,
            world_size,
            last_loss,
            backends,
            unsynced: unsynced(dir),
        })
    }

    /// The run's name: its identity's run name, else the directory's name.
    pub fn name(&self) -> String {
        self.identity
            .as_ref()
            .and_then(|i| i.run_name.clone())
            .unwrap_or_else(|| {
                self.dir.file_name().map_or_else(
                    || self.dir.display().to_string(),
                    |n| n.to_string_lossy().to_string(),
                )
            })
    }

    /// The run's project, when its identity tells.
    pub fn project(&self) -> Option<&str> {
        self.identity.as_ref()?.project.as_deref()
    }
}

/// One JSONL record as the original's compact console line (`step=12  loss=0.5 …`); `None`
/// for a line that is not a record. The step leads unless the record has a counter
/// (`iter`, `epoch`, …) of its own.
pub fn compact_line(line: &str) -> Option<String> {
    let rec = Line::parse(line)?;
    let mut metrics: Vec<(String, Value)> = Vec::with_capacity(rec.metrics.len());
    for (k, v) in &rec.metrics {
        let Some(cell) = Cell::decode(v) else {
            continue;
        };
        let value = match cell {
            Cell::Num(x) => Value::F64(x),
            Cell::Int(i) => Value::I64(i),
            Cell::Bool(b) => Value::Bool(b),
            Cell::Text(t) => Value::Str(t.into()),
        };
        metrics.push((k.clone(), value));
    }
    let has_counter = rec.metrics.keys().any(|k| super::compact::is_counter(k));
    let text = super::format_compact(metrics);
    Some(match rec.step {
        // Outside the metrics, so the prefix they share (`train/`) is still dropped.
        Some(step) if !has_counter => format!("{:<10} {text}", format!("step={step}")),
        _ => text,
    })
}

/// The latest run before the one in `dir` among its sibling directories (the default
/// layout is `outputs/<project>/<time>`), of the same project when both tell.
pub fn previous_run(dir: &Path) -> Option<PathBuf> {
    let open = OpenFiles::scan();
    let me = RunOverview::read_with(dir, &open)?;
    let start = me.start_time?;
    let parent = dir.parent()?;
    let mut best: Option<(f64, PathBuf)> = None;
    for e in std::fs::read_dir(parent).ok()?.flatten() {
        let p = e.path();
        if p == dir || !p.is_dir() {
            continue;
        }
        let Some(o) = RunOverview::read_with(&p, &open) else {
            continue;
        };
        let same_project = match (o.project(), me.project()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let Some(t) = o.start_time.filter(|t| *t < start) else {
            continue;
        };
        if same_project && best.as_ref().is_none_or(|(bt, _)| t > *bt) {
            best = Some((t, p));
        }
    }
    best.map(|(_, p)| p)
}

/// UTC time of a Unix timestamp, to the second.
pub(crate) fn utc(t: f64) -> String {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The compact summary of the run in `dir` that `ezpz show` prints: identity, the
/// configuration's changes since the previous run of the project, and last/min/max of
/// the key metrics.
///
/// # Errors
/// `dir` holds no run.
pub fn show(dir: &Path, max_points: usize) -> crate::Result<String> {
    use std::fmt::Write;
    let o = RunOverview::read(dir).ok_or_else(|| crate::Error::Invalid {
        what: "run",
        message: format!(
            "`{}` holds no run (no metrics.jsonl, metrics.csv or run_info.json)",
            dir.display()
        ),
    })?;
    let mut s = String::new();
    let _ = writeln!(s, "run        {}  ({})", o.name(), o.state);
    if let Some(p) = o.project() {
        let _ = writeln!(s, "project    {p}");
    }
    let _ = writeln!(s, "directory  {}", dir.display());
    if let Some(t) = o.start_time {
        let mut line = format!("started    {}", utc(t));
        if let Some(d) = o.duration_s {
            let _ = write!(line, "  (ran {})", super::identity::human_duration(d));
        }
        let _ = writeln!(s, "{line}");
    }
    if let Some(id) = &o.identity {
        for (label, value) in id.labels() {
            let label = label.to_lowercase();
            let _ = writeln!(s, "{label:<10} {value}");
        }
        if let Some(h) = &id.host {
            let _ = writeln!(
                s,
                "host       {h}{}",
                id.world_size
                    .map(|w| format!("  world size {w}"))
                    .unwrap_or_default()
            );
        }
        if let Some(c) = &id.command {
            let _ = writeln!(s, "command    {c}");
        }
        for b in &id.backends {
            let link = b.url.clone().or_else(|| b.path.clone()).unwrap_or_default();
            let _ = writeln!(s, "backend    {:<12} {link}", b.name);
        }
    } else if !o.backends.is_empty() {
        let _ = writeln!(s, "backends   {}", o.backends.join(", "));
    }
    for (b, n) in &o.unsynced {
        let _ = writeln!(
            s,
            "unsynced   {b}: {n} request(s) (run `ezpz sync {}`)",
            dir.display()
        );
    }

    if let Some(prev) = previous_run(dir) {
        let configs = [super::read_config(&prev), super::read_config(dir)];
        let diff = super::config_diff::config_diff(&configs);
        let name = RunOverview::read(&prev)
            .map(|p| p.name())
            .unwrap_or_default();
        if diff.is_empty() {
            let _ = writeln!(s, "\nconfig: same as the previous run ({name})");
        } else {
            let _ = writeln!(s, "\nconfig changes since the previous run ({name}):");
            for (k, v) in diff {
                match (&v[0], &v[1]) {
                    (Some(a), Some(b)) => {
                        let _ = writeln!(s, "  {k}: {a} → {b}");
                    }
                    (None, Some(b)) => {
                        let _ = writeln!(s, "  + {k}: {b}");
                    }
                    (Some(a), None) => {
                        let _ = writeln!(s, "  - {k}: {a}");
                    }
                    (None, None) => {}
                }
            }
        }
    }

    let jsonl = dir.join(METRICS_JSONL);
    if let Ok(history) = super::History::read(&jsonl, max_points) {
        let mut names: Vec<&str> = super::panels::panels(&history, &[])
            .into_iter()
            .flat_map(|p| p.series.into_iter().map(|(_, m)| m.name()))
            .collect();
        if names.is_empty() {
            names = history
                .metrics()
                .iter()
                .filter(|m| m.main_channel().is_some())
                .take(10)
                .map(|m| m.name())
                .collect();
        }
        if !names.is_empty() {
            let width = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
            let _ = writeln!(
                s,
                "\n{:<width$}  {:>12}  {:>12}  {:>12}",
                "metric", "last", "min", "max"
            );
            for n in names {
                let Some(m) = history.get(n) else { continue };
                let Some(st) = m.main_channel().and_then(|c| m.stats(c)) else {
                    continue;
                };
                let f = |v: f64| super::text::number(v, 6);
                let _ = writeln!(
                    s,
                    "{n:<width$}  {:>12}  {:>12}  {:>12}",
                    f(st.last),
                    f(st.min),
                    f(st.max)
                );
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lines_lead_with_the_step_unless_a_counter_is_logged() {
        let l = compact_line(r#"{"step":12,"metrics":{"train/loss":0.5,"train/loss/std":0.01}}"#)
            .unwrap();
        assert!(l.starts_with("step=12"), "{l}");
        assert!(l.contains("loss=0.500000(±0.010)"), "{l}");
        let l = compact_line(r#"{"step":12,"metrics":{"iter":3,"loss":"NaN"}}"#).unwrap();
        assert!(l.starts_with("iter=3"), "{l}");
        assert!(l.contains("loss=nan"), "{l}");
        assert_eq!(compact_line("{\"step\":1,\"met"), None);
    }

    #[test]
    fn loss_keys() {
        assert!(is_loss("train/loss"));
        assert!(is_loss("valid/epoch/loss"));
        assert!(!is_loss("train/loss/mean"));
        assert!(!is_loss("loss_scale/x"));
    }

    #[test]
    fn a_killed_run_without_identity_reads_from_its_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("p/2026-01-01-000000");
        std::fs::create_dir_all(run.join("spool/mlflow")).unwrap();
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&format!(
                "{{\"timestamp\":{},\"step\":{i},\"rank\":0,\"metrics\":{{\"train/loss\":{}}}}}\n",
                100.0 + f64::from(i) * 2.0,
                1.0 / f64::from(i + 1)
            ));
        }
        text.push_str("{\"timestamp\":200,\"step\":5,\"metr");
        std::fs::write(run.join(METRICS_JSONL), text).unwrap();
        std::fs::write(
            run.join("spool/mlflow/entries.log"),
            "1 a {}\n2 b {}\n3 c {}\n4 d",
        )
        .unwrap();
        std::fs::write(run.join("spool/mlflow/acked.log"), "1\n").unwrap();
        assert_eq!(find_runs(dir.path(), 3), std::slice::from_ref(&run));
        let o = RunOverview::read(&run).unwrap();
        assert_eq!(o.state, RunState::Killed);
        assert_eq!((o.start_time, o.duration_s), (Some(100.0), Some(8.0)));
        assert_eq!(o.last_step, Some(4));
        assert_eq!(o.last_loss, Some(("train/loss".to_string(), 0.2)));
        assert_eq!(o.backends, ["jsonl", "mlflow"]);
        assert_eq!(o.unsynced, [("mlflow".to_string(), 2)]);
        assert_eq!(o.name(), "2026-01-01-000000");
    }
}
