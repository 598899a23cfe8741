//! `ct-triage serve`: the HTTP API (axum), the DICOM C-STORE SCP, the
//! analysis workers and forwarding of results to PACS, around one durable
//! [`JobStore`].
//!
//! | endpoint | auth | |
//! |---|---|---|
//! | `GET /healthz` | no | liveness |
//! | `POST /v1/studies` | bearer | multipart/form-data DICOM files or zips → `202 {"job_id"}` |
//! | `GET /v1/jobs/{id}` | bearer | state, progress, summary, links |
//! | `GET /v1/jobs/{id}/report` | bearer | the report JSON |
//! | `GET /v1/jobs/{id}/key-images/{n}.png` | bearer | key image of finding n |
//! | `GET /v1/worklist` | bearer | finished jobs in reading order |
//! | `POST /dicomweb/studies[/{study}]` | bearer | STOW-RS (multipart/related; application/dicom) |
//! | `GET /metrics` | bearer | Prometheus / OpenMetrics text |
//! | `GET /openapi.json` | bearer | OpenAPI 3.1 description of this API |
//!
//! Inputs land in `<data>/inputs/<uuid>/`, results in `<data>/results/<job>/`
//! (written to `<data>/results/.tmp/` and renamed), DICOM instances wait in
//! `<data>/incoming/<series>/` until the series is quiet. Jobs survive a
//! restart: the store is `<data>/jobs.sqlite`, and jobs a crash left running
//! are recovered at start.
//!
//! | module | |
//! |---|---|
//! | `mod.rs` | [`Server`]: configuration, the job store, workers, start-up recovery |
//! | `http` | the HTTP API (axum): routes, auth and roles, uploads, job resources |
//! | `listen` | the HTTP listener: HTTPS, header and body timeouts, connection cap |
//! | `stow` | STOW-RS |
//! | `incoming` | instances from the C-STORE SCP, quiet-series detection |
//! | `forward` | results sent to PACS with C-STORE |

mod forward;
mod http;
mod incoming;
mod listen;
mod stow;
mod wado;

pub use http::router;
pub use listen::{HttpOptions, run, serve_http};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ct_triage_core::pipeline::AnalysisOptions;
use serde_json::{Value, json};

use crate::audit::{AuditLog, AuditOptions};
use crate::auth::Tokens;
use crate::config::ServerConfig;
use crate::error::{NativeError, Result};
use crate::jobs::{Job, JobState, JobStore, NewJob, Outcome, SqliteJobStore};
use crate::metrics::{Metrics, SourceLabel, StateLabel};
use crate::model::SharedClassifier;
use crate::output::{DeidKey, OutputOptions};
use crate::private_fs;
use crate::progress::JobProgress;
use crate::runner::{Placement, input_paths, recover, run_job};
use crate::scp;
use incoming::{Pending, Sink};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Folders under the data directory.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Uploaded and received inputs, one folder per job.
    pub inputs: PathBuf,
    /// Published results, one folder per job.
    pub results: PathBuf,
    /// DICOM instances waiting for their series to be quiet.
    pub incoming: PathBuf,
}

/// A DICOM series being received.
/// Wakes idle workers when a job is queued.
#[derive(Debug, Default)]
struct Signal {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn notify(&self) {
        *self.flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let guard = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |f| !*f)
            .unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }
}

/// Shared state of a running server.
pub struct Server {
    /// Configuration.
    pub cfg: ServerConfig,
    /// Durable jobs.
    pub store: Arc<dyn JobStore>,
    /// Accepted API tokens.
    pub tokens: Tokens,
    /// Audit log.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Data folders.
    pub dirs: Dirs,
    classifier: SharedClassifier,
    analysis: AnalysisOptions,
    output: OutputOptions,
    running: Mutex<HashMap<String, Arc<JobProgress>>>,
    pending: Mutex<HashMap<String, Pending>>,
    signal: Signal,
    /// One deflated data set inflated at a time (the length guard inflates
    /// it in memory, up to `max_instance_mb`).
    deflate_gate: Mutex<()>,
    /// STOW-RS parts are read into memory to be checked: two requests at a time.
    part_checks: tokio::sync::Semaphore,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Open the store in the data folder, recover interrupted jobs and pick up
    /// DICOM series that were being received.
    pub fn open(cfg: ServerConfig, classifier: SharedClassifier) -> Result<Arc<Self>> {
        let store = Arc::new(SqliteJobStore::open(&cfg.data_dir.join("jobs.sqlite"))?);
        Self::with_store(cfg, store, classifier)
    }

