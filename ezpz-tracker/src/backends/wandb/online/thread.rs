//! The online run on its own thread (`ezpz-wandb-tx`), so no network call can hold up the
//! local `.wandb` log.
//!
//! The backend's worker writes every row to the log first, then hands a copy of the line to
//! this thread over a channel and returns: it never waits for the server. The thread connects,
//! streams and uploads at its own pace ([`OnlineRun`]); a server that hangs only makes the
//! channel grow, up to [`MAX_QUEUED_BYTES`], after which streaming stops and the complete
//! log is left for `wandb sync`. `finish` waits for the thread at most until its deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Endpoint, OnlineRun};
use crate::backends::wandb::run::RunIdent;

/// Bytes of lines handed to the thread but not yet taken by it, before streaming gives up.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How often the thread makes progress when nothing arrives.
const PUMP_EVERY: Duration = Duration::from_millis(200);

enum Msg {
    Line(String),
    Summary(String),
    Config(String),
    Upload(Vec<String>),
    Finish {
        exit_code: i32,
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
}

/// What the thread last said about the run.
#[derive(Debug, Clone, Default)]
struct Status {
    lost: Option<String>,
    url: Option<String>,
    complete: bool,
    resumed_lines: Option<u64>,
    /// The server answered the run's creation (or streaming was given up).
    settled: bool,
}

#[derive(Debug, Default)]
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The backend's side of an online run: cheap, non-blocking calls.
#[derive(Debug)]
pub struct OnlineHandle {
    tx: Option<Sender<Msg>>,
    queued: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    /// Why streaming stopped on this side (queue overflow, no thread).
    lost: Option<String>,
    thread: Option<JoinHandle<()>>,
}

impl OnlineHandle {
    /// Starts the thread; it connects at once (never in the caller).
    pub fn start(endpoint: Endpoint, ident: RunIdent, files_dir: std::path::PathBuf) -> Self {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared::default());
        let run = OnlineRun::new(endpoint, ident, files_dir);
        let (q, s) = (queued.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("ezpz-wandb-tx".into())
            .spawn(move || serve(run, rx, &q, &s));
        let (tx, thread, lost) = match spawned {
            Ok(t) => (Some(tx), Some(t), None),
            Err(e) => (
                None,
                None,
                Some(format!("cannot start the streaming thread: {e}")),
            ),
        };
        OnlineHandle {
            tx,
            queued,
            shared,
            lost,
            thread,
        }
    }

    fn send(&mut self, msg: Msg, bytes: usize) {
        let Some(tx) = &self.tx else { return };
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if queued > MAX_QUEUED_BYTES {
            self.give_up(format!(
                "more than {} MiB of history waited for the server",
                MAX_QUEUED_BYTES >> 20
            ));
        } else if tx.send(msg).is_err() {
            self.give_up("the streaming thread stopped".into());
        }
    }

    fn give_up(&mut self, why: String) {
        self.lost.get_or_insert(why);
        // The thread drains what it has, sees the channel closed, and ends.
        self.tx = None;
    }

    /// Queues a history line (already in the log).
    pub fn push_line(&mut self, line: String) {
        let n = line.len();
        self.send(Msg::Line(line), n);
    }

    /// Sets the summary to send next (the whole object).
    pub fn set_summary(&mut self, summary: String) {
        let n = summary.len();
        self.send(Msg::Summary(summary), n);
    }

    /// Sets the full configuration (W&B's `{"key": {"value": v}}` JSON string).
    pub fn set_config(&mut self, config: String) {
        let n = config.len();
        self.send(Msg::Config(config), n);
    }

    /// Queues files (relative to the run's `files/`) for upload.
    pub fn upload(&mut self, files: &[String]) {
        if !files.is_empty() {
            self.send(Msg::Upload(files.to_vec()), 0);
        }
    }

    /// Why streaming stopped, if it did.
    pub fn lost(&self) -> Option<String> {
        self.lost
            .clone()
            .or_else(|| lock(&self.shared.status).lost.clone())
    }

    /// Whether the server acknowledged the end of the run.
    pub fn is_complete(&self) -> bool {
        lock(&self.shared.status).complete
    }

    /// Where a person can see the run, once the server answered.
    pub fn url(&self) -> Option<String> {
        lock(&self.shared.status).url.clone()
    }

    /// History lines the server had before this run wrote any (a resumed run), once known.
    pub fn resumed_lines(&self) -> Option<u64> {
        lock(&self.shared.status).resumed_lines
    }

    /// Waits until the server answered the run's creation (or streaming stopped), at most
    /// `timeout`; for a resumed run, whose steps continue after the server's.
    pub fn wait_settled(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.shared.status);
        while !status.settled && self.lost.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            status = self
                .shared
                .changed
                .wait_timeout(status, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Delivers everything and ends the run on the server, waiting at most until `deadline`
    /// (then streaming stops: the log holds everything).
    ///
    /// # Errors
    /// Why the run could not be completed.
    pub fn finish(&mut self, exit_code: i32, deadline: Instant) -> Result<(), String> {
        if let Some(why) = self.lost() {
            return Err(why);
        }
        let (reply, answer) = mpsc::channel();
        self.send(
            Msg::Finish {
                exit_code,
                deadline,
                reply,
            },
            0,
        );
        self.tx = None;
        // The thread stops sending at `deadline`; a request in flight then may take a
        // moment to be abandoned.
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        match answer.recv_timeout(wait) {
            Ok(result) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                result
            }
            Err(_) => {
                let why = self
                    .lost()
                    .unwrap_or_else(|| "the time allowed to finish ran out".into());
                self.lost.get_or_insert(why.clone());
                Err(why)
            }
        }
    }
}

/// The thread: takes what arrives, makes progress, publishes its status.
fn serve(mut run: OnlineRun, rx: Receiver<Msg>, queued: &AtomicUsize, shared: &Shared) {
    loop {
        let first = match rx.recv_timeout(PUMP_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut next = first;
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Line(line) => {
                    queued.fetch_sub(line.len(), Ordering::Relaxed);
                    run.push_line(line);
                }
                Msg::Summary(s) => {
                    queued.fetch_sub(s.len(), Ordering::Relaxed);
                    run.set_summary(s);
                }
                Msg::Config(c) => {
                    queued.fetch_sub(c.len(), Ordering::Relaxed);
                    run.set_config(c);
                }
                Msg::Upload(files) => run.upload(&files),
                Msg::Finish {
                    exit_code,
                    deadline,
                    reply,
                } => {
                    let result = run.finish(exit_code, deadline);
                    publish(&run, shared);
                    let _ = reply.send(result);
                    return;
                }
            }
        }
        run.pump();
        publish(&run, shared);
    }
}

fn publish(run: &OnlineRun, shared: &Shared) {
    let lost = run.lost().map(str::to_string);
    let url = run.url();
    let mut status = lock(&shared.status);
    status.settled = url.is_some() || lost.is_some();
    status.lost = lost;
    status.url = url;
    status.complete = run.is_complete();
    status.resumed_lines = run.resumed_lines();
    drop(status);
    shared.changed.notify_all();
}
