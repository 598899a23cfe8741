//! The one error type of the DICOM layer, which the core re-exports as its own.
//!
//! Every failure names what failed (the file, the series, the stage) and why,
//! so that a batch can report it and go on, and a browser can show it instead
//! of dying on a panic.

use serde::Serialize;

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core, one variant per kind of failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a DICOM data set we can parse.
    #[error("{file}: not readable as DICOM: {message}")]
    NotDicom {
        /// Name of the input buffer (usually its path).
        file: String,
        /// What the parser said.
        message: String,
    },
    /// The file is DICOM but a required attribute is missing or malformed.
    #[error("{file}: attribute {attribute} {message}")]
    BadAttribute {
        /// Name of the input buffer.
        file: String,
        /// Attribute keyword, e.g. `Rows`.
        attribute: String,
        /// What is wrong with it.
        message: String,
    },
    /// The pixel data could not be decoded.
    #[error("{file}: pixel data: {message}")]
    PixelData {
        /// Name of the input buffer.
        file: String,
        /// What is wrong (truncated, corrupt codestream, ...).
        message: String,
    },
    /// The transfer syntax or image layout is valid DICOM but not supported by this build.
    #[error("{file}: unsupported: {what}")]
    Unsupported {
        /// Name of the input buffer.
        file: String,
        /// What is unsupported and, where relevant, in which build.
        what: String,
    },
    /// A configured safety limit was exceeded; nothing was allocated for it.
    #[error("{file}: {what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// Name of the input buffer, or `<input>` for whole-input limits.
        file: String,
        /// The quantity that was checked.
        what: String,
        /// Its value.
        value: u64,
        /// The configured limit.
        limit: u64,
    },
    /// No series in the input can be analysed.
    #[error("no analysable CT series: {reason}")]
    NoSeries {
        /// Why each candidate was rejected, summarised.
        reason: String,
    },
    /// The requested series does not exist in the input.
    #[error("series {uid} not found in the input")]
    SeriesNotFound {
        /// The Series Instance UID that was asked for.
        uid: String,
    },
    /// The slices of a series do not form a usable volume.
    #[error("series {series}: {message}")]
    Geometry {
        /// Series Instance UID.
        series: String,
        /// What is wrong with the geometry (gaps, tilt, duplicates, ...).
        message: String,
    },
    /// The model manifest or weights are invalid or do not fit the pipeline.
    #[error("model: {0}")]
    Model(String),
    /// A parameter passed by the caller is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Writing an output object (report, image, DICOM) failed.
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
    /// A short machine-readable code for the variant (`not_dicom`, `pixel_data`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotDicom { .. } => "not_dicom",
            Error::BadAttribute { .. } => "bad_attribute",
            Error::PixelData { .. } => "pixel_data",
            Error::Unsupported { .. } => "unsupported",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::NoSeries { .. } => "no_series",
            Error::SeriesNotFound { .. } => "series_not_found",
            Error::Geometry { .. } => "geometry",
            Error::Model(_) => "model",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Output { .. } => "output",
            Error::Cancelled => "cancelled",
        }
    }

    pub(crate) fn attr(file: &str, attribute: &str, message: impl Into<String>) -> Self {
        Error::BadAttribute {
            file: file.to_string(),
            attribute: attribute.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn pixels(file: &str, message: impl Into<String>) -> Self {
        Error::PixelData {
            file: file.to_string(),
            message: message.into(),
        }
    }
}

impl From<ct_triage_analysis::Error> for Error {
    /// The analysis layer's failures keep their kind (and code).
    fn from(e: ct_triage_analysis::Error) -> Self {
        use ct_triage_analysis::Error as A;
        match e {
            A::Model(m) => Error::Model(m),
            A::InvalidArgument(m) => Error::InvalidArgument(m),
            A::Output { what, message } => Error::Output { what, message },
            A::Cancelled => Error::Cancelled,
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}

/// A serialisable summary of an [`Error`]: its code and message, for reports and APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    /// Machine-readable code ([`Error::code`]).
    pub code: String,
    /// Human-readable message (the `Display` of the error).
    pub message: String,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        ErrorInfo {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}
