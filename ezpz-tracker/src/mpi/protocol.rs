//! The wire format of one cross-rank aggregation, and the decisions every rank takes from it.
//!
//! Pure functions over buffers, so they are unit-tested without MPI. One `log` call costs one
//! all-gather of a fixed-size `u64` buffer per rank:
//!
//! ```text
//! [ key-list hash | key count | encoded key bytes | value bits × count | zero padding … ]
//!   ^------------- HEADER ----------------------^   ^-------- capacity words ---------^
//! ```
//!
//! Every rank reads every rank's header, so all ranks reach the same [`Plan`] without a second
//! collective: identical key lists (the common case) are aggregated from this buffer alone;
//! a key count above the shared capacity grows it and repeats the round; different key lists
//! need one more (rare) gather of the encoded `(key, value)` pairs, sized by the headers.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::aggregate::{is_aggregate_key, Stats};
use crate::value::{Metric, Value};

/// Header words in front of each rank's values.
pub(crate) const HEADER: usize = 3;
/// Values per rank the first round carries before any growth.
pub(crate) const INITIAL_CAPACITY: usize = 32;

/// The metrics worth aggregating: not those that already name an aggregate
/// (`…/mean|min|max|std`, e.g. precomputed cross-rank figures), nor a key whose `key/mean` the
/// caller logged in the same row (its aggregates are the caller's).
pub(crate) fn aggregatable(metrics: &[(Arc<str>, f64)]) -> Cow<'_, [(Arc<str>, f64)]> {
    if !metrics.iter().any(|(k, _)| is_aggregate_key(k)) {
        return Cow::Borrowed(metrics); // the common case: nothing to filter, nothing to copy
    }
    let supplied: HashSet<&str> = metrics
        .iter()
        .filter_map(|(k, _)| k.strip_suffix("/mean"))
        .collect();
    metrics
        .iter()
        .filter(|(k, _)| !is_aggregate_key(k) && !supplied.contains(&**k))
        .cloned()
        .collect()
}

/// FNV-1a over the keys in order, each followed by `0xFF` (a byte UTF-8 never contains), so
/// `["ab"]` and `["a", "b"]` differ. Stable across processes and builds, unlike `std`'s
/// hasher.
pub(crate) fn key_hash(metrics: &[(Arc<str>, f64)]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (key, _) in metrics {
        for &b in key.as_bytes().iter().chain(&[0xFF]) {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    h
}

/// This rank's round buffer: header, then up to `capacity` values as bit patterns (lossless,
/// NaN included), zero-padded to `HEADER + capacity` words.
pub(crate) fn pack(metrics: &[(Arc<str>, f64)], capacity: usize) -> Vec<u64> {
    let mut buf = Vec::with_capacity(HEADER + capacity);
    buf.push(key_hash(metrics));
    buf.push(metrics.len() as u64);
    buf.push(encoded_len(metrics) as u64);
    buf.extend(metrics.iter().take(capacity).map(|(_, v)| v.to_bits()));
    buf.resize(HEADER + capacity, 0);
    buf
}

/// What every rank does after the first all-gather (all ranks compute the same plan from the
/// same gathered buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// All ranks logged the same keys in the same order, and the values fit.
    Uniform,
    /// Same keys everywhere, but more than the capacity: repeat with the new capacity.
    Grow {
        /// The capacity to use from now on.
        capacity: usize,
    },
    /// Ranks logged different keys (or a different order): gather the encoded pairs.
    Mismatch {
        /// Each rank's encoded length in bytes (the gather's counts).
        byte_counts: Vec<usize>,
        /// The capacity to use from now on (grown to the largest key count seen).
        capacity: usize,
    },
}

/// The plan for a gathered buffer of `world` ranks × `HEADER + capacity` words.
pub(crate) fn plan(gathered: &[u64], world: usize, capacity: usize) -> Plan {
    let stride = HEADER + capacity;
    let header = |r: usize| &gathered[r * stride..r * stride + HEADER];
    let (hash0, count0) = (header(0)[0], header(0)[1]);
    let uniform = (1..world).all(|r| header(r)[0] == hash0 && header(r)[1] == count0);
    let max_keys = (0..world).map(|r| header(r)[1] as usize).max().unwrap_or(0);
    let grown = if max_keys > capacity {
        max_keys.next_power_of_two()
    } else {
        capacity
    };
    match (uniform, max_keys <= capacity) {
        (true, true) => Plan::Uniform,
        (true, false) => Plan::Grow { capacity: grown },
        (false, _) => Plan::Mismatch {
            byte_counts: (0..world).map(|r| header(r)[2] as usize).collect(),
            capacity: grown,
        },
    }
}

/// The four aggregate names of each key of a key list, formatted once per distinct list
/// (formatting them on every call would cost more than the collective itself).
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    hash: Option<u64>,
    names: Vec<[Arc<str>; 4]>,
}

