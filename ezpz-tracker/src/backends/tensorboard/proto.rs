//! The protobuf messages of an event file, derived by hand for `prost` (no `protoc`).
//!
//! Field numbers follow TensorBoard's `event.proto`, `summary.proto`, `tensor.proto` and
//! `tensor_shape.proto`; only the fields we write are declared (a reader skips nothing it
//! needs: absent proto3 fields read as their defaults).

use prost::{Enumeration, Message};

/// What every event file starts with; readers use it to pick the format version.
pub const FILE_VERSION: &str = "brain.Event:2";

/// One entry of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The payload.
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
    /// Who wrote the file (set on the first event).
    #[prost(message, optional, tag = "10")]
    pub source_metadata: Option<SourceMetadata>,
}

/// [`Event`]'s payload.
pub mod event {
    /// The payload of an [`Event`](super::Event).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// The format version (first event only).
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// Summaries: scalars, images, histograms, text.
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// The program that wrote an event file.
#[derive(Clone, PartialEq, Message)]
pub struct SourceMetadata {
    /// Its name.
    #[prost(string, tag = "1")]
    pub writer: String,
}

/// A set of tagged values at one step.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// One tagged value (`Summary.Value` in the proto).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag, as shown by TensorBoard.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin shows it, and a description.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value itself.
    #[prost(oneof = "summary_value::Kind", tags = "2, 4, 5, 8")]
    pub kind: Option<summary_value::Kind>,
}

/// [`SummaryValue`]'s kinds.
pub mod summary_value {
    /// The kinds of value a [`SummaryValue`](super::SummaryValue) holds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// A scalar (TensorBoard stores scalars as 32-bit floats).
        #[prost(float, tag = "2")]
        SimpleValue(f32),
        /// An encoded image.
        #[prost(message, tag = "4")]
        Image(super::Image),
        /// A histogram.
        #[prost(message, tag = "5")]
        Histo(super::HistogramProto),
        /// A tensor (text is a string tensor).
        #[prost(message, tag = "8")]
        Tensor(super::TensorProto),
    }
}

/// Which plugin shows a value, and how.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// The plugin (`text`, ...).
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// A display name (the tag when empty).
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// A longer description (markdown).
    #[prost(string, tag = "3")]
    pub summary_description: String,
    /// What kind of data the tensor holds.
    #[prost(enumeration = "DataClass", tag = "4")]
    pub data_class: i32,
}

/// A plugin name and its private data.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// `scalars`, `images`, `histograms`, `text`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's own serialized metadata (empty for text).
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `SummaryMetadata.data_class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Enumeration)]
#[repr(i32)]
pub enum DataClass {
    /// Not set.
    Unknown = 0,
    /// A rank-0 numeric tensor.
    Scalar = 1,
    /// Any tensor.
    Tensor = 2,
    /// A sequence of blobs (images).
    BlobSequence = 3,
}

/// An encoded image (`Summary.Image`).
#[derive(Clone, PartialEq, Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// Channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// The PNG bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// A histogram: summary statistics and bucket counts.
#[derive(Clone, PartialEq, Message)]
pub struct HistogramProto {
    /// Smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of their squares.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edge of each bucket (a bucket holds values in `[previous edge, edge)`).
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Count of each bucket.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// A tensor; we only write string tensors (text).
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// The element type.
    #[prost(enumeration = "DataType", tag = "1")]
    pub dtype: i32,
    /// The shape (empty: a scalar).
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// String elements.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// A tensor's shape.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    /// The dimensions (none: a scalar).
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// One dimension of a [`TensorShapeProto`].
#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    /// Its size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `TensorProto.dtype` (the values we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    DtInvalid = 0,
    /// 32-bit float.
    DtFloat = 1,
    /// Byte strings.
    DtString = 7,
}

impl Event {
    /// The first event of every file: the format version and who wrote it.
    pub fn file_version(wall_time: f64) -> Self {
        Event {
            wall_time,
            step: 0,
            what: Some(event::What::FileVersion(FILE_VERSION.into())),
            source_metadata: Some(SourceMetadata {
                writer: "ezpz-tracker".into(),
            }),
        }
    }

    /// An event carrying `values` at `step`.
    pub fn summary(wall_time: f64, step: i64, values: Vec<SummaryValue>) -> Self {
        Event {
            wall_time,
            step,
            what: Some(event::What::Summary(Summary { value: values })),
            source_metadata: None,
        }
    }
}

impl SummaryValue {
    /// A scalar, in the form every TensorBoard reader lists under scalars.
    pub fn scalar(tag: impl Into<String>, value: f32) -> Self {
        SummaryValue {
            tag: tag.into(),
            metadata: None,
            kind: Some(summary_value::Kind::SimpleValue(value)),
        }
    }

    /// Markdown text, shown by the text plugin.
    pub fn text(tag: impl Into<String>, markdown: &str) -> Self {
        SummaryValue {
            tag: tag.into(),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "text".into(),
                    content: Vec::new(),
                }),
                data_class: DataClass::Tensor as i32,
                ..SummaryMetadata::default()
            }),
            kind: Some(summary_value::Kind::Tensor(TensorProto {
                dtype: DataType::DtString as i32,
                tensor_shape: Some(TensorShapeProto::default()),
                string_val: vec![markdown.as_bytes().to_vec()],
            })),
        }
    }

    /// An image; `description` (markdown) is shown under it.
    pub fn image(tag: impl Into<String>, image: Image, description: Option<&str>) -> Self {
        SummaryValue {
            tag: tag.into(),
            metadata: description.map(|d| SummaryMetadata {
                summary_description: d.into(),
                ..SummaryMetadata::default()
            }),
            kind: Some(summary_value::Kind::Image(image)),
        }
    }

    /// A histogram.
    pub fn histogram(tag: impl Into<String>, histogram: HistogramProto) -> Self {
        SummaryValue {
            tag: tag.into(),
            metadata: None,
            kind: Some(summary_value::Kind::Histo(histogram)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_encodes_the_file_version_as_field_3() {
        let bytes = Event::file_version(0.0).encode_to_vec();
        // field 3, wire type 2 (length-delimited) = 0x1a, then the length and the text.
        let mut expected = vec![0x1a, FILE_VERSION.len() as u8];
        expected.extend_from_slice(FILE_VERSION.as_bytes());
        assert!(bytes.starts_with(&expected), "{bytes:02x?}");
        assert_eq!(Event::decode(&bytes[..]).unwrap(), Event::file_version(0.0));
    }

    #[test]
    fn a_scalar_event_has_the_documented_wire_layout() {
        let event = Event::summary(1.5, 3, vec![SummaryValue::scalar("a", 0.5)]);
        let mut expected = vec![0x09]; // field 1, 64-bit: wall_time
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 3]); // field 2, varint: step
                                                // field 5 (summary) { field 1 (value) { field 1 "a", field 2 float } }
        expected.extend_from_slice(&[0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15]);
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(event.encode_to_vec(), expected);
    }
}
