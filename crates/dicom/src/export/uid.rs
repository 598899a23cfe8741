//! UIDs: deterministic `2.25.<decimal>` UIDs for the objects we write, and the
//! [`UidMapper`] that replaces UIDs consistently during de-identification.
//!
//! A `2.25` UID (ISO/IEC 9834-8, PS3.5 B.2) is the decimal form of a 128-bit
//! number; ours is the first 16 bytes of a SHA-256 over a domain label and the
//! inputs, with the top bit cleared so it stays within 39 digits (the UID is at
//! most 44 characters, below the 64 allowed).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A `2.25.<decimal>` UID derived from `parts` (each length-prefixed, so the
/// split between parts matters). The same parts always give the same UID.
pub fn hash_uid(parts: &[&[u8]]) -> String {
    let d = digest(parts);
    let mut v = [0u8; 16];
    v.copy_from_slice(&d[..16]);
    v[0] &= 0x7f;
    format!("2.25.{}", u128::from_be_bytes(v))
}

/// SHA-256 over length-prefixed parts.
pub(crate) fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Implementation Class UID written in the file meta of every object.
pub fn implementation_class_uid() -> String {
    hash_uid(&[b"ct-triage/implementation-class"])
}

/// The Implementation Version Name (at most 16 characters).
pub fn implementation_version_name() -> String {
    let v = format!("CTTRIAGE_{}", env!("CARGO_PKG_VERSION"));
    v.chars().take(16).collect()
}

/// Is `uid` a UID defined by the DICOM standard (SOP classes, transfer
/// syntaxes, coding scheme and context group UIDs)? Those are never replaced.
pub fn is_well_known(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.")
}

/// Replaces UIDs consistently within one de-identification run.
///
/// The new UID of an original UID is `hash_uid(["ct-triage/deid-uid", salt, uid])`:
/// the same salt maps the same UID to the same replacement in every object of
/// the run (references between the SR, the SEG, the key images and the source
/// images stay intact), a different salt gives unrelated UIDs. Keep the salt
/// secret when the originals must not be recoverable by guessing candidates.
/// Well-known UIDs ([`is_well_known`]) are returned unchanged.
#[derive(Debug, Clone)]
pub struct UidMapper {
    salt: Vec<u8>,
    map: BTreeMap<String, String>,
}

impl UidMapper {
    /// A mapper for one run with the given salt.
    pub fn new(salt: impl AsRef<[u8]>) -> Self {
        UidMapper {
            salt: salt.as_ref().to_vec(),
            map: BTreeMap::new(),
        }
    }

    /// The replacement of `uid` (trimmed of padding); well-known UIDs are kept.
    pub fn map(&mut self, uid: &str) -> String {
        let uid = uid.trim_end_matches(['\0', ' ']).trim();
        if uid.is_empty() || is_well_known(uid) {
            return uid.to_string();
        }
        if let Some(v) = self.map.get(uid) {
            return v.clone();
        }
        let v = hash_uid(&[b"ct-triage/deid-uid", &self.salt, uid.as_bytes()]);
        self.map.insert(uid.to_string(), v.clone());
        v
    }

    /// The replacement already assigned to `uid` in this run, if any.
    pub fn get(&self, uid: &str) -> Option<&str> {
        self.map.get(uid).map(|s| s.as_str())
    }

    /// Number of distinct UIDs replaced so far.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no UID has been replaced yet.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A value derived from the salt for `label` (date shift, pseudonyms).
    pub(crate) fn derive(&self, label: &str, input: &[u8]) -> [u8; 32] {
        digest(&[b"ct-triage/deid", label.as_bytes(), &self.salt, input])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_deterministic() {
        let a = hash_uid(&[b"x", b"y"]);
        assert_eq!(a, hash_uid(&[b"x", b"y"]));
        assert_ne!(a, hash_uid(&[b"xy"]));
        assert!(a.len() <= 64 && a.starts_with("2.25."));
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0'));
    }

    #[test]
    fn mapper_is_consistent_and_salted() {
        let mut m = UidMapper::new("run-1");
        let x = m.map("1.2.3.4");
        assert_eq!(x, m.map("1.2.3.4\0"));
        assert_ne!(x, UidMapper::new("run-2").map("1.2.3.4"));
        assert_eq!(
            m.map("1.2.840.10008.5.1.4.1.1.2"),
            "1.2.840.10008.5.1.4.1.1.2"
        );
        assert_eq!(m.len(), 1);
    }
}