    /// Like [`Server::open`] with a given store.
    pub fn with_store(
        cfg: ServerConfig,
        store: Arc<dyn JobStore>,
        classifier: SharedClassifier,
    ) -> Result<Arc<Self>> {
        cfg.validate()?;
        let token_file = cfg
            .token_file
            .clone()
            .ok_or_else(|| NativeError::Config("no token file".into()))?;
        let tokens = Tokens::from_file(&token_file)?;
        let dirs = Dirs {
            inputs: cfg.data_dir.join("inputs"),
            results: cfg.data_dir.join("results"),
            incoming: cfg.data_dir.join("incoming"),
        };
        private_fs::create_dir(&cfg.data_dir)?;
        // Health data: nobody but the server's user may enter the data folder
        // (also files an older version created with wider modes).
        private_fs::restrict_dir(&cfg.data_dir)?;
        for d in [&dirs.inputs, &dirs.results, &dirs.incoming] {
            private_fs::create_dir(d)?;
        }
        let audit = AuditLog::open_with(
            &cfg.audit_path(),
            AuditOptions {
                max_bytes: cfg.audit_max_mb.saturating_mul(1 << 20),
                keep: cfg.audit_keep,
                auth_failures_per_minute: cfg.audit_auth_failures_per_minute,
            },
        )?;
        let output = OutputOptions {
            deidentify: cfg
                .deidentify
                .then(|| DeidKey::load_or_create(&cfg.deid_key_path()))
                .transpose()?,
        };
        let server = Arc::new(Server {
            cfg,
            store,
            tokens,
            audit,
            metrics: Metrics::new(),
            dirs,
            classifier,
            analysis: AnalysisOptions::default(),
            output,
            running: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            signal: Signal::default(),
            deflate_gate: Mutex::new(()),
            part_checks: tokio::sync::Semaphore::new(2),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let results = server.dirs.results.clone();
        let (adopted, requeued) =
            recover(server.store.as_ref(), &|j: &Job| placement(&results, j))?;
        if adopted + requeued > 0 {
            tracing::info!(adopted, requeued, "recovered interrupted jobs");
        }
        server.recover_inputs()?;
        server.resume_incoming()?;
        Ok(server)
    }

    /// At start: every folder in `inputs/` is either the input of a job, or
    /// a received DICOM series that a crash left between its move out of
    /// `incoming/` and its job (queued now), or an upload that never got its
    /// answer (removed). Inputs of finished jobs are removed unless
    /// `keep_inputs`.
    fn recover_inputs(&self) -> Result<()> {
        let jobs = self.store.list(None)?;
        let mut referenced = std::collections::HashSet::new();
        for j in &jobs {
            let finished = matches!(j.state, JobState::Done | JobState::Failed);
            for p in input_paths(&j.input) {
                if finished && !self.cfg.keep_inputs {
                    if p.starts_with(&self.dirs.inputs) && p.exists() {
                        let _ = std::fs::remove_dir_all(&p);
                    }
                } else if let Some(name) = p.file_name() {
                    referenced.insert(name.to_os_string());
                }
            }
        }
        let rd = std::fs::read_dir(&self.dirs.inputs)
            .map_err(|e| NativeError::io(&self.dirs.inputs, e))?;
        let (mut requeued, mut removed) = (0, 0);
        for entry in rd.flatten() {
            if referenced.contains(&entry.file_name()) || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            match incoming::SeriesMarker::read(&dir) {
                Some(m) => {
                    let instances = incoming::count_instances(&dir);
                    self.store.enqueue(&NewJob {
                        dedup_key: None,
                        source: "dicom".into(),
                        submitted_by: m.peer.clone(),
                        input: dir.display().to_string(),
                        label: format!("dicom from {}", m.peer),
                        series: Some(m.series.clone()),
                    })?;
                    self.audit.log(
                        &m.peer,
                        "submit",
                        None,
                        "recovered",
                        json!({"series": m.series, "instances": instances}),
                    );
                    requeued += 1;
                }
                None => {
                    let _ = std::fs::remove_dir_all(&dir);
                    removed += 1;
                }
            }
        }
        if requeued + removed > 0 {
            tracing::info!(
                requeued,
                removed,
                "recovered received series, removed unfinished uploads"
            );
        }
        Ok(())
    }

    /// `text` (a job's error, a worklist note) without the server's folders:
    /// input file names are shown relative to their job's input folder.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut prefixes = vec![self.dirs.inputs.display().to_string()];
        if let Ok(abs) = std::fs::canonicalize(&self.dirs.inputs) {
            prefixes.insert(0, abs.display().to_string());
        }
        for prefix in prefixes {
            let prefix = format!("{prefix}/");
            while let Some(at) = out.find(&prefix) {
                // Drop `<inputs>/<job folder>/`.
                let rest = &out[at + prefix.len()..];
                let skip = rest.find('/').map_or(rest.len(), |i| i + 1);
                out.replace_range(at..at + prefix.len() + skip, "");
            }
        }
        let data = self.cfg.data_dir.display().to_string();
        if !data.is_empty() && data != "." {
            out = out.replace(&data, "<data>");
        }
        out
    }

    /// Ask the workers, the SCP and the quiet timer to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.signal.notify();
    }

