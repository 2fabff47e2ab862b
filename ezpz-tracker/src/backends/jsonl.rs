//! `JsonlBackend`: `metrics.jsonl`, one JSON object per committed record.
//!
//! Each line is `{"timestamp": <unix seconds>, "step": <n>, "rank": <r>, "metrics": {...}}`
//! with metrics in logged order. JSON has no NaN or infinity: those values are written as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"` (what `float()` and the report read back).

use std::path::PathBuf;

use crate::backend::{Backend, BackendContext, Record, RunInfo, RunStatus};
use crate::backends::appender::Appender;
use crate::value::Value;
use crate::{Error, Result};

/// The file name inside the run directory.
pub const METRICS_JSONL: &str = "metrics.jsonl";

/// Appends every committed record to `metrics.jsonl` (what the end-of-run report reads).
#[derive(Debug)]
pub struct JsonlBackend {
    file: Appender,
}

impl JsonlBackend {
    /// Writes `<dir>/metrics.jsonl` (truncated: a run owns its file).
    ///
    /// # Errors
    /// The directory or file cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create directory", &dir, e))?;
        let path = dir.join(METRICS_JSONL);
        std::fs::File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        Ok(JsonlBackend {
            file: Appender::open(&path)?,
        })
    }

    /// The registry constructor.
    ///
    /// # Errors
    /// See [`JsonlBackend::new`].
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        Ok(Box::new(JsonlBackend::new(&ctx.outdir)?))
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
    for (i, (k, v)) in record.metrics.iter().enumerate() {
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
    use std::sync::Arc;

    #[test]
    fn lines_parse_as_json_with_non_finite_as_strings() {
        let r = Record {
            step: 3,
            timestamp: 1.5,
            rank: 0,
            metrics: vec![
                (Arc::from("loss"), Value::F64(0.25)),
                (Arc::from("bad"), Value::F64(f64::NAN)),
                (Arc::from("name\"q"), Value::from("x")),
                (Arc::from("n"), Value::I64(7)),
            ],
        };
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
