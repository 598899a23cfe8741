//! The HTTP API (axum): routes, bearer-token auth, uploads, job resources, and
//! the listener loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, MatchedPath, Multipart, Path as UrlPath, Request, State,
};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::stow::{stow, stow_study};
use super::{Caller, OPENAPI, Server, placement, start_background};
use crate::error::{NativeError, Result};
use crate::input::{is_zip, list_files};
use crate::jobs::{Job, JobState};
use crate::metrics::HttpLabel;
use crate::output;
use crate::worklist;

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

pub(super) type AppState = Arc<Server>;

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
pub(super) struct Cleanup(pub(super) Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

pub(super) fn request_error(status: u16, message: impl Into<String>) -> NativeError {
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

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
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
