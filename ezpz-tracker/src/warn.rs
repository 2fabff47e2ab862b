//! Warnings that reach a person: through `tracing` when the application installed a
//! subscriber, otherwise once per message on stderr, prefixed `ezpz:` (Python's logging does
//! the same with its last-resort handler; `tracing` alone would drop them silently).

use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Distinct messages printed on stderr before the rest are only counted (a bound on memory).
const MAX_REMEMBERED: usize = 4096;

/// Emits one ezpz warning (what [`warn!`](crate::warn) expands to).
///
/// With a `tracing` subscriber installed (globally or for the calling thread), the message goes
/// to it as a `WARN` event and nowhere else. Without one, it is written to stderr as
/// `ezpz: <message>`, once per distinct message for the life of the process.
pub fn warning(message: fmt::Arguments<'_>) {
    if has_subscriber() {
        tracing::warn!("{message}");
        return;
    }
    print_once(message);
}

/// The stderr route of [`warning`] (no subscriber): once per distinct message.
#[doc(hidden)]
pub fn print_once(message: fmt::Arguments<'_>) {
    let text = message.to_string();
    static PRINTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut printed = PRINTED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if printed.contains(&text) || printed.len() >= MAX_REMEMBERED {
        return;
    }
    let line = if text.starts_with("ezpz:") {
        format!("{text}\n")
    } else {
        format!("ezpz: {text}\n")
    };
    // One write call, so that lines from several threads do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    printed.insert(text);
}

/// Whether a `tracing` subscriber would receive an event from this thread.
#[doc(hidden)]
pub fn has_subscriber() -> bool {
    tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>())
}

/// Emits an ezpz warning with `format!` arguments: see [`warning`]. Through `tracing`, the
/// event's target is the calling module (so `RUST_LOG`-style filters by module work).
///
/// ```
/// ezpz_tracker::warn!("backend `{}` is slow", "csv");
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::warn::has_subscriber() {
            $crate::warn::__tracing::warn!($($arg)*)
        } else {
            $crate::warn::print_once(::std::format_args!($($arg)*))
        }
    };
}

#[doc(hidden)]
pub use tracing as __tracing;
