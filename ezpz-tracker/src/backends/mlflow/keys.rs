//! Metric, param and tag names MLflow accepts.
//!
//! The server's rules (`mlflow/utils/validation.py`, `_validate_metric_name`): the name
//! matches Python's `^[/\w.\- :]*$` (letters and digits as Python's `\w` counts them — not
//! the combining marks Rust calls alphabetic, see `not_word.rs` —, `_ - . : /` and spaces),
//! has at most 250 characters, and `posixpath.normpath` leaves it unchanged and does not
//! make it start with `..` or `/` (so no `a//b`, `/a`, `a/`, `a/./b`, `a/../b`, `..x`, and
//! not the empty name). Anything else is mapped to the closest accepted name, with one
//! warning per name showing the mapping, so the server never refuses a batch for a name.

use std::collections::HashMap;
use std::sync::Arc;

use super::not_word::NOT_WORD;
use crate::aggregate::is_aggregate_key;

/// Longest name the server accepts, in characters.
pub(crate) const MAX_KEY_CHARS: usize = 250;

/// Whether MLflow accepts `c` in a name (Python's `\w`, or one of `/ . - space :`).
pub(crate) fn accepted_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | ' ');
    }
    c.is_alphanumeric() && !is_not_word(c)
}

fn is_not_word(c: char) -> bool {
    let c = c as u32;
    let i = NOT_WORD.partition_point(|&(_, hi)| hi < c);
    NOT_WORD.get(i).is_some_and(|&(lo, _)| lo <= c)
}

/// The accepted name closest to `key`, or `None` when `key` is already accepted.
pub(crate) fn sanitize(key: &str) -> Option<String> {
    let chars: String = key
        .chars()
        .map(|c| if accepted_char(c) { c } else { '_' })
        .collect();
    let mut out = normalize_segments(&chars);
    if out.chars().count() > MAX_KEY_CHARS {
        // Cutting may leave a trailing separator or a dot segment: normalize again.
        let cut: String = out.chars().take(MAX_KEY_CHARS).collect();
        out = normalize_segments(&cut);
    }
    if out.starts_with("..") {
        // `normpath` keeps it, but MLflow refuses names that start like a parent directory.
        out.replace_range(..1, "_");
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
        assert_eq!(sanitize("..x").as_deref(), Some("_.x"));
        assert_eq!(sanitize("...").as_deref(), Some("_.."));
        assert_eq!(sanitize("").as_deref(), Some("_"));
        assert_eq!(sanitize(".").as_deref(), Some("_"));
        // Combining marks: Rust calls U+0345 and Devanagari vowel signs alphabetic, Python's
        // `\w` (and so MLflow) does not.
        assert_eq!(sanitize("a\u{345}").as_deref(), Some("a_"));
        assert_eq!(sanitize("\u{915}\u{93f}").as_deref(), Some("\u{915}_"));
        assert_eq!(sanitize("e\u{301}").as_deref(), Some("e_"));
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

    /// Every code point, against MLflow's own check run by the oracle's Python (skipped
    /// without it): what we keep, MLflow accepts.
    #[test]
    fn accepted_chars_match_mlflows_check() {
        let python = std::env::var_os("EZPZ_TEST_PYTHON")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".cache/ezpz/venv/bin/python"))
            })
            .filter(|p| p.exists());
        let Some(python) = python else {
            eprintln!("SKIPPED: no oracle Python (EZPZ_TEST_PYTHON)");
            return;
        };
        let script = "import sys\n\
            from mlflow.utils.validation import validate_param_and_metric_name as ok\n\
            bad=[c for c in range(0x110000) if not (0xD800<=c<=0xDFFF) and c!=10 and not ok(chr(c))]\n\
            sys.stdout.write(' '.join(map(str,bad)))";
        let out = std::process::Command::new(python)
            .args(["-c", script])
            .output()
            .expect("run the oracle Python");
        if !out.status.success() {
            eprintln!("SKIPPED: mlflow not importable in the oracle Python");
            return;
        }
        let refused: std::collections::HashSet<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(refused.contains(&('!' as u32)) && refused.contains(&0x345));
        let wrong: Vec<String> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| accepted_char(*c) && refused.contains(&(*c as u32)))
            .map(|c| format!("U+{:04X}", c as u32))
            .take(20)
            .collect();
        assert!(
            wrong.is_empty(),
            "accepted here, refused by MLflow: {wrong:?}"
        );
    }
}
