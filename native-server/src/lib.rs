//! # ct-triage (native adapter)
//!
//! A thin adapter over [`ct_triage_core`]: it reads folders, zip archives and
//! files into named buffers, calls the core, and prints or serves the results.
//! No analysis logic lives here.
//!
//! ```no_run
//! use ct_triage_native::input::gather;
//! use ct_triage_core::ingest::{inspect, IngestOptions};
//! use ct_triage_core::progress::NoProgress;
//!
//! let gathered = gather(&["sample-dicom/lung1".into()])?;
//! let report = inspect(&gathered.inputs(), &IngestOptions::default(), &NoProgress)?;
//! println!("{:?}", report.volume.map(|v| v.size_xyz));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod input;
pub mod render;

pub use error::{NativeError, Result};
