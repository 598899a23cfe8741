//! A job that names a study on a DICOMweb server instead of uploading it:
//! `POST /v1/studies` with `Content-Type: application/json` and
//! `{"dicomweb": "https://pacs/dicom-web", "study": "<uid>", "series": "<uid>"?,
//! "authorization": "Bearer …"?}`. The server lists the study's series
//! (QIDO-RS), fetches the CT series in its stored transfer syntax (WADO-RS)
//! into the job's input folder and queues it as an upload is queued.
//!
//! Only servers listed in `dicomweb_sources` are fetched from (otherwise a
//! caller could make the server request any URL); the authorization value is
//! sent to that server only and never logged.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::ReaderStream;

use super::http::{AppState, Cleanup, accepted, blocking, request_error};
use crate::auth::Identity;
use crate::dicomweb::{self, DicomwebTarget, StudyRef};
use crate::dimse::is_valid_uid;
use crate::error::{NativeError, Result};
use crate::private_fs;
use crate::related::RelatedParts;

/// The JSON body of a DICOMweb job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DicomwebJob {
    dicomweb: String,
    study: String,
    #[serde(default)]
    series: Option<String>,
    #[serde(default)]
    authorization: Option<String>,
}

pub(super) async fn post_dicomweb_study(
    s: AppState,
    caller: Identity,
    req: Request,
) -> Result<Response> {
    let body = to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|e| request_error(400, format!("JSON body: {e}")))?;
    let j: DicomwebJob =
        serde_json::from_slice(&body).map_err(|e| request_error(400, format!("JSON body: {e}")))?;
    let server: DicomwebTarget = j
        .dicomweb
        .parse()
        .map_err(|e: NativeError| request_error(400, e.to_string()))?;
    if !s.cfg.dicomweb_source_allowed(&server) {
        return Err(request_error(
            403,
            format!(
                "{server} is not in dicomweb_sources: the server fetches only from listed PACS"
            ),
        ));
    }
    for uid in std::iter::once(&j.study).chain(j.series.iter()) {
        if !is_valid_uid(uid) {
            return Err(request_error(400, format!("{uid:?} is not a DICOM UID")));
        }
    }
    let src = StudyRef {
        server,
        study: j.study,
        series: j.series,
        authorization: j.authorization,
    };
    let dir = s.new_input_dir()?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    let raw = dir.join("wado-rs.multipart");
    let (src2, raw2, max) = (src.clone(), raw.clone(), s.cfg.max_body_bytes() as u64);
    let (series, content_type) = blocking(move || {
        let series = dicomweb::choose_series(&src2)?;
        let ct = dicomweb::fetch_series(&src2, &series, &raw2, max)?;
        Ok((series, ct))
    })
    .await?;

    // The parts, with the parser of STOW-RS; a broken answer is the PACS's fault.
    let broken = |e: NativeError| {
        NativeError::Network(format!(
            "WADO-RS answer of {} is truncated or malformed: {e}",
            src.server
        ))
    };
    let file = tokio::fs::File::open(&raw)
        .await
        .map_err(|e| NativeError::io(&raw, e))?;
    let mut parts = RelatedParts::new(&content_type, ReaderStream::new(file), s.cfg.max_instances)
        .map_err(broken)?;
    let (mut instances, mut skipped) = (0usize, Vec::new());
    while let Some(mut part) = parts.next().await.map_err(broken)? {
        if let Some(why) = part.refusal.take() {
            part.drain().await.map_err(broken)?;
            skipped.push(why);
            continue;
        }
        let path = dir.join(format!("{:05}.dcm", part.index));
        // A disk error is ours; a reading error is the PACS's answer.
        part.save(&path).await.map_err(|e| match e {
            e @ NativeError::Io { .. } => e,
            e => broken(e),
        })?;
        instances += 1;
    }
    drop(parts);
    tokio::fs::remove_file(&raw)
        .await
        .map_err(|e| NativeError::io(&raw, e))?;
    if instances == 0 {
        return Err(NativeError::NotFound(format!(
            "series {series} on {} has no instances",
            src.server
        )));
    }
    private_fs::sync_dir(&s.dirs.inputs)?;
    let job = s.submit(
        &dir,
        "dicomweb",
        &caller.actor(),
        Some(series.clone()),
        json!({"dicomweb": src.server.url, "study": src.study, "series": series, "instances": instances}),
    )?;
    cleanup.0 = None;
    Ok(accepted(&job, &skipped))
}
