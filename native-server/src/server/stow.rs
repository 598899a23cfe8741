//! STOW-RS (`POST /dicomweb/studies[/{study}]`, multipart/related; application/dicom).

use std::path::Path;

use axum::Extension;
use axum::RequestExt;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::Caller;
use super::http::{AppState, Cleanup, blocking, request_error};
use crate::dimse::{status, trim_uid};
use crate::error::{NativeError, Result};

pub(super) async fn stow(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response> {
    stow_impl(s, caller, None, req).await
}

pub(super) async fn stow_study(
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
