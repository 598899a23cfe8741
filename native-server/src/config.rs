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
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{NativeError, Result};
use crate::scu::Destination;

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
    /// Where results are sent with C-STORE, `HOST:PORT:AET`.
    pub forward_to: Option<String>,
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
    pub fn destination(&self) -> Result<Option<Destination>> {
        self.forward_to.as_deref().map(str::parse).transpose()
    }

    /// The audit log path.
    pub fn audit_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    /// Largest request body in bytes.
    pub fn max_body_bytes(&self) -> usize {
        (self.max_body_mb.saturating_mul(1 << 20)).min(usize::MAX as u64) as usize
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
