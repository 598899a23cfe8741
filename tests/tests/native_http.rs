//! The HTTP API in process (no analysis workers): bearer tokens on every
//! endpoint but /healthz, limits (instances, body size, queue), STOW-RS media
//! types and responses, job resources, metrics and the OpenAPI document.

use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ct_triage_core::classify::{
    Classifier, InputSpec, ModelId, ModelManifest, Normalization, OutputSpec,
};
use ct_triage_native::config::ServerConfig;
use ct_triage_native::jobs::JobState;
use ct_triage_native::server::{Server, router};
use ct_triage_tests::lung1_dir;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789";

/// Never called: these tests start no workers.
struct Unused(ModelManifest);

impl Classifier for Unused {
    fn manifest(&self) -> &ModelManifest {
        &self.0
    }
    fn id(&self) -> ModelId {
        ModelId {
            name: "unused".into(),
            version: "0".into(),
            sha256: String::new(),
            runtime: "none".into(),
        }
    }
    fn infer(&self, _: &[f32], _: usize) -> ct_triage_core::Result<Vec<f32>> {
        unreachable!("no worker runs in these tests")
    }
}

fn unused() -> Arc<dyn Classifier> {
    let out = |key: &str, index| OutputSpec {
        key: key.into(),
        tensor: "logits".into(),
        index,
        activation: "sigmoid".into(),
        meaning: String::new(),
    };
    Arc::new(Unused(ModelManifest {
        format: 1,
        name: "unused".into(),
        version: "0".into(),
        onnx: String::new(),
        onnx_sha256: String::new(),
        architecture: None,
        weights: None,
        weights_sha256: None,
        input: InputSpec {
            name: "patch".into(),
            patch_zyx: [32, 32, 32],
            spacing_mm: 1.0,
            normalization: Normalization {
                hu_window: [-1000.0, 600.0],
                offset: 0.0,
                scale: 1.0,
            },
        },
        outputs: vec![out("nodule", 0), out("malignancy", 1)],
        nodule_threshold: 0.5,
        training: Value::Null,
        metrics: Value::Null,
        intended_use: vec![],
    }))
}

fn server(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Arc<Server> {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("# test\nci:{TOKEN}\n")).unwrap();
    let mut cfg = ServerConfig {
        token_file: Some(tokens),
        data_dir: dir.join("data"),
        ..ServerConfig::default()
    };
    tweak(&mut cfg);
    Server::open(cfg, unused()).unwrap()
}

async fn call(s: &Arc<Server>, req: Request<Body>) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, body.to_vec(), headers)
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn form(files: &[(&str, Vec<u8>)]) -> Request<Body> {
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/dicom\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XB--\r\n");
    Request::post("/v1/studies")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XB")
        .body(Body::from(body))
        .unwrap()
}

fn stow(content_type: &str, parts: &[Vec<u8>]) -> Request<Body> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(b"--SB\r\nContent-Type: application/dicom\r\n\r\n");
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--SB--\r\n");
    Request::post("/dicomweb/studies")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

