//! Server configuration: a TOML file (`--config`), overridden by command-line
//! options. Every key is optional; defaults are documented per field.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! token_file = "/etc/ct-triage/tokens"
//! data_dir = "/var/lib/ct-triage"
//! dicom_port = 11112
//! ae_title = "CTTRIAGE"
//! forward_to = "pacs.local:104:PACS"
//! workers = 1
//! quiet_seconds = 10
//! max_body_mb = 2048
//! max_instances = 5000
//! max_queued = 1000
//! deidentify = false
//! deid_key_file = "/etc/ct-triage/deid.key"
//! # TLS (required to listen on a non-loopback address, unless a TLS proxy is declared)
//! tls_cert = "/etc/ct-triage/server.crt"
//! tls_key = "/etc/ct-triage/server.key"
//! dicom_tls = true
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dicomweb::DicomwebTarget;
use crate::error::{NativeError, Result};
use crate::scu::Destination;

/// Where finished results are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTo {
    /// A DICOM node, with C-STORE (`HOST:PORT:AET`).
    Dimse(Destination),
    /// A DICOMweb root, with STOW-RS (`http(s)://…`).
    Dicomweb(DicomwebTarget),
}

impl std::str::FromStr for ForwardTo {
    type Err = NativeError;

    /// `http://…` / `https://…` is DICOMweb, anything else `HOST:PORT:AET`.
    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("http://") || s.starts_with("https://") {
            s.parse().map(ForwardTo::Dicomweb)
        } else {
            s.parse().map(ForwardTo::Dimse)
        }
    }
}

impl std::fmt::Display for ForwardTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardTo::Dimse(d) => d.fmt(f),
            ForwardTo::Dicomweb(t) => t.fmt(f),
        }
    }
}

/// `n` MiB in bytes (saturating).
fn mib(n: u64) -> usize {
    n.saturating_mul(1 << 20).min(usize::MAX as u64) as usize
}

