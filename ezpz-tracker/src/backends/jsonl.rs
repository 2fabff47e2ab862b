//! `JsonlBackend`: `metrics.jsonl`, one JSON object per committed record.
//!
//! Each line is `{"timestamp": <unix seconds>, "step": <n>, "rank": <r>, "metrics": {...}}`
//! with metrics in logged order. JSON has no NaN or infinity: those values are written as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"` (what `float()` and the report read back).

use std::path::Path;

use crate::backend::{Backend, BackendContext, Record, RunInfo, RunStatus};
use crate::backends::appender::Appender;
use crate::outdir::open_metrics_file;
use crate::value::Value;
use crate::Result;

/// The file name inside the run directory.
pub const METRICS_JSONL: &str = "metrics.jsonl";

/// Appends every committed record to `metrics.jsonl` (what the end-of-run report reads).
#[derive(Debug)]
pub struct JsonlBackend {
    file: Appender,
}

impl JsonlBackend {
    /// Writes a new run's `<dir>/metrics.jsonl`.
    ///
    /// # Errors
    /// The file already holds rows ([`Error::RunExists`](crate::Error::RunExists): use
    /// [`resume`](Self::resume) to append to it), or the directory or file cannot be created.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let file = open_metrics_file(dir.as_ref(), METRICS_JSONL, false)?;
        Ok(JsonlBackend { file })
    }

    /// Continues the run in `dir`: lines are appended to its `metrics.jsonl`.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened.
    pub fn resume(dir: impl AsRef<Path>) -> Result<Self> {
        let file = open_metrics_file(dir.as_ref(), METRICS_JSONL, true)?;
        Ok(JsonlBackend { file })
    }

    /// The registry constructor (appends when the run is resumed).
    ///
    /// # Errors
    /// See [`JsonlBackend::new`] and [`JsonlBackend::resume`].
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        let backend = if ctx.resume {
            JsonlBackend::resume(&ctx.outdir)?
        } else {
            JsonlBackend::new(&ctx.outdir)?
        };
        Ok(Box::new(backend))
    }
}

/// Appends `record` as one JSON line to `out`.
pub fn write_record_line(out: &mut Vec<u8>, record: &Record) {
    use std::io::Write;
    let mut num = String::new();
    let _ = write!(out, "{{\"timestamp\":");
    Value::F64(record.timestamp).write_json(&mut num);
    out.extend_from_slice(num.as_bytes());
    let _ = write!(
        out,
        ",\"step\":{},\"rank\":{},\"metrics\":{{",
        record.step, record.rank
    );
    for (i, (k, v)) in record.metrics().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, &**k);
        out.push(b':');
        num.clear();
        v.write_json(&mut num);
        out.extend_from_slice(num.as_bytes());
    }
    out.extend_from_slice(b"}}\n");
}

impl Backend for JsonlBackend {
    fn name(&self) -> &str {
        "jsonl"
    }
    fn log(&mut self, record: &Record) -> Result<()> {
        write_record_line(self.file.buffer(), record);
        self.file.row_done()
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        self.file.flush()
    }
    fn run_info(&self) -> Option<RunInfo> {
        Some(RunInfo {
            path: Some(self.file.path().to_path_buf()),
            ..RunInfo::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn record(step: u64) -> Record {
        Record::new(step, 0.0, 0, [("loss", 0.5)])
    }

    #[test]
    fn a_new_run_refuses_rows_a_resumed_one_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_JSONL);
        let mut b = JsonlBackend::new(dir.path()).unwrap();
        b.log(&record(0)).unwrap();
        b.finish(RunStatus::Finished).unwrap();
        // A crash left half a line behind.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"times"))
            .unwrap();
        assert!(matches!(
            JsonlBackend::new(dir.path()),
            Err(Error::RunExists { .. })
        ));
        let mut b = JsonlBackend::resume(dir.path()).unwrap();
        b.log(&record(1)).unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let steps: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [0, 1], "{text}");
    }

    #[test]
    fn lines_parse_as_json_with_non_finite_as_strings() {
        let r = Record::new(
            3,
            1.5,
            0,
            [
                ("loss", Value::F64(0.25)),
                ("bad", Value::F64(f64::NAN)),
                ("name\"q", Value::from("x")),
                ("n", Value::I64(7)),
            ],
        );
        let mut out = Vec::new();
        write_record_line(&mut out, &r);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"timestamp": 1.5, "step": 3, "rank": 0,
                "metrics": {"loss": 0.25, "bad": "NaN", "name\"q": "x", "n": 7}})
        );
    }
}
