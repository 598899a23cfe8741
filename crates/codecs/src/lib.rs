//! Pure-Rust decoders for the two DICOM pixel encodings that no maintained
//! Rust crate decodes in `wasm32-unknown-unknown`: JPEG-LS (ITU-T T.87, DICOM
//! transfer syntaxes 1.2.840.10008.1.2.4.80/.81) and 12-bit sequential JPEG
//! ("JPEG Extended", 1.2.840.10008.1.2.4.51). dicom-rs decodes every other
//! encoding; its JPEG-LS route is the C library CharLS and its JPEG route
//! refuses 12-bit samples (see each module's notes).
//!
//! The layer below `ct-triage-dicom`: codestream bytes in, samples out, no
//! DICOM. Every decoder refuses images over the caller's pixel limit before it
//! allocates and never panics on any input; a failure is a [`CodecError`].
//!
//! ```
//! use ct_triage_codecs::{jpegls, CodecError};
//!
//! // Not a JPEG-LS codestream: a typed error, not a panic.
//! let err = jpegls::decode(b"not an image", 512 * 512).unwrap_err();
//! assert!(matches!(err, CodecError::JpegLs(_)));
//! assert!(err.to_string().starts_with("JPEG-LS: "));
//! ```
#![warn(missing_docs)]

pub mod jpeg12;
pub mod jpegls;

/// What failed while decoding a codestream: the codec and a short reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A JPEG-LS (T.87) codestream could not be decoded.
    #[error("JPEG-LS: {0}")]
    JpegLs(String),
    /// A sequential-DCT JPEG (baseline or 12-bit extended) could not be decoded.
    #[error("JPEG extended: {0}")]
    JpegExtended(String),
}
