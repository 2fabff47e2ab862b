//! Rank 0's side of the rounds: pairs each of its own rows with the other ranks' rows of the
//! same step and key set, whatever order the ranks logged them in, and computes the
//! aggregates.
//!
//! A row nobody else matches is not waited for forever: after [`Matcher::new`]'s
//! `unmatched_after`, or when every rank has finished, it is aggregated over the ranks that
//! have a row at that step sharing a key with it (the ranks logged different keys), and rank
//! 0 warns once. Rows of other ranks that no row of rank 0 ever claims are dropped with one
//! warning.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::names::KeyTable;
use super::stats::Stats;
use super::wire::{self, key_set_hash, stats_over_ranks, WireRow};
use crate::value::{Metric, Value};

type Pairs = Vec<(Arc<str>, f64)>;

struct Own {
    id: u64,
    step: u64,
    hash: u64,
    pairs: Pairs,
    since: Instant,
}

struct Arrived {
    pairs: Pairs,
    since: Instant,
}

/// Matches rank 0's rows with the other ranks' (see the module docs).
pub(crate) struct Matcher {
    world: usize,
    unmatched_after: Duration,
    own: VecDeque<Own>,
    /// Other ranks' unclaimed rows by (step, key-set hash): one queue per rank (index = rank;
    /// index 0 unused), oldest first.
    others: HashMap<(u64, u64), Vec<VecDeque<Arrived>>>,
    warned_mismatch: bool,
    warned_orphans: bool,
    keys: KeyTable,
    /// Scratch for one key's values across ranks.
    values: Vec<f64>,
}

impl Matcher {
    pub(crate) fn new(world: usize, unmatched_after: Duration) -> Matcher {
        Matcher {
            world,
            unmatched_after,
            own: VecDeque::new(),
            others: HashMap::new(),
            warned_mismatch: false,
            warned_orphans: false,
            keys: KeyTable::default(),
            values: Vec::new(),
        }
    }

    /// The shared allocation for a key arriving from another rank.
    pub(crate) fn intern(&mut self, key: &str) -> Arc<str> {
        self.keys.intern(key)
    }

    /// Aggregates of rows whose keys are the same, in the same order, on every rank (the
    /// common case); `None` otherwise.
    fn same_order_stats(&mut self, per_rank: &[Option<&wire::Pairs>]) -> Option<Vec<Metric>> {
        let first = per_rank.first().copied().flatten()?;
        let same = per_rank.iter().all(|p| {
            p.is_some_and(|p| {
                p.len() == first.len() && p.iter().zip(first).all(|(a, b)| a.0 == b.0)
            })
        });
        if !same {
            return None;
        }
        let mut out = Vec::with_capacity(first.len() * 4);
        for (i, (key, _)) in first.iter().enumerate() {
            self.values.clear();
            self.values
                .extend(per_rank.iter().flatten().map(|pairs| pairs[i].1));
            let s = Stats::of(&self.values);
            let names = self.keys.aggregate_names(key);
            out.extend(
                names
                    .into_iter()
                    .zip([s.mean, s.min, s.max, s.std].map(Value::F64)),
            );
        }
        Some(out)
    }

    /// One of rank 0's rows (`pairs` not empty), identified by `id`.
    pub(crate) fn own(&mut self, id: u64, step: u64, pairs: Pairs, now: Instant) {
        let hash = key_set_hash(&pairs);
        self.own.push_back(Own {
            id,
            step,
            hash,
            pairs,
            since: now,
        });
    }

    /// A row of rank `rank` (≥ 1).
    pub(crate) fn arrived(&mut self, rank: usize, row: WireRow, now: Instant) {
        if rank == 0 || rank >= self.world {
            return;
        }
        let world = self.world;
        self.others
            .entry((row.step, key_set_hash(&row.pairs)))
            .or_insert_with(|| (0..world).map(|_| VecDeque::new()).collect())[rank]
            .push_back(Arrived {
                pairs: row.pairs,
                since: now,
            });
    }

    /// Whether rank 0 has rows still waiting for their match.
    pub(crate) fn has_pending(&self) -> bool {
        !self.own.is_empty()
    }

