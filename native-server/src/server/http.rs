//! The HTTP API (axum): routes, bearer-token auth and roles, uploads and job
//! resources. The listener (timeouts, connection cap, TLS) is in
//! [`super::listen`].
//!
//! Error answers never carry server file paths: internal failures are
//! answered with a reference that the server log has the details of, and
//! the messages of failed jobs have the input folder stripped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::RequestExt;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::listen::peer_ip;
use super::stow::{stow, stow_study};
use super::{OPENAPI, Server, placement};
use crate::auth::{Identity, Role};
use crate::error::{NativeError, Result};
use crate::input::{extract_zip, is_zip, list_files};
use crate::jobs::{Job, JobState};
use crate::metrics::HttpLabel;
use crate::output;
use crate::private_fs;
use crate::related::multipart_error;
use crate::worklist;

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let status = match &self {
            NativeError::NotFound(_) => StatusCode::NOT_FOUND,
            NativeError::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            NativeError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            NativeError::Input(_) => StatusCode::BAD_REQUEST,
            NativeError::Network(_) => StatusCode::BAD_GATEWAY,
            NativeError::Request { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // I/O, store and output errors name server paths: log them, answer a reference.
            let reference = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(%reference, "request failed: {self}");
            format!("internal error (reference {reference} in the server log)")
        } else {
            self.to_string()
        };
        let mut resp = (
            status,
            Json(json!({"error": self.code(), "message": message})),
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

async fn auth(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.tokens.check_header(header) {
        Some(id) => {
            req.extensions_mut().insert(id.clone());
            next.run(req).await
        }
        None => {
            s.audit.auth_failed(&peer_ip(&req), req.uri().path());
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

/// A refusal for a caller whose role does not allow the request.
fn forbidden(who: &Identity, what: &str) -> NativeError {
    request_error(
        403,
        format!("the role {} may not {what}", who.role.as_str()),
    )
}

/// A multipart body as a multer stream (boundary from the `Content-Type`).
pub(super) fn multipart(req: Request, boundary: String) -> multer::Multipart<'static> {
    let body: Body = req.into_limited_body();
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    multer::Multipart::new(stream, boundary)
}

/// Write one multipart field to a new owner-only file, synced. Returns its size.
pub(super) async fn save_field(field: &mut multer::Field<'static>, path: &Path) -> Result<u64> {
    let mut out = tokio::fs::File::from_std(private_fs::create_file(path)?);
    let mut bytes = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .map_err(|e| NativeError::io(path, e))?;
    }
    out.sync_all().await.map_err(|e| NativeError::io(path, e))?;
    Ok(bytes)
}

/// The boundary of a `multipart/form-data` request.
fn form_boundary(headers: &HeaderMap) -> Result<String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let m: mime::Mime = ct
        .parse()
        .map_err(|_| request_error(415, "POST /v1/studies expects multipart/form-data"))?;
    if m.type_() != mime::MULTIPART || m.subtype() != mime::FORM_DATA {
        return Err(request_error(
            415,
            "POST /v1/studies expects multipart/form-data",
        ));
    }
    m.get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .ok_or_else(|| request_error(400, "multipart/form-data without boundary"))
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NativeError::Panic(e.to_string()))?
}

/// Unpack the zip archives of an upload folder in place (each removed once
/// unpacked) within the server's zip limits; returns the instances (files)
/// and the members left out.
fn unpack_upload(dir: &Path, limits: &crate::input::ZipLimits) -> Result<(usize, Vec<String>)> {
    let mut used = 0u64;
    let mut skipped = Vec::new();
    for f in list_files(&[dir.to_path_buf()])? {
        if is_zip(&f) {
            let got = extract_zip(&f, dir, limits, &mut used)?;
            std::fs::remove_file(&f).map_err(|e| NativeError::io(&f, e))?;
            skipped.extend(
                got.skipped
                    .into_iter()
                    .map(|s| format!("{}: {}", s.path, s.reason)),
            );
        }
    }
    let files = list_files(&[dir.to_path_buf()])?.len();
    private_fs::sync_dir(dir)?;
    Ok((files, skipped))
}

async fn post_studies(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
    req: Request,
) -> Result<Response> {
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if json_body {
        // A study on a DICOMweb server instead of an upload.
        return super::wado::post_dicomweb_study(s, caller, req).await;
    }
    let boundary = form_boundary(req.headers())?;
    let mut mp = multipart(req, boundary);
    let dir = s.new_input_dir()?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    let (mut files, mut bytes) = (0usize, 0u64);
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
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
        bytes += save_field(&mut field, &dir.join(format!("part-{files:05}"))).await?;
    }
    if files == 0 {
        return Err(request_error(
            400,
            "no file in the upload (multipart/form-data parts)",
        ));
    }
    let (d, limits) = (dir.clone(), s.cfg.zip_limits());
    let (instances, skipped) = blocking(move || unpack_upload(&d, &limits)).await?;
    if instances > s.cfg.max_instances {
        return Err(NativeError::Limit(format!(
            "{instances} instances in one upload (limit {})",
            s.cfg.max_instances
        )));
    }
    if instances == 0 {
        return Err(request_error(
            422,
            format!("nothing to analyse in the upload: {}", skipped.join("; ")),
        ));
    }
    private_fs::sync_dir(&s.dirs.inputs)?;
    let job = s.submit(
        &dir,
        "http",
        &caller.actor(),
        None,
        json!({"files": files, "instances": instances, "bytes": bytes, "skipped": skipped.len()}),
    )?;
    cleanup.0 = None;
    Ok(accepted(&job, &skipped))
}

