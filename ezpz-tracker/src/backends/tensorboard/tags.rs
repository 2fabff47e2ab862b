//! Tag names TensorBoard's writers accept, and the one-time warnings about keys changed or
//! skipped.
//!
//! TensorFlow and PyTorch writers allow `[A-Za-z0-9_.\-/]` (and other Unicode letters and
//! digits) and no leading `/`; everything else becomes `_`. We apply the same rule so a tag
//! looks the same whichever program wrote it.

use std::collections::{HashMap, HashSet};

/// Whether `key` can be used as a tag unchanged.
pub fn is_valid_tag(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('/')
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// `key` made into a valid tag (`val acc` → `val_acc`, `/x` → `x`, `` → `_`).
pub fn sanitize(key: &str) -> String {
    let tag: String = key
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if tag.is_empty() {
        "_".into()
    } else {
        tag
    }
}

/// Renamed keys (remembered, so each is warned about once) and skipped non-numeric keys.
#[derive(Debug, Default)]
pub struct Tags {
    renamed: HashMap<String, String>,
    new_renames: Vec<(String, String)>,
    skipped: HashSet<String>,
    new_skips: Vec<String>,
}

impl Tags {
    /// The tag for `key`; a key seen renamed for the first time is queued for the warning.
    pub fn tag<'a>(&'a mut self, key: &'a str) -> &'a str {
        if is_valid_tag(key) {
            return key;
        }
        if !self.renamed.contains_key(key) {
            let tag = sanitize(key);
            self.new_renames.push((key.to_string(), tag.clone()));
            self.renamed.insert(key.to_string(), tag);
        }
        self.renamed.get(key).map_or(key, String::as_str)
    }

    /// Notes that `key` was skipped (not a number); queued for the warning the first time.
    pub fn skipped(&mut self, key: &str) {
        if !self.skipped.contains(key) {
            self.skipped.insert(key.to_string());
            self.new_skips.push(key.to_string());
        }
    }

    /// Whether [`take_warnings`](Self::take_warnings) has something to say.
    pub fn has_warnings(&self) -> bool {
        !self.new_renames.is_empty() || !self.new_skips.is_empty()
    }

    /// The warnings due for keys first seen since the last call (at most one of each kind).
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.new_renames.is_empty() {
            let list: Vec<String> = self
                .new_renames
                .drain(..)
                .map(|(k, t)| format!("`{k}` → `{t}`"))
                .collect();
            out.push(format!(
                "ezpz: tensorboard: renamed to tags TensorBoard accepts \
                 (letters, digits, `_.-/`): {}",
                list.join(", ")
            ));
        }
        if !self.new_skips.is_empty() {
            let list: Vec<String> = self.new_skips.drain(..).map(|k| format!("`{k}`")).collect();
            out.push(format!(
                "ezpz: tensorboard: skipped non-numeric metric(s) {} \
                 (TensorBoard scalars are numbers; csv and jsonl keep them)",
                list.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_follows_the_tensorflow_rule() {
        assert!(is_valid_tag("train/loss-1.5_x"));
        assert!(is_valid_tag("über/größe"));
        assert_eq!(sanitize("val acc"), "val_acc");
        assert_eq!(sanitize("/abs/x"), "abs/x");
        assert_eq!(sanitize("a:b(c)"), "a_b_c_");
        assert_eq!(sanitize("//"), "_");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn each_renamed_or_skipped_key_is_warned_about_once() {
        let mut tags = Tags::default();
        for _ in 0..3 {
            assert_eq!(tags.tag("ok/tag"), "ok/tag");
            assert_eq!(tags.tag("val acc"), "val_acc");
            tags.skipped("phase");
        }
        let warnings = tags.take_warnings();
        assert_eq!(
            warnings,
            [
                "ezpz: tensorboard: renamed to tags TensorBoard accepts (letters, digits, `_.-/`): `val acc` → `val_acc`",
                "ezpz: tensorboard: skipped non-numeric metric(s) `phase` (TensorBoard scalars are numbers; csv and jsonl keep them)",
            ]
        );
        assert_eq!(tags.tag("val acc"), "val_acc");
        tags.skipped("phase");
        assert!(tags.take_warnings().is_empty());
    }
}