impl NameCache {
    /// The names for `metrics`, whose [`key_hash`] is `hash`.
    fn get(&mut self, metrics: &[(Arc<str>, f64)], hash: u64) -> &[[Arc<str>; 4]] {
        if self.hash != Some(hash) || self.names.len() != metrics.len() {
            // `Stats::metrics` owns the naming convention (`key/mean|min|max|std`, in order).
            self.names = metrics
                .iter()
                .map(|(key, _)| Stats::of(&[]).metrics(key).map(|(name, _)| name))
                .collect();
            self.hash = Some(hash);
        }
        &self.names
    }
}

/// Aggregates of a [`Plan::Uniform`] round: key `i`'s values are word `HEADER + i` of each
/// rank's slot, in rank order.
pub(crate) fn uniform_stats(
    metrics: &[(Arc<str>, f64)],
    gathered: &[u64],
    world: usize,
    capacity: usize,
    names: &mut NameCache,
) -> Vec<Metric> {
    let stride = HEADER + capacity;
    // Every rank's header carries the same hash in a uniform round.
    let names = names.get(metrics, gathered[0]);
    let mut values = Vec::with_capacity(world);
    let mut out = Vec::with_capacity(metrics.len() * 4);
    for (i, names) in names.iter().enumerate() {
        values.clear();
        values.extend((0..world).map(|r| f64::from_bits(gathered[r * stride + HEADER + i])));
        let s = Stats::of(&values);
        let figures = [s.mean, s.min, s.max, s.std];
        out.extend(names.iter().cloned().zip(figures.map(Value::F64)));
    }
    out
}

fn encoded_len(metrics: &[(Arc<str>, f64)]) -> usize {
    metrics.iter().map(|(k, _)| 4 + k.len() + 8).sum()
}

/// The pairs as bytes: per pair, the key's length (`u32` LE), its UTF-8 bytes, the value's
/// bits (`u64` LE).
pub(crate) fn encode(metrics: &[(Arc<str>, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(metrics));
    for (key, value) in metrics {
        out.extend((key.len() as u32).to_le_bytes());
        out.extend(key.as_bytes());
        out.extend(value.to_bits().to_le_bytes());
    }
    out
}

/// The inverse of [`encode`]; `None` for a truncated or non-UTF-8 buffer.
pub(crate) fn decode(mut bytes: &[u8]) -> Option<Vec<(Arc<str>, f64)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (key, rest) = rest.split_at(len);
        let (value, rest) = rest.split_first_chunk::<8>()?;
        out.push((
            Arc::from(std::str::from_utf8(key).ok()?),
            f64::from_bits(u64::from_le_bytes(*value)),
        ));
        bytes = rest;
    }
    Some(out)
}

/// Aggregates over the union of keys: each key's statistics use the ranks that logged it,
/// keys in first-seen order (rank 0's first). Also returns a one-line description of the
/// difference for the warning.
pub(crate) fn union_stats(per_rank: &[Vec<(Arc<str>, f64)>]) -> (Vec<Metric>, String) {
    let mut order: Vec<Arc<str>> = Vec::new();
    let mut seen: HashMap<Arc<str>, (Vec<f64>, Vec<usize>)> = HashMap::new();
    for (rank, pairs) in per_rank.iter().enumerate() {
        for (key, value) in pairs {
            let slot = seen.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (Vec::new(), Vec::new())
            });
            slot.0.push(*value);
            slot.1.push(rank);
        }
    }
    let world = per_rank.len();
    let mut metrics = Vec::with_capacity(order.len() * 4);
    let mut partial = Vec::new();
    for key in &order {
        let (values, ranks) = &seen[key];
        metrics.extend(Stats::of(values).metrics(key));
        if ranks.len() < world {
            partial.push(format!("`{key}` on rank(s) {}", list(ranks)));
        }
    }
    let description = if partial.is_empty() {
        "the same keys in a different order".to_string()
    } else {
        const SHOWN: usize = 5;
        let more = partial.len().saturating_sub(SHOWN);
        let mut d = partial
            .into_iter()
            .take(SHOWN)
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            d.push_str(&format!(" and {more} more"));
        }
        d
    };
    (metrics, description)
}

