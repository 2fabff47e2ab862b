//! Who, where and when a run was: the report's header and `run_info.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::History;
use crate::{BackendInfo, MetricDefinition, Tracker};

/// The identity file's name inside the run directory.
pub const RUN_INFO_JSON: &str = "run_info.json";

/// How to reach one backend's copy of the run (from its [`RunInfo`](crate::RunInfo)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendLink {
    /// The backend's name (`mlflow`).
    pub name: String,
    /// The run's id in the backend.
    pub id: Option<String>,
    /// Where a person can look at the run.
    pub url: Option<String>,
    /// A local file or directory the backend wrote.
    pub path: Option<String>,
    /// A command that opens or completes the run (`tensorboard --logdir …`, `wandb sync …`).
    pub command: Option<String>,
}

impl From<BackendInfo> for BackendLink {
    fn from(b: BackendInfo) -> Self {
        let info = b.run_info.unwrap_or_default();
        BackendLink {
            name: b.name,
            id: info.id,
            url: info.url,
            path: info.path.map(|p| p.display().to_string()),
            command: info.command,
        }
    }
}

/// The run's identity, as written to `run_info.json` and the report's header. Every field
/// is optional: a report rebuilt from a JSONL file alone knows only its times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunIdentity {
    /// The project name.
    pub project: Option<String>,
    /// The run's display name.
    pub run_name: Option<String>,
    /// The run's tags ([`RunSettings`](crate::RunSettings), as the tracker had them).
    pub tags: Vec<String>,
    /// Notes on the run.
    pub notes: Option<String>,
    /// The run's group.
    pub group: Option<String>,
    /// The run's job type.
    pub job_type: Option<String>,
    /// The W&B team or user given to the tracker.
    pub entity: Option<String>,
    /// The MLflow experiment given to the tracker.
    pub experiment: Option<String>,
    /// Start, in seconds since the Unix epoch.
    pub start_time: Option<f64>,
    /// End, in seconds since the Unix epoch.
    pub end_time: Option<f64>,
    /// Start as ISO 8601 UTC (for people reading the JSON).
    pub started: Option<String>,
    /// End as ISO 8601 UTC.
    pub ended: Option<String>,
    /// `end_time - start_time`, in seconds.
    pub duration_s: Option<f64>,
    /// The command line, shell-quoted.
    pub command: Option<String>,
    /// The working directory.
    pub cwd: Option<String>,
    /// The commit checked out in the working directory's git repository.
    pub git_commit: Option<String>,
    /// The host name of rank 0.
    pub host: Option<String>,
    /// The machine (cluster) name, when it differs from the host.
    pub machine: Option<String>,
    /// The scheduler (`PBS`, `SLURM`) when not `UNKNOWN`.
    pub scheduler: Option<String>,
    /// The scheduler's job id.
    pub job_id: Option<String>,
    /// Number of ranks.
    pub world_size: Option<usize>,
    /// The device, when the configuration names one (a `device` entry).
    pub device: Option<String>,
    /// The run directory.
    pub outdir: Option<String>,
    /// Every backend attached, with its links.
    pub backends: Vec<BackendLink>,
    /// What the metrics mean: their units and goals ([`Tracker::define_metric`]).
    pub definitions: Vec<MetricDefinition>,
    /// The `ezpz-tracker` version that wrote the file.
    pub ezpz_tracker_version: Option<String>,
}

