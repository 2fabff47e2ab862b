//! Metric, param and tag names MLflow accepts.
//!
//! The server allows letters, digits, `_ - . : /` and spaces, at most 250 characters, and
//! rejects names that a path normalization would change (`a//b`, `/a`, `a/`, `a/./b`,
//! `a/../b`). Anything else is mapped to the closest accepted name, with one warning per
//! name showing the mapping.

use std::collections::HashMap;
use std::sync::Arc;

use crate::aggregate::is_aggregate_key;

/// Longest name the server accepts, in characters.
pub(crate) const MAX_KEY_CHARS: usize = 250;

/// The accepted name closest to `key`, or `None` when `key` is already accepted.
pub(crate) fn sanitize(key: &str) -> Option<String> {
    let chars: String = key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut out = normalize_segments(&chars);
    if out.chars().count() > MAX_KEY_CHARS {
        // Cutting may leave a trailing separator or a dot segment: normalize again.
        let cut: String = out.chars().take(MAX_KEY_CHARS).collect();
        out = normalize_segments(&cut);
    }
    if out.is_empty() {
        out.push('_');
    }
    (out != key).then_some(out)
}

/// Drops empty and `.` path segments and renames `..` ones, so path normalization is a no-op.
fn normalize_segments(name: &str) -> String {
    let segments: Vec<&str> = name
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| if s == ".." { "__" } else { s })
        .collect();
    segments.join("/")
}

/// Maps names to accepted ones, remembering each mapping and warning once per name.
#[derive(Debug, Default)]
pub(crate) struct KeyMapper {
    cache: HashMap<Arc<str>, Arc<str>>,
}

impl KeyMapper {
    /// The accepted form of `key` (`what` names the kind in the warning: metric, param, tag).
    pub fn map(&mut self, key: &Arc<str>, what: &str) -> Arc<str> {
        if let Some(mapped) = self.cache.get(key) {
            return mapped.clone();
        }
        let mapped: Arc<str> = match sanitize(key) {
            None => key.clone(),
            Some(fixed) => {
                crate::warn!(
                    "ezpz: mlflow: {what} name `{key}` is not accepted by MLflow (letters, digits, \
                     `_ - . : /` and spaces, at most {MAX_KEY_CHARS} characters, no empty or dot \
                     path segments); logged as `{fixed}`"
                );
                Arc::from(fixed)
            }
        };
        self.cache.insert(key.clone(), mapped.clone());
        mapped
    }
}

/// The original's grouping rule: when `k/mean|min|max|std` aggregates are present, the raw
/// per-rank value `k` is renamed `k/local` so MLflow groups all of them under `k/`.
pub(crate) fn local_renames<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Vec<&'a str> {
    let prefixes: Vec<&str> = keys
        .clone()
        .filter(|k| is_aggregate_key(k))
        .filter_map(|k| k.rsplit_once('/').map(|(p, _)| p))
        .collect();
    if prefixes.is_empty() {
        return Vec::new();
    }
    keys.filter(|k| prefixes.contains(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_names_are_kept() {
        for k in [
            "loss",
            "train/loss",
            "ok key:x/y.z-w_v",
            "ünï",
            "a..b",
            "loss/mean",
        ] {
            assert_eq!(sanitize(k), None, "{k}");
        }
    }

    #[test]
    fn rejected_names_are_mapped() {
        assert_eq!(sanitize("loss@1").as_deref(), Some("loss_1"));
        assert_eq!(sanitize("bad key!").as_deref(), Some("bad key_"));
        assert_eq!(sanitize("a//b").as_deref(), Some("a/b"));
        assert_eq!(sanitize("/a/").as_deref(), Some("a"));
        assert_eq!(sanitize("a/./b").as_deref(), Some("a/b"));
        assert_eq!(sanitize("a/../b").as_deref(), Some("a/__/b"));
        assert_eq!(sanitize("//").as_deref(), Some("_"));
        let long = "k".repeat(300);
        assert_eq!(sanitize(&long).unwrap().chars().count(), MAX_KEY_CHARS);
        let slashy = format!("{}/x", "k".repeat(249));
        assert_eq!(sanitize(&slashy).unwrap(), "k".repeat(249));
    }

    #[test]
    fn mapper_caches_and_passes_through() {
        let mut m = KeyMapper::default();
        let ok: Arc<str> = Arc::from("loss");
        assert!(Arc::ptr_eq(&m.map(&ok, "metric"), &ok));
        let bad: Arc<str> = Arc::from("acc@top1");
        assert_eq!(&*m.map(&bad, "metric"), "acc_top1");
        assert_eq!(&*m.map(&bad, "metric"), "acc_top1");
    }

    #[test]
    fn raw_values_beside_aggregates_become_local() {
        let keys = ["loss", "loss/mean", "loss/std", "lr", "acc/max"];
        assert_eq!(local_renames(keys.iter().copied()), vec!["loss"]);
        assert!(local_renames(["loss", "lr"].iter().copied()).is_empty());
    }
}
