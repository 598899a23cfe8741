//! Bearer tokens for the HTTP API.
//!
//! The token file holds one token per line as `id:token` (the id names the
//! caller in the audit log); blank lines and lines starting with `#` are
//! ignored; a line without `:` is a token whose id is `line<N>`. Tokens are
//! kept as SHA-256 digests and compared in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{NativeError, Result};

/// The accepted tokens.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "ids",
                &self.entries.iter().map(|e| &e.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Parse the token file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, token) = match line.split_once(':') {
                Some((id, t)) => (id.trim().to_string(), t.trim()),
                None => (format!("line{}", i + 1), line),
            };
            if token.len() < 16 {
                return Err(NativeError::Config(format!(
                    "token {id:?} is shorter than 16 characters"
                )));
            }
            entries.push((id, digest(token)));
        }
        if entries.is_empty() {
            return Err(NativeError::Config("the token file holds no token".into()));
        }
        Ok(Tokens { entries })
    }

    /// Read a token file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| NativeError::io(path, e))?;
        Self::parse(&text)
    }

    /// The id of `token`, if it is accepted.
    pub fn check(&self, token: &str) -> Option<&str> {
        let d = digest(token);
        let mut found = None;
        // Look at every entry so timing does not depend on which one matched.
        for (id, want) in &self.entries {
            if bool::from(want.ct_eq(&d)) {
                found = Some(id.as_str());
            }
        }
        found
    }

    /// The id of the caller of an `Authorization` header value (`Bearer <token>`).
    pub fn check_header(&self, value: Option<&str>) -> Option<&str> {
        let v = value?.trim();
        let (scheme, token) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.check(token.trim())
    }
}