fn lung1(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(lung1_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .take(n)
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_endpoint_but_healthz_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    assert_eq!(call(&s, get("/healthz", None)).await.0, StatusCode::OK);
    for uri in [
        "/v1/worklist",
        "/v1/jobs/x",
        "/v1/jobs/x/report",
        "/metrics",
        "/openapi.json",
    ] {
        let (st, _, h) = call(&s, get(uri, None)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            call(&s, get(uri, Some("wrong-token-xxxxxxxxx"))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (st, body, _) = call(&s, get("/openapi.json", Some(TOKEN))).await;
    assert_eq!(st, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["paths"]["/v1/jobs/{id}/report"].is_object());
    assert_eq!(
        call(&s, get("/v1/jobs/nope", Some(TOKEN))).await.0,
        StatusCode::NOT_FOUND
    );
    let audit = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    assert!(audit.contains("\"action\":\"auth_failed\""));
}

#[tokio::test]
async fn upload_queues_a_job_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let s = server(dir.path(), |_| {});
        let files = lung1(3);
        let req = form(
            &files
                .iter()
                .map(|(n, b)| (n.as_str(), b.clone()))
                .collect::<Vec<_>>(),
        );
        let (st, body, h) = call(&s, req).await;
        assert_eq!(st, StatusCode::ACCEPTED);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let id = v["job_id"].as_str().unwrap().to_string();
        assert_eq!(h[header::LOCATION], format!("/v1/jobs/{id}"));
        let (st, body, _) = call(&s, get(&format!("/v1/jobs/{id}"), Some(TOKEN))).await;
        assert_eq!(st, StatusCode::OK);
        let job: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(job["state"], "queued");
        assert_eq!(job["submitted_by"], "token:ci");
        // Not done: the report is a conflict, not a 404.
        let (st, _, _) = call(&s, get(&format!("/v1/jobs/{id}/report"), Some(TOKEN))).await;
        assert_eq!(st, StatusCode::CONFLICT);
        id
    };
    // A new server on the same data folder still has the job and its input.
    let s = server(dir.path(), |_| {});
    let job = s.store.get(&id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    let metrics = call(&s, get("/metrics", Some(TOKEN))).await;
    assert!(String::from_utf8_lossy(&metrics.1).contains("ctt_jobs{state=\"queued\"} 1"));
}

#[tokio::test]
async fn limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |c| {
        c.max_instances = 2;
        c.max_body_mb = 1;
    });
    let files = lung1(3);
    // Three small parts: over the instance limit.
    let small: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|(n, _)| (n.as_str(), vec![0u8; 10]))
        .collect();
    assert_eq!(
        call(&s, form(&small)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // One real slice (≈ 0.5 MB) fits; three are over 1 MiB.
    let big: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    assert_eq!(call(&s, form(&big[..1])).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        call(&s, form(&big[..2])).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        call(&s, form(&[])).await.0,
        StatusCode::BAD_REQUEST,
        "an upload without files"
    );
    // Nothing is left behind by refused uploads.
    let inputs = std::fs::read_dir(dir.path().join("data/inputs"))
        .unwrap()
        .count();
    assert_eq!(inputs, 1);

    let full = tempfile::tempdir().unwrap();
    let s = server(full.path(), |c| c.max_queued = 0);
    let (st, _, h) = call(&s, form(&big[..1])).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn stow_rs_stores_dicom_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    let files = lung1(2);
    let ct = "multipart/related; type=\"application/dicom\"; boundary=SB";
    let parts: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let (st, body, h) = call(&s, stow(ct, &parts)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/dicom+json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let refs = v["00081199"]["Value"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    let uid = files[0].0.trim_end_matches(".dcm");
    assert!(refs.iter().any(|r| r["00081155"]["Value"][0] == uid));
    let job = h["x-job-id"].to_str().unwrap();
    assert_eq!(s.store.get(job).unwrap().unwrap().source, "stow");

    let (st, body, _) = call(&s, stow(ct, &[b"junk".to_vec(), parts[0].clone()])).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["00081198"]["Value"][0]["00081197"]["Value"][0], 0xC000);

    assert_eq!(
        call(&s, stow(ct, &[b"junk".to_vec()])).await.0,
        StatusCode::CONFLICT
    );
    let (st, _, _) = call(&s, stow("application/json", &parts)).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, _, _) = call(
        &s,
        stow(
            "multipart/related; type=\"application/dicom+xml\"; boundary=SB",
            &parts,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[test]
fn config_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\ntoken_file = \"/etc/tokens\"\ndicom_port = 11112\n\
         forward_to = \"pacs:104:PACS\"\nquiet_seconds = 5\nmax_instances = 100\n",
    )
    .unwrap();
    let cfg = ServerConfig::from_file(&path).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.dicom_addr().as_deref(), Some("127.0.0.1:11112"));
    assert_eq!(cfg.destination().unwrap().unwrap().ae_title, "PACS");
    assert_eq!(cfg.max_instances, 100);
    assert_eq!(cfg.workers, 1, "defaults fill what the file leaves out");

    std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n").unwrap();
    assert!(
        ServerConfig::from_file(&path).is_err(),
        "unknown keys are refused"
    );
    let bad = ServerConfig {
        token_file: Some("t".into()),
        forward_to: Some("pacs-without-port".into()),
        ..ServerConfig::default()
    };
    assert!(bad.validate().is_err());
    assert!(
        ServerConfig::default().validate().is_err(),
        "a token file is required"
    );
    let identified_inputs = ServerConfig {
        token_file: Some("t".into()),
        deidentify: true,
        forward_inputs: true,
        ..ServerConfig::default()
    };
    assert!(
        identified_inputs.validate().is_err(),
        "de-identified results with the identified inputs forwarded are refused"
    );
}

#[test]
fn a_deidentifying_server_creates_its_key_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(server(dir.path(), |c| c.deidentify = true));
    let path = dir.path().join("data/deid.key");
    let key = std::fs::read(&path).unwrap();
    assert!(key.trim_ascii().len() >= 16);
    drop(server(dir.path(), |c| c.deidentify = true));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        key,
        "the key is kept across restarts"
    );
}

#[tokio::test]
async fn a_form_without_files_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    let body = "--XB\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XB--\r\n";
    let req = Request::post("/v1/studies")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XB")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(call(&s, req).await.0, StatusCode::BAD_REQUEST);
}
