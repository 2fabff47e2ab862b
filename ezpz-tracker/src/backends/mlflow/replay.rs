//! `ezpz sync` for MLflow: delivers a spool left behind into the run it belongs to.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::{strip_userinfo, Credentials, Tls};
use super::backend::request_timeout;
use super::client::RestClient;
use super::run::{end_body, RunMeta};
use super::sender::{hurried_backoff, lock, Delivery, Refused, Step, OP_END};
use crate::backend::RunStatus;
use crate::env::{self, var};
use crate::spool::Spool;
use crate::spool_replay::{SyncOptions, SyncReport};
use crate::{Error, Result};

/// Replays the spool in `dir`. A spool without a final status belongs to a process that was
/// killed: the run is marked `KILLED` after its data arrived.
///
/// # Errors
/// Another live process writes the spool, or it cannot be read.
pub(crate) fn replay(dir: &Path, options: &SyncOptions) -> Result<SyncReport> {
    if let Some(owner) = Spool::live_owner(dir).filter(|_| !options.force) {
        let elsewhere = owner
            .host
            .as_deref()
            .is_some_and(|h| h != crate::env::hostname());
        return Err(Error::Invalid {
            what: "spool",
            message: if elsewhere {
                format!(
                    "`{}` belongs to {}, which may still be writing it (this host cannot tell); \
                     run `ezpz sync` after that job ended, or add `--force` if it has",
                    dir.display(),
                    owner
                )
            } else {
                format!(
                    "{owner} is still writing `{}`; run `ezpz sync` after it exits",
                    dir.display()
                )
            },
        });
    }
    env::load_dotenv();
    let meta: RunMeta = Spool::read_meta(dir)?;
    // The spool keeps the URI without credentials; the environment's may carry them.
    let uri = options
        .tracking_uri
        .clone()
        .or_else(|| {
            var(env::MLFLOW_TRACKING_URI)
                .filter(|u| strip_userinfo(u).trim_end_matches('/') == meta.tracking_uri)
        })
        .unwrap_or_else(|| meta.tracking_uri.clone());
    let client = RestClient::new(
        &uri,
        Credentials::from_env(),
        &Tls::from_env(),
        request_timeout().min(options.timeout.max(Duration::from_secs(1))),
    )?;
    let mut spool = Spool::open(dir)?;
    spool.claim()?;
    if spool.unacked() > 0 && !has_end(&mut spool)? {
        let now = chrono::Utc::now().timestamp_millis();
        spool.append(OP_END, &end_body(RunStatus::Killed, now))?;
        spool.sync()?;
    }
    spool.rewind();
    let spool = Arc::new(Mutex::new(spool));
    let refused = Refused::default();
    let mut delivery = Delivery::new(client, meta, spool.clone(), refused.clone(), false);
    delivery.hurry();
    // `checked_add`: an absurd `--timeout` means "no limit", not a panic.
    let now = Instant::now();
    let deadline = now
        .checked_add(options.timeout)
        .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
    let mut backoff = hurried_backoff();
    loop {
        match delivery.step(&mut backoff) {
            Step::Progress => {}
            Step::Idle => break,
            Step::Wait(delay) | Step::Pending(delay) => {
                if Instant::now() + delay > deadline {
                    break;
                }
                std::thread::sleep(delay);
            }
        }
    }
    let remaining = lock(&spool).unacked();
    let report = SyncReport {
        backend: "mlflow".into(),
        spool: dir.to_path_buf(),
        run_url: delivery.meta().url(),
        delivered: delivery.delivered,
        remaining,
        last_failure: (remaining > 0)
            .then(|| delivery.last_failure.clone())
            .flatten(),
        refused: lock(&refused).clone(),
    };
    if remaining == 0 {
        drop(delivery);
        drop(spool);
        Spool::remove_dir(dir)?;
    } else {
        lock(&spool).release();
    }
    Ok(report)
}

/// Whether the unacknowledged entries include the final status.
fn has_end(spool: &mut Spool) -> Result<bool> {
    spool.rewind();
    let mut found = false;
    while let Some(entry) = spool.next_entry()? {
        found |= entry.op == OP_END;
    }
    spool.rewind();
    Ok(found)
}
