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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, MatchedPath, Multipart, Path as UrlPath, Request, State,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, RequestExt};
use ct_triage_core::pipeline::AnalysisOptions;
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::config::ServerConfig;
use crate::dimse::{status, trim_uid};
use crate::error::{NativeError, Result};
use crate::input::{is_zip, list_files};
use crate::jobs::{Job, JobState, JobStore, NewJob, Outcome, SqliteJobStore};
use crate::metrics::{HttpLabel, Metrics, ResultLabel, SourceLabel, StateLabel};
use crate::model::SharedClassifier;
use crate::output::{self, DeidKey, OutputOptions};
use crate::progress::JobProgress;
use crate::runner::{Placement, input_paths, recover, run_job};
use crate::scp::{self, InstanceSink, Peer, Received, ScpOptions};
use crate::scu;
use crate::worklist;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

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
#[derive(Debug)]
struct Pending {
    last: Instant,
    count: usize,
    peer: String,
}

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

/// UIDs become folder names: only digits and dots, 1–64 characters.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
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

    /// Send the job's DICOM objects (and, if configured, its inputs) to the
    /// forwarding destination, recording the result on the job.
    fn forward(&self, job: &Job, result: &Path) {
        let dest = match self.cfg.destination() {
            Ok(Some(d)) => d,
            _ => return,
        };
        let mut files = output::dicom_objects(result).unwrap_or_default();
        if self.cfg.forward_inputs {
            let inputs = list_files(&input_paths(&job.input)).unwrap_or_default();
            files.extend(inputs.into_iter().filter(|p| !is_zip(p)));
        }
        let status = if files.is_empty() {
            "none: no DICOM objects to send".to_string()
        } else {
            match scu::send(&files, &dest, &self.cfg.ae_title) {
                Ok(sent) => {
                    for (result, n) in [("stored", sent.stored), ("failed", sent.failed.len())] {
                        self.metrics
                            .forwarded
                            .get_or_create(&ResultLabel {
                                result: result.into(),
                            })
                            .inc_by(n as u64);
                    }
                    for (f, why) in &sent.failed {
                        tracing::warn!(job = %job.id, file = %f, "not forwarded: {why}");
                    }
                    format!("sent {}/{} to {dest}", sent.stored, files.len())
                }
                Err(e) => format!("error: {e}"),
            }
        };
        let outcome = if status.starts_with("error") {
            "error"
        } else {
            "ok"
        };
        self.audit.log(
            "server",
            "forward",
            Some(&job.id),
            outcome,
            json!({"destination": dest.to_string(), "status": status}),
        );
        if let Err(e) = self.store.set_forward(&job.id, &status) {
            tracing::error!("recording forward status: {e}");
        }
    }

    /// Register series folders left in `incoming/` by a previous run.
    fn resume_incoming(&self) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let rd = std::fs::read_dir(&self.dirs.incoming)
            .map_err(|e| NativeError::io(&self.dirs.incoming, e))?;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && valid_uid(&name) {
                let count = std::fs::read_dir(entry.path())
                    .map(|r| r.count())
                    .unwrap_or(0);
                pending.insert(
                    name,
                    Pending {
                        last: Instant::now(),
                        count,
                        peer: "ae:(before restart)".into(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Turn every series that has been quiet long enough into a job.
    pub fn flush_quiet_series(&self, force: bool) {
        let quiet = Duration::from_secs_f64(self.cfg.quiet_seconds);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, p)| force || p.last.elapsed() >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        for series in ready {
            let Some(p) = pending.remove(&series) else {
                continue;
            };
            let src = self.dirs.incoming.join(&series);
            let input = self.dirs.inputs.join(uuid::Uuid::new_v4().to_string());
            let submitted = std::fs::rename(&src, &input)
                .map_err(|e| NativeError::io(&src, e))
                .and_then(|_| {
                    self.submit(
                        &input,
                        "dicom",
                        &p.peer,
                        Some(series.clone()),
                        json!({"series": series, "instances": p.count}),
                    )
                });
            if let Err(e) = submitted {
                tracing::warn!(%series, "series not queued yet: {e}");
                if input.exists() {
                    let _ = std::fs::rename(&input, &src);
                }
                pending.insert(
                    series,
                    Pending {
                        last: Instant::now(),
                        ..p
                    },
                );
            }
        }
    }

    fn store_instance(&self, peer: &Peer, inst: &Received) -> Result<u16> {
        if !valid_uid(inst.sop_instance) {
            return Ok(status::CANNOT_UNDERSTAND);
        }
        let bytes = inst.to_part10()?;
        let obj = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Auto)
            .read_until(tags::PIXEL_DATA)
            .from_reader(&bytes[..])
            .map_err(|e| NativeError::Network(format!("unreadable instance: {e}")))?;
        let series = obj
            .element(tags::SERIES_INSTANCE_UID)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default();
        if !valid_uid(&series) {
            return Ok(status::CANNOT_UNDERSTAND);
        }
        let tmp_dir = self.dirs.incoming.join(".tmp");
        mkdir(&tmp_dir)?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        std::fs::write(&tmp, &bytes).map_err(|e| NativeError::io(&tmp, e))?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending.entry(series.clone()).or_insert_with(|| Pending {
            last: Instant::now(),
            count: 0,
            peer: format!("ae:{}@{}", peer.ae_title, peer.addr.ip()),
        });
        if entry.count >= self.cfg.max_instances {
            let _ = std::fs::remove_file(&tmp);
            return Ok(status::OUT_OF_RESOURCES);
        }
        let dir = self.dirs.incoming.join(&series);
        mkdir(&dir)?;
        let dest = dir.join(format!("{}.dcm", inst.sop_instance));
        std::fs::rename(&tmp, &dest).map_err(|e| NativeError::io(&dest, e))?;
        entry.count += 1;
        entry.last = Instant::now();
        self.metrics.instances_received.inc();
        Ok(status::SUCCESS)
    }
}

/// Where a server job's result goes: `results/<job id>`.
pub fn placement(results: &Path, job: &Job) -> Placement {
    Placement {
        dest: results.join(&job.id),
        tmp: results.join(".tmp").join(&job.id),
    }
}

/// The SCP's sink: files instances by series under `incoming/`.
struct Sink(Arc<Server>);

impl InstanceSink for Sink {
    fn store(&self, peer: &Peer, instance: &Received) -> u16 {
        match self.0.store_instance(peer, instance) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer = %peer.ae_title, "instance not stored: {e}");
                status::CANNOT_UNDERSTAND
            }
        }
    }

    fn association_closed(&self, peer: &Peer, stored: usize) {
        self.0.audit.log(
            &format!("ae:{}@{}", peer.ae_title, peer.addr.ip()),
            "dicom_store",
            None,
            "ok",
            json!({"instances": stored}),
        );
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

// ---------------------------------------------------------------- HTTP

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let status = match &self {
            NativeError::NotFound(_) => StatusCode::NOT_FOUND,
            NativeError::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            NativeError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            NativeError::Input(_) => StatusCode::BAD_REQUEST,
            NativeError::Request { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut resp = (
            status,
            Json(json!({"error": self.code(), "message": self.to_string()})),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}

type AppState = Arc<Server>;

/// The HTTP application.
pub fn router(server: Arc<Server>) -> Router {
    let protected = Router::new()
        .route("/v1/studies", post(post_studies))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/report", get(get_report))
        .route("/v1/jobs/{id}/key-images/{file}", get(get_key_image))
        .route("/v1/worklist", get(get_worklist))
        .route("/dicomweb/studies", post(stow))
        .route("/dicomweb/studies/{study}", post(stow_study))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(get_openapi))
        .route_layer(middleware::from_fn_with_state(server.clone(), auth));
    Router::new()
        .merge(protected)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .layer(middleware::from_fn_with_state(server.clone(), track))
        .layer(DefaultBodyLimit::max(server.cfg.max_body_bytes()))
        .with_state(server)
}

fn peer_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

async fn auth(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.tokens.check_header(header) {
        Some(id) => {
            let caller = Caller(format!("token:{id}"));
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => {
            let actor = format!("anonymous@{}", peer_ip(&req));
            s.audit.log(
                &actor,
                "auth_failed",
                None,
                "denied",
                json!({"path": req.uri().path()}),
            );
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"error": "unauthorized", "message": "a valid bearer token is required"}),
                ),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    s.metrics
        .http
        .get_or_create(&HttpLabel {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Removes an input folder unless disarmed (failed uploads leave nothing behind).
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn request_error(status: u16, message: impl Into<String>) -> NativeError {
    NativeError::Request {
        status,
        message: message.into(),
    }
}

/// Instances in an input folder: zip members count one each.
fn count_instances(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for f in list_files(&[dir.to_path_buf()])? {
        n += if is_zip(&f) {
            std::fs::File::open(&f)
                .ok()
                .and_then(|file| zip::ZipArchive::new(file).ok())
                .map_or(1, |z| z.len())
        } else {
            1
        };
    }
    Ok(n)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NativeError::Panic(e.to_string()))?
}

async fn post_studies(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut mp: Multipart,
) -> Result<Response> {
    let dir = s.new_input_dir()?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    let (mut files, mut bytes) = (0usize, 0u64);
    loop {
        let field = mp
            .next_field()
            .await
            .map_err(|e| request_error(e.status().as_u16(), e.body_text()))?;
        let Some(mut field) = field else { break };
        if field.file_name().is_none() {
            // A plain form value, not a file.
            continue;
        }
        files += 1;
        if files > s.cfg.max_instances {
            return Err(NativeError::Limit(format!(
                "more than {} files in one upload",
                s.cfg.max_instances
            )));
        }
        let path = dir.join(format!("part-{files:05}"));
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| NativeError::io(&path, e))?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| request_error(e.status().as_u16(), e.body_text()))?
        {
            bytes += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| NativeError::io(&path, e))?;
        }
        out.sync_all()
            .await
            .map_err(|e| NativeError::io(&path, e))?;
    }
    if files == 0 {
        return Err(request_error(
            400,
            "no file in the upload (multipart/form-data parts)",
        ));
    }
    let d = dir.clone();
    let instances = blocking(move || count_instances(&d)).await?;
    if instances > s.cfg.max_instances {
        return Err(NativeError::Limit(format!(
            "{instances} instances in one upload (limit {})",
            s.cfg.max_instances
        )));
    }
    let job = s.submit(
        &dir,
        "http",
        &caller.0,
        None,
        json!({"files": files, "instances": instances, "bytes": bytes}),
    )?;
    cleanup.0 = None;
    let url = format!("/v1/jobs/{}", job.id);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({"job_id": job.id, "state": job.state, "status_url": url})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn job_or_404(s: &Server, id: &str) -> Result<Job> {
    s.store
        .get(id)?
        .ok_or_else(|| NativeError::NotFound(format!("job {id}")))
}

fn key_image_urls(s: &Server, job: &Job) -> Vec<String> {
    let dir = placement(&s.dirs.results, job).dest.join("key-images");
    let mut ids: Vec<u32> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("finding-")?
                        .strip_suffix(".png")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids.into_iter()
        .map(|n| format!("/v1/jobs/{}/key-images/{n}.png", job.id))
        .collect()
}

async fn get_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response> {
    let job = job_or_404(&s, &id)?;
    let mut v = serde_json::to_value(&job).map_err(|e| NativeError::Output(e.to_string()))?;
    if job.state == JobState::Running
        && let Some((stage, fraction)) = s.progress_of(&id)
    {
        v["progress"] = json!({"stage": stage, "fraction": fraction});
    }
    if job.state == JobState::Done {
        v["links"] = json!({
            "report": format!("/v1/jobs/{id}/report"),
            "key_images": key_image_urls(&s, &job),
        });
    }
    s.audit
        .log(&caller.0, "read_job", Some(&id), "ok", Value::Null);
    Ok(Json(v).into_response())
}

/// The published result folder of a done job, or an error explaining why not.
fn result_dir(s: &Server, id: &str) -> Result<PathBuf> {
    let job = job_or_404(s, id)?;
    if job.state != JobState::Done {
        return Err(request_error(
            409,
            format!(
                "job {id} is {}{}",
                job.state.as_str(),
                job.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ));
    }
    Ok(placement(&s.dirs.results, &job).dest)
}

async fn get_report(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response> {
    let path = result_dir(&s, &id)?.join(output::REPORT_FILE);
    let body = tokio::fs::read(&path)
        .await
        .map_err(|e| NativeError::io(&path, e))?;
    s.audit
        .log(&caller.0, "read_report", Some(&id), "ok", Value::Null);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn get_key_image(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Result<Response> {
    let n: u32 = file
        .strip_suffix(".png")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| NativeError::NotFound(format!("key image {file}")))?;
    let path = result_dir(&s, &id)?
        .join("key-images")
        .join(format!("finding-{n}.png"));
    let body = tokio::fs::read(&path)
        .await
        .map_err(|_| NativeError::NotFound(format!("key image {n} of job {id}")))?;
    s.audit.log(
        &caller.0,
        "read_key_image",
        Some(&id),
        "ok",
        json!({"finding": n}),
    );
    Ok(([(header::CONTENT_TYPE, "image/png")], body).into_response())
}

async fn get_worklist(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let jobs = s.store.list(None)?;
    let rows: Vec<Value> = worklist::rows(&jobs, None)
        .into_iter()
        .map(|r| {
            let url = (r.state == "done").then(|| format!("/v1/jobs/{}/report", r.job_id));
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            v["report_dir"] = Value::Null;
            v["report_url"] = json!(url);
            v
        })
        .collect();
    s.audit.log(
        &caller.0,
        "read_worklist",
        None,
        "ok",
        json!({"rows": rows.len()}),
    );
    Ok(Json(json!({"worklist": rows})).into_response())
}

async fn get_metrics(State(s): State<AppState>) -> Result<Response> {
    let counts = s.store.counts()?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(&counts),
    )
        .into_response())
}

async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---------------------------------------------------------------- STOW-RS

async fn stow(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response> {
    stow_impl(s, caller, None, req).await
}

async fn stow_study(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(study): UrlPath<String>,
    req: Request,
) -> Result<Response> {
    stow_impl(s, caller, Some(study), req).await
}

/// The boundary of a `multipart/related; type="application/dicom"` body.
fn related_boundary(headers: &HeaderMap) -> Result<String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let m: mime::Mime = ct
        .parse()
        .map_err(|_| request_error(415, format!("Content-Type {ct:?} is not a media type")))?;
    if m.type_() != mime::MULTIPART || m.subtype() != "related" {
        return Err(request_error(
            415,
            "STOW-RS expects multipart/related; type=\"application/dicom\"",
        ));
    }
    if let Some(t) = m.get_param("type")
        && t.as_str() != "application/dicom"
    {
        return Err(request_error(
            415,
            format!("multipart/related type {t} is not supported (only application/dicom)"),
        ));
    }
    m.get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .ok_or_else(|| request_error(400, "multipart/related without boundary"))
}

/// SOP class, SOP instance and study UIDs of a stored part, or why it is unusable.
fn identify(path: &Path) -> std::result::Result<(String, String, String), String> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| format!("not a DICOM Part 10 object: {e}"))?;
    let get = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default()
    };
    let class = trim_uid(obj.meta().media_storage_sop_class_uid()).to_string();
    let inst = trim_uid(obj.meta().media_storage_sop_instance_uid()).to_string();
    Ok((class, inst, get(tags::STUDY_INSTANCE_UID)))
}

