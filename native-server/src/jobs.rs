//! Job state: the [`JobStore`] trait and its embedded SQLite implementation.
//!
//! A job is one analysis: an input (a folder, zip or file set) and optionally
//! the series to analyse. Its life is `queued → running → done | failed`; a
//! job left `running` by a crashed process goes back to `queued` (or is
//! adopted as done when its result folder was already published, see
//! [`crate::runner::recover`]). Every transition that finishes a job is one
//! transaction that also appends an event, so "done exactly once" can be
//! checked from the `events` table.
//!
//! The trait is what `batch` and the server use; a shared database (e.g.
//! PostgreSQL with `SELECT … FOR UPDATE SKIP LOCKED`) can implement it to
//! coordinate several hosts.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::error::{NativeError, Result};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is analysing it.
    Running,
    /// Finished with a report.
    Done,
    /// Finished without a report; see the error.
    Failed,
}

impl JobState {
    /// The name stored and shown (`queued`, `running`, `done`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => JobState::Queued,
        }
    }
}

/// A job to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewJob {
    /// Makes enqueueing idempotent: a second job with the same key is not created.
    pub dedup_key: Option<String>,
    /// How it arrived: `batch`, `http`, `stow`, `dicom`.
    pub source: String,
    /// Who sent it: a token id, `ae:<AE title>`, or `cli`.
    pub submitted_by: String,
    /// Paths of the input (folders, zips or files), one per line.
    pub input: String,
    /// Series to analyse (key or Series Instance UID); `None`: the core's choice.
    pub series: Option<String>,
    /// Human-readable name (e.g. the source path and series), used for folders and bars.
    pub label: String,
}

/// What a finished analysis said, kept in the store for worklists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `urgent`, `priority`, `routine` or `inconclusive`.
    pub priority: String,
    /// Worklist sort score in [0, 1] (higher first).
    pub score: f64,
    /// Exam Lung-RADS category.
    pub lung_rads: Option<String>,
    /// Number of findings.
    pub findings: usize,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Patient ID.
    pub patient_id: Option<String>,
    /// Accession number.
    pub accession: Option<String>,
    /// Study date.
    pub study_date: Option<String>,
    /// Why the result is inconclusive.
    pub inconclusive_reason: Option<String>,
}

impl Summary {
    /// The worklist fields of a report.
    pub fn of(report: &ct_triage_core::report::Report) -> Self {
        Summary {
            priority: report.exam.triage_priority.as_str().to_string(),
            score: report.exam.triage_score,
            lung_rads: report.exam.lung_rads.map(|r| r.as_str().to_string()),
            findings: report.findings.len(),
            study_uid: report.input.study_instance_uid.clone(),
            series_uid: report.input.series_instance_uid.clone(),
            patient_id: report.input.patient_id.clone(),
            accession: report.input.accession_number.clone(),
            study_date: report.input.study_date.clone(),
            inconclusive_reason: report.exam.inconclusive_reason.clone(),
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A report was published in `output`.
    Done {
        /// The published result folder.
        output: String,
        /// Worklist fields.
        summary: Summary,
    },
    /// No report.
    Failed {
        /// Machine-readable code ([`NativeError::code`]).
        code: String,
        /// Message.
        message: String,
    },
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Job id (UUID).
    pub id: String,
    /// Idempotency key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// How it arrived.
    pub source: String,
    /// Who sent it.
    pub submitted_by: String,
    /// Input path.
    #[serde(skip)]
    pub input: String,
    /// Requested series.
    pub series: Option<String>,
    /// Human-readable name.
    pub label: String,
    /// State.
    pub state: JobState,
    /// How many times a worker started it (more than 1 after a crash).
    pub attempts: u32,
    /// Result folder, when done.
    #[serde(skip)]
    pub output: Option<String>,
    /// Worklist fields, when done.
    pub summary: Option<Summary>,
    /// Error code, when failed.
    pub error_code: Option<String>,
    /// Error message, when failed.
    pub error: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Start of the last attempt.
    pub started_at: Option<String>,
    /// End time.
    pub finished_at: Option<String>,
    /// Forwarding to PACS: `pending`, `sent N`, `none`, or the error.
    pub forward: Option<String>,
}

/// Number of jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Queued.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
}

impl Counts {
    /// All jobs.
    pub fn total(&self) -> u64 {
        self.queued + self.running + self.done + self.failed
    }
}

/// One recorded transition (`created`, `started`, `done`, `failed`, `requeued`, `adopted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Order of the event.
    pub seq: i64,
    /// Job id.
    pub job: String,
    /// What happened.
    pub event: String,
    /// When (RFC 3339).
    pub at: String,
    /// Details (worker, error …).
    pub detail: String,
}