/// Everything `ct-triage serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listen address. Default `127.0.0.1:8080`.
    pub listen: String,
    /// File of API tokens, one `id:token` per line (`#` comments). Required.
    pub token_file: Option<PathBuf>,
    /// Job database, inputs and results. Default `./ct-triage-data`.
    pub data_dir: PathBuf,
    /// Model manifest; default the built-in model.
    pub model: Option<PathBuf>,
    /// Analyses run at once (worker threads). Default 1 (each analysis already
    /// uses every core).
    pub workers: usize,
    /// DICOM C-STORE SCP port; none: no DICOM listener.
    pub dicom_port: Option<u16>,
    /// Address the SCP binds. Default: the host of `listen`.
    pub dicom_host: Option<String>,
    /// Our AE title. Default `CTTRIAGE`.
    pub ae_title: String,
    /// Where results are sent: `HOST:PORT:AET` (C-STORE) or a DICOMweb
    /// root `http(s)://…/dicom-web` (STOW-RS).
    pub forward_to: Option<String>,
    /// DICOMweb roots the server may fetch a study from when a job names one
    /// (`POST /v1/studies` with JSON). Default none: such jobs are refused.
    pub dicomweb_sources: Vec<String>,
    /// With a DICOMweb `forward_to`: a file holding the `Authorization`
    /// header value to send (e.g. `Bearer …`). Default none.
    pub forward_authorization_file: Option<PathBuf>,
    /// Also forward the received input instances (inline routing). Default false.
    pub forward_inputs: bool,
    /// A series is analysed once no instance arrived for this long. Default 10 s.
    pub quiet_seconds: f64,
    /// Largest HTTP request body in MiB. Default 2048.
    pub max_body_mb: u64,
    /// Most instances per upload or per DICOM series. Default 5000.
    pub max_instances: usize,
    /// Most queued jobs; further uploads get 503. Default 1000.
    pub max_queued: u64,
    /// Most DICOM associations at once. Default 16.
    pub max_associations: usize,
    /// Audit log (JSON lines). Default `<data_dir>/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// Keep input files after a job finished. Default false (inputs are deleted
    /// once analysed and forwarded).
    pub keep_inputs: bool,
    /// De-identify every result (report, SR, SEG, key images; DICOM PS3.15
    /// Basic Profile) and write `deidentification.json` beside the report, as
    /// `ct-triage analyze --deidentify` does. Default false. Cannot be combined
    /// with `forward_inputs` (that would send the identified originals).
    pub deidentify: bool,
    /// Secret key of de-identification (created with a random key if
    /// missing). Default `<data_dir>/deid.key`.
    pub deid_key_file: Option<PathBuf>,

    // ---- TLS
    /// HTTPS: certificate chain (PEM). With `tls_key`, the API is served over
    /// TLS only.
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A TLS-terminating reverse proxy is in front of the HTTP listener: plain
    /// HTTP is then allowed on a non-loopback address. Default false.
    pub behind_tls_proxy: bool,
    /// DICOM over TLS (PS3.15 Annex B) with `dicom_tls_cert`/`dicom_tls_key`,
    /// or `tls_cert`/`tls_key` when those are not given. Default false.
    pub dicom_tls: bool,
    /// DICOM TLS certificate chain (PEM). Default `tls_cert`.
    pub dicom_tls_cert: Option<PathBuf>,
    /// DICOM TLS private key (PEM). Default `tls_key`.
    pub dicom_tls_key: Option<PathBuf>,
    /// DICOM TLS: peers must present a certificate issued by a CA of this PEM
    /// file (mutual authentication). Default: no client certificate asked.
    pub dicom_tls_client_ca: Option<PathBuf>,
    /// A TLS-terminating proxy (e.g. stunnel) is in front of the DICOM port:
    /// plain DICOM is then allowed on a non-loopback address. Default false.
    pub dicom_behind_tls_proxy: bool,

    // ---- HTTP limits
    /// Seconds a client has to send a request's headers (also the idle time
    /// of a kept-alive connection). Default 10.
    pub http_header_timeout_s: f64,
    /// Seconds a request body may stall between two chunks. Default 30.
    pub http_body_timeout_s: f64,
    /// Most HTTP connections open at once; more are closed at once. Default 256.
    pub http_max_connections: usize,
    /// Most bytes unpacked from the zip archives of one upload, in MiB.
    /// Default 4096.
    pub max_unpacked_mb: u64,
    /// Highest unpacked : packed size ratio of a zip member (members over
    /// 1 MiB). Default 100.
    pub max_zip_ratio: u64,

    // ---- DICOM limits
    /// Largest instance (data set) an association may send, in MiB. Default 1024.
    pub max_instance_mb: u64,
    /// Most bytes all DICOM associations together hold in memory, in MiB.
    /// Default 4096.
    pub dicom_memory_mb: u64,
    /// Seconds for the TLS handshake and the A-ASSOCIATE-RQ. Default 10.
    pub dicom_artim_timeout_s: f64,
    /// Seconds within which each further PDU must arrive. Default 30.
    pub dicom_idle_timeout_s: f64,
    /// Longest association in seconds. Default 3600.
    pub dicom_association_timeout_s: f64,

    // ---- audit log
    /// The audit log is rotated when it reaches this size, in MiB. Default 64.
    pub audit_max_mb: u64,
    /// Rotated audit logs kept (`audit.jsonl.1` …). Default 10.
    pub audit_keep: usize,
    /// Failed authentications recorded per client address and minute; the
    /// rest is counted in one record per minute. Default 20.
    pub audit_auth_failures_per_minute: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            token_file: None,
            data_dir: PathBuf::from("ct-triage-data"),
            model: None,
            workers: 1,
            dicom_port: None,
            dicom_host: None,
            ae_title: "CTTRIAGE".into(),
            forward_to: None,
            forward_authorization_file: None,
            dicomweb_sources: Vec::new(),
            forward_inputs: false,
            quiet_seconds: 10.0,
            max_body_mb: 2048,
            max_instances: 5000,
            max_queued: 1000,
            max_associations: 16,
            audit_log: None,
            keep_inputs: false,
            deidentify: false,
            deid_key_file: None,
            tls_cert: None,
            tls_key: None,
            behind_tls_proxy: false,
            dicom_tls: false,
            dicom_tls_cert: None,
            dicom_tls_key: None,
            dicom_tls_client_ca: None,
            dicom_behind_tls_proxy: false,
            http_header_timeout_s: 10.0,
            http_body_timeout_s: 30.0,
            http_max_connections: 256,
            max_unpacked_mb: 4096,
            max_zip_ratio: 100,
            max_instance_mb: 1024,
            dicom_memory_mb: 4096,
            dicom_artim_timeout_s: 10.0,
            dicom_idle_timeout_s: 30.0,
            dicom_association_timeout_s: 3600.0,
            audit_max_mb: 64,
            audit_keep: 10,
            audit_auth_failures_per_minute: 20,
        }
    }
}

