//! Test doubles beside the shipped `MemoryBackend`: a backend that always fails, one that
//! panics, one that is slow, and one that blocks until released.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ezpz_tracker::{Backend, Error, Record, Result, RunStatus};

/// Fails every call with the same message.
pub struct FailingBackend;

impl Backend for FailingBackend {
    fn name(&self) -> &str {
        "failing"
    }
    fn log(&mut self, _r: &Record) -> Result<()> {
        Err(Error::backend("failing", "disk on fire"))
    }
    fn log_config(&mut self, _c: &serde_json::Value) -> Result<()> {
        Err(Error::backend("failing", "disk on fire"))
    }
    fn finish(&mut self, _s: RunStatus) -> Result<()> {
        Err(Error::backend("failing", "cannot finish"))
    }
}

/// Panics on the first log.
pub struct PanickingBackend;

impl Backend for PanickingBackend {
    fn name(&self) -> &str {
        "panicking"
    }
    fn log(&mut self, _r: &Record) -> Result<()> {
        panic!("bug in a custom backend")
    }
    fn log_config(&mut self, _c: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _s: RunStatus) -> Result<()> {
        Ok(())
    }
}

/// Sleeps on every log; counts what it received.
pub struct SlowBackend {
    pub delay: Duration,
    pub received: Arc<AtomicUsize>,
}

impl Backend for SlowBackend {
    fn name(&self) -> &str {
        "slow"
    }
    fn log(&mut self, _r: &Record) -> Result<()> {
        std::thread::sleep(self.delay);
        self.received.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn log_config(&mut self, _c: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _s: RunStatus) -> Result<()> {
        Ok(())
    }
}

/// A gate a [`BlockedBackend`] waits on until `open` is called.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }
}

/// Blocks every log until its gate opens; counts what it received.
pub struct BlockedBackend {
    pub gate: Gate,
    pub received: Arc<AtomicUsize>,
}

impl Backend for BlockedBackend {
    fn name(&self) -> &str {
        "blocked"
    }
    fn log(&mut self, _r: &Record) -> Result<()> {
        self.gate.wait();
        self.received.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn log_config(&mut self, _c: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _s: RunStatus) -> Result<()> {
        Ok(())
    }
}

/// Names of this process's threads (Linux), to prove what runs.
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| {
                let p = e.ok()?.path().join("comm");
                Some(std::fs::read_to_string(p).ok()?.trim().to_string())
            })
            .collect()
        })
        .unwrap_or_default()
}
