//! The worklist: finished jobs in reading order (core's triage score, higher
//! first: urgent, priority, inconclusive, routine), failed jobs last.

use std::path::Path;

use serde::Serialize;

use crate::error::{NativeError, Result};
use crate::jobs::{Job, JobState};

/// One worklist row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// 1-based reading order.
    pub rank: usize,
    /// `done` or `failed`.
    pub state: String,
    /// `urgent`, `priority`, `inconclusive`, `routine`; empty when failed.
    pub priority: String,
    /// Triage score (sort key).
    pub score: Option<f64>,
    /// Exam Lung-RADS.
    pub lung_rads: Option<String>,
    /// Number of findings.
    pub findings: Option<usize>,
    /// Patient ID.
    pub patient_id: Option<String>,
    /// Accession number.
    pub accession: Option<String>,
    /// Study date.
    pub study_date: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// Series Instance UID (or the requested series key when failed).
    pub series_uid: Option<String>,
    /// Input (source path and series).
    pub input: String,
    /// Report folder, relative to the worklist when inside it.
    pub report_dir: Option<String>,
    /// Inconclusive reason, or the error of a failed job.
    pub note: Option<String>,
    /// Job id.
    pub job_id: String,
}

/// Build the rows from jobs; queued and running jobs are left out.
/// `base`: paths under it are written relative to it.
pub fn rows(jobs: &[Job], base: Option<&Path>) -> Vec<Row> {
    let mut finished: Vec<&Job> = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Done | JobState::Failed))
        .collect();
    let key = |j: &Job| match (&j.state, &j.summary) {
        (JobState::Done, Some(s)) => s.score,
        _ => -1.0,
    };
    finished.sort_by(|a, b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| a.label.cmp(&b.label))
    });
    finished
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            let s = j.summary.as_ref();
            let report_dir = j.output.as_ref().map(|o| {
                let p = Path::new(o);
                base.and_then(|b| p.strip_prefix(b).ok())
                    .unwrap_or(p)
                    .display()
                    .to_string()
            });
            Row {
                rank: i + 1,
                state: j.state.as_str().to_string(),
                priority: s.map(|s| s.priority.clone()).unwrap_or_default(),
                score: s.map(|s| s.score),
                lung_rads: s.and_then(|s| s.lung_rads.clone()),
                findings: s.map(|s| s.findings),
                patient_id: s.and_then(|s| s.patient_id.clone()),
                accession: s.and_then(|s| s.accession.clone()),
                study_date: s.and_then(|s| s.study_date.clone()),
                study_uid: s.map(|s| s.study_uid.clone()),
                series_uid: s.map(|s| s.series_uid.clone()).or_else(|| j.series.clone()),
                input: j.label.clone(),
                report_dir,
                note: s
                    .and_then(|s| s.inconclusive_reason.clone())
                    .or_else(|| j.error.clone()),
                job_id: j.id.clone(),
            }
        })
        .collect()
}

/// Write `worklist.csv` and `worklist.json` into `dir` (each written to a
/// temporary file, then renamed over the old one).
pub fn write(dir: &Path, rows: &[Row]) -> Result<()> {
    let json =
        serde_json::to_string_pretty(rows).map_err(|e| NativeError::Output(e.to_string()))?;
    replace(&dir.join("worklist.json"), json.as_bytes())?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| NativeError::Output(format!("worklist.csv: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| NativeError::Output(format!("worklist.csv: {e}")))?;
    replace(&dir.join("worklist.csv"), &bytes)
}

fn replace(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    crate::private_fs::write_synced(&tmp, data)?;
    std::fs::rename(&tmp, path).map_err(|e| NativeError::io(path, e))
}
