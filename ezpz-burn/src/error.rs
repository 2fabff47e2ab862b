//! The crate's error type.

/// What can go wrong in `ezpz-burn`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading tensors back from the device failed (the device reported an error, e.g. after
    /// running out of memory).
    #[error("reading tensors back from the device failed: {0}")]
    Readback(String),
    /// Data parallelism: ranks built different models, so their parameters cannot be
    /// exchanged (every rank gets this error, so all stop together).
    #[error(
        "rank {rank}'s model has {params} parameter tensors with {elements} values in all, \
         rank 0's has {params0} with {elements0} (or the shapes differ): build the same \
         model on every rank"
    )]
    ModelMismatch {
        /// The first rank that differs from rank 0.
        rank: usize,
        /// Its parameter tensor count.
        params: usize,
        /// Its parameter value count.
        elements: usize,
        /// Rank 0's parameter tensor count.
        params0: usize,
        /// Rank 0's parameter value count.
        elements0: usize,
    },
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