fn list(ranks: &[usize]) -> String {
    ranks
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, f64)]) -> Vec<(Arc<str>, f64)> {
        items.iter().map(|(k, v)| (Arc::from(*k), *v)).collect()
    }

    /// What an all-gather would deliver: every rank's buffer, concatenated in rank order.
    fn gather(per_rank: &[Vec<(Arc<str>, f64)>], capacity: usize) -> Vec<u64> {
        per_rank.iter().flat_map(|m| pack(m, capacity)).collect()
    }

    fn value(metrics: &[Metric], key: &str) -> f64 {
        match metrics.iter().find(|(k, _)| &**k == key) {
            Some((_, Value::F64(v))) => *v,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn aggregates_and_keys_with_supplied_aggregates_are_left_alone() {
        let m = pairs(&[
            ("loss", 1.0),
            ("grads/global_norm", 2.0),
            ("grads/global_norm/mean", 3.0),
            ("grads/global_norm/std", 0.5),
            ("acc/max", 0.9),
        ]);
        assert_eq!(&*aggregatable(&m), &pairs(&[("loss", 1.0)])[..]);
        let plain = pairs(&[("loss", 1.0), ("lr", 0.1)]);
        assert!(matches!(aggregatable(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn pack_lays_out_header_values_and_padding() {
        let m = pairs(&[("loss", 0.5), ("acc", f64::NAN)]);
        let buf = pack(&m, 4);
        assert_eq!(buf.len(), HEADER + 4);
        assert_eq!(buf[0], key_hash(&m));
        assert_eq!(buf[1], 2);
        assert_eq!(buf[2], encode(&m).len() as u64);
        assert_eq!(f64::from_bits(buf[3]), 0.5);
        assert!(f64::from_bits(buf[4]).is_nan());
        assert_eq!(&buf[5..], &[0, 0]);
    }

    #[test]
    fn key_hash_depends_on_names_boundaries_and_order_not_values() {
        let h = |items: &[(&str, f64)]| key_hash(&pairs(items));
        assert_eq!(h(&[("a", 1.0), ("b", 2.0)]), h(&[("a", 9.0), ("b", -3.0)]));
        assert_ne!(h(&[("a", 1.0), ("b", 2.0)]), h(&[("b", 2.0), ("a", 1.0)]));
        assert_ne!(h(&[("ab", 1.0)]), h(&[("a", 1.0), ("b", 1.0)]));
        assert_ne!(h(&[("a", 1.0)]), h(&[]));
    }

    #[test]
    fn identical_keys_aggregate_from_the_single_round() {
        let ranks: Vec<_> = (0..3)
            .map(|r| pairs(&[("loss", r as f64), ("lr", 0.1)]))
            .collect();
        let g = gather(&ranks, INITIAL_CAPACITY);
        assert_eq!(plan(&g, 3, INITIAL_CAPACITY), Plan::Uniform);
        let mut names = NameCache::default();
        let out = uniform_stats(&ranks[0], &g, 3, INITIAL_CAPACITY, &mut names);
        let keys: Vec<&str> = out.iter().map(|(k, _)| &**k).collect();
        assert_eq!(
            keys,
            [
                "loss/mean",
                "loss/min",
                "loss/max",
                "loss/std",
                "lr/mean",
                "lr/min",
                "lr/max",
                "lr/std"
            ]
        );
        assert_eq!(value(&out, "loss/mean"), 1.0);
        assert_eq!(value(&out, "loss/max"), 2.0);
        assert_eq!(value(&out, "loss/std"), (2.0f64 / 3.0).sqrt());
        assert_eq!(value(&out, "lr/std"), 0.0);
    }

    #[test]
    fn names_are_formatted_once_per_key_list() {
        let mut names = NameCache::default();
        let a = pairs(&[("loss", 1.0)]);
        let first = names.get(&a, key_hash(&a))[0][0].clone();
        assert_eq!(&*first, "loss/mean");
        assert!(Arc::ptr_eq(&first, &names.get(&a, key_hash(&a))[0][0]));
        let b = pairs(&[("acc", 1.0), ("loss", 1.0)]);
        let names_b = names.get(&b, key_hash(&b));
        assert_eq!(&*names_b[1][3], "loss/std");
    }

    #[test]
    fn large_values_with_small_spread_keep_the_exact_population_std() {
        let xs = [
            123_880.0, 123_880.1, 123_880.2, 123_880.3, 123_880.4, 123_880.5,
        ];
        let ranks: Vec<_> = xs.iter().map(|&x| pairs(&[("tokens", x)])).collect();
        let g = gather(&ranks, INITIAL_CAPACITY);
        let out = uniform_stats(
            &ranks[0],
            &g,
            6,
            INITIAL_CAPACITY,
            &mut NameCache::default(),
        );
        let mean = xs.iter().sum::<f64>() / 6.0;
        let exact = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
        let std = value(&out, "tokens/std");
        assert!((std - exact).abs() / exact < 1e-6, "{std} vs {exact}");
    }

    #[test]
    fn more_keys_than_capacity_grow_it_for_everyone() {
        let many: Vec<(String, f64)> = (0..40).map(|i| (format!("k{i}"), i as f64)).collect();
        let m: Vec<(Arc<str>, f64)> = many.iter().map(|(k, v)| (Arc::from(&**k), *v)).collect();
        let g = gather(&[m.clone(), m.clone()], INITIAL_CAPACITY);
        assert_eq!(
            plan(&g, 2, INITIAL_CAPACITY),
            Plan::Grow { capacity: 64 },
            "40 keys do not fit 32 slots"
        );
        let g = gather(&[m.clone(), m], 64);
        assert_eq!(plan(&g, 2, 64), Plan::Uniform);
    }

    #[test]
    fn different_keys_are_detected_in_the_first_round() {
        let a = pairs(&[("loss", 1.0), ("lr", 0.1)]);
        let b = pairs(&[("loss", 3.0), ("extra", 7.0)]);
        let g = gather(&[a.clone(), b.clone()], INITIAL_CAPACITY);
        assert_eq!(
            plan(&g, 2, INITIAL_CAPACITY),
            Plan::Mismatch {
                byte_counts: vec![encode(&a).len(), encode(&b).len()],
                capacity: INITIAL_CAPACITY
            }
        );
        // Same keys, other order: also a mismatch (values are positional).
        let c = pairs(&[("lr", 0.1), ("loss", 1.0)]);
        let g = gather(&[a, c], INITIAL_CAPACITY);
        assert!(matches!(
            plan(&g, 2, INITIAL_CAPACITY),
            Plan::Mismatch { .. }
        ));
        // A rank with no numeric metrics against one with some.
        let g = gather(&[pairs(&[]), pairs(&[("x", 1.0)])], INITIAL_CAPACITY);
        assert!(matches!(
            plan(&g, 2, INITIAL_CAPACITY),
            Plan::Mismatch { .. }
        ));
    }

    #[test]
    fn encode_decode_round_trip_and_reject_garbage() {
        let m = pairs(&[("train/loss", -0.25), ("ünïcode", f64::INFINITY), ("", 0.0)]);
        let bytes = encode(&m);
        assert_eq!(bytes.len(), encoded_len(&m));
        assert_eq!(decode(&bytes), Some(m));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[255, 255, 255, 255, b'a']), None);
        assert_eq!(decode(&[]), Some(vec![]));
    }

    #[test]
    fn union_aggregates_each_key_over_the_ranks_that_logged_it() {
        let per_rank = vec![
            pairs(&[("loss", 1.0), ("lr", 0.1)]),
            pairs(&[("loss", 3.0), ("extra", 7.0)]),
            pairs(&[("loss", 5.0), ("lr", 0.3)]),
        ];
        let (out, description) = union_stats(&per_rank);
        let keys: Vec<&str> = out.iter().step_by(4).map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["loss/mean", "lr/mean", "extra/mean"]);
        assert_eq!(value(&out, "loss/mean"), 3.0);
        assert!((value(&out, "lr/mean") - 0.2).abs() < 1e-15);
        assert_eq!(value(&out, "lr/min"), 0.1);
        assert_eq!(value(&out, "extra/max"), 7.0);
        assert_eq!(value(&out, "extra/std"), 0.0);
        assert_eq!(description, "`lr` on rank(s) 0,2, `extra` on rank(s) 1");
        let (_, reordered) = union_stats(&[
            pairs(&[("a", 1.0), ("b", 2.0)]),
            pairs(&[("b", 2.0), ("a", 1.0)]),
        ]);
        assert_eq!(reordered, "the same keys in a different order");
    }
}
