//! The server's DICOMweb client: STOW-RS of a job's result objects to a PACS
//! (`forward_to = "https://pacs.example.org/dicom-web"`), beside C-STORE.
//!
//! One `multipart/related; type="application/dicom"` request per job; the
//! answer (PS3.18 §10.5.3: ReferencedSOPSequence, FailedSOPSequence) is read
//! per instance, so a PACS that refuses some objects is reported object by
//! object, as C-STORE is. An `Authorization` header value can be given
//! (config `forward_authorization_file`); nothing else is sent.
//!
//! HTTP client: `ureq` (blocking: forwarding runs on the job worker threads)
//! with rustls on the ring provider the server's TLS already uses and the
//! platform's root certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use serde_json::Value;

use crate::error::{NativeError, Result};
use crate::scu::Sent;

/// A DICOMweb root (`http(s)://host[:port]/path`, e.g. Orthanc's `…/dicom-web`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomwebTarget {
    /// The root URL without a trailing slash.
    pub url: String,
}

impl std::str::FromStr for DicomwebTarget {
    type Err = NativeError;

    /// Parse `http://…` or `https://…` (a host is required).
    fn from_str(s: &str) -> Result<Self> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| NativeError::Config(format!("DICOMweb URL {s:?} is not http(s)://…")))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(NativeError::Config(format!(
                "DICOMweb URL {s:?} has no host"
            )));
        }
        Ok(DicomwebTarget {
            url: s.trim_end_matches('/').to_string(),
        })
    }
}

impl std::fmt::Display for DicomwebTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The HTTP agent: rustls with ring and the platform's roots; HTTP statuses
/// are answers, not errors (STOW-RS says per instance what happened).
fn agent() -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// The SOP Instance UID of a Part 10 file (without its pixel data).
fn sop_instance(path: &Path) -> Result<String> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| NativeError::Input(format!("{}: {e}", path.display())))?;
    obj.element(tags::SOP_INSTANCE_UID)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .ok_or_else(|| NativeError::Input(format!("{}: no SOP Instance UID", path.display())))
}

