//! The logger's own record of numeric entries, so `read_numeric` needs no files.

use std::collections::{BTreeMap, HashMap};

use burn::train::metric::store::Split;
use burn::train::metric::NumericEntry;

/// Every numeric entry received, by split, metric name and epoch, as burn's
/// `FileMetricLogger` would have written them (per-batch entries, then the epoch's
/// `Final` entry): burn's aggregation reads them back the same way from either logger.
#[derive(Debug, Default)]
pub(crate) struct History {
    series: HashMap<(Split, String), BTreeMap<usize, Vec<NumericEntry>>>,
}

impl History {
    pub(crate) fn push(&mut self, split: &Split, name: &str, epoch: usize, entry: NumericEntry) {
        self.series
            .entry((split.clone(), name.to_string()))
            .or_default()
            .entry(epoch)
            .or_default()
            .push(entry);
    }

    /// The entries of one epoch; empty when nothing was logged (burn reads that as "no such
    /// epoch", which ends its scan over epochs).
    pub(crate) fn read(&self, split: &Split, name: &str, epoch: usize) -> Vec<NumericEntry> {
        self.series
            .get(&(split.clone(), name.to_string()))
            .and_then(|epochs| epochs.get(&epoch))
            .cloned()
            .unwrap_or_default()
    }
}