/// Durable job queue and job state.
pub trait JobStore: Send + Sync {
    /// Create a job (or return the existing one with the same dedup key).
    /// Returns the job and whether it was created.
    fn enqueue(&self, job: &NewJob) -> Result<(Job, bool)>;
    /// Like [`JobStore::enqueue`], but fails with [`NativeError::Busy`] (and
    /// creates nothing) when `max_queued` jobs are queued already; the count
    /// and the insert are one transaction, so concurrent callers cannot
    /// overshoot the limit.
    fn enqueue_limited(&self, job: &NewJob, max_queued: u64) -> Result<(Job, bool)>;
    /// Record that an input source was scanned, creating its jobs, in one transaction.
    fn record_source(&self, source: &str, jobs: &[NewJob]) -> Result<()>;
    /// Sources already recorded.
    fn scanned_sources(&self) -> Result<BTreeSet<String>>;
    /// Take the oldest queued job and mark it running for `worker`.
    fn claim(&self, worker: &str) -> Result<Option<Job>>;
    /// Finish a running job. Fails (and changes nothing) if it is not running.
    fn finish(&self, id: &str, outcome: &Outcome) -> Result<()>;
    /// Put a running job back in the queue (crash recovery).
    fn requeue(&self, id: &str, reason: &str) -> Result<()>;
    /// Mark a running job done without running it again: its result folder
    /// was published before a crash (crash recovery).
    fn adopt(&self, id: &str, outcome: &Outcome) -> Result<()>;
    /// One job.
    fn get(&self, id: &str) -> Result<Option<Job>>;
    /// Jobs, oldest first, optionally of one state.
    fn list(&self, state: Option<JobState>) -> Result<Vec<Job>>;
    /// Jobs per state.
    fn counts(&self) -> Result<Counts>;
    /// Record the forwarding status of a job.
    fn set_forward(&self, id: &str, status: &str) -> Result<()>;
    /// Events, in order, optionally of one job.
    fn events(&self, job: Option<&str>) -> Result<Vec<Event>>;
}

/// Current time as RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// [`JobStore`] on an embedded SQLite database (WAL, synchronous=FULL).
pub struct SqliteJobStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobStore").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  dedup_key TEXT UNIQUE,
  source TEXT NOT NULL,
  submitted_by TEXT NOT NULL,
  input TEXT NOT NULL,
  series TEXT,
  label TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  worker TEXT,
  output TEXT,
  summary TEXT,
  error_code TEXT,
  error TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  forward TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS sources (
  source TEXT PRIMARY KEY,
  scanned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job TEXT NOT NULL,
  event TEXT NOT NULL,
  at TEXT NOT NULL,
  detail TEXT NOT NULL
);
";

const COLUMNS: &str = "id, dedup_key, source, submitted_by, input, series, label, state, attempts, \
                       output, summary, error_code, error, created_at, started_at, finished_at, forward";

fn job_of(r: &Row) -> rusqlite::Result<Job> {
    let summary: Option<String> = r.get(10)?;
    Ok(Job {
        id: r.get(0)?,
        dedup_key: r.get(1)?,
        source: r.get(2)?,
        submitted_by: r.get(3)?,
        input: r.get(4)?,
        series: r.get(5)?,
        label: r.get(6)?,
        state: JobState::parse(&r.get::<_, String>(7)?),
        attempts: r.get(8)?,
        output: r.get(9)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        error_code: r.get(11)?,
        error: r.get(12)?,
        created_at: r.get(13)?,
        started_at: r.get(14)?,
        finished_at: r.get(15)?,
        forward: r.get(16)?,
    })
}

fn event(tx: &Connection, job: &str, what: &str, detail: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (job, event, at, detail) VALUES (?1, ?2, ?3, ?4)",
        params![job, what, now_rfc3339(), detail],
    )
    .map(|_| ())
}

fn insert(tx: &Connection, job: &NewJob) -> rusqlite::Result<Option<String>> {
    let id = uuid::Uuid::new_v4().to_string();
    let n = tx.execute(
        "INSERT OR IGNORE INTO jobs (id, dedup_key, source, submitted_by, input, series, label, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8)",
        params![
            id,
            job.dedup_key,
            job.source,
            job.submitted_by,
            job.input,
            job.series,
            job.label,
            now_rfc3339()
        ],
    )?;
    if n == 0 {
        return Ok(None);
    }
    event(tx, &id, "created", &job.submitted_by)?;
    Ok(Some(id))
}

