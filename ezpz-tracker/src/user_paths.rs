//! Where a user-chosen name (a table, an image, a histogram, an artifact label) lands in the
//! run directory.
//!
//! Every such name becomes one plain file name: path separators, NUL and other unsafe
//! characters turn into `_`, a leading `.` (so also `..`) gets a `_` in front, an empty name
//! becomes `_`, and a very long one is cut (with a hash of the whole, so names stay apart).
//! Nothing can therefore leave the directory. A name that would take one of the tracker's own
//! files ([`TRACKER_FILES`]: `metrics.csv`, `config.json`, `report.md`, …) gets a leading `_`
//! too (`log_table("metrics", …)` writes `_metrics.csv`), with one warning.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The tracker's own files and folders in a run directory. No user-named file takes one of
/// these names, nor any name that starts like one of them (`metrics.*`, `config.*`, …), so
/// their temporary files stay apart too.
pub const TRACKER_FILES: &[&str] = &[
    "metrics.csv",
    "metrics.jsonl",
    "config.json",
    "report.md",
    "report.html",
    "report.json",
    "run_info.json",
    "ezpz.lock",
    "plots",
    "spool",
    "tensorboard",
];

/// Longest file stem kept whole (file systems allow 255 bytes per name; room is left for a
/// step, a hash and an extension).
const MAX_STEM_BYTES: usize = 160;

/// A user name made safe as one file name (`train/loss` → `train_loss`, `../x` → `_.._x`),
/// without any check against the tracker's own names (use [`user_file`] for a file directly
/// in the run directory).
pub(crate) fn file_stem(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    if s.len() > MAX_STEM_BYTES {
        let mut cut = MAX_STEM_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(&format!("~{:016x}", fnv1a(name.as_bytes())));
    }
    s
}

/// The file name, directly in the run directory, for the user's `name` with extension `ext`
/// (`predictions` → `predictions.csv`). A name the tracker owns gets a leading `_`, warned
/// once per name; `kind` (`table`, …) is for that warning.
pub(crate) fn user_file(kind: &str, name: &str, ext: &str) -> String {
    let file = format!("{}.{ext}", file_stem(name));
    if !is_tracker_name(&file) {
        return file;
    }
    let renamed = format!("_{file}");
    if first_time(kind, name) {
        crate::warn!(
            "ezpz: {kind} `{name}` is written as `{renamed}`: `{}.*` are the tracker's files",
            head(&file)
        );
    }
    renamed
}

/// Whether `file` starts like one of [`TRACKER_FILES`] (case-insensitively, for file
/// systems that ignore case).
fn is_tracker_name(file: &str) -> bool {
    let head_of_file = head(file).to_lowercase();
    TRACKER_FILES.iter().any(|t| head(t) == head_of_file)
}

/// A file name up to its first `.`.
fn head(file: &str) -> &str {
    file.split('.').next().unwrap_or_default()
}

fn first_time(kind: &str, name: &str) -> bool {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    warned.insert(format!("{kind}\0{name}"))
}

/// 64-bit FNV-1a: a stable hash that keeps cut names apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_one_plain_file_name() {
        assert_eq!(file_stem("train/loss"), "train_loss");
        assert_eq!(file_stem(".."), "_..");
        assert_eq!(file_stem("../x"), "_.._x");
        assert_eq!(file_stem("/abs/path"), "_abs_path");
        assert_eq!(file_stem("a\0b"), "a_b");
        assert_eq!(file_stem("C:\\x"), "C__x");
        assert_eq!(file_stem(""), "_");
        for name in ["..", "/abs", "a\0b", "", "../../etc/passwd", "x/../../y"] {
            let stem = file_stem(name);
            assert!(!stem.contains(['/', '\\', '\0']), "{name:?} → {stem:?}");
            assert!(!stem.starts_with('.'), "{name:?} → {stem:?}");
        }
    }

    #[test]
    fn long_names_are_cut_and_stay_apart() {
        let a = file_stem(&"é".repeat(300));
        let b = file_stem(&format!("{}x", "é".repeat(300)));
        assert!(a.len() <= MAX_STEM_BYTES + 17, "{}", a.len());
        assert_ne!(a, b);
    }

    #[test]
    fn tracker_names_are_never_given_out() {
        assert_eq!(user_file("table", "predictions", "csv"), "predictions.csv");
        assert_eq!(user_file("table", "metrics", "csv"), "_metrics.csv");
        assert_eq!(user_file("table", "Metrics", "csv"), "_Metrics.csv");
        assert_eq!(user_file("table", "metrics.csv", "csv"), "_metrics.csv.csv");
        assert_eq!(user_file("table", "config", "csv"), "_config.csv");
        assert_eq!(user_file("table", "run_info", "csv"), "_run_info.csv");
        assert_eq!(user_file("table", "metrics_val", "csv"), "metrics_val.csv");
        for own in TRACKER_FILES {
            let stem = own.split('.').next().unwrap();
            assert!(user_file("table", stem, "csv").starts_with('_'), "{own}");
        }
    }
}