impl ServerConfig {
    /// Read a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| NativeError::io(path, e))?;
        toml::from_str(&text).map_err(|e| NativeError::Config(format!("{}: {e}", path.display())))
    }

    /// Check the values and resolve defaults that depend on others.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NativeError::Config(m));
        if self.token_file.is_none() {
            return bad("a token file is required (--token-file or token_file)".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!("listen {:?} is not IP:PORT", self.listen));
        }
        if self.ae_title.is_empty() || self.ae_title.len() > 16 {
            return bad(format!(
                "AE title {:?} must be 1–16 characters",
                self.ae_title
            ));
        }
        if self.workers == 0 || self.max_instances == 0 || self.max_associations == 0 {
            return bad("workers, max_instances and max_associations must be at least 1".into());
        }
        if !(self.quiet_seconds.is_finite() && self.quiet_seconds >= 0.0) {
            return bad("quiet_seconds must be ≥ 0".into());
        }
        for (name, v) in [
            ("http_header_timeout_s", self.http_header_timeout_s),
            ("http_body_timeout_s", self.http_body_timeout_s),
            ("dicom_artim_timeout_s", self.dicom_artim_timeout_s),
            ("dicom_idle_timeout_s", self.dicom_idle_timeout_s),
            (
                "dicom_association_timeout_s",
                self.dicom_association_timeout_s,
            ),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1e7) {
                return bad(format!("{name} must be a positive number of seconds"));
            }
        }
        if self.http_max_connections == 0
            || self.max_instance_mb == 0
            || self.dicom_memory_mb < self.max_instance_mb
            || self.max_unpacked_mb == 0
            || self.max_zip_ratio == 0
            || self.audit_max_mb == 0
        {
            return bad(
                "http_max_connections, max_instance_mb, max_unpacked_mb, max_zip_ratio and \
                 audit_max_mb must be at least 1, dicom_memory_mb at least max_instance_mb"
                    .into(),
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together".into());
        }
        if self.dicom_tls
            && (self
                .dicom_tls_cert
                .as_ref()
                .or(self.tls_cert.as_ref())
                .is_none()
                || self
                    .dicom_tls_key
                    .as_ref()
                    .or(self.tls_key.as_ref())
                    .is_none())
        {
            return bad(
                "dicom_tls needs a certificate and key (dicom_tls_cert/dicom_tls_key or \
                 tls_cert/tls_key)"
                    .into(),
            );
        }
        let listen: std::net::SocketAddr = self
            .listen
            .parse()
            .map_err(|_| NativeError::Config(format!("listen {:?} is not IP:PORT", self.listen)))?;
        if !listen.ip().is_loopback() && self.tls_cert.is_none() && !self.behind_tls_proxy {
            return bad(format!(
                "listen {listen} is not a loopback address: health data must not cross the \
                 network in clear text. Serve HTTPS (tls_cert, tls_key), or declare the \
                 TLS-terminating proxy in front of it (behind_tls_proxy = true)"
            ));
        }
        if let Some(addr) = self.dicom_addr() {
            let host = addr.rsplit_once(':').map_or("", |(h, _)| h);
            let loopback = host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
                || host == "localhost";
            if !loopback && !self.dicom_tls && !self.dicom_behind_tls_proxy {
                return bad(format!(
                    "the DICOM port binds {host}, not a loopback address: use DICOM TLS \
                     (dicom_tls = true), or declare the TLS-terminating proxy in front of it \
                     (dicom_behind_tls_proxy = true)"
                ));
            }
        }
        if self.deidentify && self.forward_inputs {
            return bad(
                "forward_inputs sends the original, identified instances: it cannot be combined \
                 with deidentify"
                    .into(),
            );
        }
        self.destination()?;
        Ok(())
    }

    /// The de-identification key file.
    pub fn deid_key_path(&self) -> PathBuf {
        self.deid_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("deid.key"))
    }

    /// The parsed forwarding destination.
    pub fn destination(&self) -> Result<Option<ForwardTo>> {
        self.forward_to.as_deref().map(str::parse).transpose()
    }

    /// Whether a job may name a study on `server` (one of `dicomweb_sources`,
    /// compared without trailing slashes).
    pub fn dicomweb_source_allowed(&self, server: &DicomwebTarget) -> bool {
        self.dicomweb_sources
            .iter()
            .any(|s| s.trim_end_matches('/') == server.url)
    }

    /// The `Authorization` header value for DICOMweb forwarding (the file's
    /// content, surrounding white space ignored).
    pub fn forward_authorization(&self) -> Result<Option<String>> {
        self.forward_authorization_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|v| v.trim().to_string())
                    .map_err(|e| NativeError::io(p, e))
            })
            .transpose()
    }

    /// The audit log path.
    pub fn audit_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    /// Largest request body in bytes.
    pub fn max_body_bytes(&self) -> usize {
        mib(self.max_body_mb)
    }

    /// Largest DICOM instance in bytes.
    pub fn max_instance_bytes(&self) -> usize {
        mib(self.max_instance_mb)
    }

    /// The zip limits of an upload.
    pub fn zip_limits(&self) -> crate::input::ZipLimits {
        crate::input::ZipLimits {
            max_total_bytes: self.max_unpacked_mb.saturating_mul(1 << 20),
            max_ratio: self.max_zip_ratio,
            max_members: self.max_instances,
            ..crate::input::ZipLimits::default()
        }
    }

    /// The HTTPS configuration, when `tls_cert`/`tls_key` are set.
    pub fn http_tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => crate::tls::server_config(c, k, None, &[b"http/1.1"]).map(Some),
            _ => Ok(None),
        }
    }

    /// The DICOM TLS configuration, when `dicom_tls` is set.
    pub fn dicom_tls_config(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        if !self.dicom_tls {
            return Ok(None);
        }
        let cert = self.dicom_tls_cert.as_ref().or(self.tls_cert.as_ref());
        let key = self.dicom_tls_key.as_ref().or(self.tls_key.as_ref());
        match (cert, key) {
            (Some(c), Some(k)) => {
                crate::tls::server_config(c, k, self.dicom_tls_client_ca.as_deref(), &[]).map(Some)
            }
            _ => Err(NativeError::Config(
                "dicom_tls needs a certificate and a key".into(),
            )),
        }
    }

    /// The SCP options from this configuration (TLS loaded).
    pub fn scp_options(&self) -> Result<crate::scp::ScpOptions> {
        let secs = Duration::from_secs_f64;
        Ok(crate::scp::ScpOptions {
            ae_title: self.ae_title.clone(),
            max_associations: self.max_associations,
            max_instance_bytes: self.max_instance_bytes(),
            memory_budget_bytes: mib(self.dicom_memory_mb),
            artim_timeout: secs(self.dicom_artim_timeout_s),
            idle_timeout: secs(self.dicom_idle_timeout_s),
            association_timeout: secs(self.dicom_association_timeout_s),
            tls: self.dicom_tls_config()?,
            ..crate::scp::ScpOptions::default()
        })
    }

    /// Address the SCP binds.
    pub fn dicom_addr(&self) -> Option<String> {
        let port = self.dicom_port?;
        let host = self.dicom_host.clone().unwrap_or_else(|| {
            self.listen
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|_| "127.0.0.1".into())
        });
        Some(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    }
}
