//! The run's identity and its lifecycle on the server: experiment lookup or creation, run
//! creation (or attachment to `MLFLOW_RUN_ID`), the banner, and the final status.
//!
//! Creation is idempotent: every run carries a unique `ezpz.run_uid` tag, and a creation
//! that may have reached the server without an answer is followed by a search for that tag
//! before another attempt, so a lost answer never makes a second run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::batch::{write_key_value, write_str};
use super::client::{Failure, RestClient};
use crate::backend::RunStatus;

/// The tag that identifies a run we created.
pub(crate) const RUN_UID_TAG: &str = "ezpz.run_uid";

/// Everything needed to create, find or finish the run; stored in the spool's `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    /// The tracking URI, without credentials.
    pub tracking_uri: String,
    /// The experiment's name.
    pub experiment_name: String,
    /// The experiment's id, once known.
    pub experiment_id: Option<String>,
    /// The run's id, once created (or given by `MLFLOW_RUN_ID`).
    pub run_id: Option<String>,
    /// The run's display name.
    pub run_name: String,
    /// Unique id in the `ezpz.run_uid` tag.
    pub run_uid: String,
    /// Start time, ms since the epoch.
    pub start_time: i64,
    /// Tags set at creation.
    pub tags: Vec<(String, String)>,
    /// Where the run's artifacts live, once known.
    pub artifact_uri: Option<String>,
    /// A creation request was sent (its answer may have been lost).
    pub create_sent: bool,
    /// The run's output directory (for the replay command).
    pub outdir: PathBuf,
}

impl RunMeta {
    /// Whether the run exists on the server and its artifact location is known.
    pub fn is_ready(&self) -> bool {
        self.run_id.is_some() && self.artifact_uri.is_some()
    }

    /// `{uri}/#/experiments/{id}/runs/{run_id}`, once both ids are known.
    pub fn url(&self) -> Option<String> {
        Some(format!(
            "{}/#/experiments/{}/runs/{}",
            self.tracking_uri.trim_end_matches('/'),
            self.experiment_id.as_deref()?,
            self.run_id.as_deref()?
        ))
    }

    /// The command that replays what is left.
    pub fn sync_command(&self) -> String {
        format!(
            "ezpz sync {}",
            shell_quote(&self.outdir.display().to_string())
        )
    }

