//! The `.wandb` record messages, derived by hand from `wandb_internal.proto` (wandb 0.31.0).
//!
//! Only the fields this crate writes are declared; field numbers match the real schema, so the
//! real reader decodes them and ignores nothing it needs. `HistoryItem`, `ConfigItem` and
//! `SummaryItem` share one wire shape ([`Item`]), as do `ConfigRecord` and `SummaryRecord`
//! ([`Updates`]). The `Record` oneof is written as optional fields: the encoding is the same.

/// `wandb_internal.Record`: one entry of the transaction log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// A history row.
    #[prost(message, optional, tag = "2")]
    pub history: Option<HistoryRecord>,
    /// Summary updates (last value per key).
    #[prost(message, optional, tag = "3")]
    pub summary: Option<Updates>,
    /// Configuration updates.
    #[prost(message, optional, tag = "5")]
    pub config: Option<Updates>,
    /// Files to upload from the run's `files/` directory.
    #[prost(message, optional, tag = "6")]
    pub files: Option<FilesRecord>,
    /// A metric definition (`define_metric`).
    #[prost(message, optional, tag = "12")]
    pub metric: Option<MetricRecord>,
    /// The run's identity; the first record of every log.
    #[prost(message, optional, tag = "17")]
    pub run: Option<RunRecord>,
    /// How the run ended.
    #[prost(message, optional, tag = "18")]
    pub exit: Option<RunExitRecord>,
}

/// `wandb_internal.RunRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunRecord {
    /// The 8-character run id.
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// Team or user; empty means the API key's default entity.
    #[prost(string, tag = "2")]
    pub entity: String,
    /// Project name.
    #[prost(string, tag = "3")]
    pub project: String,
    /// The configuration at start.
    #[prost(message, optional, tag = "4")]
    pub config: Option<Updates>,
    /// Run group.
    #[prost(string, tag = "6")]
    pub run_group: String,
    /// Job type.
    #[prost(string, tag = "7")]
    pub job_type: String,
    /// Display name.
    #[prost(string, tag = "8")]
    pub display_name: String,
    /// Notes.
    #[prost(string, tag = "9")]
    pub notes: String,
    /// Tags.
    #[prost(string, repeated, tag = "10")]
    pub tags: Vec<String>,
    /// Host name.
    #[prost(string, tag = "13")]
    pub host: String,
    /// First history step (a resumed run).
    #[prost(int64, tag = "14")]
    pub starting_step: i64,
    /// When the run started.
    #[prost(message, optional, tag = "17")]
    pub start_time: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From seconds since the Unix epoch.
    pub fn from_secs(t: f64) -> Self {
        let seconds = t.floor();
        Timestamp {
            seconds: seconds as i64,
            nanos: (((t - seconds) * 1e9) as i32).clamp(0, 999_999_999),
        }
    }
}

/// `HistoryItem` / `ConfigItem` / `SummaryItem`: a key path and a JSON value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Item {
    /// The key path (one element for a flat key, as wandb 0.31.0 writes it).
    #[prost(string, repeated, tag = "2")]
    pub nested_key: Vec<String>,
    /// The value as JSON text.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

impl Item {
    /// A flat key with a JSON value.
    pub fn new(key: impl Into<String>, value_json: impl Into<String>) -> Self {
        Item {
            nested_key: vec![key.into()],
            value_json: value_json.into(),
        }
    }
}

/// `wandb_internal.HistoryRecord`: one row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRecord {
    /// The row's values, `_step`, `_runtime` and `_timestamp` included.
    #[prost(message, repeated, tag = "1")]
    pub item: Vec<Item>,
    /// The row's step.
    #[prost(message, optional, tag = "2")]
    pub step: Option<HistoryStep>,
}

/// `wandb_internal.HistoryStep`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryStep {
    /// The step number.
    #[prost(int64, tag = "1")]
    pub num: i64,
}

/// `ConfigRecord` / `SummaryRecord`: keys set (merged into what is there).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Updates {
    /// Keys and values set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// `wandb_internal.FilesRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilesRecord {
    /// The files, relative to the run's `files/` directory.
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<FilesItem>,
}

/// `wandb_internal.FilesItem` (policy `NOW` and type `OTHER` are the zero defaults).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilesItem {
    /// Path relative to the run's `files/` directory, with `/` separators.
    #[prost(string, tag = "1")]
    pub path: String,
}

/// `wandb_internal.RunExitRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunExitRecord {
    /// Process exit code (0: finished, else failed).
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    /// Seconds the run took.
    #[prost(int32, tag = "2")]
    pub runtime: i32,
}

/// `wandb_internal.MetricRecord`: `define_metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricRecord {
    /// The metric's key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `options.defined`: an explicit definition.
    #[prost(message, optional, tag = "6")]
    pub options: Option<MetricOptions>,
    /// The summary's aggregates.
    #[prost(message, optional, tag = "7")]
    pub summary: Option<MetricSummary>,
    /// `MetricGoal`: 0 unset, 1 minimize, 2 maximize.
    #[prost(int32, tag = "8")]
    pub goal: i32,
}

/// `wandb_internal.MetricOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricOptions {
    /// Defined explicitly (not only as another metric's step metric).
    #[prost(bool, tag = "3")]
    pub defined: bool,
}

/// `wandb_internal.MetricSummary`: which aggregates the summary keeps.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricSummary {
    /// The minimum.
    #[prost(bool, tag = "1")]
    pub min: bool,
    /// The maximum.
    #[prost(bool, tag = "2")]
    pub max: bool,
    /// The last value.
    #[prost(bool, tag = "5")]
    pub last: bool,
}
