//! The local run: `<outdir>/wandb/<offline-run|run>-<YYYYMMDD_HHMMSS>-<id>/` with the
//! transaction log `run-<id>.wandb` and the `files/` directory that `wandb sync` uploads from.
//!
//! This log is written in every mode: it is what `wandb sync` uploads for an offline run and
//! the fallback that loses nothing when an online run loses its server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::{Error, Result};

use super::history::{json_string, Row};
use super::log::LogWriter;
use super::proto::{
    FilesItem, FilesRecord, Item, Record, RunExitRecord, RunRecord, Timestamp, Updates,
};

/// Who the run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunIdent {
    /// 8-character base-36 id (or `WANDB_RUN_ID`).
    pub run_id: String,
    /// Project name.
    pub project: String,
    /// Entity (team or user); `None` = the API key's default.
    pub entity: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Run group.
    pub group: Option<String>,
    /// Job type.
    pub job_type: Option<String>,
    /// Host name.
    pub host: String,
    /// Seconds since the Unix epoch when the run started.
    pub start_time: f64,
}

/// A fresh 8-character run id in W&B's alphabet (lower-case base 36).
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process; mixing in time and pid makes two ids
    // from one process differ too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let mut n = h.finish();
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let c = ALPHABET[(n % 36) as usize] as char;
            n /= 36;
            c
        })
        .collect()
}

/// The run directory and its log.
#[derive(Debug)]
pub struct RunLog {
    dir: PathBuf,
    files_dir: PathBuf,
    log: LogWriter,
    /// Last value of every key, as JSON text, in order of first appearance.
    summary: Vec<(String, String)>,
    summary_index: HashMap<String, usize>,
    /// Summary entries changed since the last summary record.
    dirty: Vec<usize>,
}

impl RunLog {
    /// Creates the run directory under `<root>/wandb/` and writes the `run` record (with the
    /// configuration) first, as `wandb sync` requires.
    ///
    /// # Errors
    /// The directory or the log cannot be created or written.
    pub fn create(
        root: &Path,
        ident: &RunIdent,
        online: bool,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self> {
        use chrono::TimeZone;
        let stamp = chrono::Local
            .timestamp_micros((ident.start_time * 1e6) as i64)
            .single()
            .unwrap_or_else(chrono::Local::now)
            .format("%Y%m%d_%H%M%S");
        let prefix = if online { "run" } else { "offline-run" };
        let dir = root
            .join("wandb")
            .join(format!("{prefix}-{stamp}-{}", ident.run_id));
        let files_dir = dir.join("files");
        std::fs::create_dir_all(&files_dir)
            .map_err(|e| Error::io("cannot create directory", &files_dir, e))?;
        let log = LogWriter::create(&dir.join(format!("run-{}.wandb", ident.run_id)))?;
        let mut run = RunLog {
            dir,
            files_dir,
            log,
            summary: Vec::new(),
            summary_index: HashMap::new(),
            dirty: Vec::new(),
        };
        let record = RunRecord {
            run_id: ident.run_id.clone(),
            entity: ident.entity.clone().unwrap_or_default(),
            project: ident.project.clone(),
            config: Some(config_updates(config.iter())),
            run_group: ident.group.clone().unwrap_or_default(),
            job_type: ident.job_type.clone().unwrap_or_default(),
            display_name: ident.display_name.clone(),
            notes: ident.notes.clone().unwrap_or_default(),
            tags: ident.tags.clone(),
            host: ident.host.clone(),
            starting_step: 0,
            start_time: Some(Timestamp::from_secs(ident.start_time)),
        };
        run.append(Record {
            run: Some(record),
            ..Record::default()
        })?;
        run.log.flush()?;
        Ok(run)
    }

    fn append(&mut self, record: Record) -> Result<()> {
        self.log.append(&record.encode_to_vec())
    }

    /// The run directory (what `wandb sync` takes).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `files/` directory (media, artifacts).
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    /// Appends a history row and remembers its values for the summary.
    ///
    /// # Errors
    /// A forced write failed.
    pub fn history(&mut self, row: &Row) -> Result<()> {
        for (k, v) in &row.items {
            self.set_summary(k, v);
        }
        self.append(Record {
            history: Some(row.to_record()),
            ..Record::default()
        })
    }

    /// Sets the summary of `key` (written at the next flush).
    pub fn set_summary(&mut self, key: &str, json: &str) {
        let i = match self.summary_index.get(key) {
            Some(&i) => {
                self.summary[i].1.clear();
                self.summary[i].1.push_str(json);
                i
            }
            None => {
                self.summary.push((key.to_string(), json.to_string()));
                self.summary_index
                    .insert(key.to_string(), self.summary.len() - 1);
                self.summary.len() - 1
            }
        };
        if !self.dirty.contains(&i) {
            self.dirty.push(i);
        }
    }

    /// Appends a metric definition.
    ///
    /// # Errors
    /// A forced write failed.
    pub fn metric(&mut self, record: super::proto::MetricRecord) -> Result<()> {
        self.append(Record {
            metric: Some(record),
            ..Record::default()
        })
    }

    /// Whether summary entries changed since the last summary record.
    pub fn summary_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The summary (last value of every key) as one JSON object.
    pub fn summary_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.summary.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&json_string(k));
            s.push(':');
            s.push_str(v);
        }
        s.push('}');
        s
    }

    /// Appends a configuration update.
    ///
    /// # Errors
    /// A forced write failed.
    pub fn config<'a>(
        &mut self,
        changed: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    ) -> Result<()> {
        self.append(Record {
            config: Some(config_updates(changed)),
            ..Record::default()
        })
    }

    /// Lists files (relative to `files/`) for upload.
    ///
    /// # Errors
    /// A forced write failed.
    pub fn files(&mut self, paths: &[String]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        self.append(Record {
            files: Some(FilesRecord {
                files: paths
                    .iter()
                    .map(|p| FilesItem { path: p.clone() })
                    .collect(),
            }),
            ..Record::default()
        })
    }

    /// Writes the summary entries changed since the last call (`wandb sync` does not derive
    /// the summary from history), then the buffered records.
    ///
    /// # Errors
    /// The write failed.
    pub fn flush(&mut self) -> Result<()> {
        self.write_summary()?;
        self.log.flush()
    }

    fn write_summary(&mut self) -> Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let update: Vec<Item> = self
            .dirty
            .drain(..)
            .map(|i| Item::new(self.summary[i].0.clone(), self.summary[i].1.clone()))
            .collect();
        self.append(Record {
            summary: Some(Updates { update }),
            ..Record::default()
        })
    }

    /// Ends the log: the remaining summary (with `_wandb.runtime`), the `exit` record, and a
    /// sync to disk.
    ///
    /// # Errors
    /// The write failed.
    pub fn exit(&mut self, exit_code: i32, runtime: f64) -> Result<()> {
        let secs = runtime.max(0.0).round() as i32;
        // W&B shows the run's duration from `_wandb.runtime`.
        self.set_summary("_wandb", &format!("{{\"runtime\":{secs}}}"));
        self.write_summary()?;
        self.append(Record {
            exit: Some(RunExitRecord {
                exit_code,
                runtime: secs,
            }),
            ..Record::default()
        })?;
        self.log.sync()
    }
}

