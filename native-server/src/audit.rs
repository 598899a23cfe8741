//! The audit log: who sent or read what, as JSON lines
//! (`{"time", "actor", "role", "action", "job", "outcome", "detail"}`).
//!
//! Actors are `token:<name>` for HTTP callers (with their `role`),
//! `ae:<AE title>@<ip>` for DICOM peers, `anonymous@<ip>` for rejected
//! requests, and `server` for the server's own actions (analysis,
//! forwarding).
//!
//! What an outsider can make it cost: failed authentications are recorded at
//! most [`AuditOptions::auth_failures_per_minute`] times per client address
//! and minute (and at most ten times that for all addresses together); the
//! rest is counted in one `auth_failed` record with outcome `suppressed` per
//! minute. Strings are cut to [`MAX_FIELD`] characters, details to
//! [`MAX_DETAIL`] bytes of JSON. Every record is written and synced to disk
//! at once; the file is rotated at [`AuditOptions::max_bytes`]
//! (`audit.jsonl.1` is the newest old one, [`AuditOptions::keep`] are kept).
//! Files are owner-only.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::auth::Identity;
use crate::error::{NativeError, Result};
use crate::jobs::now_rfc3339;
use crate::private_fs;

/// Longest string field recorded (characters); longer ones are cut with `…`.
pub const MAX_FIELD: usize = 200;

/// Longest `detail` recorded (bytes of JSON); a longer one is replaced by a note.
pub const MAX_DETAIL: usize = 2048;

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// Who.
    pub actor: &'a str,
    /// The role of an HTTP caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
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

/// Size, rotation and rate limits of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// Rotate when the file reaches this many bytes. Default 64 MiB.
    pub max_bytes: u64,
    /// Rotated files kept. Default 10.
    pub keep: usize,
    /// Failed authentications recorded per client address and minute. Default 20.
    pub auth_failures_per_minute: u32,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            max_bytes: 64 << 20,
            keep: 10,
            auth_failures_per_minute: 20,
        }
    }
}

/// Failed authentications in the current minute.
#[derive(Debug)]
struct Failures {
    since: Instant,
    per_ip: HashMap<String, u32>,
    recorded: u32,
    suppressed: u64,
}

#[derive(Debug)]
struct State {
    file: File,
    size: u64,
    failures: Failures,
}

/// Append-only JSON-lines audit log (each record written and synced at once).
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    opts: AuditOptions,
    state: Mutex<State>,
}

fn open_append(path: &Path) -> Result<(File, u64)> {
    let file = private_fs::private_options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| NativeError::io(path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, size))
}

/// Cut a string to [`MAX_FIELD`] characters.
fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().count() <= MAX_FIELD {
        s.into()
    } else {
        let mut t: String = s.chars().take(MAX_FIELD).collect();
        t.push('…');
        t.into()
    }
}

