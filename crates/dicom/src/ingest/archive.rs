//! What an uploaded archive (zip) may hold, for every reader: the native
//! server's zip reader and the browser worker (through the wasm adapter) apply
//! these same rules, so a study is read alike wherever it is opened.

use serde::{Deserialize, Serialize};

/// Limits on unpacking an archive: zip bombs (a few MB unpacking to
/// gigabytes) are refused before the memory or disk is spent. Sizes are the
/// bytes actually produced, never the sizes the archive declares (those are
/// checked first, then enforced while unpacking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveLimits {
    /// Largest member, unpacked. Default 2 GiB.
    pub max_member_bytes: u64,
    /// Most bytes unpacked from all members together. Default 4 GiB.
    pub max_total_bytes: u64,
    /// Highest unpacked : packed ratio of a member, checked once a member
    /// has produced [`ArchiveLimits::ratio_floor_bytes`]. Default 100 (CT
    /// slices compress 2–10×; deflate's ceiling is ≈ 1030×).
    pub max_ratio: u64,
    /// Members smaller than this are not held to the ratio. Default 1 MiB.
    pub ratio_floor_bytes: u64,
    /// Most members. Default 100 000.
    pub max_members: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_member_bytes: 2 << 30,
            max_total_bytes: 4 << 30,
            max_ratio: 100,
            ratio_floor_bytes: 1 << 20,
            max_members: 100_000,
        }
    }
}

/// A member that is skipped, as hidden files are: its base name starts with a
/// dot (`.DS_Store`, `._a.dcm`) or it lies under `__MACOSX/` (what macOS'
/// archiver adds).
pub fn hidden_member(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|b| b.starts_with('.')) || path.starts_with("__MACOSX/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_members_are_dot_files_and_macos_metadata() {
        assert!(hidden_member(".DS_Store"));
        assert!(hidden_member("study/._a.dcm"));
        assert!(hidden_member("__MACOSX/study/a.dcm"));
        assert!(!hidden_member("study/a.dcm"));
        assert!(!hidden_member("study.v2/a.dcm"));
    }
}
