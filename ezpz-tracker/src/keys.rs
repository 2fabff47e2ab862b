//! [`Keys`]: the list of metric names that rows logged with the same keys share, and the
//! key comparison the logging thread makes for every value it is given.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::value::Metric;

/// A row's metric names, in the caller's order. Rows logged with the same keys in the same
/// order share one list, so [`Keys::ptr_eq`] on two rows' keys is a cheap first test.
/// Dereferences to the names.
#[derive(Clone, Default)]
pub struct Keys(Arc<[Arc<str>]>);

impl Keys {
    /// Whether `a` and `b` are the same list (not just equal names).
    pub fn ptr_eq(a: &Keys, b: &Keys) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// Whether name `i` is `key` (false past the end).
    #[inline(always)]
    pub(crate) fn matches(&self, i: usize, key: &str) -> bool {
        self.0
            .get(i)
            .is_some_and(|name| same_key(name.as_bytes(), key.as_bytes()))
    }
}

impl Deref for Keys {
    type Target = [Arc<str>];
    fn deref(&self) -> &[Arc<str>] {
        &self.0
    }
}

impl From<Vec<Arc<str>>> for Keys {
    fn from(names: Vec<Arc<str>>) -> Keys {
        Keys(names.into())
    }
}

impl FromIterator<Arc<str>> for Keys {
    fn from_iter<I: IntoIterator<Item = Arc<str>>>(iter: I) -> Keys {
        Keys(iter.into_iter().collect())
    }
}

impl PartialEq for Keys {
    fn eq(&self, other: &Keys) -> bool {
        Keys::ptr_eq(self, other) || self.0 == other.0
    }
}
impl Eq for Keys {}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// `a == b`, comparing keys of up to 16 bytes (most metric names) with two word loads
/// instead of a call to `memcmp` (a tight loop makes one comparison per logged value).
#[inline(always)]
pub(crate) fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Two overlapping words cover every byte: [0, w) and [n - w, n).
    fn words<const W: usize>(s: &[u8]) -> ([u8; W], [u8; W]) {
        let head = s[..W].try_into().expect("W bytes");
        let tail = s[s.len() - W..].try_into().expect("W bytes");
        (head, tail)
    }
    match n {
        8..=16 => words::<8>(a) == words::<8>(b),
        4..=7 => words::<4>(a) == words::<4>(b),
        _ => a == b,
    }
}

/// Builds `base + the keys of extra` for rows that get metrics appended, reusing the list
/// built for the previous row when its parts were the same lists (then nothing is allocated).
#[derive(Default)]
pub(crate) struct KeyJoiner {
    /// The last base and joined lists; the joined list ends with the extra keys.
    last: Option<(Keys, Keys)>,
}

impl KeyJoiner {
    pub(crate) fn join(&mut self, base: &Keys, extra: &[Metric]) -> Keys {
        if let Some((b, joined)) = &self.last {
            let same_extra = joined.len() == b.len() + extra.len()
                && joined[b.len()..]
                    .iter()
                    .zip(extra)
                    .all(|(a, (k, _))| Arc::ptr_eq(a, k));
            if Keys::ptr_eq(b, base) && same_extra {
                return joined.clone();
            }
        }
        let joined: Keys = base
            .iter()
            .cloned()
            .chain(extra.iter().map(|(k, _)| k.clone()))
            .collect();
        self.last = Some((base.clone(), joined.clone()));
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_exactly_when_their_bytes_do() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abce",
            "abcdefg",
            "abcdefh",
            "train/lo",
            "train/la",
            "train/loss",
            "train/lost",
            "xrain/loss",
            "train/m00",
            "train/m01",
            "0123456789abcdef",
            "0123456789abcdeg",
            "1123456789abcdef",
            "0123456789abcdef0",
            "0123456789abcdef1",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    same_key(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} vs {b:?}"
                );
            }
        }
        let list: Keys = names.iter().map(|n| Arc::from(*n)).collect();
        for (i, a) in names.iter().enumerate() {
            for b in names {
                assert_eq!(list.matches(i, b), *a == b, "{i}: {a:?} vs {b:?}");
            }
        }
        assert!(!list.matches(names.len(), ""), "past the end");
    }

    #[test]
    fn lists_are_equal_by_names() {
        let a: Keys = ["ab", "c"].iter().map(|n| Arc::from(*n)).collect();
        let b: Keys = ["a", "bc"].iter().map(|n| Arc::from(*n)).collect();
        let c: Keys = ["ab", "c"].iter().map(|n| Arc::from(*n)).collect();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert!(!Keys::ptr_eq(&a, &c));
        assert_eq!(&*a[0], "ab");
        assert_eq!(Keys::default().len(), 0);
    }
}