    /// Queue a job for an input folder. Fails with [`NativeError::Busy`] when
    /// the queue is full.
    pub fn submit(
        &self,
        input: &Path,
        source: &str,
        actor: &str,
        series: Option<String>,
        detail: Value,
    ) -> Result<Job> {
        let (job, _) = self.store.enqueue_limited(
            &NewJob {
                dedup_key: None,
                source: source.into(),
                submitted_by: actor.into(),
                input: input.display().to_string(),
                label: format!("{source} from {actor}"),
                series,
            },
            self.cfg.max_queued,
        )?;
        self.metrics
            .submitted
            .get_or_create(&SourceLabel {
                source: source.into(),
            })
            .inc();
        self.audit.log(actor, "submit", Some(&job.id), "ok", detail);
        self.signal.notify();
        Ok(job)
    }

    /// Progress of a running job (stage, overall fraction).
    pub fn progress_of(&self, id: &str) -> Option<(&'static str, f64)> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(id).map(|p| {
            let (stage, f) = p.snapshot();
            (stage.name(), (f * 1000.0).round() / 1000.0)
        })
    }

    /// A fresh input folder.
    fn new_input_dir(&self) -> Result<PathBuf> {
        let dir = self.dirs.inputs.join(uuid::Uuid::new_v4().to_string());
        private_fs::create_dir(&dir)?;
        Ok(dir)
    }

    /// Worker loop: claim and run jobs until shutdown.
    fn worker(self: &Arc<Self>, n: usize) {
        let name = format!("server-{}-{n}", std::process::id());
        while !self.stop.load(Ordering::Relaxed) {
            match self.store.claim(&name) {
                Ok(Some(job)) => self.process(&job),
                Ok(None) => self.signal.wait(Duration::from_secs(1)),
                Err(e) => {
                    tracing::error!("claiming a job: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn process(self: &Arc<Self>, job: &Job) {
        let progress = Arc::new(JobProgress::new());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), progress.clone());
        let place = placement(&self.dirs.results, job);
        let t0 = Instant::now();
        let outcome = run_job(
            self.store.as_ref(),
            job,
            &self.analysis,
            &self.output,
            self.classifier.as_ref(),
            &place,
            progress.as_ref(),
        );
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        self.metrics
            .analysis_seconds
            .observe(t0.elapsed().as_secs_f64());
        let (state, detail) = match &outcome {
            Ok(Outcome::Done { summary, .. }) => (
                "done",
                json!({"priority": summary.priority, "score": summary.score, "series": summary.series_uid}),
            ),
            Ok(Outcome::Failed { code, message }) => {
                ("failed", json!({"code": code, "error": message}))
            }
            Err(e) => {
                tracing::error!(job = %job.id, "recording the outcome failed: {e}");
                return;
            }
        };
        tracing::info!(job = %job.id, state, "analysis finished");
        self.metrics
            .finished
            .get_or_create(&StateLabel {
                state: state.into(),
            })
            .inc();
        self.audit
            .log("server", "analysed", Some(&job.id), state, detail);
        if state == "done" {
            self.forward(job, &place.dest);
        }
        if !self.cfg.keep_inputs {
            for p in input_paths(&job.input) {
                if p.starts_with(&self.dirs.inputs) {
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
    }
}

/// Where a server job's result goes: `results/<job id>`.
pub fn placement(results: &Path, job: &Job) -> Placement {
    Placement {
        dest: results.join(&job.id),
        tmp: results.join(".tmp").join(&job.id),
    }
}

/// Start the analysis workers, the quiet-series timer and (if configured) the
/// DICOM SCP. Returns the SCP's bound address.
pub fn start_background(server: &Arc<Server>) -> Result<Option<SocketAddr>> {
    for n in 0..server.cfg.workers {
        let s = server.clone();
        std::thread::Builder::new()
            .name(format!("ctt-worker-{n}"))
            .spawn(move || s.worker(n))
            .map_err(|e| NativeError::Config(format!("thread: {e}")))?;
    }
    let s = server.clone();
    std::thread::Builder::new()
        .name("ctt-quiet".into())
        .spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                s.flush_quiet_series(false);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .map_err(|e| NativeError::Config(format!("thread: {e}")))?;
    let Some(addr) = server.cfg.dicom_addr() else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(|e| NativeError::Config(format!("DICOM port {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NativeError::Config(e.to_string()))?;
    let opts = server.cfg.scp_options()?;
    let sink = Arc::new(Sink(server.clone()));
    let stop = server.stop.clone();
    std::thread::Builder::new()
        .name("ctt-scp-accept".into())
        .spawn(move || {
            if let Err(e) = scp::serve(listener, opts, sink, stop) {
                tracing::error!("DICOM SCP stopped: {e}");
            }
        })
        .map_err(|e| NativeError::Config(format!("thread: {e}")))?;
    Ok(Some(bound))
}
