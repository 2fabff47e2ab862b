//! Retry policy for remote backends: which answers to retry, how long to wait (exponential
//! backoff with jitter, `Retry-After` honoured), without ever sleeping on the caller's thread.
//!
//! The policy is plain data: a backend asks [`Backoff::ready`] before trying and tells it the
//! outcome, so a worker keeps draining its queue while a server is down.

// The MLflow backend uses only part of the policy (it drives its own waits).
#![cfg_attr(not(feature = "wandb"), allow(dead_code))]

use std::time::{Duration, Instant, SystemTime};

/// What to do after an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// 2xx: done.
    Success,
    /// 408, 429, 5xx: try again later.
    Retry,
    /// Any other answer: trying again will not help.
    Fatal,
}

/// Classifies an HTTP status code alone. Only for servers whose error bodies carry no
/// meaning; MLflow answers are classified by content (`backends/mlflow/client.rs`).
pub(crate) fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Success,
        408 | 429 | 500..=599 => Class::Retry,
        _ => Class::Fatal,
    }
}

/// The longest wait a server's `Retry-After` can ask for; longer requests are cut to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Parses a `Retry-After` value: delta seconds, or an HTTP date (then relative to `now`).
/// Whatever the server sends, the result is at most [`MAX_RETRY_AFTER`]: a huge number or a
/// far-future date saturates (it never panics); a negative, `NaN` or unreadable value is
/// `None` (the caller's own backoff applies).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // `min` before converting: `Duration::from_secs_f64` panics beyond u64 seconds.
        return Some(Duration::from_secs_f64(
            secs.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = u64::try_from(at.timestamp()).ok()?;
    let wait = match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        None => MAX_RETRY_AFTER,
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A redirect policy that follows a redirect only within the origin (scheme, host, port) of
/// the request, at most ten times. Credentials are attached as headers by the caller, and
/// reqwest removes only `Authorization`/`Cookie` on a cross-host redirect (not `X-Api-Key`,
/// and not on a downgrade from https to http): so no redirect leaves the origin at all. The
/// redirect answer itself comes back to the caller, which retries and says why.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let next = attempt.url();
        let same = attempt.previous().first().is_some_and(|first| {
            first.scheme() == next.scheme()
                && first.host_str() == next.host_str()
                && first.port_or_known_default() == next.port_or_known_default()
        });
        if same && attempt.previous().len() <= 10 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Exponential backoff between attempts: `base · 2^n`, capped at `max`, each wait drawn in
/// `[½, 1]` of that (jitter, so many clients do not retry in step). A server's `Retry-After`
/// replaces the computed wait (capped at `max_retry_after`).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    max_retry_after: Duration,
    failures: u32,
    next_try: Option<Instant>,
    first_failure: Option<Instant>,
}

impl Backoff {
    /// A policy starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            max_retry_after: MAX_RETRY_AFTER,
            failures: 0,
            next_try: None,
            first_failure: None,
        }
    }

    /// Caps the server's `Retry-After` at `cap` (below [`MAX_RETRY_AFTER`]): shorter while
    /// finishing, when the deadline is nearer than what a server may ask for.
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap.min(MAX_RETRY_AFTER);
        self
    }

    /// Whether an attempt may be made now.
    pub fn ready(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|t| now >= t)
    }

    /// When the next attempt may be made (`None`: now).
    pub fn next_try(&self) -> Option<Instant> {
        self.next_try
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_try = None;
        self.first_failure = None;
    }

    /// Records a failure at `now`; returns the wait before the next attempt.
    pub fn failed(&mut self, now: Instant, retry_after: Option<Duration>) -> Duration {
        self.first_failure.get_or_insert(now);
        let exp = self
            .base
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(ra) => ra.min(self.max_retry_after),
            None => exp.mul_f64(0.5 + 0.5 * jitter()),
        };
        // `checked_add`: an `Instant` far in the future cannot be represented everywhere.
        self.next_try = Some(now.checked_add(wait).unwrap_or(now + self.max));
        wait
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long the attempts have been failing, as of `now` (zero after a success).
    pub fn failing_for(&self, now: Instant) -> Duration {
        self.first_failure
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }
}

/// A number in `[0, 1)` from the OS-seeded hasher (no RNG dependency for jitter).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(classify(200), Class::Success);
        assert_eq!(classify(204), Class::Success);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s), Class::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 409] {
            assert_eq!(classify(s), Class::Fatal, "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        // 2001-09-09T01:46:40Z is 1e9; ten seconds later:
        assert_eq!(
            parse_retry_after("Sun, 09 Sep 2001 01:46:50 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn absurd_retry_after_saturates_instead_of_panicking() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        for huge in ["1e20", "1e300", "18446744073709551616", "inf", "Infinity"] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(MAX_RETRY_AFTER),
                "{huge}"
            );
        }
        for junk in ["NaN", "nan", "-1", "-0.5", "-inf", ""] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        // In the past: no wait.
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let wait = b.failed(Instant::now(), parse_retry_after("1e20", now));
        assert_eq!(wait, MAX_RETRY_AFTER);
    }

    #[test]
    fn backoff_grows_caps_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert!(b.ready(t0));
        let waits: Vec<Duration> = (0..6).map(|_| b.failed(t0, None)).collect();
        for (i, w) in waits.iter().enumerate() {
            let full = Duration::from_secs(1 << i.min(3));
            assert!(*w >= full / 2 && *w <= full, "attempt {i}: {w:?}");
        }
        assert!(!b.ready(t0));
        assert_eq!(b.failures(), 6);
        assert_eq!(
            b.failed(t0, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failing_for(t0 + Duration::from_secs(5)), Duration::ZERO);
    }
}
