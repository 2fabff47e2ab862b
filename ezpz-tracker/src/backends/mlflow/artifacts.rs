//! Artifacts through the server's `mlflow-artifacts` proxy
//! (`PUT /api/2.0/mlflow-artifacts/artifacts/<path>`).
//!
//! A run's `artifact_uri` says where its files live. `mlflow-artifacts:/…` (the default of
//! `mlflow server --serve-artifacts`) maps onto the tracking server; an `http(s)` URI that
//! already points at the proxy is used as it is. Any other scheme (`s3://`, `file://`, a
//! path) means the server expects clients to write to the store directly, which a REST
//! client cannot: the caller warns once and skips.

use std::path::{Path, PathBuf};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const PROXY_PATH: &str = "api/2.0/mlflow-artifacts/artifacts";

/// A spooled upload: the local file and where it goes in the run's artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Upload {
    /// The file to send (absolute).
    pub src: PathBuf,
    /// Its path under the run's artifact root (`tables/x.csv`).
    pub dest: String,
    /// Whether the spool made the file (deleted once delivered) or the user owns it.
    pub owned: bool,
}

/// The URL under which `dest` paths of a run with `artifact_uri` are uploaded, or `None`
/// when the server does not proxy that URI.
pub(crate) fn proxy_base(artifact_uri: &str, tracking_uri: &str) -> Option<Url> {
    let tracking = Url::parse(tracking_uri).ok()?;
    if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
        let (authority, path) = match rest.strip_prefix("//") {
            Some(r) => match r.split_once('/') {
                Some((a, p)) => (Some(a), p),
                None => (Some(r), ""),
            },
            None => (None, rest),
        };
        let mut base = match authority.filter(|a| !a.is_empty()) {
            Some(a) => Url::parse(&format!("{}://{a}/", tracking.scheme())).ok()?,
            None => tracking,
        };
        push_path(&mut base, PROXY_PATH);
        push_path(&mut base, path);
        return Some(base);
    }
    let url = Url::parse(artifact_uri).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.path().contains(PROXY_PATH)).then_some(url)
}

/// The upload URL of `dest` under `base`.
pub(crate) fn upload_url(base: &Url, dest: &str) -> Url {
    let mut url = base.clone();
    push_path(&mut url, dest);
    url
}

/// Appends the non-empty segments of `path` (percent-encoded) to `url`.
fn push_path(url: &mut Url, path: &str) {
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(path.split('/').filter(|s| !s.is_empty()));
    }
}

/// An artifact path made of plain segments (no empty, `.` or `..` ones, which the proxy
/// refuses).
pub(crate) fn clean_path(path: &str) -> String {
    path.split(['/', '\\'])
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect::<Vec<_>>()
        .join("/")
}

/// What to upload for one `(label, path)` of `log_artifacts`: a file goes to
/// `label/<file name>`, a directory's files to `label/<path inside the directory>` (as the
/// original's `log_artifact` / `log_artifacts`).
///
/// # Errors
/// The path does not exist or cannot be read.
pub(crate) fn expand(label: &str, path: &Path) -> Result<Vec<Upload>> {
    let abs = std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))?;
    let meta = std::fs::metadata(&abs).map_err(|e| Error::io("cannot read artifact", &abs, e))?;
    let label = clean_path(label);
    let join = |rel: &str| {
        let rel = clean_path(rel);
        if label.is_empty() {
            rel
        } else {
            format!("{label}/{rel}")
        }
    };
    if meta.is_file() {
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        return Ok(vec![Upload {
            dest: join(&name),
            src: abs,
            owned: false,
        }]);
    }
    let mut out = Vec::new();
    let mut stack = vec![abs.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot read", &dir, e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(&abs)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                out.push(Upload {
                    dest: join(&rel),
                    src: p,
                    owned: false,
                });
            }
        }
    }
    out.sort_by(|a, b| a.dest.cmp(&b.dest));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_artifacts_uris_map_onto_the_tracking_server() {
        let b = proxy_base("mlflow-artifacts:/1/abc/artifacts", "http://127.0.0.1:5000").unwrap();
        assert_eq!(
            b.as_str(),
            "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        assert_eq!(
            upload_url(&b, "tables/my table.csv").as_str(),
            "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/tables/my%20table.csv"
        );
        let prefixed =
            proxy_base("mlflow-artifacts:/1/abc/artifacts", "https://h/mlflow/").unwrap();
        assert_eq!(
            prefixed.as_str(),
            "https://h/mlflow/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        let netloc =
            proxy_base("mlflow-artifacts://other:9000/2/r/artifacts", "https://h/").unwrap();
        assert_eq!(
            netloc.as_str(),
            "https://other:9000/api/2.0/mlflow-artifacts/artifacts/2/r/artifacts"
        );
        let direct = "https://h/api/2.0/mlflow-artifacts/artifacts/3/r/artifacts";
        assert_eq!(proxy_base(direct, "https://h").unwrap().as_str(), direct);
    }

    #[test]
    fn other_stores_are_not_proxied() {
        for uri in [
            "s3://bucket/1/abc/artifacts",
            "file:///tmp/mlruns/1/abc/artifacts",
            "/tmp/mlruns/1",
        ] {
            assert!(proxy_base(uri, "http://h").is_none(), "{uri}");
        }
    }

    #[test]
    fn files_and_directories_expand_under_their_label() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ckpt");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.bin"), b"a").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"b").unwrap();
        let up = expand("model", &root).unwrap();
        let dests: Vec<&str> = up.iter().map(|u| u.dest.as_str()).collect();
        assert_eq!(dests, vec!["model/a.bin", "model/sub/b.txt"]);
        assert!(up.iter().all(|u| u.src.is_absolute() && !u.owned));
        let one = expand("../notes/", &root.join("a.bin")).unwrap();
        assert_eq!(one[0].dest, "notes/a.bin");
        assert!(expand("x", &dir.path().join("missing")).is_err());
        assert_eq!(clean_path("/a//./b/../c/"), "a/b/c");
    }
}
