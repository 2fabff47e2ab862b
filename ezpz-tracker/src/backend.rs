//! The [`Backend`] trait and the records the tracker hands to backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::histogram::HistogramData;
pub use crate::record::Record;
use crate::run_settings::RunSettings;
use crate::value::Value;
use crate::{Error, RankInfo, Result};

/// Builds a backend for a run. Runs on the thread that builds the tracker, on rank 0 only;
/// it should be quick (no network: connect lazily, on the worker).
pub type Constructor = Arc<dyn Fn(&BackendContext) -> Result<Box<dyn Backend>> + Send + Sync>;

/// A table: column names and rows of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name (`predictions`).
    pub key: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; a row may be shorter or longer than `columns` (backends pad or cut).
    pub rows: Vec<Vec<Value>>,
    /// The step at which it was logged (the next step to be committed).
    pub step: u64,
}

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image file on disk (read by each backend's worker, not by the caller).
    Path(PathBuf),
    /// An image already in memory (moved into the tracker; never re-read).
    Memory(Arc<image::DynamicImage>),
}

impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.to_path_buf())
    }
}
impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}
impl From<&PathBuf> for ImageSource {
    fn from(p: &PathBuf) -> Self {
        ImageSource::Path(p.clone())
    }
}
impl From<&str> for ImageSource {
    fn from(p: &str) -> Self {
        ImageSource::Path(PathBuf::from(p))
    }
}
impl From<image::DynamicImage> for ImageSource {
    fn from(img: image::DynamicImage) -> Self {
        ImageSource::Memory(Arc::new(img))
    }
}
impl From<image::RgbImage> for ImageSource {
    fn from(img: image::RgbImage) -> Self {
        ImageSource::Memory(Arc::new(image::DynamicImage::ImageRgb8(img)))
    }
}
impl From<image::RgbaImage> for ImageSource {
    fn from(img: image::RgbaImage) -> Self {
        ImageSource::Memory(Arc::new(image::DynamicImage::ImageRgba8(img)))
    }
}
impl From<image::GrayImage> for ImageSource {
    fn from(img: image::GrayImage) -> Self {
        ImageSource::Memory(Arc::new(image::DynamicImage::ImageLuma8(img)))
    }
}

/// An image logged under a key.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// The image's name (`samples`).
    pub key: String,
    /// Where the pixels come from.
    pub source: ImageSource,
    /// Optional caption.
    pub caption: Option<String>,
    /// The step at which it was logged.
    pub step: u64,
}

/// A PNG-encoded image with its size, as backends need it.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageRecord {
    /// Encodes the image as PNG (a PNG file is passed through unchanged; other formats are
    /// decoded and re-encoded).
    ///
    /// # Errors
    /// The file is missing or not a decodable image.
    pub fn encode_png(&self) -> Result<EncodedImage> {
        match &self.source {
            ImageSource::Path(path) => {
                let bytes =
                    std::fs::read(path).map_err(|e| Error::io("cannot read image", path, e))?;
                let img = image::load_from_memory(&bytes).map_err(|e| Error::Invalid {
                    what: "image",
                    message: format!("`{}` is not a readable image: {e}", path.display()),
                })?;
                let is_png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
                let png = if is_png { bytes } else { png_bytes(&img)? };
                Ok(EncodedImage {
                    png,
                    width: img.width(),
                    height: img.height(),
                })
            }
            ImageSource::Memory(img) => Ok(EncodedImage {
                png: png_bytes(img)?,
                width: img.width(),
                height: img.height(),
            }),
        }
    }
}

fn png_bytes(img: &image::DynamicImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Invalid {
            what: "image",
            message: format!("cannot encode as PNG: {e}"),
        })?;
    Ok(out.into_inner())
}

/// A histogram logged under a key: raw values (backends bucket them their way) or bins made
/// before (on a device, say).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramRecord {
    /// The histogram's name (`weights`).
    pub key: String,
    /// The values or the bins.
    pub data: HistogramData,
    /// The step at which it was logged.
    pub step: u64,
}

/// Files and directories to store with the run, by label (`label → path`).
#[derive(Debug, Clone, PartialEq)]
pub struct Artifacts {
    /// `(label, path)` pairs; a path may be a file or a directory.
    pub items: Vec<(String, PathBuf)>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunStatus {
    /// The program finished normally.
    #[default]
    Finished,
    /// The program failed (a panic, or the user said so).
    Failed,
    /// The program was interrupted.
    Killed,
}

impl RunStatus {
    /// A process exit code for the status (0, 1, 130).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Finished => 0,
            RunStatus::Failed => 1,
            RunStatus::Killed => 130,
        }
    }
}

