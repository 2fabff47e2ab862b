//! `CsvBackend`: `metrics.csv`, `config.json`, one CSV per table, images and artifacts.
//!
//! # How the file grows
//! Rows are appended (never the whole file rewritten per row, unlike the original). The
//! header is `step` followed by every key in order of first appearance. When a row brings a
//! key the header lacks, the file written so far is rewritten once into a temporary file with
//! the wider header and earlier rows padded with empty cells, then renamed over
//! `metrics.csv`: the file on disk is a valid CSV at every moment, and the cost is paid once
//! per new column, not per row.
//!
//! # Names and resuming
//! A table goes to `<name>.csv`, an image to `media/<name>_<step>.png`, artifacts to
//! `artifacts/<label>/`; names are made safe first (they never leave the directory, and a
//! name the tracker owns, such as `metrics`, becomes `_metrics.csv`). A new run never
//! truncates a `metrics.csv` with rows ([`CsvBackend::new`] refuses it); a resumed one
//! ([`CsvBackend::resume`]) appends below the existing header, widening it as above for keys
//! it lacks.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{
    Artifacts, Backend, BackendContext, ImageRecord, Record, RunInfo, RunStatus, Table,
};
use crate::backends::appender::{write_atomic, Appender};
use crate::backends::copy::copy_artifact;
use crate::config::merge_json;
use crate::outdir::open_metrics_file;
use crate::record::Keys;
use crate::user_paths::{file_stem, user_file};
use crate::value::Value;
use crate::{Error, Result};

/// The metrics file inside the run directory.
pub const METRICS_CSV: &str = "metrics.csv";

/// Writes metrics, config, tables, images and artifacts as plain files in the run directory.
#[derive(Debug)]
pub struct CsvBackend {
    dir: PathBuf,
    file: Appender,
    columns: Vec<Arc<str>>,
    index: HashMap<Arc<str>, usize>,
    header_written: bool,
    /// Keys of the previous row and their column slots (reused while keys repeat).
    last_keys: Option<Keys>,
    slots: Vec<usize>,
    /// Whether the previous row's keys are exactly the columns, in order.
    in_order: bool,
    cells: Vec<String>,
    config: serde_json::Value,
}

