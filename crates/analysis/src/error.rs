//! The one error type of the analysis layer.
//!
//! The analysis never sees DICOM, so its failures are few: a model that
//! cannot be loaded or run, an argument out of range, an output image that
//! cannot be encoded, and cancellation. `ct-triage-dicom`'s error (the one the
//! core re-exports) takes each of them over unchanged, with the same code.

/// Result alias used throughout the analysis layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the analysis, one variant per kind of failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model manifest, its weights or an inference failed.
    #[error("model: {0}")]
    Model(String),
    /// A parameter passed by the caller is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Writing an output object (an image) failed.
    #[error("output {what}: {message}")]
    Output {
        /// What was being written.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// The caller cancelled the run.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// A short machine-readable code for the variant (`model`, `cancelled`, ...):
    /// the same code the core's error gives the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Model(_) => "model",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Output { .. } => "output",
            Error::Cancelled => "cancelled",
        }
    }
}
