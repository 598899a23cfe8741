//! The one error type of the native adapter layer.

use std::path::Path;

/// Result alias of the native adapter.
pub type Result<T, E = NativeError> = std::result::Result<T, E>;

/// What can fail in the native adapter (I/O, input gathering, output), or in the core.
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
}

impl NativeError {
    /// Wrap an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        NativeError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