    /// The rows that can be aggregated now, as `(id, aggregates)`: every row matched on all
    /// ranks; also, once `final` (every rank has finished) or after `unmatched_after`, the
    /// rows that will never be, over the ranks that have something like them.
    pub(crate) fn resolve(&mut self, now: Instant, last: bool) -> Vec<(u64, Vec<Metric>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.own.len() {
            let own = &self.own[i];
            let key = (own.step, own.hash);
            let complete = self
                .others
                .get(&key)
                .is_some_and(|q| q.iter().skip(1).all(|r| !r.is_empty()));
            let overdue = last || now.duration_since(own.since) >= self.unmatched_after;
            if !complete && !overdue {
                i += 1;
                continue;
            }
            let own = self.own.remove(i).expect("index in range");
            let theirs: Vec<Option<Pairs>> = (1..self.world)
                .map(|rank| self.take_match(rank, &own))
                .collect();
            let per_rank: Vec<Option<&wire::Pairs>> = std::iter::once(Some(&own.pairs[..]))
                .chain(theirs.iter().map(|p| p.as_deref()))
                .collect();
            let (aggregates, difference) = match self.same_order_stats(&per_rank) {
                Some(aggregates) => (aggregates, None),
                None => stats_over_ranks(&per_rank),
            };
            if let Some(difference) = difference {
                if !std::mem::replace(&mut self.warned_mismatch, true) {
                    crate::warn!(
                        "ezpz: ranks logged different metric keys at step {} ({difference}); \
                         aggregating each key over the ranks that logged it (warned once)",
                        own.step
                    );
                }
            }
            out.push((own.id, aggregates));
        }
        self.drop_orphans(now, last);
        out
    }

    /// Rank `rank`'s row for `own`: the same key set at the same step, else (a mismatch) its
    /// oldest row at that step sharing the most keys with it.
    fn take_match(&mut self, rank: usize, own: &Own) -> Option<Pairs> {
        let exact = (own.step, own.hash);
        let key = if self.others.get(&exact).is_some_and(|q| !q[rank].is_empty()) {
            exact
        } else {
            let overlap = |pairs: &Pairs| {
                pairs
                    .iter()
                    .filter(|(k, _)| own.pairs.iter().any(|(o, _)| o == k))
                    .count()
            };
            self.others
                .iter()
                .filter(|(&(step, _), q)| step == own.step && !q[rank].is_empty())
                .map(|(&key, q)| (overlap(&q[rank][0].pairs), key))
                .filter(|&(n, _)| n > 0)
                .max()?
                .1
        };
        let queues = self.others.get_mut(&key)?;
        let pairs = queues[rank].pop_front()?.pairs;
        if queues.iter().all(VecDeque::is_empty) {
            self.others.remove(&key);
        }
        Some(pairs)
    }