/// `Value[0]` of a DICOM JSON attribute as a string.
fn json_str(item: &Value, tag: &str) -> Option<String> {
    match item.get(tag)?.get("Value")?.get(0)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Store `files` (DICOM Part 10) on `target` with one STOW-RS request.
/// Files refused by the server, or not named in its answer, are in
/// [`Sent::failed`] with the reason; an unreachable server or an answer
/// without per-instance results is an error.
pub fn store(
    files: &[PathBuf],
    target: &DicomwebTarget,
    authorization: Option<&str>,
) -> Result<Sent> {
    let boundary = format!("ct-triage-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    let mut sent: Vec<(String, String)> = Vec::new(); // (file, SOP Instance UID)
    let mut failed = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let uid = match sop_instance(f) {
            Ok(u) => u,
            Err(e) => {
                failed.push((name, e.to_string()));
                continue;
            }
        };
        let bytes = std::fs::read(f).map_err(|e| NativeError::io(f, e))?;
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
        sent.push((name, uid));
    }
    if sent.is_empty() {
        return Ok(Sent { stored: 0, failed });
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let url = format!("{}/studies", target.url);
    let mut req = agent()
        .post(&url)
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .header("Accept", "application/dicom+json");
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let mut resp = req
        .send(&body[..])
        .map_err(|e| NativeError::Network(format!("STOW-RS to {url}: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let seq = |tag: &str| -> Vec<Value> {
        answer
            .get(tag)
            .and_then(|s| s.get("Value"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (ok, refused) = (seq("00081199"), seq("00081198"));
    if answer.get("00081199").is_none() && answer.get("00081198").is_none() {
        return Err(NativeError::Network(format!(
            "STOW-RS to {url}: HTTP {status} without a per-instance answer"
        )));
    }
    let stored_uids: Vec<String> = ok.iter().filter_map(|i| json_str(i, "00081155")).collect();
    let mut stored = 0;
    for (name, uid) in sent {
        if let Some(r) = refused
            .iter()
            .find(|i| json_str(i, "00081155").as_deref() == Some(uid.as_str()))
        {
            let reason = json_str(r, "00081197").unwrap_or_else(|| "?".into());
            failed.push((
                name,
                format!("refused by the PACS (HTTP {status}, reason {reason})"),
            ));
        } else if stored_uids.contains(&uid) {
            stored += 1;
        } else {
            failed.push((name, format!("not in the PACS's answer (HTTP {status})")));
        }
    }
    Ok(Sent { stored, failed })
}

/// A study (or one series of it) on a DICOMweb server, as a job names it.
#[derive(Clone, PartialEq, Eq)]
pub struct StudyRef {
    /// The server's DICOMweb root.
    pub server: DicomwebTarget,
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID; `None`: the CT series with the most instances.
    pub series: Option<String>,
    /// `Authorization` header value for that server (never logged).
    pub authorization: Option<String>,
}

impl std::fmt::Debug for StudyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudyRef")
            .field("server", &self.server.url)
            .field("study", &self.study)
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

/// GET with the reference's Authorization; statuses are answers.
fn get(src: &StudyRef, url: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
    let mut req = agent().get(url).header("Accept", accept);
    if let Some(a) = &src.authorization {
        req = req.header("Authorization", a);
    }
    let resp = req
        .call()
        .map_err(|e| NativeError::Network(format!("{url} is not reachable: {e}")))?;
    match resp.status().as_u16() {
        401 | 403 => Err(NativeError::Network(format!(
            "{url}: HTTP {}, the PACS refused the request (credentials?)",
            resp.status().as_u16()
        ))),
        _ => Ok(resp),
    }
}

/// QIDO-RS: the series to fetch — the one named (it must be CT), else the CT
/// series with the most instances.
pub fn choose_series(src: &StudyRef) -> Result<String> {
    let url = format!(
        "{}/studies/{}/series?includefield=00201209",
        src.server.url, src.study
    );
    let mut resp = get(src, &url, "application/dicom+json")?;
    let status = resp.status().as_u16();
    if status == 204 || status == 404 {
        return Err(NativeError::NotFound(format!(
            "study {} is not on {}",
            src.study, src.server
        )));
    }
    if !resp.status().is_success() {
        return Err(NativeError::Network(format!(
            "QIDO-RS {url}: HTTP {status}"
        )));
    }
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| NativeError::Network(format!("QIDO-RS {url}: {e}")))?;
    let list: Vec<Value> = serde_json::from_str(&text)
        .map_err(|_| NativeError::Network(format!("QIDO-RS {url}: not a DICOM JSON array")))?;
    if list.is_empty() {
        return Err(NativeError::NotFound(format!(
            "study {} is not on {}",
            src.study, src.server
        )));
    }
    let series: Vec<(String, String, u64)> = list
        .iter()
        .map(|ds| {
            (
                json_str(ds, "0020000E").unwrap_or_default(),
                json_str(ds, "00080060").unwrap_or_default(),
                json_str(ds, "00201209")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect();
    if let Some(want) = &src.series {
        return match series.iter().find(|s| &s.0 == want) {
            None => Err(NativeError::NotFound(format!(
                "series {want} is not in study {}",
                src.study
            ))),
            Some(s) if s.1 != "CT" => Err(NativeError::Request {
                status: 422,
                message: format!("series {want} is {}, not CT", s.1),
            }),
            Some(s) => Ok(s.0.clone()),
        };
    }
    series
        .iter()
        .filter(|s| s.1 == "CT")
        .max_by_key(|s| s.2)
        .map(|s| s.0.clone())
        .ok_or_else(|| NativeError::Request {
            status: 422,
            message: format!("study {} has no CT series", src.study),
        })
}

/// WADO-RS of one series in its stored transfer syntax, saved as the raw
/// multipart answer to `dest` (at most `max_bytes`); returns the answer's
/// Content-Type (with the boundary) for [`crate::related::RelatedParts`].
pub fn fetch_series(src: &StudyRef, series: &str, dest: &Path, max_bytes: u64) -> Result<String> {
    let url = format!("{}/studies/{}/series/{series}", src.server.url, src.study);
    let mut resp = get(
        src,
        &url,
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
    )?;
    let status = resp.status().as_u16();
    if status == 404 {
        return Err(NativeError::NotFound(format!(
            "series {series} is not on {}",
            src.server
        )));
    }
    if !resp.status().is_success() {
        return Err(NativeError::Network(format!(
            "WADO-RS {url}: HTTP {status}"
        )));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/related")
    {
        return Err(NativeError::Network(format!(
            "WADO-RS {url}: expected multipart/related, got {content_type:?}"
        )));
    }
    let mut out = crate::private_fs::create_file(dest)?;
    let mut reader = resp.body_mut().with_config().limit(max_bytes).reader();
    std::io::copy(&mut reader, &mut out).map_err(|e| {
        NativeError::Network(format!(
            "WADO-RS {url}: the answer broke off or is too large: {e}"
        ))
    })?;
    Ok(content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_what_is_not_a_url() {
        let t: DicomwebTarget = "http://127.0.0.1:8042/dicom-web/".parse().unwrap();
        assert_eq!(t.url, "http://127.0.0.1:8042/dicom-web");
        assert!(
            "https://pacs.example.org/dicom-web"
                .parse::<DicomwebTarget>()
                .is_ok()
        );
        for bad in [
            "pacs:104:PACS",
            "http://",
            "ftp://x/dicom-web",
            "http://a b/",
        ] {
            assert!(bad.parse::<DicomwebTarget>().is_err(), "{bad}");
        }
    }
}