fn config_updates<'a>(items: impl Iterator<Item = (&'a String, &'a serde_json::Value)>) -> Updates {
    Updates {
        update: items
            .map(|(k, v)| Item::new(k.clone(), json_text(v)))
            .collect(),
    }
}

/// A configuration value as JSON text (serde_json cannot hold non-finite numbers, so this
/// never fails).
fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::wandb::log::read_records;

    #[test]
    fn run_ids_are_eight_base36_characters_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert_eq!(a.len(), 8);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn the_run_record_comes_first_and_summary_follows_history() {
        let dir = tempfile::tempdir().unwrap();
        let ident = RunIdent {
            run_id: "abc12345".into(),
            project: "p".into(),
            start_time: 1.7e9,
            ..RunIdent::default()
        };
        let cfg = serde_json::json!({"lr": 0.1});
        let mut run = RunLog::create(dir.path(), &ident, false, cfg.as_object().unwrap()).unwrap();
        let name = run.dir().file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("offline-run-") && name.ends_with("-abc12345"),
            "{name}"
        );
        let mut row = Row::default();
        row.set("loss", "0.5".into());
        row.stamp(0, 1.7e9, 0.1);
        run.history(&row).unwrap();
        run.exit(0, 1.0).unwrap();
        let records: Vec<Record> =
            read_records(&std::fs::read(run.dir().join("run-abc12345.wandb")).unwrap())
                .unwrap()
                .iter()
                .map(|r| Record::decode(r.as_slice()).unwrap())
                .collect();
        let run_rec = records[0].run.as_ref().unwrap();
        assert_eq!(run_rec.run_id, "abc12345");
        assert_eq!(run_rec.config.as_ref().unwrap().update[0].value_json, "0.1");
        assert!(records[1].history.is_some());
        let summary = records[2].summary.as_ref().unwrap();
        assert_eq!(summary.update[0].nested_key, ["loss"]);
        assert_eq!(records[3].exit.as_ref().unwrap().exit_code, 0);
        assert_eq!(run.summary_json().matches("\"loss\":0.5").count(), 1);
    }
}