/// Cut every string in a JSON value, then the whole value to [`MAX_DETAIL`].
fn bounded(detail: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(c) = cut(s) {
                    *s = c;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut detail = detail;
    walk(&mut detail);
    let len = serde_json::to_string(&detail).map_or(0, |s| s.len());
    if len > MAX_DETAIL {
        serde_json::json!({"truncated": true, "bytes": len})
    } else {
        detail
    }
}

impl AuditLog {
    /// Open (append) or create the log with the default [`AuditOptions`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, AuditOptions::default())
    }

    /// Open (append) or create the log.
    pub fn open_with(path: &Path, opts: AuditOptions) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_fs::create_dir(parent)?;
        }
        let (file, size) = open_append(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            opts,
            state: Mutex::new(State {
                file,
                size,
                failures: Failures {
                    since: Instant::now(),
                    per_ip: HashMap::new(),
                    recorded: 0,
                    suppressed: 0,
                },
            }),
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
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.write(&mut st, actor, None, action, job, outcome, detail);
    }

    /// Record an event of an authenticated HTTP caller (its name and role).
    pub fn log_as(
        &self,
        who: &Identity,
        action: &str,
        job: Option<&str>,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let actor = who.actor();
        self.write(
            &mut st,
            &actor,
            Some(who.role.as_str()),
            action,
            job,
            outcome,
            detail,
        );
    }

    /// Record a failed authentication from `ip` for `path`, within the rate limits.
    pub fn auth_failed(&self, ip: &str, path: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_suppressed(&mut st, false);
        let limit = self.opts.auth_failures_per_minute;
        let f = &mut st.failures;
        let tracked = f.per_ip.len() < 10_000 || f.per_ip.contains_key(ip);
        let n = if tracked {
            let n = f.per_ip.entry(ip.to_string()).or_insert(0);
            *n += 1;
            *n
        } else {
            u32::MAX
        };
        if n > limit || f.recorded >= limit.saturating_mul(10) {
            f.suppressed += 1;
            return;
        }
        f.recorded += 1;
        let actor = format!("anonymous@{}", cut(ip));
        self.write(
            &mut st,
            &actor,
            None,
            "auth_failed",
            None,
            "denied",
            serde_json::json!({"path": path}),
        );
    }

    /// Write the count of suppressed failures once their minute is over (or now, with `force`).
    fn flush_suppressed(&self, st: &mut State, force: bool) {
        if !force && st.failures.since.elapsed() < Duration::from_secs(60) {
            return;
        }
        let suppressed = st.failures.suppressed;
        st.failures = Failures {
            since: Instant::now(),
            per_ip: HashMap::new(),
            recorded: 0,
            suppressed: 0,
        };
        if suppressed > 0 {
            self.write(
                st,
                "anonymous",
                None,
                "auth_failed",
                None,
                "suppressed",
                serde_json::json!({"count": suppressed, "reason": "rate limit"}),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        st: &mut State,
        actor: &str,
        role: Option<&str>,
        action: &str,
        job: Option<&str>,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let rec = Record {
            time: now_rfc3339(),
            actor: &cut(actor),
            role,
            action,
            job,
            outcome: &cut(outcome),
            detail: bounded(detail),
        };
        let mut line = serde_json::to_string(&rec).unwrap_or_default();
        line.push('\n');
        let written = st
            .file
            .write_all(line.as_bytes())
            .and_then(|_| st.file.sync_data());
        match written {
            Ok(()) => st.size += line.len() as u64,
            Err(e) => tracing::error!("audit log: {e}"),
        }
        if st.size >= self.opts.max_bytes
            && let Err(e) = self.rotate(st)
        {
            tracing::error!("audit log rotation: {e}");
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// `audit.jsonl` → `.1` → `.2` …, the oldest beyond `keep` removed.
    fn rotate(&self, st: &mut State) -> Result<()> {
        let keep = self.opts.keep;
        let _ = std::fs::remove_file(self.rotated(keep.max(1)));
        for n in (1..keep.max(1)).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))
                    .map_err(|e| NativeError::io(&from, e))?;
            }
        }
        if keep == 0 {
            std::fs::remove_file(&self.path).map_err(|e| NativeError::io(&self.path, e))?;
        } else {
            std::fs::rename(&self.path, self.rotated(1))
                .map_err(|e| NativeError::io(&self.path, e))?;
        }
        let (file, size) = open_append(&self.path)?;
        st.file = file;
        st.size = size;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_fs::sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_suppressed(&mut st, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_rate_limited_and_fields_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let opts = AuditOptions {
            auth_failures_per_minute: 3,
            ..AuditOptions::default()
        };
        {
            let log = AuditLog::open_with(&path, opts).unwrap();
            let long = format!("/{}", "a".repeat(60_000));
            for _ in 0..1000 {
                log.auth_failed("10.0.0.1", &long);
            }
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "3 recorded + 1 summary: {text}");
        assert!(lines[..3].iter().all(|l| l["outcome"] == "denied"));
        assert_eq!(lines[3]["outcome"], "suppressed");
        assert_eq!(lines[3]["detail"]["count"], 997);
        assert!(text.len() < 2_000, "{} bytes", text.len());
    }

    #[test]
    fn the_log_rotates_and_keeps_a_few_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let opts = AuditOptions {
            max_bytes: 1_000,
            keep: 2,
            ..AuditOptions::default()
        };
        let log = AuditLog::open_with(&path, opts).unwrap();
        for i in 0..100 {
            log.log(
                "server",
                "analysed",
                Some(&format!("job-{i}")),
                "ok",
                serde_json::Value::Null,
            );
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) < 1_000);
        assert!(size(&log.rotated(1)) >= 1_000 && size(&log.rotated(2)) >= 1_000);
        assert!(!log.rotated(3).exists());
        let newest = std::fs::read_to_string(&path).unwrap()
            + &std::fs::read_to_string(log.rotated(1)).unwrap();
        assert!(newest.contains("job-99"), "{newest}");
        assert!(
            !newest.contains("job-0\""),
            "the oldest records were rotated out"
        );
    }
}
