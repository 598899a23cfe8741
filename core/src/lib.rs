//! # ct-triage-core
//!
//! The inference core of ct-triage: a DICOM CT series in, a lung nodule triage
//! report out. It compiles natively and for `wasm32-unknown-unknown`, never
//! touches the filesystem (it takes named byte buffers) and never panics on
//! input: every failure is an [`Error`] that names what failed.
//!
//! The analysis is a chain of explicit stages, each a module with typed inputs
//! and outputs:
//!
//! | stage | module | in → out |
//! |---|---|---|
//! | ingest | [`ingest`] | `&[InputFile]` → [`ingest::LoadedSeries`] (HU [`volume::Volume`]) |
//! | volume | [`volume`] | geometry, voxel ↔ patient transforms |
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

pub mod anatomy;
pub mod assess;
pub mod calcification;
pub mod candidates;
pub mod classify;
pub mod error;
pub mod imgproc;
pub mod ingest;
pub mod lungrads;
pub mod lungs;
pub mod measure;
pub mod morphology;
pub mod pipeline;
pub mod progress;
pub mod quality;
pub mod report;
pub mod resample;
pub mod risk;
pub mod triage;
pub mod volume;

pub use error::{Error, ErrorInfo, Result};