impl CsvBackend {
    /// Writes a new run into `dir` (created if missing).
    ///
    /// # Errors
    /// `dir` already has a `metrics.csv` with rows ([`Error::RunExists`]: use
    /// [`resume`](Self::resume) to append to it), or the directory or file cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let file = open_metrics_file(&dir, METRICS_CSV, false)?;
        Ok(Self::with_file(dir, file))
    }

    /// Continues the run in `dir`: rows are appended to its `metrics.csv` under the header it
    /// has (widened for new keys), and configuration is merged into its `config.json`.
    ///
    /// # Errors
    /// The directory cannot be created, or the files cannot be read or opened.
    pub fn resume(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let file = open_metrics_file(&dir, METRICS_CSV, true)?;
        let path = file.path().to_path_buf();
        let mut backend = Self::with_file(dir, file);
        let header = match File::open(&path) {
            Ok(f) => csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(f)
                .headers()
                .map_err(|e| csv_err(&path, e))?
                .clone(),
            Err(_) => csv::StringRecord::new(),
        };
        for column in header.iter().skip(1) {
            let column: Arc<str> = Arc::from(column);
            backend.index.insert(column.clone(), backend.columns.len());
            backend.columns.push(column);
        }
        backend.header_written = !header.is_empty();
        let config = backend.dir.join("config.json");
        if let Ok(text) = std::fs::read(&config) {
            backend.config = serde_json::from_slice(&text).unwrap_or_else(|e| {
                crate::warn!("ezpz: `{}` is not JSON ({e}); replaced", config.display());
                serde_json::Value::Null
            });
        }
        Ok(backend)
    }

    /// The registry constructor (files go directly into the run's outdir; appended to when
    /// the run is resumed).
    ///
    /// # Errors
    /// See [`CsvBackend::new`] and [`CsvBackend::resume`].
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        let backend = if ctx.resume {
            CsvBackend::resume(&ctx.outdir)?
        } else {
            CsvBackend::new(&ctx.outdir)?
        };
        Ok(Box::new(backend))
    }

    fn with_file(dir: PathBuf, file: Appender) -> Self {
        CsvBackend {
            file,
            dir,
            columns: Vec::new(),
            index: HashMap::new(),
            header_written: false,
            last_keys: None,
            slots: Vec::new(),
            in_order: false,
            cells: Vec::new(),
            config: serde_json::Value::Null,
        }
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    /// Rewrites the rows written so far under the wider header (see the module docs).
    fn widen(&mut self) -> Result<()> {
        self.file.flush()?;
        let path = self.path().to_path_buf();
        let tmp = path.with_extension("csv.tmp~");
        {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_path(&path)
                .map_err(|e| csv_err(&path, e))?;
            let out = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
            let mut writer = csv::Writer::from_writer(BufWriter::new(out));
            writer
                .write_record(std::iter::once("step").chain(self.columns.iter().map(|c| &**c)))
                .map_err(|e| csv_err(&tmp, e))?;
            let width = self.columns.len() + 1;
            let mut record = csv::StringRecord::new();
            while reader
                .read_record(&mut record)
                .map_err(|e| csv_err(&path, e))?
            {
                while record.len() < width {
                    record.push_field("");
                }
                writer.write_record(&record).map_err(|e| csv_err(&tmp, e))?;
            }
            writer
                .flush()
                .map_err(|e| Error::io("cannot write", &tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot replace", &path, e))?;
        self.file = Appender::open(&path)?;
        Ok(())
    }

    fn write_row(&mut self, record: &Record) -> Result<()> {
        if self.in_order {
            // Every column, in header order: write straight into the buffer.
            let mut cell = std::mem::take(&mut self.cells);
            cell.resize(1, String::new());
            let out = self.file.buffer();
            out.extend_from_slice(itoa::Buffer::new().format(record.step).as_bytes());
            for (_, v) in record.metrics() {
                out.push(b',');
                match v {
                    // Float text never needs quoting: skip the intermediate string.
                    Value::F64(x) if x.is_finite() => {
                        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes())
                    }
                    _ => {
                        cell[0].clear();
                        v.write_text(&mut cell[0]);
                        write_csv_cell(out, &cell[0]);
                    }
                }
            }
            out.push(b'\n');
            self.cells = cell;
            return self.file.row_done();
        }
        self.cells.resize(self.columns.len() + 1, String::new());
        for c in &mut self.cells {
            c.clear();
        }
        self.cells[0].push_str(&record.step.to_string());
        for (slot, (_, v)) in self.slots.iter().zip(record.metrics()) {
            v.write_text(&mut self.cells[slot + 1]);
        }
        write_csv_row(self.file.buffer(), &self.cells);
        self.file.row_done()
    }
}

/// Appends one CSV row (RFC 4180 quoting) to `out`.
/// A table as CSV bytes: the header, then one line per row (shared with the remote backends
/// that upload tables as files).
pub(crate) fn table_to_csv(table: &Table) -> Vec<u8> {
    let mut out = Vec::new();
    write_csv_row(&mut out, &table.columns);
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(Value::to_string).collect();
        write_csv_row(&mut out, &cells);
    }
    out
}

fn write_csv_row<S: AsRef<str>>(out: &mut Vec<u8>, cells: &[S]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_csv_cell(out, cell.as_ref());
    }
    out.push(b'\n');
}

/// Appends one CSV field, quoted when it contains a separator, quote or line break.
fn write_csv_cell(out: &mut Vec<u8>, cell: &str) {
    if cell
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for b in cell.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell.as_bytes());
    }
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::backend("csv", format!("`{}`: {e}", path.display()))
}

impl Backend for CsvBackend {
    fn name(&self) -> &str {
        "csv"
    }

