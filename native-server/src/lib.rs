//! # ct-triage (native adapter)
//!
//! A thin adapter over [`ct_triage_core`]: it reads folders, zip archives and
//! files into named buffers, calls the core, and writes, serves or forwards
//! the results. No analysis logic lives here.
//!
//! | module | role |
//! |---|---|
//! | [`input`] | folders, zips, files → named byte buffers |
//! | [`model`] | the embedded model or `--model manifest.json` (burn or ONNX Runtime) |
//! | [`progress`] | indicatif bars and job progress for the core's `Progress` |
//! | [`output`] | the one writer of a result folder; atomic publish |
//! | [`render`] | terminal tables and summaries |
//! | [`jobs`] | the durable job queue ([`jobs::JobStore`], SQLite) |
//! | [`runner`] | run one job, recover after a crash |
//! | [`batch`] | `ct-triage batch` |
//! | [`worklist`] | worklist rows, CSV and JSON |
//! | [`server`] | `ct-triage serve`: HTTP API, workers, forwarding |
//! | [`scp`], [`scu`], [`dimse`] | DICOM C-STORE in and out (dicom-ul) |
//! | [`related`] | STOW-RS request bodies (multipart/related) |
//! | [`config`], [`auth`], [`audit`], [`metrics`] | server configuration, tokens and roles, audit log, Prometheus |
//! | [`tls`], [`private_fs`] | HTTPS and DICOM TLS (rustls); owner-only files, syncing to disk |
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

pub mod audit;
pub mod auth;
pub mod batch;
pub mod config;
pub mod dicomweb;
pub mod dimse;
pub mod error;
pub mod input;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod output;
pub mod private_fs;
pub mod progress;
pub mod related;
pub mod render;
pub mod runner;
pub mod scp;
pub mod scu;
pub mod server;
pub mod tls;
pub mod worklist;

pub use error::{NativeError, Result};
