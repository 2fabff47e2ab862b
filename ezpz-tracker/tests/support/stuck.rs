//! A backend whose `log` never returns (a server that hangs on a blocking call), shared by the
//! fault tests and the latency bench.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ezpz_tracker::{Backend, Record, Result, RunStatus};

/// See the module docs; `entered` counts the calls that got stuck.
#[derive(Default)]
pub struct Stuck {
    pub entered: Arc<AtomicUsize>,
}

impl Backend for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn log(&mut self, _record: &Record) -> Result<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        loop {
            std::thread::park();
        }
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        Ok(())
    }
}