    fn log(&mut self, record: &Record) -> Result<()> {
        // Fast path: the same keys as the previous row, in the same order (rows logged with
        // the same keys share one key list, so pointer equality settles it without hashing).
        let keys = record.keys();
        let same = self.last_keys.as_ref().is_some_and(|last| last == keys);
        if !same {
            self.slots.clear();
            let mut widened = false;
            for key in keys.iter() {
                let i = match self.index.get(key) {
                    Some(i) => *i,
                    None => {
                        self.columns.push(key.clone());
                        self.index.insert(key.clone(), self.columns.len() - 1);
                        widened = true;
                        self.columns.len() - 1
                    }
                };
                self.slots.push(i);
            }
            self.last_keys = Some(keys.clone());
            self.in_order = self.slots.len() == self.columns.len()
                && self.slots.iter().enumerate().all(|(i, s)| *s == i);
            if !self.header_written {
                let header: Vec<&str> = std::iter::once("step")
                    .chain(self.columns.iter().map(|c| &**c))
                    .collect();
                write_csv_row(self.file.buffer(), &header);
                self.header_written = true;
            } else if widened {
                self.widen()?;
            }
        }
        self.write_row(record)
    }

    fn log_config(&mut self, config: &serde_json::Value) -> Result<()> {
        merge_json(&mut self.config, config);
        let mut text = serde_json::to_vec_pretty(&self.config)
            .map_err(|e| Error::backend("csv", format!("cannot encode config: {e}")))?;
        text.push(b'\n');
        write_atomic(&self.dir.join("config.json"), &text)
    }

    fn log_table(&mut self, table: &Table) -> Result<()> {
        let path = self.dir.join(user_file("table", &table.key, "csv"));
        write_atomic(&path, &table_to_csv(table))
    }

    fn log_image(&mut self, image: &ImageRecord) -> Result<()> {
        let encoded = image.encode_png()?;
        let media = self.dir.join("media");
        std::fs::create_dir_all(&media)
            .map_err(|e| Error::io("cannot create directory", &media, e))?;
        let path = media.join(format!("{}_{}.png", file_stem(&image.key), image.step));
        std::fs::write(&path, &encoded.png).map_err(|e| Error::io("cannot write", &path, e))
    }

    fn log_artifacts(&mut self, artifacts: &Artifacts) -> Result<()> {
        let mut errors = Vec::new();
        for (label, path) in &artifacts.items {
            let dest = self.dir.join("artifacts").join(file_stem(label));
            // Something already in the run directory (the report's files) is not copied.
            if let Err(e) = copy_artifact(path, &dest, &self.dir) {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        self.file.flush()
    }

    fn run_info(&self) -> Option<RunInfo> {
        Some(RunInfo {
            path: Some(self.path().to_path_buf()),
            ..RunInfo::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, m: &[(&str, Value)]) -> Record {
        Record::new(step, 0.0, 0, m)
    }

    fn read(path: &Path) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(path)
            .unwrap()
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn new_columns_pad_earlier_rows_and_file_stays_valid() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        b.log(&record(0, &[("loss", 0.5.into())])).unwrap();
        b.flush().unwrap();
        b.log(&record(1, &[("loss", 0.25.into()), ("lr", 1e-4.into())]))
            .unwrap();
        b.log(&record(2, &[("lr", 2e-4.into())])).unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let rows = read(&dir.path().join("metrics.csv"));
        assert_eq!(rows[0], ["step", "loss", "lr"]);
        assert_eq!(rows[1], ["0", "0.5", ""]);
        assert_eq!(rows[2], ["1", "0.25", "0.0001"]);
        assert_eq!(rows[3], ["2", "", "0.0002"]);
    }

    #[test]
    fn awkward_keys_and_values_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        let r = record(
            0,
            &[
                ("a,b", Value::from("x\"y")),
                ("nan", f64::NAN.into()),
                ("inf", f64::NEG_INFINITY.into()),
            ],
        );
        b.log(&r).unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let rows = read(&dir.path().join("metrics.csv"));
        assert_eq!(rows[0], ["step", "a,b", "nan", "inf"]);
        assert_eq!(rows[1], ["0", "x\"y", "nan", "-inf"]);
    }

    #[test]
    fn config_merges_across_calls() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        b.log_config(&serde_json::json!({"lr": 1e-4})).unwrap();
        b.log_config(&serde_json::json!({"batch_size": 32}))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, serde_json::json!({"lr": 1e-4, "batch_size": 32}));
    }

    fn table(key: &str) -> Table {
        Table {
            key: key.into(),
            columns: vec!["a".into()],
            rows: vec![vec![Value::I64(1)]],
            step: 0,
        }
    }

