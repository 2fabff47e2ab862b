//! Configuration as MLflow params, and the original's system params under `ezpz.*`.
//!
//! Nested maps are flattened with dots and values stringified ([`crate::config::flatten`]).
//! MLflow params are write-once: the same value again is a no-op, a different value is
//! refused by the server. So every param is remembered here; a repeat is dropped silently,
//! a changed value is one warning naming the key and is never sent. Values longer than the
//! server keeps (6000 characters) are cut with a warning rather than silently.

use std::collections::HashMap;
use std::sync::Arc;

use super::auth::Secrets;
use super::keys::KeyMapper;
use crate::backend::BackendContext;

/// Longest param value the server stores, in characters.
pub(crate) const MAX_PARAM_CHARS: usize = 6000;

/// Params already logged in this run, by (sanitized) key.
#[derive(Debug, Default)]
pub(crate) struct ParamLog {
    logged: HashMap<String, String>,
}

impl ParamLog {
    /// The params of `flat` that must be sent: keys made acceptable, values cut to the
    /// server's limit and scrubbed of secrets, repeats and changed values left out (the latter
    /// with a warning).
    pub fn admit(
        &mut self,
        flat: Vec<(String, String)>,
        keys: &mut KeyMapper,
        secrets: &Secrets,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, value) in flat {
            let key = keys.map(&Arc::from(key.as_str()), "param").to_string();
            let mut value = secrets.redact(&value);
            let chars = value.chars().count();
            if chars > MAX_PARAM_CHARS {
                crate::warn!(
                    "ezpz: mlflow: param `{key}` is {chars} characters long; MLflow keeps at most \
                     {MAX_PARAM_CHARS}, so it is cut to that length"
                );
                value = value.chars().take(MAX_PARAM_CHARS).collect();
            }
            match self.logged.get(&key) {
                Some(old) if *old == value => {}
                Some(old) => crate::warn!(
                    "ezpz: mlflow: param `{key}` was already logged as `{}`; MLflow params cannot \
                     change, so the new value `{}` is not logged (use a metric or a new key)",
                    preview(old),
                    preview(&value)
                ),
                None => {
                    self.logged.insert(key.clone(), value.clone());
                    out.push((key, value));
                }
            }
        }
        out
    }
}

/// The start of a long value, for messages.
fn preview(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}

/// What git says about the working directory, if it is a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GitInfo {
    /// `git rev-parse --abbrev-ref HEAD`.
    pub branch: Option<String>,
    /// `git rev-parse HEAD`.
    pub commit: Option<String>,
}

impl GitInfo {
    /// Asks git (one short subprocess); nothing when git or the repository is missing.
    pub fn detect() -> Self {
        let output = std::process::Command::new("git")
            .args(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output();
        let Some(output) = output.ok().filter(|o| o.status.success()) else {
            return GitInfo::default();
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        GitInfo {
            commit: lines.next().map(str::to_string),
            branch: lines.next().map(str::to_string),
        }
    }
}

/// The original's system params (`ezpz.version`, `ezpz.hostname`, …), Python's versions
/// replaced by rustc's.
pub(crate) fn system_params(ctx: &BackendContext, git: &GitInfo) -> Vec<(String, String)> {
    let now = chrono::Utc::now();
    let rank = &ctx.rank;
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let command = crate::report::redacted_args();
    let pairs: Vec<(&str, String)> = vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("hostname", rank.hostname.clone()),
        ("machine", rank.machine.clone()),
        ("scheduler", rank.scheduler.clone()),
        ("world_size", rank.world_size.to_string()),
        ("rank", rank.rank.to_string()),
        ("local_rank", rank.local_rank.to_string()),
        ("working_directory", cwd),
        ("timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("date", now.format("%Y-%m-%d").to_string()),
        ("year", now.format("%Y").to_string()),
        ("month", now.format("%m").to_string()),
        ("day", now.format("%d").to_string()),
        ("command", command.join(" ")),
        ("git_branch", git.branch.clone().unwrap_or_default()),
        (
            "rustc_version",
            option_env!("EZPZ_RUSTC_VERSION")
                .unwrap_or_default()
                .to_string(),
        ),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (format!("ezpz.{k}"), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RankInfo;

    fn ctx() -> BackendContext {
        BackendContext {
            project: "p".into(),
            outdir: "/tmp/x".into(),
            rank: RankInfo::single().with_rank(0, 4),
            settings: crate::RunSettings {
                run_name: "r".into(),
                ..Default::default()
            },
            start_time: 0.0,
            config: None,
            finish_timeout: std::time::Duration::from_secs(30),
            resume: false,
            last_step: None,
        }
    }

    #[test]
    fn repeats_are_dropped_and_changes_refused() {
        let mut log = ParamLog::default();
        let mut keys = KeyMapper::default();
        let s = Secrets::default();
        let first = log.admit(
            vec![("lr".into(), "0.001".into()), ("bs".into(), "32".into())],
            &mut keys,
            &s,
        );
        assert_eq!(first.len(), 2);
        let again = log.admit(
            vec![("lr".into(), "0.001".into()), ("lr".into(), "0.01".into())],
            &mut keys,
            &s,
        );
        assert!(again.is_empty());
    }

    #[test]
    fn long_values_are_cut_and_secrets_scrubbed_and_keys_fixed() {
        let mut log = ParamLog::default();
        let mut keys = KeyMapper::default();
        let s = Secrets::new(vec!["tok-abcdef".into()]);
        let out = log.admit(
            vec![
                ("big".into(), "é".repeat(7000)),
                ("cmd".into(), "train --token tok-abcdef".into()),
                ("bad key!".into(), "1".into()),
            ],
            &mut keys,
            &s,
        );
        assert_eq!(out[0].1.chars().count(), MAX_PARAM_CHARS);
        assert_eq!(out[1].1, "train --token ***");
        assert_eq!(out[2].0, "bad key_");
    }

    #[test]
    fn system_params_cover_the_originals_keys() {
        let params = system_params(
            &ctx(),
            &GitInfo {
                branch: Some("main".into()),
                commit: Some("abc".into()),
            },
        );
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        for k in [
            "version",
            "hostname",
            "machine",
            "scheduler",
            "world_size",
            "rank",
            "local_rank",
            "working_directory",
            "timestamp",
            "date",
            "year",
            "month",
            "day",
            "command",
            "git_branch",
            "rustc_version",
        ] {
            assert!(get(&format!("ezpz.{k}")).is_some(), "ezpz.{k}");
        }
        assert_eq!(get("ezpz.world_size").as_deref(), Some("4"));
        assert_eq!(get("ezpz.git_branch").as_deref(), Some("main"));
        assert_eq!(
            get("ezpz.rustc_version").as_deref(),
            option_env!("EZPZ_RUSTC_VERSION")
        );
        let ts = get("ezpz.timestamp").unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    }
}
