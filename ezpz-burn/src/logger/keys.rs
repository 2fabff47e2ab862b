//! How burn's metric and split names are spelled as tracker keys.

use burn::train::metric::store::Split;

/// Spells a burn name (`"Loss"`, `"Learning Rate"`, `"Top-5 Accuracy"`) as one key segment:
/// lower case; every run of characters other than ASCII letters, digits, `-` and `.` becomes
/// one `_`; no `_` at either end (`loss`, `learning_rate`, `top-5_accuracy`). A name with
/// nothing left becomes `metric`.
pub fn key_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    if out.is_empty() {
        out.push_str("metric");
    }
    out
}

/// The key prefix of a split: `train`, `valid`, `test`, or `test/<tag>` for a tagged test split.
pub fn split_prefix(split: &Split) -> String {
    match split {
        Split::Test(Some(tag)) => format!("test/{}", key_segment(tag)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn names_become_lower_case_segments() {
        assert_eq!(key_segment("Loss"), "loss");
        assert_eq!(key_segment("Top-5 Accuracy"), "top-5_accuracy");
        assert_eq!(key_segment("  Grad / Norm  "), "grad_norm");
        assert_eq!(key_segment("lr.group0"), "lr.group0");
        assert_eq!(key_segment("%%"), "metric");
    }

    #[test]
    fn splits_become_prefixes() {
        assert_eq!(split_prefix(&Split::Train), "train");
        assert_eq!(split_prefix(&Split::Valid), "valid");
        assert_eq!(split_prefix(&Split::Test(None)), "test");
        let tag = Arc::new("Held Out".to_string());
        assert_eq!(split_prefix(&Split::Test(Some(tag))), "test/held_out");
    }
}
