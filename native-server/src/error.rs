//! The one error type of the native adapter layer.

use std::path::Path;

/// Result alias of the native adapter.
pub type Result<T, E = NativeError> = std::result::Result<T, E>;

/// What can fail in the native adapter (I/O, input gathering, output, job
/// store, networking, configuration), or in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input paths are unusable.
    #[error("input: {0}")]
    Input(String),
    /// The analysis core failed.
    #[error(transparent)]
    Core(#[from] ct_triage_core::Error),
    /// Serialising output failed.
    #[error("output: {0}")]
    Output(String),
    /// The job store (SQLite) failed.
    #[error("job store: {0}")]
    Store(#[from] rusqlite::Error),
    /// A configuration value (CLI, config file, token file, model) is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// DICOM networking (association, DIMSE message, peer status) failed.
    #[error("dicom network: {0}")]
    Network(String),
    /// A configured limit was exceeded (body size, instance count, queue length).
    #[error("limit: {0}")]
    Limit(String),
    /// A job or resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The HTTP request is unacceptable (bad multipart body, wrong media type, …).
    #[error("request: {message}")]
    Request {
        /// HTTP status to answer with.
        status: u16,
        /// Why.
        message: String,
    },
    /// The server is at capacity (job queue full); retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// The analysis panicked; the panic was contained to its job.
    #[error("internal error (contained to this series): {0}")]
    Panic(String),
}

impl From<ct_triage_core::AnalysisError> for NativeError {
    /// An analysis-layer failure (model loading, a stage) as the core's error.
    fn from(e: ct_triage_core::AnalysisError) -> Self {
        NativeError::Core(e.into())
    }
}

impl NativeError {
    /// Wrap an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        NativeError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A short machine-readable code (`io`, `store`, core codes such as `no_series`, …).
    pub fn code(&self) -> &'static str {
        match self {
            NativeError::Io { .. } => "io",
            NativeError::Input(_) => "input",
            NativeError::Core(e) => e.code(),
            NativeError::Output(_) => "output",
            NativeError::Store(_) => "store",
            NativeError::Config(_) => "config",
            NativeError::Network(_) => "network",
            NativeError::Limit(_) => "limit",
            NativeError::NotFound(_) => "not_found",
            NativeError::Request { .. } => "request",
            NativeError::Busy(_) => "busy",
            NativeError::Panic(_) => "panic",
        }
    }
}