impl RunIdentity {
    /// The identity of a live run, ending now (rank 0's view).
    pub fn from_tracker(
        tracker: &Tracker,
        outdir: &Path,
        config: Option<&serde_json::Value>,
    ) -> Self {
        let rank = tracker.rank();
        let settings = tracker.settings().clone();
        let mut id = RunIdentity {
            project: Some(tracker.project().to_string()),
            run_name: Some(settings.run_name).filter(|n| !n.is_empty()),
            tags: settings.tags,
            notes: settings.notes,
            group: settings.group,
            job_type: settings.job_type,
            entity: settings.entity,
            experiment: settings.experiment,
            command: Some(command_line()),
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string()),
            git_commit: std::env::current_dir().ok().and_then(|d| git_commit(&d)),
            host: Some(rank.hostname.clone()),
            machine: Some(rank.machine.clone()).filter(|m| *m != rank.hostname),
            scheduler: Some(rank.scheduler.clone()).filter(|s| s != "UNKNOWN"),
            job_id: rank.job_id.clone(),
            world_size: Some(rank.world_size),
            device: config.and_then(device_from_config),
            outdir: Some(outdir.display().to_string()),
            backends: tracker
                .backend_names()
                .iter()
                .filter_map(|n| tracker.get_backend(n))
                .map(BackendLink::from)
                .collect(),
            definitions: tracker.metric_definitions(),
            ezpz_tracker_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            ..RunIdentity::default()
        };
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .ok();
        id.set_times(Some(tracker.start_time()), end);
        id
    }

    /// What a JSONL file alone tells: the run directory's name and the first and last
    /// record's times.
    pub fn from_history(
        outdir: &Path,
        history: &History,
        config: Option<&serde_json::Value>,
    ) -> Self {
        let mut id = RunIdentity {
            run_name: outdir
                .canonicalize()
                .unwrap_or_else(|_| outdir.to_path_buf())
                .file_name()
                .map(|n| n.to_string_lossy().to_string()),
            device: config.and_then(device_from_config),
            outdir: Some(outdir.display().to_string()),
            ezpz_tracker_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            ..RunIdentity::default()
        };
        if history.max_rank > 0 {
            id.world_size = Some(history.max_rank + 1);
        }
        id.set_times(history.first_timestamp, history.last_timestamp);
        id
    }

    /// Sets start and end (seconds since the Unix epoch) and the fields derived from them.
    pub fn set_times(&mut self, start: Option<f64>, end: Option<f64>) {
        self.start_time = start;
        self.end_time = end;
        self.started = start.and_then(iso_time);
        self.ended = end.and_then(iso_time);
        self.duration_s = start.zip(end).map(|(s, e)| (e - s).max(0.0));
    }

    /// The run settings that are set, labelled for people: tags, notes, group, job type,
    /// entity, experiment (the report's header and `ezpz show`).
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        let tags = (!self.tags.is_empty()).then(|| self.tags.join(", "));
        [
            ("Tags", tags),
            ("Notes", self.notes.clone()),
            ("Group", self.group.clone()),
            ("Job type", self.job_type.clone()),
            ("Entity", self.entity.clone()),
            ("Experiment", self.experiment.clone()),
        ]
        .into_iter()
        .filter_map(|(label, v)| Some((label, v?)))
        .collect()
    }

    /// Reads `run_info.json`.
    ///
    /// # Errors
    /// The file is missing or not a run identity.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read(path).map_err(|e| crate::Error::io("cannot read", path, e))?;
        serde_json::from_slice(&text).map_err(|e| crate::Error::Invalid {
            what: "run_info.json",
            message: format!("`{}`: {e}", path.display()),
        })
    }

    /// The identity as pretty JSON with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// ISO 8601 UTC with second precision (`2026-01-14T18:52:08Z`).
pub(crate) fn iso_time(unix: f64) -> Option<String> {
    if !unix.is_finite() {
        return None;
    }
    let t = chrono::DateTime::from_timestamp(unix.floor() as i64, 0)?;
    Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `3h 02m 05s`, `2m 05s`, `12.3 s`.
pub(crate) fn human_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// The configuration's `device` entry: top level first, else the first nested one.
pub(crate) fn device_from_config(config: &serde_json::Value) -> Option<String> {
    if let Some(d) = config.get("device") {
        return Some(d.as_str().map_or_else(|| d.to_string(), str::to_string));
    }
    crate::config::flatten(config, ".")
        .into_iter()
        .find(|(k, _)| k.rsplit('.').next() == Some("device"))
        .map(|(_, v)| v)
}

/// This process's command line, each argument shell-quoted when it needs to be, secrets
/// redacted (see [`redacted_args`]).
fn command_line() -> String {
    redacted_args()
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Environment variables whose values are secrets: scrubbed wherever they might appear.
const SECRET_VARS: &[&str] = &[
    crate::env::MLFLOW_TRACKING_PASSWORD,
    crate::env::MLFLOW_TRACKING_TOKEN,
    crate::env::AMSC_API_KEY,
    crate::env::AM_SC_API_KEY,
    crate::env::WANDB_API_KEY,
];

/// What written in place of a secret.
pub(crate) const REDACTED: &str = "***";

/// The secret values this process knows: the credential variables ([`SECRET_VARS`]) and a
/// password embedded in `MLFLOW_TRACKING_URI` or `WANDB_BASE_URL`. Values shorter than four
/// characters are left out (replacing them would mangle ordinary text).
pub(crate) fn known_secrets() -> Vec<String> {
    let mut values: Vec<String> = SECRET_VARS
        .iter()
        .filter_map(|v| crate::env::var(v))
        .collect();
    for uri_var in [crate::env::MLFLOW_TRACKING_URI, crate::env::WANDB_BASE_URL] {
        if let Some(uri) = crate::env::var(uri_var) {
            values.extend(uri_password(&uri));
        }
    }
    values.retain(|v| v.len() >= 4);
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// The password of `scheme://user:password@host/…`, if any.
fn uri_password(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_string())
}

/// `text` with every value in `secrets` replaced by `***`.
pub(crate) fn redact_values(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// Whether a command-line flag (`--api-key`, `-hf_token`) or variable name (`WANDB_API_KEY`)
/// names a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name
        .trim_start_matches('-')
        .to_ascii_lowercase()
        .replace('_', "-");
    [
        "token",
        "password",
        "passwd",
        "secret",
        "api-key",
        "apikey",
        "access-key",
        "private-key",
        "credentials",
    ]
    .iter()
    .any(|s| name == *s || name.ends_with(&format!("-{s}")) || name.ends_with(s))
}

/// `args` with secrets redacted: the value after a flag that names a secret (`--token X`,
/// `--password=X`, `--api-key X`, `WANDB_API_KEY=X`), and any occurrence of a known secret
/// value.
pub(crate) fn redact_args(args: &[String], secrets: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            hide_next = false;
            out.push(REDACTED.to_string());
            continue;
        }
        if let Some((name, _)) = arg.split_once('=') {
            if names_a_secret(name) && !name.contains(char::is_whitespace) {
                out.push(format!("{name}={REDACTED}"));
                continue;
            }
        } else if arg.starts_with('-') && names_a_secret(arg) {
            hide_next = true;
        }
        out.push(redact_values(arg, secrets));
    }
    out
}

