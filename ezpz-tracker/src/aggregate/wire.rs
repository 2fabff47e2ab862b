//! What one rank sends to rank 0 in a round: its committed rows' numeric metrics, as bytes,
//! and the arithmetic rank 0 applies to matched rows. Pure functions, unit-tested without MPI.
//!
//! ```text
//! row:  [ step u64 LE | pair bytes u32 LE | pairs … ]
//! pair: [ key length u32 LE | key UTF-8 | value bits u64 LE ]
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::stats::{is_aggregate_key, Stats};
use crate::value::Metric;

/// A row's numeric metrics: `(key, value)` pairs.
pub(crate) type Pairs = [(Arc<str>, f64)];

/// One committed row's numeric metrics, as the aggregation rounds carry it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireRow {
    pub step: u64,
    pub pairs: Vec<(Arc<str>, f64)>,
}

/// The metrics worth aggregating: not those that already name an aggregate
/// (`…/mean|min|max|std`, e.g. precomputed cross-rank figures), nor a key whose `key/mean` the
/// caller logged in the same row (its aggregates are the caller's).
pub(crate) fn aggregatable(metrics: Vec<(Arc<str>, f64)>) -> Vec<(Arc<str>, f64)> {
    if !metrics.iter().any(|(k, _)| is_aggregate_key(k)) {
        return metrics; // the common case: nothing to filter, nothing to copy
    }
    let supplied: HashSet<Arc<str>> = metrics
        .iter()
        .filter_map(|(k, _)| k.strip_suffix("/mean").map(Arc::from))
        .collect();
    metrics
        .into_iter()
        .filter(|(k, _)| !is_aggregate_key(k) && !supplied.contains(k))
        .collect()
}

/// A hash of the row's key *set* (order does not matter): FNV-1a of each key, summed. Rows of
/// different ranks are matched by step and this hash. Stable across processes and builds.
pub(crate) fn key_set_hash(pairs: &[(Arc<str>, f64)]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    pairs
        .iter()
        .map(|(key, _)| {
            key.as_bytes()
                .iter()
                .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
        })
        .fold(0u64, u64::wrapping_add)
}

