//! # ct-triage-dicom
//!
//! The DICOM edges of ct-triage, over dicom-rs: [`ingest`] turns named byte
//! buffers (Part 10 files, any transfer syntax) into the analysis layer's
//! [`LoadedSeries`](ct_triage_analysis::series::LoadedSeries) — an HU volume
//! and the study's attributes — and [`export`] writes an analysis back as DICOM
//! SR (TID 1500), SEG, Secondary Capture and Key Object Selection; [`deid`]
//! de-identifies what leaves (PS3.15 Annex E). Pixel data becomes an array
//! here, so the analysis never sees DICOM. Never panics on input: every failure
//! is an [`Error`] that names the file and what failed.
//!
//! ```
//! use ct_triage_dicom::ingest::{self, InputFile, IngestOptions};
//! use ct_triage_analysis::progress::NoProgress;
//!
//! // Bytes that are not DICOM are listed as skipped, with the reason.
//! let files = [InputFile::new("notes.txt", b"not a DICOM file")];
//! let report = ingest::inspect(&files, &IngestOptions::default(), &NoProgress).unwrap();
//! assert_eq!(report.skipped.len(), 1);
//! ```
#![warn(missing_docs)]

pub mod deid;
pub mod error;
pub mod export;
pub mod ingest;

pub use error::{Error, ErrorInfo, Result};
