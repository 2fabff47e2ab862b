//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `ezpz-tracker`.
///
/// Only [`TrackerBuilder::build`](crate::TrackerBuilder::build),
/// [`Tracker::flush`](crate::Tracker::flush) and [`Tracker::finish`](crate::Tracker::finish)
/// return it to the caller; the logging calls never fail (backend errors become one warning
/// per cause).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be created, read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we were doing ("cannot create directory", "cannot write", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A backend name that no constructor is registered for.
    #[error("unknown tracker backend `{name}` (registered: {registered})")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// A value or configuration the user gave is not acceptable.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which setting or input.
        what: &'static str,
        /// Why, and what to do.
        message: String,
    },
    /// A backend reported a failure (remote server answers, encoding, ...).
    #[error("{backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What happened, phrased for the user.
        message: String,
    },
    /// A flush or finish did not complete within its time cap.
    #[error("{backend}: {operation} did not complete within {seconds:.1} s")]
    Timeout {
        /// The backend's name.
        backend: String,
        /// `flush` or `finish`.
        operation: &'static str,
        /// The cap that expired.
        seconds: f64,
    },
    /// The output directory already holds a run, and appending to it was not asked for.
    #[error(
        "`{path}` already holds a run (it has `{found}`): to append to that run, call \
         `TrackerBuilder::resume(true)` or set EZPZ_RESUME=1; otherwise choose another outdir \
         (or none, for a fresh one under `outputs/`)"
    )]
    RunExists {
        /// The output directory.
        path: PathBuf,
        /// The file that shows the run (`metrics.csv`, `config.json`, …).
        found: String,
    },
    /// Another process is writing the run in the output directory (it holds the directory's
    /// `ezpz.lock`), so this one may not append to it.
    #[error(
        "`{path}` is being written by another run ({holder}); if that run is no longer \
         running, delete `{path}/ezpz.lock` and try again"
    )]
    RunInUse {
        /// The output directory.
        path: PathBuf,
        /// Who holds the lock (pid, host, since when).
        holder: String,
    },
    /// [`Tracker::finish`](crate::Tracker::finish) ended, but not everything did: the run's
    /// summary, and what went wrong (the message is the inner error's).
    #[error("{error}")]
    Finish {
        /// What the run did, as [`Tracker::finish`](crate::Tracker::finish) returns it on
        /// success.
        summary: Box<crate::Summary>,
        /// What did not complete.
        error: Box<Error>,
    },
    /// Several backends failed; each error is listed.
    #[error("{} backend(s) failed: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<Error>),
}

impl Error {
    /// An I/O error with the path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A backend failure with a message for the user.
    pub fn backend(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Backend {
            backend: backend.into(),
            message: message.into(),
        }
    }

    /// The run's summary, when this error comes from a finish that did not fully complete.
    pub fn summary(&self) -> Option<&crate::Summary> {
        match self {
            Error::Finish { summary, .. } => Some(summary),
            _ => None,
        }
    }

    /// Combines errors: none → `Ok`, one → itself, several → [`Error::Multiple`].
    pub fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Multiple(errors)),
        }
    }
}

/// A copy: an I/O error keeps its kind and message (`std::io::Error` is not `Clone`).
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => Error::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::UnknownBackend { name, registered } => Error::UnknownBackend {
                name: name.clone(),
                registered: registered.clone(),
            },
            Error::Invalid { what, message } => Error::Invalid {
                what,
                message: message.clone(),
            },
            Error::Backend { backend, message } => Error::Backend {
                backend: backend.clone(),
                message: message.clone(),
            },
            Error::RunExists { path, found } => Error::RunExists {
                path: path.clone(),
                found: found.clone(),
            },
            Error::RunInUse { path, holder } => Error::RunInUse {
                path: path.clone(),
                holder: holder.clone(),
            },
            Error::Timeout {
                backend,
                operation,
                seconds,
            } => Error::Timeout {
                backend: backend.clone(),
                operation,
                seconds: *seconds,
            },
            Error::Finish { summary, error } => Error::Finish {
                summary: summary.clone(),
                error: error.clone(),
            },
            Error::Multiple(errors) => Error::Multiple(errors.clone()),
        }
    }
}

/// A caught panic's message, when it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
