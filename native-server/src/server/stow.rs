//! STOW-RS (`POST /dicomweb/studies[/{study}]`, PS3.18 §10.5): each part must
//! be `application/dicom`, a Part 10 CT instance that passes core's length
//! guard; the response lists every stored instance (ReferencedSOPSequence)
//! and every refused part with its failure reason (FailedSOPSequence):
//!
//! | reason | |
//! |---|---|
//! | `C000` | not `application/dicom`, not a readable Part 10 object, or invalid UIDs |
//! | `0122` | not a CT image storage SOP class |
//! | `A900` | not of the study named in the URL |
//! | `A700` | larger than `max_instance_mb` |
//! | `0111` | the same SOP instance twice in one request (the later copies) |

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use axum::Extension;
use axum::RequestExt;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ct_triage_core::ingest::{self, Limits};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::http::{AppState, Cleanup, blocking};
use crate::auth::Identity;
use crate::dimse::{is_valid_uid, status, trim_uid};
use crate::error::{NativeError, Result};
use crate::private_fs;
use crate::related::RelatedParts;
use crate::scp::ACCEPTED_SOP_CLASSES;

pub(super) async fn stow(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
    req: Request,
) -> Result<Response> {
    stow_impl(s, caller, None, req).await
}

pub(super) async fn stow_study(
    State(s): State<AppState>,
    Extension(caller): Extension<Identity>,
    UrlPath(study): UrlPath<String>,
    req: Request,
) -> Result<Response> {
    stow_impl(s, caller, Some(study), req).await
}

/// A stored part, checked: its UIDs, or the failure reason and why.
struct Checked {
    class: String,
    instance: String,
    failure: Option<(u16, String)>,
}

impl Checked {
    fn refused(code: u16, why: impl Into<String>) -> Self {
        Checked {
            class: String::new(),
            instance: String::new(),
            failure: Some((code, why.into())),
        }
    }
}

/// Check one stored part: size, core's length guard (before dicom-object
/// reads it), UIDs, SOP class and study.
fn check_part(path: &Path, index: usize, study: Option<&str>, max_bytes: u64) -> Checked {
    let name = format!("part {index}");
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > max_bytes {
        return Checked::refused(
            status::OUT_OF_RESOURCES,
            format!("{name}: {size} bytes, larger than the instance limit of {max_bytes}"),
        );
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Checked::refused(status::OUT_OF_RESOURCES, format!("{name}: {e}")),
    };
    if let Err(e) =
        ingest::check_part10(&name, &bytes, &Limits::default().max_file_bytes(max_bytes))
    {
        return Checked::refused(status::CANNOT_UNDERSTAND, e.to_string());
    }
    let obj = match OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .from_reader(&bytes[..])
    {
        Ok(o) => o,
        Err(e) => {
            return Checked::refused(
                status::CANNOT_UNDERSTAND,
                format!("{name}: not a DICOM Part 10 object: {e}"),
            );
        }
    };
    let get = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default()
    };
    let class = trim_uid(obj.meta().media_storage_sop_class_uid()).to_string();
    let instance = trim_uid(obj.meta().media_storage_sop_instance_uid()).to_string();
    let st = get(tags::STUDY_INSTANCE_UID);
    let failure = if !(is_valid_uid(&class) && is_valid_uid(&instance) && is_valid_uid(&st)) {
        Some((
            status::CANNOT_UNDERSTAND,
            format!("{name}: SOP class, SOP instance or study UID is not a valid UID"),
        ))
    } else if !ACCEPTED_SOP_CLASSES.contains(&class.as_str()) {
        Some((
            status::SOP_CLASS_NOT_SUPPORTED,
            format!("{name}: SOP class {class} is not a CT image storage class"),
        ))
    } else if study.is_some_and(|want| want != st) {
        Some((
            status::DATA_SET_DOES_NOT_MATCH,
            format!("{name}: of study {st}, not of the study in the URL"),
        ))
    } else {
        None
    };
    Checked {
        class,
        instance,
        failure,
    }
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
    caller: Identity,
    study: Option<String>,
    req: Request,
) -> Result<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Body = req.into_limited_body();
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut parts = RelatedParts::new(&content_type, stream, s.cfg.max_instances)?;
    let dir = s.new_input_dir()?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    // (index, stored file or the refusal of its media type)
    let mut stored: Vec<(usize, std::result::Result<PathBuf, String>)> = Vec::new();
    while let Some(mut part) = parts.next().await? {
        if let Some(why) = part.refusal.take() {
            part.drain().await?;
            stored.push((part.index, Err(why)));
            continue;
        }
        let path = dir.join(format!("{:05}.dcm", part.index));
        part.save(&path).await?;
        stored.push((part.index, Ok(path)));
    }
    let max_bytes = s.cfg.max_instance_bytes() as u64;
    let want = study.clone();
    // Parts are read into memory to be checked: bound how many at once.
    let _permit = s
        .part_checks
        .acquire()
        .await
        .map_err(|e| NativeError::Busy(e.to_string()))?;
    let checked = blocking(move || {
        Ok(stored
            .into_iter()
            .map(|(index, p)| {
                let c = match &p {
                    Ok(path) => check_part(path, index, want.as_deref(), max_bytes),
                    Err(why) => Checked::refused(status::CANNOT_UNDERSTAND, why.clone()),
                };
                (p.ok(), c)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (path, mut c) in checked {
        if c.failure.is_none() && !seen.insert(c.instance.clone()) {
            c.failure = Some((
                status::DUPLICATE_SOP_INSTANCE,
                format!("SOP instance {} sent twice", c.instance),
            ));
        }
        match &c.failure {
            None => ok.push(sop_item(&c.class, &c.instance, None)),
            Some((code, why)) => {
                tracing::info!(caller = %caller.name, "STOW part refused ({code:04X}): {why}");
                if let Some(p) = &path {
                    let _ = std::fs::remove_file(p);
                }
                failed.push(sop_item(&c.class, &c.instance, Some(*code)));
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
        s.audit.log_as(
            &caller,
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
    private_fs::sync_dir(&dir)?;
    private_fs::sync_dir(&s.dirs.inputs)?;
    let job = s.submit(
        &dir,
        "stow",
        &caller.actor(),
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
