//! `TensorBoardBackend`: event files that TensorBoard reads, in `<outdir>/tensorboard/`.
//!
//! One file per run, `events.out.tfevents.<10-digit unix time>.<host>.<pid>.<n>`, starting
//! with the `brain.Event:2` version event. Then:
//!
//! - each committed record → one event at its step holding every numeric metric as a scalar
//!   (32-bit, TensorBoard's precision; NaN and ±inf as they are). Strings are skipped and
//!   keys TensorBoard's writers would reject are renamed, with one warning each;
//! - configuration → text under the tag `config`: a markdown table of the flattened, merged
//!   configuration (re-written when more is logged);
//! - a table → text (markdown table); an image → an image summary (PNG); a histogram of raw
//!   values → a histogram with TensorBoard's default exponential buckets (non-finite values
//!   left out); a binned histogram → a histogram with exactly its bins.
//!
//! Events are framed as TFRecords and reach the file only as whole records, at every flush
//! (the worker flushes at least once a second) and at finish: TensorBoard tails the file
//! while training runs and never sees half an event.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{
    Backend, BackendContext, HistogramRecord, ImageRecord, Record, RunInfo, RunStatus, Table,
};
use crate::backends::appender::Appender;
use crate::config::merge_json;
use crate::histogram::HistogramData;
use crate::value::Value;
use crate::{Error, Result};

pub mod framing;
pub mod histogram;
mod markdown;
pub mod proto;
mod tags;

use proto::{Event, Image, SummaryValue};
use tags::Tags;

/// The directory inside the run's outdir.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// The tag of the configuration text.
pub const CONFIG_TAG: &str = "config";

/// Writes TensorBoard event files (see the module docs).
#[derive(Debug)]
pub struct TensorBoardBackend {
    logdir: PathBuf,
    file: Appender,
    tags: Tags,
    config: serde_json::Value,
    /// The step of the latest record, where the configuration text is placed.
    last_step: u64,
    /// The scalar values of the previous event, reused so steady logging allocates nothing.
    scratch: Vec<SummaryValue>,
    /// Built once: the worker asks for it after every call.
    run_info: RunInfo,
}

/// Distinguishes files created by one process in the same second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TensorBoardBackend {
    /// Starts a new event file in `logdir` (created if missing).
    ///
    /// # Errors
    /// The directory or the file cannot be created or written.
    pub fn new(logdir: impl Into<PathBuf>) -> Result<Self> {
        let logdir = logdir.into();
        std::fs::create_dir_all(&logdir)
            .map_err(|e| Error::io("cannot create directory", &logdir, e))?;
        let now = unix_now();
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}.{}",
            now as u64,
            crate::env::hostname(),
            std::process::id(),
            FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut file = Appender::open(&logdir.join(name))?;
        framing::write_message(file.buffer(), &Event::file_version(now))?;
        // The version event goes out at once, so the file is recognisable from the start.
        file.flush()?;
        let run_info = RunInfo {
            path: Some(logdir.clone()),
            command: Some(format!(
                "tensorboard --logdir {}",
                shell_quote(&logdir.to_string_lossy())
            )),
            ..RunInfo::default()
        };
        Ok(TensorBoardBackend {
            run_info,
            logdir,
            file,
            tags: Tags::default(),
            config: serde_json::Value::Null,
            last_step: 0,
            scratch: Vec::new(),
        })
    }

    /// The registry constructor: writes into `<outdir>/tensorboard/`.
    ///
    /// # Errors
    /// See [`TensorBoardBackend::new`].
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        Ok(Box::new(TensorBoardBackend::new(
            ctx.outdir.join(TENSORBOARD_DIR),
        )?))
    }

    /// The directory TensorBoard should be pointed at.
    pub fn logdir(&self) -> &Path {
        &self.logdir
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn warn_new_keys(&mut self) {
        if !self.tags.has_warnings() {
            return;
        }
        for warning in self.tags.take_warnings() {
            crate::warn!("{warning}");
        }
    }

    /// Appends one event holding `value` at `step` as a whole record.
    fn write_one(&mut self, step: u64, value: SummaryValue) -> Result<()> {
        let event = Event::summary(unix_now(), step_i64(step), vec![value]);
        framing::write_message(self.file.buffer(), &event)?;
        self.file.row_done()
    }

    fn write_config(&mut self) -> Result<()> {
        let text = markdown::config_table(&self.config);
        self.write_one(self.last_step, SummaryValue::text(CONFIG_TAG, &text))
    }
}