fn sop_item(class: &str, inst: &str, failure: Option<u16>) -> Value {
    let mut v = json!({
        "00081150": {"vr": "UI", "Value": [class]},
        "00081155": {"vr": "UI", "Value": [inst]},
    });
    if let Some(code) = failure {
        v["00081197"] = json!({"vr": "US", "Value": [code]});
    }
    v
}

async fn stow_impl(
    s: AppState,
    caller: Caller,
    study: Option<String>,
    req: Request,
) -> Result<Response> {
    let boundary = related_boundary(req.headers())?;
    let body: Body = req.into_limited_body();
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut mp = multer::Multipart::new(stream, boundary);
    let dir = s.new_input_dir()?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    let mut parts = Vec::new();
    loop {
        let field = mp.next_field().await.map_err(|e| match e {
            multer::Error::StreamReadFailed(_) | multer::Error::StreamSizeExceeded { .. } => {
                request_error(413, format!("request body: {e}"))
            }
            e => request_error(400, format!("multipart/related body: {e}")),
        })?;
        let Some(mut field) = field else { break };
        if parts.len() >= s.cfg.max_instances {
            return Err(NativeError::Limit(format!(
                "more than {} instances in one request",
                s.cfg.max_instances
            )));
        }
        let path = dir.join(format!("{:05}.dcm", parts.len() + 1));
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| NativeError::io(&path, e))?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| request_error(413, format!("request body: {e}")))?
        {
            out.write_all(&chunk)
                .await
                .map_err(|e| NativeError::io(&path, e))?;
        }
        out.sync_all()
            .await
            .map_err(|e| NativeError::io(&path, e))?;
        parts.push(path);
    }
    let checked = blocking(move || {
        Ok(parts
            .into_iter()
            .map(|p| {
                let id = identify(&p);
                (p, id)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (path, id) in checked {
        match id {
            Ok((class, inst, st)) if study.as_deref().is_none_or(|want| want == st) => {
                ok.push(sop_item(&class, &inst, None));
            }
            Ok((class, inst, _)) => {
                let _ = std::fs::remove_file(&path);
                failed.push(sop_item(&class, &inst, Some(0xA900)));
            }
            Err(why) => {
                tracing::info!("STOW part refused: {why}");
                let _ = std::fs::remove_file(&path);
                failed.push(sop_item("", "", Some(status::CANNOT_UNDERSTAND)));
            }
        }
    }
    let mut body = json!({});
    if !ok.is_empty() {
        body["00081199"] = json!({"vr": "SQ", "Value": ok});
    }
    if !failed.is_empty() {
        body["00081198"] = json!({"vr": "SQ", "Value": failed});
    }
    if ok.is_empty() {
        s.audit.log(
            &caller.0,
            "submit",
            None,
            "refused",
            json!({"source": "stow", "failed": failed.len()}),
        );
        return Ok((
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "application/dicom+json")],
            body.to_string(),
        )
            .into_response());
    }
    let job = s.submit(
        &dir,
        "stow",
        &caller.0,
        None,
        json!({"instances": ok.len(), "failed": failed.len()}),
    )?;
    cleanup.0 = None;
    let url = format!("/v1/jobs/{}", job.id);
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/dicom+json")],
        body.to_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert(header::CONTENT_LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&job.id) {
        h.insert("x-job-id", v);
    }
    Ok(resp)
}

/// Run the server until Ctrl-C or SIGTERM. Jobs still running then are
/// recovered (queued again) at the next start.
pub fn run(server: Arc<Server>) -> Result<()> {
    let dicom = start_background(&server)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NativeError::Config(format!("runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&server.cfg.listen)
            .await
            .map_err(|e| NativeError::Config(format!("listen {}: {e}", server.cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| NativeError::Config(e.to_string()))?;
        tracing::info!(http = %addr, dicom = ?dicom, ae = %server.cfg.ae_title, "ct-triage server ready");
        let app = router(server.clone());
        let stopper = server.clone();
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            stopper.shutdown();
        })
        .await
        .map_err(|e| NativeError::Config(format!("HTTP server: {e}")))
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