/// `202 Accepted` with the job id, its status URL (also as `Location`) and
/// what was skipped.
pub(super) fn accepted(job: &Job, skipped: &[String]) -> Response {
    let url = format!("/v1/jobs/{}", job.id);
    let mut body = json!({"job_id": job.id, "state": job.state, "status_url": url});
    if !skipped.is_empty() {
        body["skipped"] = json!(skipped);
    }
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A job the caller may see; others are "not found" (their ids are not confirmed).
fn visible_job(s: &Server, who: &Identity, id: &str) -> Result<Job> {
    s.store
        .get(id)?
        .filter(|j| who.may_see(&j.submitted_by))
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
    Extension(caller): Extension<Identity>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response> {
    let job = visible_job(&s, &caller, &id)?;
    let mut v = serde_json::to_value(&job).map_err(|e| NativeError::Output(e.to_string()))?;
    if let Some(e) = &job.error {
        v["error"] = json!(s.redact(e));
    }
    if job.state == JobState::Running
        && let Some((stage, fraction)) = s.progress_of(&id)
    {
        v["progress"] = json!({"stage": stage, "fraction": fraction});
    }
    if job.state == JobState::Done && caller.may_read_results(&job.submitted_by) {
        v["links"] = json!({
            "report": format!("/v1/jobs/{id}/report"),
            "key_images": key_image_urls(&s, &job),
        });
    }
    s.audit
        .log_as(&caller, "read_job", Some(&id), "ok", Value::Null);
    Ok(Json(v).into_response())
}

/// The published result folder of a done job the caller may read, or why not.
fn result_dir(s: &Server, who: &Identity, id: &str) -> Result<PathBuf> {
    let job = visible_job(s, who, id)?;
    if !who.may_read_results(&job.submitted_by) {
        return Err(forbidden(who, "read reports"));
    }
    if job.state != JobState::Done {
        return Err(request_error(
            409,
            format!(
                "job {id} is {}{}",
                job.state.as_str(),
                job.error
                    .map(|e| format!(": {}", s.redact(&e)))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(placement(&s.dirs.results, &job).dest)
}

async fn get_report(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response> {
    let path = result_dir(&s, &caller, &id)?.join(output::REPORT_FILE);
    let body = tokio::fs::read(&path)
        .await
        .map_err(|e| NativeError::io(&path, e))?;
    s.audit
        .log_as(&caller, "read_report", Some(&id), "ok", Value::Null);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn get_key_image(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Result<Response> {
    let n: u32 = file
        .strip_suffix(".png")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| NativeError::NotFound("key image".into()))?;
    let path = result_dir(&s, &caller, &id)?
        .join("key-images")
        .join(format!("finding-{n}.png"));
    let body = tokio::fs::read(&path)
        .await
        .map_err(|_| NativeError::NotFound(format!("key image {n} of job {id}")))?;
    s.audit.log_as(
        &caller,
        "read_key_image",
        Some(&id),
        "ok",
        json!({"finding": n}),
    );
    Ok(([(header::CONTENT_TYPE, "image/png")], body).into_response())
}

async fn get_worklist(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
) -> Result<Response> {
    if caller.role < Role::ReadOwn {
        return Err(forbidden(&caller, "read the worklist"));
    }
    let jobs: Vec<Job> = s
        .store
        .list(None)?
        .into_iter()
        .filter(|j| caller.may_read_results(&j.submitted_by))
        .collect();
    let rows: Vec<Value> = worklist::rows(&jobs, None)
        .into_iter()
        .map(|r| {
            let url = (r.state == "done").then(|| format!("/v1/jobs/{}/report", r.job_id));
            let note = r.note.as_deref().map(|n| s.redact(n));
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            v["report_dir"] = Value::Null;
            v["report_url"] = json!(url);
            v["note"] = json!(note);
            v
        })
        .collect();
    s.audit.log_as(
        &caller,
        "read_worklist",
        None,
        "ok",
        json!({"rows": rows.len()}),
    );
    Ok(Json(json!({"worklist": rows})).into_response())
}

async fn get_metrics(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
) -> Result<Response> {
    if caller.role < Role::Admin {
        return Err(forbidden(&caller, "read the metrics"));
    }
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