impl Backend for TensorBoardBackend {
    fn name(&self) -> &str {
        "tensorboard"
    }

    fn log(&mut self, record: &Record) -> Result<()> {
        self.last_step = record.step;
        let mut values = std::mem::take(&mut self.scratch);
        let mut n = 0;
        for (key, value) in record.metrics() {
            let Some(v) = scalar(&value) else {
                self.tags.skipped(key);
                continue;
            };
            let tag = self.tags.tag(key);
            match values.get_mut(n) {
                // Reuse the previous event's entry and its string buffer.
                Some(slot) => {
                    slot.tag.clear();
                    slot.tag.push_str(tag);
                    slot.kind = Some(proto::summary_value::Kind::SimpleValue(v));
                }
                None => values.push(SummaryValue::scalar(tag, v)),
            }
            n += 1;
        }
        values.truncate(n);
        self.warn_new_keys();
        if n == 0 {
            self.scratch = values;
            return Ok(());
        }
        let event = Event::summary(record.timestamp, step_i64(record.step), values);
        let written = framing::write_message(self.file.buffer(), &event);
        if let Some(proto::event::What::Summary(s)) = event.what {
            self.scratch = s.value;
        }
        written?;
        self.file.row_done()
    }

    fn log_config(&mut self, config: &serde_json::Value) -> Result<()> {
        merge_json(&mut self.config, config);
        self.write_config()
    }

    fn log_table(&mut self, table: &Table) -> Result<()> {
        let tag = self.tags.tag(&table.key).to_string();
        self.warn_new_keys();
        let text = markdown::logged_table(table);
        self.write_one(table.step, SummaryValue::text(tag, &text))
    }

    fn log_image(&mut self, image: &ImageRecord) -> Result<()> {
        let tag = self.tags.tag(&image.key).to_string();
        self.warn_new_keys();
        let encoded = image.encode_png()?;
        let (Ok(width), Ok(height)) = (i32::try_from(encoded.width), i32::try_from(encoded.height))
        else {
            return Err(Error::Invalid {
                what: "image",
                message: format!("`{}` is too large for TensorBoard", image.key),
            });
        };
        let summary = Image {
            height,
            width,
            colorspace: png_channels(&encoded.png),
            encoded_image_string: encoded.png,
        };
        let value = SummaryValue::image(tag, summary, image.caption.as_deref());
        self.write_one(image.step, value)
    }

    fn log_histogram(&mut self, h: &HistogramRecord) -> Result<()> {
        let tag = self.tags.tag(&h.key).to_string();
        self.warn_new_keys();
        let histo = match &h.data {
            HistogramData::Values(values) => histogram::histogram(values),
            HistogramData::Bins(bins) => histogram::from_bins(bins),
        };
        let histo = histo.map_err(|problem| Error::Invalid {
            what: "histogram",
            message: format!("`{}` {problem}; not written", h.key),
        })?;
        self.write_one(h.step, SummaryValue::histogram(tag, histo))
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        self.file.flush()
    }

    fn run_info(&self) -> Option<RunInfo> {
        Some(self.run_info.clone())
    }
}

/// A metric as a TensorBoard scalar; `None` for text.
fn scalar(value: &Value) -> Option<f32> {
    value.as_f64().map(|v| v as f32)
}

/// Steps beyond `i64::MAX` (never seen in practice) are clamped rather than wrapped.
fn step_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `colorspace` of a PNG (channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA), read from
/// its header; palette images count as RGB.
fn png_channels(png: &[u8]) -> i32 {
    // Signature (8) + IHDR length and type (8) + width, height, bit depth (9) → color type.
    match png.get(25) {
        Some(0) => 1,
        Some(4) => 2,
        Some(6) => 4,
        _ => 3,
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':'));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests;