impl SqliteJobStore {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private_fs::create_dir(parent)?;
        }
        // Owner-only from the start; SQLite gives the -wal and -shm files the
        // database file's mode.
        crate::private_fs::private_options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| NativeError::io(path, e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteJobStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_in(conn: &Connection, id: &str) -> Result<Option<Job>> {
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_of,
            )
            .optional()?)
    }

    /// Create a job, within `max_queued` queued jobs when given (one
    /// IMMEDIATE transaction: the count cannot change before the insert).
    fn enqueue_in(&self, job: &NewJob, max_queued: Option<u64>) -> Result<(Job, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(max) = max_queued {
            let queued: i64 = tx.query_row(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )?;
            if queued.max(0) as u64 >= max {
                return Err(NativeError::Busy(format!(
                    "{queued} jobs queued (limit {max})"
                )));
            }
        }
        let created = insert(&tx, job)?;
        let found = match (&created, &job.dedup_key) {
            (Some(id), _) => Self::get_in(&tx, id)?,
            (None, Some(key)) => tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM jobs WHERE dedup_key = ?1"),
                    [key],
                    job_of,
                )
                .optional()?,
            (None, None) => None,
        };
        tx.commit()?;
        let job = found.ok_or_else(|| NativeError::NotFound("job just enqueued".into()))?;
        Ok((job, created.is_some()))
    }

    fn end(&self, id: &str, outcome: &Outcome, what_done: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_rfc3339();
        let n = match outcome {
            Outcome::Done { output, summary } => {
                let s = serde_json::to_string(summary)
                    .map_err(|e| NativeError::Output(e.to_string()))?;
                tx.execute(
                    "UPDATE jobs SET state = 'done', output = ?2, summary = ?3, error_code = NULL,
                     error = NULL, finished_at = ?4 WHERE id = ?1 AND state = 'running'",
                    params![id, output, s, now],
                )?
            }
            Outcome::Failed { code, message } => tx.execute(
                "UPDATE jobs SET state = 'failed', error_code = ?2, error = ?3, finished_at = ?4
                 WHERE id = ?1 AND state = 'running'",
                params![id, code, message, now],
            )?,
        };
        if n != 1 {
            return Err(NativeError::NotFound(format!("running job {id}")));
        }
        let (what, detail) = match outcome {
            Outcome::Done { output, .. } => (what_done, output.as_str()),
            Outcome::Failed { message, .. } => ("failed", message.as_str()),
        };
        event(&tx, id, what, detail)?;
        tx.commit()?;
        Ok(())
    }
}

impl JobStore for SqliteJobStore {
    fn enqueue(&self, job: &NewJob) -> Result<(Job, bool)> {
        self.enqueue_in(job, None)
    }

    fn enqueue_limited(&self, job: &NewJob, max_queued: u64) -> Result<(Job, bool)> {
        self.enqueue_in(job, Some(max_queued))
    }

    fn record_source(&self, source: &str, jobs: &[NewJob]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for j in jobs {
            insert(&tx, j)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO sources (source, scanned_at) VALUES (?1, ?2)",
            params![source, now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn scanned_sources(&self) -> Result<BTreeSet<String>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT source FROM sources")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn claim(&self, worker: &str) -> Result<Option<Job>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: Option<String> = tx
            .query_row(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?1, started_at = ?2
                 WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1)
                 RETURNING id",
                params![worker, now_rfc3339()],
                |r| r.get(0),
            )
            .optional()?;
        let job = match id {
            Some(id) => {
                event(&tx, &id, "started", worker)?;
                Self::get_in(&tx, &id)?
            }
            None => None,
        };
        tx.commit()?;
        Ok(job)
    }

    fn finish(&self, id: &str, outcome: &Outcome) -> Result<()> {
        self.end(id, outcome, "done")
    }

    fn requeue(&self, id: &str, reason: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE jobs SET state = 'queued', worker = NULL WHERE id = ?1 AND state = 'running'",
            [id],
        )?;
        if n == 1 {
            event(&tx, id, "requeued", reason)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn adopt(&self, id: &str, outcome: &Outcome) -> Result<()> {
        self.end(id, outcome, "adopted")
    }

    fn get(&self, id: &str) -> Result<Option<Job>> {
        Self::get_in(&self.conn(), id)
    }

    fn list(&self, state: Option<JobState>) -> Result<Vec<Job>> {
        let conn = self.conn();
        let (sql, arg) = match state {
            Some(s) => (
                format!("SELECT {COLUMNS} FROM jobs WHERE state = ?1 ORDER BY seq"),
                Some(s.as_str()),
            ),
            None => (format!("SELECT {COLUMNS} FROM jobs ORDER BY seq"), None),
        };
        let mut st = conn.prepare(&sql)?;
        let rows = match arg {
            Some(a) => st
                .query_map([a], job_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => st
                .query_map([], job_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }

    fn counts(&self) -> Result<Counts> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
        let mut c = Counts::default();
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (s, n) = row?;
            let n = n.max(0) as u64;
            match JobState::parse(&s) {
                JobState::Queued => c.queued = n,
                JobState::Running => c.running = n,
                JobState::Done => c.done = n,
                JobState::Failed => c.failed = n,
            }
        }
        Ok(c)
    }

    fn set_forward(&self, id: &str, status: &str) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET forward = ?2 WHERE id = ?1",
            params![id, status],
        )?;
        Ok(())
    }

    fn events(&self, job: Option<&str>) -> Result<Vec<Event>> {
        let conn = self.conn();
        let map = |r: &Row| {
            Ok(Event {
                seq: r.get(0)?,
                job: r.get(1)?,
                event: r.get(2)?,
                at: r.get(3)?,
                detail: r.get(4)?,
            })
        };
        let base = "SELECT seq, job, event, at, detail FROM events";
        let rows = match job {
            Some(j) => conn
                .prepare(&format!("{base} WHERE job = ?1 ORDER BY seq"))?
                .query_map([j], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => conn
                .prepare(&format!("{base} ORDER BY seq"))?
                .query_map([], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }
}
