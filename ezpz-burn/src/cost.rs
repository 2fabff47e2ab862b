//! The CPU time ezpz spends on burn's threads: the recorder on burn's event thread and the
//! watch on the training thread (ezpz's own threads are named `ezpz-…`; a profiler or
//! `/proc/<pid>/task/*/stat` accounts for them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static HOOK_NANOS: AtomicU64 = AtomicU64::new(0);

/// The calling thread's CPU time so far (`None` where the platform does not say).
fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    None
}

/// Runs `f`, adding the CPU time it took on this thread to [`hook_cpu_time`].
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> R {
    let start = thread_cpu();
    let out = f();
    if let (Some(start), Some(end)) = (start, thread_cpu()) {
        let nanos = end.saturating_sub(start).as_nanos();
        HOOK_NANOS.fetch_add(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    out
}

/// CPU time spent so far, in this process, inside ezpz's hooks on burn's threads: the
/// renderer that feeds the tracker (on burn's event-processor thread) and
/// [`Watch::observe`](crate::Watch::observe) (on the training thread), tracker calls
/// included. Together with the CPU time of the threads named `ezpz-…` it is ezpz's share of a
/// training's CPU time (`scripts/bench-vit` reports it). Zero where the platform has no
/// per-thread CPU clock.
pub fn hook_cpu_time() -> Duration {
    Duration::from_nanos(HOOK_NANOS.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_work_adds_its_cpu_time() {
        let before = hook_cpu_time();
        let sum = timed(|| (0..2_000_000u64).fold(0u64, |a, x| a.wrapping_add(x * x)));
        assert!(sum > 0);
        if cfg!(unix) {
            assert!(hook_cpu_time() > before);
        }
    }
}