    /// Drops other ranks' rows no row of rank 0 will claim: all of them once `last`, else
    /// those twice as old as `unmatched_after`.
    fn drop_orphans(&mut self, now: Instant, last: bool) {
        let limit = self.unmatched_after * 2;
        let mut dropped: Vec<(usize, u64)> = Vec::new();
        self.others.retain(|&(step, _), queues| {
            for (rank, q) in queues.iter_mut().enumerate() {
                while q
                    .front()
                    .is_some_and(|a| last || now.duration_since(a.since) >= limit)
                {
                    q.pop_front();
                    dropped.push((rank, step));
                }
            }
            queues.iter().any(|q| !q.is_empty())
        });
        if let Some(&(rank, step)) = dropped.first() {
            if !std::mem::replace(&mut self.warned_orphans, true) {
                crate::warn!(
                    "ezpz: {} row(s) logged on other ranks had no row of rank 0 at the same \
                     step with a common key (first: rank {rank}, step {step}); their \
                     aggregates are dropped (warned once)",
                    dropped.len()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn pairs(items: &[(&str, f64)]) -> Pairs {
        items.iter().map(|(k, v)| (Arc::from(*k), *v)).collect()
    }

    fn row(step: u64, items: &[(&str, f64)]) -> WireRow {
        WireRow {
            step,
            pairs: pairs(items),
        }
    }

    fn value(metrics: &[Metric], key: &str) -> f64 {
        match metrics.iter().find(|(k, _)| &**k == key) {
            Some((_, Value::F64(v))) => *v,
            other => panic!("{key}: {other:?}"),
        }
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn rows_match_by_step_and_key_set_in_any_arrival_order() {
        let now = Instant::now();
        let mut m = Matcher::new(3, LONG);
        // Rank 0: the watch row, then the loss row, of step 5. Rank 1 logged them the other
        // way round; rank 2 sends the loss row now and the watch row later.
        m.own(1, 5, pairs(&[("grad", 1.0)]), now);
        m.own(2, 5, pairs(&[("loss", 10.0), ("lr", 0.1)]), now);
        m.arrived(1, row(5, &[("lr", 0.1), ("loss", 11.0)]), now);
        m.arrived(1, row(5, &[("grad", 2.0)]), now);
        m.arrived(2, row(5, &[("loss", 12.0), ("lr", 0.1)]), now);
        let done = m.resolve(now, false);
        assert_eq!(done.len(), 1, "only the loss row is complete");
        assert_eq!(done[0].0, 2);
        assert_eq!(value(&done[0].1, "loss/mean"), 11.0);
        assert_eq!(value(&done[0].1, "lr/std"), 0.0);
        assert!(m.has_pending());
        m.arrived(2, row(5, &[("grad", 3.0)]), now);
        let done = m.resolve(now, false);
        assert_eq!(done[0].0, 1);
        assert_eq!(value(&done[0].1, "grad/max"), 3.0);
        assert!(!m.has_pending());
        assert!(m.others.is_empty());
    }

    #[test]
    fn repeated_rows_of_one_step_match_in_order() {
        let now = Instant::now();
        let mut m = Matcher::new(2, LONG);
        m.arrived(1, row(0, &[("x", 10.0)]), now);
        m.arrived(1, row(0, &[("x", 20.0)]), now);
        m.own(7, 0, pairs(&[("x", 0.0)]), now);
        m.own(8, 0, pairs(&[("x", 0.0)]), now);
        let done = m.resolve(now, false);
        assert_eq!(value(&done[0].1, "x/max"), 10.0);
        assert_eq!(value(&done[1].1, "x/max"), 20.0);
    }

    #[test]
    fn different_keys_are_matched_at_the_end_by_overlap() {
        let now = Instant::now();
        let mut m = Matcher::new(3, LONG);
        m.own(0, 1, pairs(&[("loss", 1.0)]), now);
        m.arrived(1, row(1, &[("loss", 2.0), ("extra", 1.0)]), now);
        m.arrived(2, row(1, &[("loss", 3.0)]), now);
        m.arrived(2, row(1, &[("other", 3.0)]), now);
        assert!(m.resolve(now, false).is_empty(), "rank 1 may still send it");
        let done = m.resolve(now, true);
        assert_eq!(value(&done[0].1, "loss/mean"), 2.0);
        assert_eq!(value(&done[0].1, "extra/mean"), 1.0);
        assert!(done[0].1.iter().all(|(k, _)| !k.starts_with("other")));
        assert!(
            m.others.is_empty(),
            "the unclaimed row is dropped at the end"
        );
    }

    #[test]
    fn an_unmatched_row_is_resolved_after_the_wait_and_orphans_go_later() {
        let t0 = Instant::now();
        let wait = Duration::from_secs(10);
        let mut m = Matcher::new(2, wait);
        m.own(0, 3, pairs(&[("loss", 1.0)]), t0);
        m.arrived(1, row(4, &[("loss", 2.0)]), t0);
        assert!(m.resolve(t0 + wait / 2, false).is_empty());
        let done = m.resolve(t0 + wait, false);
        assert_eq!(value(&done[0].1, "loss/mean"), 1.0, "rank 0 alone");
        assert_eq!(m.others.len(), 1);
        m.resolve(t0 + wait * 2, false);
        assert!(m.others.is_empty());
    }
}
