//! TLS for the HTTP API (HTTPS) and the DICOM SCP (PS3.15 Annex B secure
//! transport): rustls with the *ring* crypto provider, TLS 1.2 and 1.3 with
//! rustls' safe defaults (forward-secret AEAD suites only, as BCP 195 asks).
//! Certificates and keys are PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::{NativeError, Result};

/// The crypto provider every TLS configuration here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(path: &Path, what: &str, e: impl std::fmt::Display) -> NativeError {
    NativeError::Config(format!("{what} {}: {e}", path.display()))
}

/// Every certificate of a PEM file (a chain: the leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| config_error(path, "certificate file", e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| config_error(path, "certificate file", e))?;
    if certs.is_empty() {
        return Err(config_error(
            path,
            "certificate file",
            "no certificate in it",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1). A key that other
/// users can read is logged as a warning.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(key = %path.display(), "the TLS key can be read by other users: chmod 600 it");
        }
    }
    PrivateKeyDer::from_pem_file(path).map_err(|e| config_error(path, "private key file", e))
}

/// A server configuration from a certificate chain and key; with `client_ca`,
/// clients must present a certificate issued by one of its certificates
/// (mutual TLS). `alpn`: the application protocols offered (HTTPS:
/// `http/1.1`; DICOM: none).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NativeError::Config(format!("TLS: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| config_error(ca, "client CA file", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| config_error(ca, "client CA file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| config_error(cert, "certificate and key", e))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
