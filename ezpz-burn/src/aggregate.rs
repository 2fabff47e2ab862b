//! burn's epoch value of a metric from its entries, kept as a running sum.

use burn::train::metric::NumericEntry;

/// What burn's `NumericMetricsAggregate` (burn-train `src/metric/store/aggregate.rs`) makes of
/// a list of entries, without keeping the list: when the last entry is `Final` that value,
/// otherwise `Σ value·count / Σ count` (a `Value` counts once). The sum is taken in arrival
/// order, as burn takes it, so the mean is bit for bit the one burn computes from the list.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct EntryMean {
    sum: f64,
    count: usize,
    last_final: Option<f64>,
}

impl EntryMean {
    /// Adds one entry.
    pub(crate) fn push(&mut self, entry: &NumericEntry) {
        match *entry {
            NumericEntry::Value(v) => self.add(v, 1),
            NumericEntry::Aggregated {
                aggregated_value,
                count,
            } => self.add(aggregated_value * count as f64, count),
            NumericEntry::Final(v) => self.last_final = Some(v),
        }
    }

    fn add(&mut self, sum: f64, count: usize) {
        self.sum += sum;
        self.count += count;
        // A later batch entry means the previous `Final` is not the last entry any more.
        self.last_final = None;
    }

    /// The value burn would compute; `None` when nothing was pushed.
    pub(crate) fn value(&self) -> Option<f64> {
        match self.last_final {
            Some(v) => Some(v),
            None if self.count > 0 => Some(self.sum / self.count as f64),
            None => None,
        }
    }

    /// The shortest entry list from which burn computes the same [`value`](Self::value):
    /// `[Final(v)]`, `[Value(mean)]`, or nothing.
    pub(crate) fn entries(&self) -> Vec<NumericEntry> {
        match (self.last_final, self.value()) {
            (Some(v), _) => vec![NumericEntry::Final(v)],
            (None, Some(mean)) => vec![NumericEntry::Value(mean)],
            (None, None) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// burn's own computation over the whole list (burn-train `aggregate.rs`).
    fn burn_value(entries: &[NumericEntry]) -> Option<f64> {
        if let Some(NumericEntry::Final(v)) = entries.last() {
            return Some(*v);
        }
        let (sum, n) = entries
            .iter()
            .map(|e| match *e {
                NumericEntry::Value(v) => (v, 1),
                NumericEntry::Aggregated {
                    aggregated_value,
                    count,
                } => (aggregated_value * count as f64, count),
                NumericEntry::Final(_) => unreachable!(),
            })
            .reduce(|(a, n), (b, m)| (a + b, n + m))?;
        Some(sum / n as f64)
    }

    fn check(entries: &[NumericEntry]) {
        let mut mean = EntryMean::default();
        entries.iter().for_each(|e| mean.push(e));
        assert_eq!(mean.value(), burn_value(entries), "{entries:?}");
        assert_eq!(
            burn_value(&mean.entries()),
            burn_value(entries),
            "{entries:?}"
        );
    }

    #[test]
    fn answers_exactly_what_burn_computes_from_the_whole_list() {
        let agg = |v: f64, count| NumericEntry::Aggregated {
            aggregated_value: v,
            count,
        };
        check(&[agg(0.1, 8), agg(0.7, 8), agg(0.3, 5)]);
        check(&[
            NumericEntry::Value(0.1),
            NumericEntry::Value(0.25),
            agg(1.0 / 3.0, 3),
        ]);
        check(&[agg(0.1, 8), agg(0.2, 8), NumericEntry::Final(0.15)]);
        check(&[NumericEntry::Final(0.9)]);
        check(&[]);
    }
}
