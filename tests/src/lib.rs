//! Shared helpers of the integration tests: repository paths, sample loading
//! and external tools (dcmtk, gdcm) that the tests drive as real peers.

use std::path::{Path, PathBuf};
use std::process::Command;

use ct_triage_core::ingest::InputFile;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `sample-dicom/lung1`.
pub fn lung1_dir() -> PathBuf {
    repo_root().join("sample-dicom/lung1")
}

/// The truth file of lung1.
pub fn lung1_truth() -> serde_json::Value {
    let s = std::fs::read_to_string(repo_root().join("sample-dicom/lung1.truth.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

/// `tests/data/lung2/dicom`: the real chest CT held out from training.
pub fn lung2_dir() -> PathBuf {
    repo_root().join("tests/data/lung2/dicom")
}

/// The truth file of lung2 (its labelled mass).
pub fn lung2_truth() -> serde_json::Value {
    let s = std::fs::read_to_string(repo_root().join("tests/data/lung2/lung2.truth.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

/// Every file directly in a folder, sorted by name, read into memory.
pub fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Borrow owned files as core inputs.
pub fn inputs(files: &[(String, Vec<u8>)]) -> Vec<InputFile<'_>> {
    files.iter().map(|(n, b)| InputFile::new(n, b)).collect()
}

/// Run an external tool; panics with its output when it fails or is missing
/// (CI installs every tool the tests use, so a missing tool is a failure).
pub fn run_tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is not installed ({e}); run tests/run.sh, which installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
