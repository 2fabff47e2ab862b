//! Watch rows waiting for the recorder to reach their step.

use std::collections::VecDeque;
use std::sync::Mutex;

use ezpz_tracker::{HistogramBins, Metric};

/// Most rows held back; past it a watch logs directly (the recorder is far behind).
const MAX_QUEUED: usize = 1024;

/// One logged watch step, computed on the training thread.
#[derive(Debug)]
pub(crate) struct WatchRow {
    pub step: u64,
    pub metrics: Vec<Metric>,
    /// Histograms binned on the device.
    pub histograms: Vec<(String, HistogramBins)>,
}

/// A [`Watch`](crate::Watch) runs in `TrainStep::optimize`, ahead of burn's event thread on
/// which the recorder writes the batch rows. Rows handed over here are written by the
/// recorder when it reaches their step, in the same row as that step's batch metrics, so
/// every backend sees steps in order.
#[derive(Debug, Default)]
pub(crate) struct WatchQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    closed: bool,
    rows: VecDeque<WatchRow>,
}

impl WatchQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `row`; gives it back when the queue is closed or full (then the caller logs it).
    pub(crate) fn push(&self, row: WatchRow) -> Result<(), WatchRow> {
        let mut state = self.state();
        if state.closed || state.rows.len() >= MAX_QUEUED {
            return Err(row);
        }
        state.rows.push_back(row);
        Ok(())
    }

    /// The queued rows up to and including `step`, in order.
    pub(crate) fn take_through(&self, step: u64) -> Vec<WatchRow> {
        let mut state = self.state();
        let n = state.rows.iter().take_while(|r| r.step <= step).count();
        state.rows.drain(..n).collect()
    }

    /// Everything still queued; later pushes are refused.
    pub(crate) fn close(&self) -> Vec<WatchRow> {
        let mut state = self.state();
        state.closed = true;
        state.rows.drain(..).collect()
    }
}
