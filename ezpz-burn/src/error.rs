//! The crate's error type.

/// What can go wrong in `ezpz-burn`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading tensors back from the device failed (the device reported an error, e.g. after
    /// running out of memory).
    #[error("reading tensors back from the device failed: {0}")]
    Readback(String),
    /// A device name that this build cannot open.
    #[error("unknown or unavailable device `{name}`: {hint}")]
    Device {
        /// The name asked for.
        name: String,
        /// What this build offers.
        hint: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