/// This process's arguments (`argv`), secrets redacted ([`redact_args`] with
/// [`known_secrets`]): what may go into `report.md`, `run_info.json`, params and tags.
pub(crate) fn redacted_args() -> Vec<String> {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    redact_args(&args, &known_secrets())
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The commit checked out in the git repository containing `start`, read from the files
/// (no `git` process: rank 0 of an MPI job should not fork). Handles worktrees (`.git`
/// file), symbolic and detached `HEAD`, loose and packed refs.
pub(crate) fn git_commit(start: &Path) -> Option<String> {
    let mut dir = start.to_path_buf();
    let git_dir = loop {
        let dot = dir.join(".git");
        if dot.is_dir() {
            break dot;
        }
        if dot.is_file() {
            let text = std::fs::read_to_string(&dot).ok()?;
            let target = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
            break if target.is_absolute() {
                target
            } else {
                dir.join(target)
            };
        }
        if !dir.pop() {
            return None;
        }
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_hash(head).then(|| head.to_string());
    };
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    for d in [&git_dir, &common] {
        if let Ok(text) = std::fs::read_to_string(d.join(reference)) {
            let hash = text.trim();
            return is_hash(hash).then(|| hash.to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (hash, name) = l.split_once(' ')?;
        (name.trim() == reference && is_hash(hash)).then(|| hash.to_string())
    })
}

fn is_hash(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_lose_their_secrets() {
        let secrets = strings(&["s3cr3t-value-42"]);
        let args = strings(&[
            "train",
            "--token",
            "abc123",
            "--password=hunter22",
            "--api-key",
            "k-1",
            "--hf_token",
            "hf-9",
            "WANDB_API_KEY=wk-0",
            "--lr",
            "0.1",
            "--max-tokens",
            "512",
            "--note=uses s3cr3t-value-42 here",
        ]);
        let out = redact_args(&args, &secrets);
        assert_eq!(
            out,
            strings(&[
                "train",
                "--token",
                "***",
                "--password=***",
                "--api-key",
                "***",
                "--hf_token",
                "***",
                "WANDB_API_KEY=***",
                "--lr",
                "0.1",
                "--max-tokens",
                "512",
                "--note=uses *** here",
            ])
        );
        assert_eq!(
            uri_password("https://bob:pw-9876@mlflow.example/x").as_deref(),
            Some("pw-9876")
        );
        assert_eq!(uri_password("http://127.0.0.1:5000"), None);
    }

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn git_commit_from_loose_packed_detached_and_worktree() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let git = repo.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::create_dir_all(repo.join("src/deep")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{A}\n")).unwrap();
        assert_eq!(git_commit(&repo.join("src/deep")).as_deref(), Some(A));

        std::fs::write(git.join("HEAD"), "ref: refs/heads/packed\n").unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{A} refs/heads/other\n{B} refs/heads/packed\n"),
        )
        .unwrap();
        assert_eq!(git_commit(&repo).as_deref(), Some(B));

        std::fs::write(git.join("HEAD"), format!("{B}\n")).unwrap();
        assert_eq!(git_commit(&repo).as_deref(), Some(B));

        // A worktree: `.git` is a file pointing at `<repo>/.git/worktrees/wt`.
        let wt_git = git.join("worktrees/wt");
        std::fs::create_dir_all(&wt_git).unwrap();
        std::fs::write(wt_git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(wt_git.join("commondir"), "../..\n").unwrap();
        let wt = root.path().join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", wt_git.display())).unwrap();
        assert_eq!(git_commit(&wt).as_deref(), Some(A));
    }

    #[test]
    fn times_durations_quoting_and_device() {
        assert_eq!(iso_time(0.0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(human_duration(12.34), "12.3 s");
        assert_eq!(human_duration(125.0), "2m 05s");
        assert_eq!(human_duration(3.0 * 3600.0 + 125.0), "3h 02m 05s");
        assert_eq!(shell_quote("--lr=1e-4"), "--lr=1e-4");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let cfg = serde_json::json!({"train": {"device": "cuda:0"}});
        assert_eq!(device_from_config(&cfg).as_deref(), Some("cuda:0"));
        let mut id = RunIdentity::default();
        id.set_times(Some(100.0), Some(160.5));
        assert_eq!(id.duration_s, Some(60.5));
        let back: RunIdentity = serde_json::from_slice(&id.to_json_bytes()).unwrap();
        assert_eq!(back, id);
    }
}
