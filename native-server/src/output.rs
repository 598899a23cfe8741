//! Writing an analysis to a folder — the one writer used by `analyze`, `batch`
//! and the server — and publishing a finished folder atomically.
//!
//! Layout of a result folder:
//!
//! ```text
//! report.json                 the report (core's JSON schema)
//! key-images/finding-N.png    one key image per finding
//! *.dcm                       DICOM objects (SR, SEG, SC) written by core, forwarded to PACS
//! deidentification.json       with de-identification: what was done to each file
//! ```
//!
//! With [`OutputOptions::deidentify`], the report and the DICOM objects are
//! de-identified by core (DICOM PS3.15 Basic Application Level
//! Confidentiality Profile, core's default options: UIDs replaced, Patient ID
//! pseudonymised, names, accession number and other identifying attributes
//! removed, dates shifted) with one key, so the report and the objects agree.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ct_triage_core::pipeline::Analysis;
use ct_triage_core::report::Report;
use ct_triage_core::report::dicom::{self, BundleOptions, DeidOptions};
pub use ct_triage_core::report::dicom::{DEID_FILE, REPORT_FILE};

use crate::error::{NativeError, Result};

/// The secret key of de-identification: the salt of core's UID mapping, from
/// which replacement UIDs, Patient ID pseudonyms and the date shift are
/// derived. The same key gives the same replacements in every run (studies
/// of one patient stay linked); without the key the originals cannot be
/// confirmed by trying candidates. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeidKey(Vec<u8>);

impl std::fmt::Debug for DeidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeidKey(…)")
    }
}

impl DeidKey {
    /// A fresh random key (not stored: replacements differ in every run).
    pub fn random() -> Self {
        let hex: String = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .map(|u| u.simple().to_string())
            .collect();
        DeidKey(hex.into_bytes())
    }

    /// The key in `path` (its content, surrounding white space ignored); when
    /// the file does not exist, a random key is written to it first
    /// (owner-only permissions on Unix). A key shorter than 16 bytes is refused.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if !path.exists() {
            let key = DeidKey::random();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| NativeError::io(parent, e))?;
            }
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(&key.0)
                        .and_then(|_| f.write_all(b"\n"))
                        .and_then(|_| f.sync_all())
                        .map_err(|e| NativeError::io(path, e))?;
                    tracing::info!(path = %path.display(), "created a de-identification key");
                }
                // Created meanwhile by another process: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(NativeError::io(path, e)),
            }
        }
        let bytes = fs::read(path).map_err(|e| NativeError::io(path, e))?;
        let key = bytes.trim_ascii();
        if key.len() < dicom::MIN_KEY_BYTES {
            return Err(NativeError::Config(format!(
                "de-identification key {}: at least {} bytes required, found {}",
                path.display(),
                dicom::MIN_KEY_BYTES,
                key.len()
            )));
        }
        Ok(DeidKey(key.to_vec()))
    }
}

/// How [`write_analysis`] writes a result folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// De-identify the report and the DICOM objects with this key and write
    /// `deidentification.json`. Default `None`: written as analysed.
    pub deidentify: Option<DeidKey>,
}

/// What [`write_analysis`] wrote (paths inside the folder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// `report.json`.
    pub report: PathBuf,
    /// Key images (PNG).
    pub key_images: Vec<PathBuf>,
    /// DICOM objects (`*.dcm`): what the server forwards to PACS.
    pub dicom: Vec<PathBuf>,
    /// `deidentification.json`, when the folder was de-identified.
    pub deidentification: Option<PathBuf>,
    /// The de-identified report as written to `report.json`; `None` when the
    /// report was written as analysed.
    pub deidentified_report: Option<Report>,
}

impl Written {
    /// The report as written: de-identified or the analysis' own.
    pub fn report_of<'a>(&'a self, analysis: &'a Analysis) -> &'a Report {
        self.deidentified_report
            .as_ref()
            .unwrap_or(&analysis.report)
    }
}

/// Write `data` to `path` (owner-only) and flush it to disk.
fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    crate::private_fs::write_synced(path, data)
}

/// Only plain relative names (`key-images/finding-1.png`) may come from the
/// core; anything else would escape the folder.
fn safe_relative(name: &str) -> Option<&Path> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then_some(p)
}

/// Write everything `analysis` holds into `dir` (created if missing): the
/// report, the key images and the DICOM objects, de-identified as `opts`
/// says. Files are synced to disk.
pub fn write_analysis(dir: &Path, analysis: &Analysis, opts: &OutputOptions) -> Result<Written> {
    crate::private_fs::create_dir(dir)?;
    let mut written = Written::default();
    // Core's result bundle: the report, the key images and the DICOM objects
    // (SR, SEG when there is a finding, SC, KOS; content time = now),
    // de-identified with one key when asked (same UIDs, pseudonym and date
    // shift in all; `deidentification.json` lists what was done to each
    // file). A series that cannot be expressed as DICOM objects (e.g. no
    // Frame of Reference) still gets its report: the failure is logged.
    let mut bo = BundleOptions::new();
    if let Some(key) = &opts.deidentify {
        bo = bo.deidentify(DeidOptions::default(), &key.0);
    }
    let b = dicom::bundle(analysis, &bo)?;
    if let Some(e) = &b.dicom_error {
        tracing::warn!(error = %e, "DICOM objects not written");
    }
    // In the bundle's order: the report last, so a folder with a report is complete.
    for f in b.files() {
        let rel = safe_relative(f.name)
            .ok_or_else(|| NativeError::Output(format!("unsafe file name {:?}", f.name)))?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            crate::private_fs::create_dir(parent)?;
        }
        write_synced(&path, &f.bytes)?;
        match f.name {
            REPORT_FILE => written.report = path,
            DEID_FILE => written.deidentification = Some(path),
            n if n.ends_with(".png") => written.key_images.push(path),
            _ => {}
        }
    }
    written.deidentified_report = b.is_deidentified().then_some(b.report);
    written.dicom.extend(dicom_objects(dir)?);
    Ok(written)
}

/// Every DICOM object (`*.dcm`, any depth) in a result folder, sorted.
pub fn dicom_objects(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| NativeError::Input(format!("{}: {e}", dir.display())))?;
        let is_dcm = entry
            .path()
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("dcm"));
        if entry.file_type().is_file() && is_dcm {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// Move a finished folder `tmp` to `dest` atomically (one `rename` on the same
/// filesystem) and sync the parent folder, so `dest` either does not exist or
/// is complete — also after `kill -9` or a power cut. Result folders are
/// named by job (`batch::placement`, `server::placement`), so an existing
/// `dest` can only be an earlier, unrecorded attempt of the same job.
pub fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    let parent = dest
        .parent()
        .ok_or_else(|| NativeError::Output(format!("{} has no parent", dest.display())))?;
    crate::private_fs::create_dir(parent)?;
    if dest.exists() {
        // A stale copy of an earlier, unrecorded attempt of this job: replace it.
        fs::remove_dir_all(dest).map_err(|e| NativeError::io(dest, e))?;
    }
    fs::rename(tmp, dest).map_err(|e| NativeError::io(dest, e))?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| NativeError::io(parent, e))
}

/// True when `dir` is a complete result folder (it has its report).
pub fn is_complete(dir: &Path) -> bool {
    dir.join(REPORT_FILE).is_file()
}
