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
//! | `http` | the HTTP API (axum): routes, auth, uploads, job resources, the listener |
//! | `stow` | STOW-RS |
//! | `incoming` | instances from the C-STORE SCP, quiet-series detection |
//! | `forward` | results sent to PACS with C-STORE |

mod forward;
mod http;
mod incoming;
mod stow;

pub use http::{router, run};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ct_triage_core::pipeline::AnalysisOptions;
use serde_json::{Value, json};

use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::config::ServerConfig;
use crate::error::{NativeError, Result};
use crate::jobs::{Job, JobStore, NewJob, Outcome, SqliteJobStore};
use crate::metrics::{Metrics, SourceLabel, StateLabel};
use crate::model::SharedClassifier;
use crate::output::{DeidKey, OutputOptions};
use crate::progress::JobProgress;
use crate::runner::{Placement, input_paths, recover, run_job};
use crate::scp::{self, ScpOptions};
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
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The caller of an authenticated request (`token:<id>`).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| NativeError::io(p, e))
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
        for d in [&dirs.inputs, &dirs.results, &dirs.incoming] {
            mkdir(d)?;
        }
        let audit = AuditLog::open(&cfg.audit_path())?;
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
            stop: Arc::new(AtomicBool::new(false)),
        });
        let results = server.dirs.results.clone();
        let (adopted, requeued) =
            recover(server.store.as_ref(), &|j: &Job| placement(&results, j))?;
        if adopted + requeued > 0 {
            tracing::info!(adopted, requeued, "recovered interrupted jobs");
        }
        server.resume_incoming()?;
        Ok(server)
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
        let counts = self.store.counts()?;
        if counts.queued >= self.cfg.max_queued {
            return Err(NativeError::Busy(format!(
                "{} jobs queued (limit {})",
                counts.queued, self.cfg.max_queued
            )));
        }
        let (job, _) = self.store.enqueue(&NewJob {
            dedup_key: None,
            source: source.into(),
            submitted_by: actor.into(),
            input: input.display().to_string(),
            label: format!("{source} from {actor}"),
            series,
        })?;
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
        mkdir(&dir)?;
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
    let opts = ScpOptions {
        ae_title: server.cfg.ae_title.clone(),
        max_associations: server.cfg.max_associations,
        ..ScpOptions::default()
    };
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
