//! Bearer tokens and roles of the HTTP API.
//!
//! The token file holds one caller per line as `name:role:token`; blank lines
//! and lines starting with `#` are ignored. The name identifies the caller in
//! the audit log and owns the jobs it submits; the role says what it may do
//! (each role includes the ones before it):
//!
//! | role | may |
//! |---|---|
//! | `submit` | upload studies (`POST /v1/studies`, STOW-RS) and read the state of its own jobs |
//! | `read-own` | also read the reports and key images of its own jobs, and a worklist of them |
//! | `read-all` | read every job, report and key image, and the whole worklist (DICOM-received jobs included) |
//! | `admin` | also `/metrics` |
//!
//! Tokens must be at least 16 characters; they are kept as SHA-256 digests and
//! compared in constant time. Names are 1–64 characters of `[A-Za-z0-9._-]`
//! and unique.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{NativeError, Result};

/// What a caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Submit studies and read the state of its own jobs.
    Submit,
    /// Also read the reports and key images of its own jobs.
    ReadOwn,
    /// Read every job, report and the whole worklist.
    ReadAll,
    /// Everything, including metrics.
    Admin,
}

impl Role {
    /// The name used in the token file (`submit`, `read-own`, `read-all`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::ReadOwn => "read-own",
            Role::ReadAll => "read-all",
            Role::Admin => "admin",
        }
    }

    /// Parse a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "submit" => Role::Submit,
            "read-own" => Role::ReadOwn,
            "read-all" => Role::ReadAll,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// An authenticated caller: its name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The caller's name from the token file.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Identity {
    /// The actor recorded in the audit log and as a job's owner: `token:<name>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }

    /// True when the caller may read the job submitted by `submitted_by`
    /// (an actor string) at all (its state).
    pub fn may_see(&self, submitted_by: &str) -> bool {
        self.role >= Role::ReadAll || submitted_by == self.actor()
    }

    /// True when the caller may read the report and key images of a job
    /// submitted by `submitted_by`.
    pub fn may_read_results(&self, submitted_by: &str) -> bool {
        self.role >= Role::ReadAll || (self.role >= Role::ReadOwn && submitted_by == self.actor())
    }
}

/// The accepted tokens.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Identity, [u8; 32])>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "callers",
                &self
                    .entries
                    .iter()
                    .map(|e| format!("{}:{}", e.0.name, e.0.role.as_str()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Tokens {
    /// Parse the token file's text (`name:role:token` lines).
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries: Vec<(Identity, [u8; 32])> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let mut fields = line.splitn(3, ':');
            let (Some(name), Some(role), Some(token)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(NativeError::Config(format!(
                    "token file line {n}: expected name:role:token (role: submit, read-own, \
                     read-all or admin)"
                )));
            };
            let (name, role, token) = (name.trim(), role.trim(), token.trim());
            if !valid_name(name) {
                return Err(NativeError::Config(format!(
                    "token file line {n}: the name must be 1–64 characters of A-Z a-z 0-9 . _ -"
                )));
            }
            let role = Role::parse(role).ok_or_else(|| {
                NativeError::Config(format!(
                    "token file line {n}: unknown role {role:?} (submit, read-own, read-all or admin)"
                ))
            })?;
            if token.len() < 16 {
                return Err(NativeError::Config(format!(
                    "token file line {n}: the token of {name:?} is shorter than 16 characters"
                )));
            }
            if entries.iter().any(|(id, _)| id.name == name) {
                return Err(NativeError::Config(format!(
                    "token file line {n}: the name {name:?} is used twice"
                )));
            }
            let d = digest(token);
            if entries.iter().any(|(_, other)| bool::from(other.ct_eq(&d))) {
                return Err(NativeError::Config(format!(
                    "token file line {n}: the token of {name:?} is also another caller's"
                )));
            }
            entries.push((
                Identity {
                    name: name.to_string(),
                    role,
                },
                d,
            ));
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

    /// The caller holding `token`, if it is accepted.
    pub fn check(&self, token: &str) -> Option<&Identity> {
        let d = digest(token);
        let mut found = None;
        // Look at every entry so timing does not depend on which one matched.
        for (id, want) in &self.entries {
            if bool::from(want.ct_eq(&d)) {
                found = Some(id);
            }
        }
        found
    }

    /// The caller of an `Authorization` header value (`Bearer <token>`).
    pub fn check_header(&self, value: Option<&str>) -> Option<&Identity> {
        let v = value?.trim();
        let (scheme, token) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.check(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_roles_and_refuses_bad_lines() {
        let t = Tokens::parse(
            "# callers\nct1:submit:aaaaaaaaaaaaaaaa\nrad:read-all:bbbbbbbbbbbbbbbb:with:colons\n",
        )
        .unwrap();
        let id = t.check("aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!((id.name.as_str(), id.role), ("ct1", Role::Submit));
        let id = t
            .check_header(Some("Bearer bbbbbbbbbbbbbbbb:with:colons"))
            .unwrap();
        assert_eq!(id.role, Role::ReadAll);
        assert!(t.check("cccccccccccccccc").is_none());
        assert!(t.check_header(Some("Basic aaaaaaaaaaaaaaaa")).is_none());
        for bad in [
            "ci:aaaaaaaaaaaaaaaa",                                 // no role
            "ci:root:aaaaaaaaaaaaaaaa",                            // unknown role
            "ci:admin:short",                                      // short token
            "c i:admin:aaaaaaaaaaaaaaaa",                          // bad name
            "a:admin:aaaaaaaaaaaaaaaa\na:submit:bbbbbbbbbbbbbbbb", // name twice
            "a:admin:aaaaaaaaaaaaaaaa\nb:submit:aaaaaaaaaaaaaaaa", // token twice
            "# nothing\n",
        ] {
            assert!(Tokens::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_scope_what_a_caller_reads() {
        let who = |role| Identity {
            name: "a".into(),
            role,
        };
        let (own, other) = ("token:a", "token:b");
        assert!(who(Role::Submit).may_see(own) && !who(Role::Submit).may_see(other));
        assert!(!who(Role::Submit).may_read_results(own));
        assert!(who(Role::ReadOwn).may_read_results(own));
        assert!(!who(Role::ReadOwn).may_read_results(other));
        assert!(!who(Role::ReadOwn).may_see("ae:CT@10.0.0.1"));
        assert!(who(Role::ReadAll).may_read_results(other));
        assert!(who(Role::Admin).may_read_results("ae:CT@10.0.0.1"));
    }
}