    /// The original's banner (stderr, printed once the run exists).
    pub fn banner(&self) -> String {
        let label = "🔄 \u{1b}[91mmlflow\u{1b}[0m";
        let mut out = format!(
            "{label}: Tracking run with mlflow\n{label}: Experiment: {}\n{label}: Run name: {}\n\
             {label}: Tracking URI: {}\n",
            self.experiment_name, self.run_name, self.tracking_uri
        );
        if let Some(url) = self.url() {
            out.push_str(&format!("{label}: 🔗 View run at {url}\n"));
        }
        out
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What [`ensure_run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The run was already known.
    Known,
    /// The run was created, found or attached just now (`meta` changed).
    Now,
}

/// Makes sure the run exists and `meta` knows its id, experiment and artifact location.
/// `persist` is called before a creation request goes out (with `create_sent` set), so a
/// replay after a crash looks for the run first.
///
/// # Errors
/// The server's failure; `meta` keeps whatever was learnt before it.
pub(crate) fn ensure_run(
    client: &RestClient,
    meta: &mut RunMeta,
    persist: &mut dyn FnMut(&RunMeta),
) -> Result<Resolved, Failure> {
    if meta.is_ready() {
        return Ok(Resolved::Known);
    }
    if let Some(run_id) = meta.run_id.clone() {
        let answer = client.get("runs/get", &[("run_id", &run_id)])?;
        adopt(meta, &answer["run"]["info"]);
        return Ok(Resolved::Now);
    }
    let experiment_id = match meta.experiment_id.clone() {
        Some(id) => id,
        None => {
            let id = experiment_id(client, &meta.experiment_name)?;
            meta.experiment_id = Some(id.clone());
            id
        }
    };
    if meta.create_sent {
        if let Some(info) = find_by_uid(client, &experiment_id, &meta.run_uid)? {
            adopt(meta, &info);
            return Ok(Resolved::Now);
        }
    }
    meta.create_sent = true;
    persist(meta);
    let answer = client.post("runs/create", create_body(meta, &experiment_id))?;
    adopt(meta, &answer["run"]["info"]);
    if meta.run_id.is_none() {
        return Err(Failure::Local(
            "the server's answer to runs/create has no run id".into(),
        ));
    }
    Ok(Resolved::Now)
}

fn adopt(meta: &mut RunMeta, info: &serde_json::Value) {
    let text = |k: &str| info[k].as_str().map(str::to_string);
    if let Some(id) = text("run_id") {
        meta.run_id = Some(id);
    }
    if let Some(id) = text("experiment_id") {
        meta.experiment_id = Some(id);
    }
    if let Some(name) = text("run_name").filter(|n| !n.is_empty()) {
        meta.run_name = name;
    }
    meta.artifact_uri = text("artifact_uri").or_else(|| meta.artifact_uri.take());
    // A run without an artifact location can still take metrics.
    if meta.artifact_uri.is_none() && meta.run_id.is_some() {
        meta.artifact_uri = Some(String::new());
    }
}

/// The experiment's id by name, creating the experiment when it does not exist (a
/// concurrent creation that wins the race is fine).
fn experiment_id(client: &RestClient, name: &str) -> Result<String, Failure> {
    let lookup = |client: &RestClient| -> Result<Option<String>, Failure> {
        match client.get("experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => {
                let exp = &v["experiment"];
                if exp["lifecycle_stage"].as_str() == Some("deleted") {
                    return Err(Failure::Local(format!(
                        "experiment `{name}` is deleted on the server: restore it, or set \
                         MLFLOW_EXPERIMENT_NAME to another name"
                    )));
                }
                Ok(exp["experiment_id"].as_str().map(str::to_string))
            }
            Err(f) if f.code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(f) => Err(f),
        }
    };
    if let Some(id) = lookup(client)? {
        return Ok(id);
    }
    let mut body = String::from("{\"name\":");
    write_str(&mut body, name);
    body.push('}');
    match client.post("experiments/create", body) {
        Ok(v) => v["experiment_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::Local("experiments/create answered no id".into())),
        Err(f) if f.code() == Some("RESOURCE_ALREADY_EXISTS") => lookup(client)?.ok_or(f),
        Err(f) => Err(f),
    }
}

fn find_by_uid(
    client: &RestClient,
    experiment_id: &str,
    uid: &str,
) -> Result<Option<serde_json::Value>, Failure> {
    let body = serde_json::json!({
        "experiment_ids": [experiment_id],
        "filter": format!("tags.`{RUN_UID_TAG}` = '{uid}'"),
        "run_view_type": "ALL",
        "max_results": 1,
    });
    let answer = client.post("runs/search", body.to_string())?;
    Ok(answer["runs"]
        .as_array()
        .and_then(|runs| runs.first())
        .map(|run| run["info"].clone()))
}

fn create_body(meta: &RunMeta, experiment_id: &str) -> String {
    let mut body = String::from("{\"experiment_id\":");
    write_str(&mut body, experiment_id);
    body.push_str(",\"run_name\":");
    write_str(&mut body, &meta.run_name);
    body.push_str(&format!(",\"start_time\":{},\"tags\":[", meta.start_time));
    let uid = (RUN_UID_TAG.to_string(), meta.run_uid.clone());
    for (i, (k, v)) in meta.tags.iter().chain(std::iter::once(&uid)).enumerate() {
        if i > 0 {
            body.push(',');
        }
        write_key_value(&mut body, k, v);
    }
    body.push_str("]}");
    body
}

/// The body of the final `runs/update` (without the run id).
pub(crate) fn end_body(status: RunStatus, end_time_ms: i64) -> String {
    let status = match status {
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Killed => "KILLED",
    };
    format!("{{\"status\":\"{status}\",\"end_time\":{end_time_ms}}}")
}

/// A new unique id for the `ezpz.run_uid` tag (time, process and a counter, hashed).
pub(crate) fn new_run_uid() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RunMeta {
        RunMeta {
            tracking_uri: "http://127.0.0.1:5000/".into(),
            experiment_name: "ezpz-examples-vit".into(),
            experiment_id: Some("3".into()),
            run_id: Some("abc".into()),
            run_name: "vit-1".into(),
            run_uid: new_run_uid(),
            start_time: 1,
            tags: vec![("mlflow.user".into(), "me".into())],
            artifact_uri: None,
            create_sent: false,
            outdir: "/tmp/out dir".into(),
        }
    }

    #[test]
    fn url_banner_and_command() {
        let m = meta();
        assert_eq!(
            m.url().unwrap(),
            "http://127.0.0.1:5000/#/experiments/3/runs/abc"
        );
        let banner = m.banner();
        for needle in [
            "Tracking run with mlflow",
            "Experiment: ezpz-examples-vit",
            "Run name: vit-1",
            "Tracking URI: http://127.0.0.1:5000/",
            "View run at http://127.0.0.1:5000/#/experiments/3/runs/abc",
        ] {
            assert!(banner.contains(needle), "{banner}");
        }
        assert_eq!(m.sync_command(), "ezpz sync '/tmp/out dir'");
        assert!(!m.is_ready());
    }

    #[test]
    fn bodies_are_json() {
        let m = meta();
        let create: serde_json::Value = serde_json::from_str(&create_body(&m, "3")).unwrap();
        assert_eq!(create["experiment_id"], "3");
        assert_eq!(create["tags"][1]["key"], RUN_UID_TAG);
        assert_eq!(create["tags"][1]["value"], m.run_uid.as_str());
        let end: serde_json::Value = serde_json::from_str(&end_body(RunStatus::Failed, 9)).unwrap();
        assert_eq!(end, serde_json::json!({"status": "FAILED", "end_time": 9}));
        assert_ne!(new_run_uid(), new_run_uid());
        assert_eq!(new_run_uid().len(), 32);
    }
}
