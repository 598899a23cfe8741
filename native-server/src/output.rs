//! Writing an analysis to a folder — the one writer used by `analyze`, `batch`
//! and the server — and publishing a finished folder atomically.
//!
//! Layout of a result folder:
//!
//! ```text
//! report.json                 the report (core's JSON schema)
//! key-images/finding-N.png    one key image per finding
//! *.dcm                       DICOM objects (SR, SEG, SC) written by core, forwarded to PACS
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ct_triage_core::pipeline::Analysis;

use crate::error::{NativeError, Result};

/// File name of the report in a result folder.
pub const REPORT_FILE: &str = "report.json";

/// What [`write_analysis`] wrote (paths inside the folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// `report.json`.
    pub report: PathBuf,
    /// Key images (PNG).
    pub key_images: Vec<PathBuf>,
    /// DICOM objects (`*.dcm`): what the server forwards to PACS.
    pub dicom: Vec<PathBuf>,
}

/// Write `data` to `path` and flush it to disk.
fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| NativeError::io(path, e))?;
    f.write_all(data).map_err(|e| NativeError::io(path, e))?;
    f.sync_all().map_err(|e| NativeError::io(path, e))
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
/// report, the key images and the DICOM objects. Files are synced to disk.
pub fn write_analysis(dir: &Path, analysis: &Analysis) -> Result<Written> {
    fs::create_dir_all(dir).map_err(|e| NativeError::io(dir, e))?;
    let mut written = Written::default();

    // Key images.
    for k in &analysis.key_images {
        let rel = safe_relative(&k.file)
            .ok_or_else(|| NativeError::Output(format!("unsafe key image name {:?}", k.file)))?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| NativeError::io(parent, e))?;
        }
        write_synced(&path, &k.png)?;
        written.key_images.push(path);
    }

    // ---- DICOM objects (issue 6; maintained with core/src/report/dicom) ----
    // report.sr.dcm (TID 1500 SR), findings.seg.dcm (SEG, when there is a
    // finding) and key-images/finding-N.sc.dcm (Secondary Capture), content
    // time = now. They are listed in `written.dicom` by `dicom_objects` below.
    // A series that cannot be expressed as DICOM objects (e.g. no Frame of
    // Reference) still gets its report: the failure is logged, not fatal.
    let objects = ct_triage_core::report::dicom::export(
        analysis,
        &ct_triage_core::report::dicom::ExportOptions::default(),
    )
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "DICOM objects not written");
        Vec::new()
    });
    for o in &objects {
        let rel = safe_relative(&o.file)
            .ok_or_else(|| NativeError::Output(format!("unsafe DICOM name {:?}", o.file)))?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| NativeError::io(parent, e))?;
        }
        write_synced(&path, &o.bytes)?;
    }
    // ---- end DICOM objects ----

    // The report last, so a folder with a report is complete.
    let report = dir.join(REPORT_FILE);
    write_synced(&report, analysis.report.to_json().as_bytes())?;
    written.report = report;
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
/// is complete — also after `kill -9` or a power cut.
pub fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    let parent = dest
        .parent()
        .ok_or_else(|| NativeError::Output(format!("{} has no parent", dest.display())))?;
    fs::create_dir_all(parent).map_err(|e| NativeError::io(parent, e))?;
    if dest.exists() {
        // A stale copy of an earlier, unrecorded attempt: replace it.
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
