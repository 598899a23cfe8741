//! # ct-triage-core
//!
//! The facade of ct-triage: a DICOM CT series in, a lung nodule triage report
//! out. It compiles natively and for `wasm32-unknown-unknown`, never touches
//! the filesystem (it takes named byte buffers) and never panics on input:
//! every failure is an [`Error`] that names what failed.
//!
//! The layers are crates of their own; this one chains them in [`pipeline`]
//! and re-exports them at their long-standing paths:
//!
//! | layer | crate | modules here |
//! |---|---|---|
//! | codecs | `ct-triage-codecs` | (JPEG-LS, 12-bit JPEG, used by ingest) |
//! | DICOM edges | `ct-triage-dicom` | [`ingest`], [`report::dicom`] (SR, SEG, SC, KOS, de-identification), [`error`] |
//! | analysis | `ct-triage-analysis` | [`volume`], [`resample`], [`lungs`], [`candidates`], [`classify`], [`measure`], [`assess`], [`risk`], [`lungrads`], [`triage`], [`report`] … |
//! | pipeline | this crate | [`pipeline`]: ingest → volume → lungs → candidates → classify → measure → findings → triage → report |
//!
//! ```no_run
//! use ct_triage_core::ingest::{self, InputFile, IngestOptions};
//! use ct_triage_core::progress::NoProgress;
//!
//! let bytes = std::fs::read("slice.dcm")?;
//! let files = [InputFile::new("slice.dcm", &bytes)];
//! let report = ingest::inspect(&files, &IngestOptions::default(), &NoProgress)?;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub use ct_triage_analysis::{
    anatomy, assess, calcification, candidates, classify, findings, imgproc, lungrads, lungs,
    measure, morphology, opacities, progress, quality, resample, risk, series, triage, volume,
};
pub use ct_triage_dicom::{deid, error, ingest};

pub mod pipeline;

/// The report: its schema and vocabulary (`ct-triage-analysis`) and its DICOM
/// writers ([`dicom`], `ct-triage-dicom`).
pub mod report {
    pub use ct_triage_analysis::report::*;
    pub use ct_triage_dicom::export as dicom;
}

/// The analysis layer's error, which [`Error`] takes over with the same code
/// (`From`): what the stage modules re-exported here return.
pub use ct_triage_analysis::Error as AnalysisError;
pub use error::{Error, ErrorInfo, Result};
