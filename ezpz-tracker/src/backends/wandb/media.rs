//! W&B's media formats: `table-file`, `image-file` and `histogram` objects in history rows,
//! with their files under the run's `files/media/`, laid out as the real client does, so the
//! W&B UI renders them after `wandb sync` or online upload.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::backend::{Artifacts, EncodedImage, Table};
use crate::backends::appender::{copy_into, file_stem};
use crate::histogram::HistogramBins;
use crate::value::Value;
use crate::{Error, Result};

use super::history::{json_string, value_json};

/// A media value for a history row, and the files it needs uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// The history key.
    pub key: String,
    /// The value object as JSON text.
    pub json: String,
    /// Files to upload, relative to the run's `files/` directory (`/`-separated).
    pub files: Vec<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `bytes` as `files/<sub>/<key>_<step>_<sha prefix><ext>`; returns the relative path
/// and the full hash.
fn write_media(
    files_dir: &Path,
    sub: &str,
    key: &str,
    step: u64,
    ext: &str,
    bytes: &[u8],
) -> Result<(String, String)> {
    let sha = sha256_hex(bytes);
    let rel = format!("{sub}/{}_{step}_{}{ext}", file_stem(key), &sha[..20]);
    let path = files_dir.join(&rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create directory", parent, e))?;
    }
    std::fs::write(&path, bytes).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok((rel, sha))
}

/// A table as `media/table/*.table.json` (`{"columns": [...], "data": [[...]]}`) and its
/// `table-file` object. Rows are padded with `null` or cut to the number of columns.
///
/// # Errors
/// The file cannot be written.
pub fn table(files_dir: &Path, table: &Table) -> Result<Media> {
    let ncols = table.columns.len();
    let mut text = String::from("{\"columns\":[");
    push_joined(&mut text, table.columns.iter().map(|c| json_string(c)));
    text.push_str("],\"data\":[");
    let rows = table.rows.iter().map(|row| {
        let cells = (0..ncols).map(|i| row.get(i).map_or_else(|| "null".into(), value_json));
        let mut r = String::from("[");
        push_joined(&mut r, cells);
        r.push(']');
        r
    });
    push_joined(&mut text, rows);
    text.push_str("]}");
    let (path, sha) = write_media(
        files_dir,
        "media/table",
        &table.key,
        table.step,
        ".table.json",
        text.as_bytes(),
    )?;
    let json = format!(
        "{{\"_type\":\"table-file\",\"path\":{},\"sha256\":\"{sha}\",\"size\":{},\"ncols\":{ncols},\"nrows\":{}}}",
        json_string(&path),
        text.len(),
        table.rows.len()
    );
    Ok(Media {
        key: table.key.clone(),
        json,
        files: vec![path],
    })
}

/// An image as `media/images/*.png` and its `image-file` object.
///
/// # Errors
/// The file cannot be written.
pub fn image(
    files_dir: &Path,
    key: &str,
    step: u64,
    image: &EncodedImage,
    caption: Option<&str>,
) -> Result<Media> {
    let (path, sha) = write_media(files_dir, "media/images", key, step, ".png", &image.png)?;
    let mut json = format!(
        "{{\"_type\":\"image-file\",\"path\":{},\"sha256\":\"{sha}\",\"size\":{},\"format\":\"png\",\"width\":{},\"height\":{}",
        json_string(&path),
        image.png.len(),
        image.width,
        image.height
    );
    if let Some(c) = caption {
        json.push_str(",\"caption\":");
        json.push_str(&json_string(c));
    }
    json.push('}');
    Ok(Media {
        key: key.to_string(),
        json,
        files: vec![path],
    })
}