/// What a backend can tell about its run (for [`Tracker::get_backend`](crate::Tracker::get_backend)
/// and the end-of-run report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    /// The run's id in the backend, if it has one.
    pub id: Option<String>,
    /// Where a person can look at the run (URL or path).
    pub url: Option<String>,
    /// A local directory or file the backend writes.
    pub path: Option<PathBuf>,
    /// A command that opens or completes the run (`wandb sync …`, `tensorboard --logdir …`).
    pub command: Option<String>,
    /// Entries the server refused for good (or that it would refuse, found before sending),
    /// per key: they are not delivered, everything else is. Empty for local backends.
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// What a backend constructor receives.
#[derive(Debug, Clone)]
pub struct BackendContext {
    /// The project name (resolved: argument → env → default).
    pub project: String,
    /// The run's output directory (files go directly into it).
    pub outdir: PathBuf,
    /// This process's rank and topology.
    pub rank: RankInfo,
    /// Run name, tags, notes, group, job type, entity and experiment, for the backends that
    /// have these concepts (see [`RunSettings`]: a backend's own options and variables
    /// win over them).
    pub settings: RunSettings,
    /// Seconds since the Unix epoch when the tracker was built.
    pub start_time: f64,
    /// The configuration given at setup, if any.
    pub config: Option<serde_json::Value>,
    /// The tracker's cap on `flush` and `finish` (`EZPZ_FINISH_TIMEOUT`): a backend that
    /// waits on a network gives up a little before it, so the tracker hears why.
    pub finish_timeout: std::time::Duration,
    /// Whether this run continues the one already in `outdir`
    /// ([`TrackerBuilder::resume`](crate::TrackerBuilder::resume)): a backend that writes files
    /// appends to them instead of starting new ones.
    pub resume: bool,
    /// When resuming, the last step the earlier run wrote (the largest among the last rows
    /// of its `metrics.jsonl`, else `metrics.csv`), if any.
    pub last_step: Option<u64>,
}

/// A destination for tracked data.
///
/// Each backend runs on its own worker thread (`ezpz-<name>`): its methods are never called
/// concurrently, may block (on disk or network), and their errors are reported once per cause
/// without stopping the other backends or the caller. Only `name`, `log`, `log_config` and
/// `finish` are required; the rest default to doing nothing, so a custom backend is a few lines:
///
/// ```
/// use ezpz_tracker::{Backend, Record, RunStatus, Result};
///
/// struct Printer;
/// impl Backend for Printer {
///     fn name(&self) -> &str { "printer" }
///     fn log(&mut self, r: &Record) -> Result<()> {
///         for (key, value) in r.metrics() {
///             println!("step {}: {key} = {value}", r.step);
///         }
///         Ok(())
///     }
///     fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> { Ok(()) }
///     fn finish(&mut self, _status: RunStatus) -> Result<()> { Ok(()) }
/// }
/// ```
pub trait Backend: Send {
    /// The name used by the factory and [`Tracker::get_backend`](crate::Tracker::get_backend).
    fn name(&self) -> &str;
    /// Writes one committed record.
    ///
    /// # Errors
    /// Any failure; the worker warns once per distinct cause and goes on.
    fn log(&mut self, record: &Record) -> Result<()>;
    /// Merges configuration (a JSON object; later calls add or replace keys).
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn log_config(&mut self, config: &serde_json::Value) -> Result<()>;
    /// Writes a table.
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn log_table(&mut self, _table: &Table) -> Result<()> {
        Ok(())
    }
    /// Writes an image.
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn log_image(&mut self, _image: &ImageRecord) -> Result<()> {
        Ok(())
    }
    /// Stores files or directories with the run.
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn log_artifacts(&mut self, _artifacts: &Artifacts) -> Result<()> {
        Ok(())
    }
    /// Writes a histogram.
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn log_histogram(&mut self, _histogram: &HistogramRecord) -> Result<()> {
        Ok(())
    }
    /// Records what metric `definition.key` means (its unit, which way it improves):
    /// [`Tracker::define_metric`](crate::Tracker::define_metric). Called before or after
    /// values of the key; a later definition of the same key replaces the earlier one.
    ///
    /// # Errors
    /// Any failure; warned once per cause.
    fn define_metric(&mut self, _definition: &crate::MetricDefinition) -> Result<()> {
        Ok(())
    }
    /// Makes everything written so far durable (reach the OS, or the server). Called at
    /// least once a second while data is pending, and on [`Tracker::flush`](crate::Tracker::flush).
    ///
    /// # Errors
    /// Any failure; returned by `Tracker::flush`.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Ends the run. Called once; nothing is called after it.
    ///
    /// # Errors
    /// Any failure; returned by `Tracker::finish`.
    fn finish(&mut self, status: RunStatus) -> Result<()>;
    /// The backend's run identity, once known.
    fn run_info(&self) -> Option<RunInfo> {
        None
    }
}