/// Appends `row` to `out`.
pub(crate) fn encode_row(out: &mut Vec<u8>, step: u64, pairs: &[(Arc<str>, f64)]) {
    let len: usize = pairs.iter().map(|(k, _)| 4 + k.len() + 8).sum();
    out.reserve(12 + len);
    out.extend(step.to_le_bytes());
    out.extend((len as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend((key.len() as u32).to_le_bytes());
        out.extend(key.as_bytes());
        out.extend(value.to_bits().to_le_bytes());
    }
}

/// The rows of one payload, or `None` for a truncated or non-UTF-8 buffer; `intern` turns
/// each key into its shared allocation.
pub(crate) fn decode_rows(
    mut bytes: &[u8],
    intern: &mut dyn FnMut(&str) -> Arc<str>,
) -> Option<Vec<WireRow>> {
    let mut rows = Vec::new();
    while !bytes.is_empty() {
        let (step, rest) = bytes.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (mut body, rest) = rest.split_at(len);
        let mut pairs = Vec::new();
        while !body.is_empty() {
            let (klen, after) = body.split_first_chunk::<4>()?;
            let klen = u32::from_le_bytes(*klen) as usize;
            if after.len() < klen {
                return None;
            }
            let (key, after) = after.split_at(klen);
            let (value, after) = after.split_first_chunk::<8>()?;
            pairs.push((
                intern(std::str::from_utf8(key).ok()?),
                f64::from_bits(u64::from_le_bytes(*value)),
            ));
            body = after;
        }
        rows.push(WireRow {
            step: u64::from_le_bytes(*step),
            pairs,
        });
        bytes = rest;
    }
    Some(rows)
}

/// Aggregates over the union of keys of one row per rank (`None`: the rank has no row): each
/// key's statistics use the ranks that logged it, keys in first-seen order (rank 0's first).
/// Also returns a description of how the ranks differ, `None` when every rank logged the
/// same key set.
pub(crate) fn stats_over_ranks(per_rank: &[Option<&Pairs>]) -> (Vec<Metric>, Option<String>) {
    let mut order: Vec<&Arc<str>> = Vec::new();
    let mut seen: HashMap<&str, (Vec<f64>, Vec<usize>)> = HashMap::new();
    for (rank, pairs) in per_rank.iter().enumerate() {
        for (key, value) in pairs.iter().flat_map(|p| p.iter()) {
            let slot = seen.entry(key).or_insert_with(|| {
                order.push(key);
                (Vec::new(), Vec::new())
            });
            slot.0.push(*value);
            slot.1.push(rank);
        }
    }
    let world = per_rank.len();
    let mut metrics = Vec::with_capacity(order.len() * 4);
    let mut partial = Vec::new();
    for key in order {
        let (values, ranks) = &seen[&**key];
        metrics.extend(Stats::of(values).metrics(key));
        if ranks.len() < world {
            partial.push(format!("`{key}` on rank(s) {}", list(ranks)));
        }
    }
    let missing: Vec<usize> = (0..world).filter(|&r| per_rank[r].is_none()).collect();
    if partial.is_empty() {
        return (metrics, None);
    }
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
    if !missing.is_empty() {
        d.push_str(&format!(
            "; no matching row from rank(s) {}",
            list(&missing)
        ));
    }
    (metrics, Some(d))
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
    use crate::value::Value;

    pub(crate) fn pairs(items: &[(&str, f64)]) -> Vec<(Arc<str>, f64)> {
        items.iter().map(|(k, v)| (Arc::from(*k), *v)).collect()
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
        assert_eq!(aggregatable(m), pairs(&[("loss", 1.0)]));
        let plain = pairs(&[("loss", 1.0), ("lr", 0.1)]);
        assert_eq!(aggregatable(plain.clone()), plain);
    }

    #[test]
    fn key_set_hash_ignores_order_and_values_not_names() {
        let h = |items: &[(&str, f64)]| key_set_hash(&pairs(items));
        assert_eq!(h(&[("a", 1.0), ("b", 2.0)]), h(&[("b", 9.0), ("a", -3.0)]));
        assert_ne!(h(&[("ab", 1.0)]), h(&[("a", 1.0), ("b", 1.0)]));
        assert_ne!(h(&[("a", 1.0)]), h(&[]));
        assert_ne!(h(&[("a", 1.0)]), h(&[("a", 1.0), ("c", 1.0)]));
    }

    #[test]
    fn rows_round_trip_and_garbage_is_rejected() {
        let a = pairs(&[("train/loss", -0.25), ("ünïcode", f64::INFINITY), ("", 0.0)]);
        let b = pairs(&[("nan", f64::NAN)]);
        let mut bytes = Vec::new();
        encode_row(&mut bytes, 7, &a);
        encode_row(&mut bytes, u64::MAX, &b);
        encode_row(&mut bytes, 0, &[]);
        let fresh = &mut |k: &str| Arc::from(k);
        let rows = decode_rows(&bytes, fresh).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].step, &rows[0].pairs), (7, &a));
        assert_eq!(rows[1].step, u64::MAX);
        assert!(rows[1].pairs[0].1.is_nan());
        assert!(rows[2].pairs.is_empty());
        assert_eq!(decode_rows(&bytes[..bytes.len() - 1], fresh), None);
        assert_eq!(decode_rows(&[1, 2, 3], fresh), None);
        assert_eq!(decode_rows(&[], fresh), Some(vec![]));
    }

    #[test]
    fn stats_use_each_key_over_the_ranks_that_logged_it() {
        let r0 = pairs(&[("loss", 1.0), ("lr", 0.1)]);
        let r1 = pairs(&[("loss", 3.0), ("extra", 7.0)]);
        let r2 = pairs(&[("lr", 0.3), ("loss", 5.0)]);
        let (out, description) = stats_over_ranks(&[Some(&r0), Some(&r1), Some(&r2)]);
        let keys: Vec<&str> = out.iter().step_by(4).map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["loss/mean", "lr/mean", "extra/mean"]);
        assert_eq!(value(&out, "loss/mean"), 3.0);
        assert!((value(&out, "lr/mean") - 0.2).abs() < 1e-15);
        assert_eq!(value(&out, "extra/max"), 7.0);
        assert_eq!(
            description.as_deref(),
            Some("`lr` on rank(s) 0,2, `extra` on rank(s) 1")
        );
        let (out, description) = stats_over_ranks(&[Some(&r0), Some(&r0)]);
        assert_eq!((out.len(), description), (8, None));
        let (out, description) = stats_over_ranks(&[Some(&r0), None]);
        assert_eq!(value(&out, "loss/std"), 0.0);
        assert_eq!(
            description.as_deref(),
            Some("`loss` on rank(s) 0, `lr` on rank(s) 0; no matching row from rank(s) 1")
        );
    }

    #[test]
    fn large_values_with_small_spread_keep_the_exact_population_std() {
        let xs = [
            123_880.0, 123_880.1, 123_880.2, 123_880.3, 123_880.4, 123_880.5,
        ];
        let ranks: Vec<_> = xs.iter().map(|&x| pairs(&[("tokens", x)])).collect();
        let refs: Vec<_> = ranks.iter().map(|r| Some(&r[..])).collect();
        let (out, _) = stats_over_ranks(&refs);
        let mean = xs.iter().sum::<f64>() / 6.0;
        let exact = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
        let std = value(&out, "tokens/std");
        assert!((std - exact).abs() / exact < 1e-6, "{std} vs {exact}");
    }
}