/// A `histogram` object: `{"_type": "histogram", "values": counts, "bins": edges}` (the
/// client's 64 equal bins for raw values, [`HistogramBins::from_values`]).
///
/// # Errors
/// What is wrong when the bins cannot be drawn (no finite value).
pub fn histogram(key: &str, bins: &HistogramBins) -> Result<Media, &'static str> {
    if let Some(problem) = bins.problem() {
        return Err(problem);
    }
    let mut json = String::from("{\"_type\":\"histogram\",\"values\":[");
    push_joined(&mut json, bins.counts.iter().map(u64::to_string));
    json.push_str("],\"bins\":[");
    push_joined(
        &mut json,
        bins.edges().into_iter().map(|e| value_json(&Value::F64(e))),
    );
    json.push_str("]}");
    Ok(Media {
        key: key.to_string(),
        json,
        files: Vec::new(),
    })
}

/// Copies artifacts into `files/artifacts/<label>/` and lists every file copied (relative to
/// `files/`), so they are uploaded with the run.
///
/// # Errors
/// Each artifact that could not be copied (the others are still copied and listed).
pub fn artifacts(files_dir: &Path, artifacts: &Artifacts) -> (Vec<String>, Result<()>) {
    let mut listed = Vec::new();
    let mut errors = Vec::new();
    for (label, src) in &artifacts.items {
        let dest = files_dir.join("artifacts").join(file_stem(label));
        match copy_into(src, &dest) {
            Ok(()) => {
                let copied = match src.file_name() {
                    Some(name) => dest.join(name),
                    None => continue,
                };
                list_files(&copied, &mut |p| {
                    if let Ok(rel) = p.strip_prefix(files_dir) {
                        listed.push(rel_path(rel));
                    }
                });
            }
            Err(e) => errors.push(e),
        }
    }
    (listed, Error::collect(errors))
}

fn list_files(path: &Path, found: &mut dyn FnMut(PathBuf)) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            list_files(&e, found);
        }
    } else {
        found(path.to_path_buf());
    }
}

/// A relative path with `/` separators (W&B's file names).
fn rel_path(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn push_joined(out: &mut String, parts: impl Iterator<Item = String>) {
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn histogram_matches_the_clients_bins() {
        // The real client gives, for [1, 2, 3, 4, 5]: bins 1, 1.0625, …, 5 and a count of 1 in
        // bins 0, 16, 32, 48 and 63.
        let raw = |values: &[f64]| histogram("h", &HistogramBins::from_values(values));
        let h = raw(&[1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN]).unwrap();
        let v = parse(&h.json);
        assert_eq!(v["_type"], "histogram");
        let bins: Vec<f64> = serde_json::from_value(v["bins"].clone()).unwrap();
        assert_eq!(bins.len(), 65);
        assert_eq!((bins[0], bins[1], bins[64]), (1.0, 1.0625, 5.0));
        let counts: Vec<u64> = serde_json::from_value(v["values"].clone()).unwrap();
        let ones: Vec<usize> = (0..64).filter(|i| counts[*i] == 1).collect();
        assert_eq!(ones, [0, 16, 32, 48, 63]);
        assert_eq!(counts.iter().sum::<u64>(), 5);
        assert_eq!(raw(&[f64::NAN]), Err("has no finite values"));
        let single = parse(&raw(&[2.0]).unwrap().json);
        assert_eq!(single["bins"][0], 1.5);
    }

    #[test]
    fn table_file_is_written_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let t = Table {
            key: "eval/preds".into(),
            columns: vec!["id".into(), "label".into()],
            rows: vec![vec![Value::I64(0), Value::from("cat")], vec![Value::I64(1)]],
            step: 3,
        };
        let m = table(dir.path(), &t).unwrap();
        let obj = parse(&m.json);
        assert_eq!(obj["_type"], "table-file");
        assert_eq!(
            (obj["ncols"].as_u64(), obj["nrows"].as_u64()),
            (Some(2), Some(2))
        );
        let path = obj["path"].as_str().unwrap();
        assert!(path.starts_with("media/table/eval_preds_3_"), "{path}");
        assert_eq!(m.files, [path]);
        let file = parse(&std::fs::read_to_string(dir.path().join(path)).unwrap());
        assert_eq!(
            file,
            serde_json::json!({"columns": ["id", "label"], "data": [[0, "cat"], [1, null]]})
        );
    }
}
