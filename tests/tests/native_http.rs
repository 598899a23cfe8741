//! The HTTP API in process (no analysis workers): bearer tokens on every
//! endpoint but /healthz, roles (what each caller may read), limits
//! (instances, body size, queue, audit log growth), STOW-RS media types,
//! failure reasons and responses, malformed bodies, recovery of the data
//! folder at start, owner-only files, no server paths in answers, metrics
//! and the OpenAPI document. The attacks that need a real listener (memory,
//! timeouts, TLS, kill -9) are in `native-server/tests/hardening.rs`.

use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ct_triage_core::classify::{
    Classifier, InputSpec, ModelId, ModelManifest, Normalization, OutputSpec,
};
use ct_triage_native::config::{ForwardTo, ServerConfig};
use ct_triage_native::jobs::{JobState, Outcome};
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
    fn infer(&self, _: &[f32], _: usize) -> Result<Vec<f32>, ct_triage_core::AnalysisError> {
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
    server_with_tokens(dir, &format!("# test\nci:admin:{TOKEN}\n"), tweak)
}

fn server_with_tokens(
    dir: &Path,
    token_file: &str,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Arc<Server> {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, token_file).unwrap();
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
    form_as(TOKEN, files)
}

fn form_as(token: &str, files: &[(&str, Vec<u8>)]) -> Request<Body> {
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
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
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
    // Issue 15: the served document carries the report schema generated from the
    // Rust types, and the report answer refers to it.
    let schema = ct_triage_core::report::schema::json_schema();
    assert_eq!(
        doc["components"]["schemas"]["Report"],
        ct_triage_core::report::schema::openapi_component(&schema)
    );
    assert_eq!(
        doc["paths"]["/v1/jobs/{id}/report"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/Report"
    );
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
    match cfg.destination().unwrap().unwrap() {
        ForwardTo::Dimse(d) => assert_eq!(d.ae_title, "PACS"),
        other => panic!("HOST:PORT:AET parsed as {other:?}"),
    }
    // A DICOMweb root is a STOW-RS destination.
    let web = ServerConfig {
        forward_to: Some("http://127.0.0.1:8042/dicom-web/".into()),
        ..ServerConfig::default()
    };
    match web.destination().unwrap().unwrap() {
        ForwardTo::Dicomweb(t) => assert_eq!(t.url, "http://127.0.0.1:8042/dicom-web"),
        other => panic!("a DICOMweb URL parsed as {other:?}"),
    }
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
    // Health data does not cross the network in clear text: a non-loopback
    // listener needs TLS, or the admin's word that a TLS proxy is in front.
    let exposed = ServerConfig {
        token_file: Some("t".into()),
        listen: "0.0.0.0:8080".into(),
        ..ServerConfig::default()
    };
    let e = exposed.validate().unwrap_err().to_string();
    assert!(e.contains("behind_tls_proxy"), "{e}");
    let proxied = ServerConfig {
        behind_tls_proxy: true,
        ..exposed.clone()
    };
    proxied.validate().unwrap();
    let dicom_exposed = ServerConfig {
        dicom_port: Some(11112),
        ..proxied.clone()
    };
    let e = dicom_exposed.validate().unwrap_err().to_string();
    assert!(e.contains("dicom_tls"), "{e}");
    ServerConfig {
        dicom_behind_tls_proxy: true,
        ..dicom_exposed.clone()
    }
    .validate()
    .unwrap();
    let tls_without_key = ServerConfig {
        dicom_tls: true,
        ..dicom_exposed
    };
    assert!(tls_without_key.validate().is_err());
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

const UP: &str = "token-of-the-uploader-0001";
const OWN: &str = "token-of-a-reading-station-0002";
const ALL: &str = "token-of-the-radiologists-0003";

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn roles_scope_jobs_reports_and_the_worklist() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_tokens(
        dir.path(),
        &format!("up:submit:{UP}\nown:read-own:{OWN}\nall:read-all:{ALL}\nci:admin:{TOKEN}\n"),
        |_| {},
    );
    let slice = lung1(1).remove(0);
    let submit = |token| form_as(token, &[(slice.0.as_str(), slice.1.clone())]);
    let (st, body, _) = call(&s, submit(UP)).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let a = json_of(&body)["job_id"].as_str().unwrap().to_string();
    let (_, body, _) = call(&s, submit(OWN)).await;
    let b = json_of(&body)["job_id"].as_str().unwrap().to_string();
    let status = |token: &'static str, uri: String| {
        let s = s.clone();
        async move { call(&s, get(&uri, Some(token))).await.0 }
    };
    // Jobs belong to their submitter: others do not even learn they exist.
    assert_eq!(status(UP, format!("/v1/jobs/{a}")).await, StatusCode::OK);
    assert_eq!(
        status(UP, format!("/v1/jobs/{b}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(OWN, format!("/v1/jobs/{a}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(OWN, format!("/v1/jobs/{b}")).await, StatusCode::OK);
    assert_eq!(status(ALL, format!("/v1/jobs/{a}")).await, StatusCode::OK);
    // submit reads states only; read-own reads its own results (409: not done yet).
    assert_eq!(
        status(UP, format!("/v1/jobs/{a}/report")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(OWN, format!("/v1/jobs/{b}/report")).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        status(OWN, format!("/v1/jobs/{a}/report")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(UP, "/v1/worklist".into()).await,
        StatusCode::FORBIDDEN
    );
    for t in [UP, OWN, ALL] {
        assert_eq!(status(t, "/metrics".into()).await, StatusCode::FORBIDDEN);
    }
    assert_eq!(status(TOKEN, "/metrics".into()).await, StatusCode::OK);
    // Both fail; their errors name files in the server's input folders.
    for _ in 0..2 {
        let job = s.store.claim("test").unwrap().unwrap();
        let input = job.input.clone();
        s.store
            .finish(
                &job.id,
                &Outcome::Failed {
                    code: "not_dicom".into(),
                    message: format!("{input}/part-00001: not readable as DICOM"),
                },
            )
            .unwrap();
    }
    let rows = |token: &'static str| {
        let s = s.clone();
        async move {
            let (st, body, _) = call(&s, get("/v1/worklist", Some(token))).await;
            assert_eq!(st, StatusCode::OK);
            json_of(&body)["worklist"].as_array().unwrap().clone()
        }
    };
    let own_rows = rows(OWN).await;
    assert_eq!(own_rows.len(), 1);
    assert_eq!(own_rows[0]["job_id"], b.as_str());
    assert_eq!(rows(ALL).await.len(), 2);
    // No server path in what the API answers.
    let data = dir.path().display().to_string();
    let (_, body, _) = call(&s, get(&format!("/v1/jobs/{b}"), Some(OWN))).await;
    let job = json_of(&body);
    assert_eq!(job["error"], "part-00001: not readable as DICOM");
    assert!(!String::from_utf8_lossy(&body).contains(&data));
    assert_eq!(own_rows[0]["note"], "part-00001: not readable as DICOM");
    // The audit log names each caller and its role.
    let audit = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    assert!(
        audit.contains(r#""actor":"token:up","role":"submit","action":"read_job""#),
        "{audit}"
    );
    assert!(audit.contains(r#""actor":"token:own","role":"read-own","action":"read_worklist""#));
    assert!(audit.contains(r#""actor":"token:up","action":"submit""#));
}

#[tokio::test]
async fn unauthenticated_requests_cannot_grow_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    // 2000 failed requests with a 60 KB path each used to add 120 MB.
    let path = format!("/v1/jobs/{}", "x".repeat(60_000));
    for _ in 0..2000 {
        assert_eq!(call(&s, get(&path, None)).await.0, StatusCode::UNAUTHORIZED);
    }
    let log = dir.path().join("data/audit.jsonl");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < 20_000, "the audit log grew to {size} bytes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().all(|l| l.len() < 1_000));
    assert!(text.contains(r#""action":"auth_failed""#));
}

#[test]
fn max_queued_holds_under_concurrent_submits() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |c| c.max_queued = 5);
    let input = dir.path().join("input");
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (s, input) = (s.clone(), input.clone());
            std::thread::spawn(move || s.submit(&input, "http", "token:ci", None, Value::Null))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(ct_triage_native::NativeError::Busy(_))))
        .count();
    assert_eq!((ok, busy), (5, 27));
    assert_eq!(s.store.counts().unwrap().queued, 5);
}

fn raw(uri: &str, content_type: &str, body: &[u8]) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .unwrap()
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    let cut = b"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.dcm\"\r\n\r\nDICM and then nothing";
    let (st, body, _) = call(
        &s,
        raw("/v1/studies", "multipart/form-data; boundary=XB", cut),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (st, _, _) = call(
        &s,
        raw(
            "/v1/studies",
            "multipart/form-data; boundary=XB",
            b"--XB\r\nno headers end",
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let stow_cut = b"--SB\r\nContent-Type: application/dicom\r\n\r\nDICM and then nothing";
    let ct = "multipart/related; type=\"application/dicom\"; boundary=SB";
    assert_eq!(
        call(&s, raw("/dicomweb/studies", ct, stow_cut)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&s, raw("/v1/studies", "application/zip", b"PK"))
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/inputs"))
            .unwrap()
            .count(),
        0
    );
}

/// A Part 10 file of `class` with a tiny data set.
fn part10(class: &str, instance: &str) -> Vec<u8> {
    let meta = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax("1.2.840.10008.1.2.1")
        .implementation_class_uid("1.2.3.4")
        .build()
        .unwrap();
    let mut out = vec![0u8; 128];
    out.extend(b"DICM");
    meta.write(&mut out).unwrap();
    // (0020,000D) Study Instance UID "1.2.3"
    out.extend([0x20, 0x00, 0x0D, 0x00, b'U', b'I', 6, 0]);
    out.extend(b"1.2.3\0");
    out
}

#[tokio::test]
async fn stow_rs_checks_media_types_classes_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    let files = lung1(2);
    let ct = "multipart/related; type=\"application/dicom\"; boundary=SB";
    // No type= parameter (PS3.18 requires it).
    let parts: Vec<Vec<u8>> = vec![files[0].1.clone()];
    let (st, _, _) = call(&s, stow("multipart/related; boundary=SB", &parts)).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A part that is not application/dicom, an MR object, a duplicate, two good ones.
    let mut body = Vec::new();
    let mut part = |content_type: &str, bytes: &[u8]| {
        body.extend(format!("--SB\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    };
    part("text/plain", &files[0].1);
    part(
        "application/dicom",
        &part10("1.2.840.10008.5.1.4.1.1.4", "1.2.826.0.77"),
    );
    part("application/dicom", &files[0].1);
    part(
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
        &files[1].1,
    );
    part("application/dicom", &files[0].1);
    body.extend(b"--SB--\r\n");
    let (st, resp, h) = call(&s, raw("/dicomweb/studies", ct, &body)).await;
    assert_eq!(
        st,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&resp)
    );
    let v = json_of(&resp);
    assert_eq!(v["00081199"]["Value"].as_array().unwrap().len(), 2, "{v}");
    let reasons: Vec<u64> = v["00081198"]["Value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["00081197"]["Value"][0].as_u64().unwrap())
        .collect();
    assert_eq!(reasons, [0xC000, 0x0122, 0x0111]);
    // Two instances were kept for the job, each once.
    let job = s
        .store
        .get(h["x-job-id"].to_str().unwrap())
        .unwrap()
        .unwrap();
    let kept = std::fs::read_dir(job.input.trim()).unwrap().count();
    assert_eq!(kept, 2);
}

#[tokio::test]
async fn internal_errors_do_not_reveal_server_paths() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), |_| {});
    // The input folder is replaced by a file: the upload fails with an I/O error.
    let inputs = dir.path().join("data/inputs");
    std::fs::remove_dir_all(&inputs).unwrap();
    std::fs::write(&inputs, b"not a folder").unwrap();
    let (st, body, _) = call(&s, form(&[("a.dcm", b"DICM".to_vec())])).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(&dir.path().display().to_string()), "{text}");
    assert!(!text.contains("inputs"), "{text}");
    assert!(text.contains("reference"), "{text}");
}

#[cfg(unix)]
#[tokio::test]
async fn data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = server(dir.path(), |_| {});
    let files = lung1(1);
    let (st, body, _) = call(&s, form(&[(files[0].0.as_str(), files[0].1.clone())])).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let job = s
        .store
        .get(json_of(&body)["job_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "an existing data folder is restricted");
    for f in ["jobs.sqlite", "audit.jsonl"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let input = Path::new(job.input.trim());
    assert_eq!(mode(input), 0o700);
    assert_eq!(mode(&input.join("part-00001")), 0o600);
    for d in ["inputs", "results", "incoming"] {
        assert_eq!(mode(&data.join(d)), 0o700, "{d}");
    }
}

#[test]
fn restart_removes_inputs_of_finished_jobs_and_unanswered_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (done_input, queued_input) = {
        let s = server(dir.path(), |_| {});
        let mk = |name: &str| {
            let d = dir.path().join("data/inputs").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("part-00001"), b"x").unwrap();
            d
        };
        let (done_input, queued_input) = (mk("finished-job"), mk("queued-job"));
        mk("unanswered-upload");
        let done = s
            .submit(&done_input, "http", "token:ci", None, Value::Null)
            .unwrap();
        s.submit(&queued_input, "http", "token:ci", None, Value::Null)
            .unwrap();
        let claimed = s.store.claim("w").unwrap().unwrap();
        assert_eq!(claimed.id, done.id);
        s.store
            .finish(
                &done.id,
                &Outcome::Failed {
                    code: "x".into(),
                    message: "x".into(),
                },
            )
            .unwrap();
        (done_input, queued_input)
    };
    let _s = server(dir.path(), |_| {});
    assert!(!done_input.exists(), "the finished job's input was left");
    assert!(queued_input.exists(), "the queued job's input was removed");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data/inputs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["queued-job"]);
}