    /// Every file under `dir`, relative to it.
    fn tree(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(
                    tree(&path)
                        .into_iter()
                        .map(|p| Path::new(path.file_name().unwrap()).join(p)),
                );
            } else {
                out.push(PathBuf::from(path.file_name().unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_table_named_metrics_leaves_the_live_metrics_csv_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        b.log(&record(0, &[("loss", 0.5.into())])).unwrap();
        b.log_table(&table("metrics")).unwrap();
        b.log_table(&table("config")).unwrap();
        b.log_config(&serde_json::json!({"lr": 1})).unwrap();
        b.log(&record(1, &[("loss", 0.25.into())])).unwrap();
        b.log(&record(2, &[("loss", 0.125.into()), ("lr", 1.0.into())]))
            .unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let rows = read(&dir.path().join("metrics.csv"));
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(rows[0], ["step", "loss", "lr"]);
        assert_eq!(rows[3], ["2", "0.125", "1.0"]);
        assert_eq!(read(&dir.path().join("_metrics.csv")), [["a"], ["1"]]);
        assert_eq!(read(&dir.path().join("_config.csv")), [["a"], ["1"]]);
        let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(config.contains("\"lr\""), "{config}");
    }

    #[test]
    fn names_never_leave_the_run_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let mut b = CsvBackend::new(&dir).unwrap();
        let src = root.path().join("weights.bin");
        std::fs::write(&src, b"w").unwrap();
        let names = ["..", "../escape", "/abs/x", "nul\0byte", "", "a/../../b"];
        for name in names {
            b.log_table(&table(name)).unwrap();
            let image = ImageRecord {
                key: name.into(),
                source: image::RgbImage::new(1, 1).into(),
                caption: None,
                step: 3,
            };
            b.log_image(&image).unwrap();
            b.log_artifacts(&Artifacts {
                items: vec![(name.into(), src.clone())],
            })
            .unwrap();
        }
        b.finish(RunStatus::Finished).unwrap();
        let mut outside: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        outside.sort();
        assert_eq!(outside, ["run", "weights.bin"]);
        let files = tree(&dir);
        let tables = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "csv"));
        // One table per name (the empty name's file is `_.csv`), plus metrics.csv.
        assert_eq!(tables.count(), names.len() + 1, "{files:?}");
        let weights = files.iter().filter(|f| f.ends_with("weights.bin")).count();
        assert_eq!(weights, names.len(), "{files:?}");
        assert!(files.iter().all(|f| !f.to_string_lossy().contains('\0')));
    }

    #[test]
    fn a_new_run_refuses_rows_a_resumed_one_appends_under_one_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        b.log_config(&serde_json::json!({"lr": 1})).unwrap();
        b.log(&record(0, &[("loss", 0.5.into())])).unwrap();
        b.log(&record(1, &[("loss", 0.25.into())])).unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let err = CsvBackend::new(dir.path()).unwrap_err();
        assert!(matches!(err, Error::RunExists { .. }), "{err}");
        assert_eq!(read(&dir.path().join("metrics.csv")).len(), 3);

        let mut b = CsvBackend::resume(dir.path()).unwrap();
        b.log_config(&serde_json::json!({"batch": 8})).unwrap();
        b.log(&record(2, &[("loss", 0.125.into())])).unwrap();
        b.log(&record(3, &[("loss", 0.0625.into()), ("acc", 0.9.into())]))
            .unwrap();
        b.finish(RunStatus::Finished).unwrap();
        let rows = read(&dir.path().join("metrics.csv"));
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert_eq!(rows[0], ["step", "loss", "acc"]);
        assert_eq!(rows[1], ["0", "0.5", ""]);
        assert_eq!(rows[3], ["2", "0.125", ""]);
        assert_eq!(rows[4], ["3", "0.0625", "0.9"]);
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config, serde_json::json!({"lr": 1, "batch": 8}));
    }

    #[test]
    fn missing_artifact_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CsvBackend::new(dir.path()).unwrap();
        let err = b
            .log_artifacts(&Artifacts {
                items: vec![("model".into(), PathBuf::from("/nonexistent/model.bin"))],
            })
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model.bin"), "{err}");
    }
}
