//! The audit log: who sent or read what, as JSON lines
//! (`{"time", "actor", "action", "job", "outcome", "detail"}`).
//!
//! Actors are `token:<id>` for HTTP callers, `ae:<AE title>@<ip>` for DICOM
//! peers, `anonymous@<ip>` for rejected requests, and `server` for the
//! server's own actions (analysis, forwarding).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{NativeError, Result};
use crate::jobs::now_rfc3339;

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// Who.
    pub actor: &'a str,
    /// What: `submit`, `read_job`, `read_report`, `read_key_image`,
    /// `read_worklist`, `dicom_store`, `analysed`, `forward`, `auth_failed`, …
    pub action: &'a str,
    /// The job concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<&'a str>,
    /// `ok`, or why not.
    pub outcome: &'a str,
    /// Details (counts, sizes, destination).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Append-only JSON-lines audit log (each record written and flushed at once).
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Open (append) or create the log.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| NativeError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| NativeError::io(path, e))?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Record an event. Failing to write is logged, never fatal to the request.
    pub fn log(
        &self,
        actor: &str,
        action: &str,
        job: Option<&str>,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let rec = Record {
            time: now_rfc3339(),
            actor,
            action,
            job,
            outcome,
            detail,
        };
        let mut line = serde_json::to_string(&rec).unwrap_or_default();
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::error!("audit log: {e}");
        }
    }
}
