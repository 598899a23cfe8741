//! Gathering input files: folders (recursive), zip archives and single files,
//! read into named buffers for the core.

use std::io::Read;
use std::path::{Path, PathBuf};

use ct_triage_core::ingest::{InputFile, Skipped};
use rayon::prelude::*;

use crate::error::{NativeError, Result};

/// Largest single member we unpack from a zip archive (2 GiB).
const MAX_ZIP_MEMBER: u64 = 2 << 30;

/// A file read into memory, named by its path (zip members as `archive.zip!/member`).
#[derive(Debug, Clone)]
pub struct OwnedInput {
    /// Path, or `archive!/member` for zip members.
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Everything read from the given paths, plus what could not be read.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Files read.
    pub files: Vec<OwnedInput>,
    /// Files that could not be read (I/O errors, corrupt zip members).
    pub unreadable: Vec<Skipped>,
}

impl Gathered {
    /// Borrow the files as core inputs.
    pub fn inputs(&self) -> Vec<InputFile<'_>> {
        self.files
            .iter()
            .map(|f| InputFile::new(&f.name, &f.bytes))
            .collect()
    }

    /// Total bytes read.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }
}

/// True when a path names a zip archive (by its magic bytes, not its extension).
pub fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|_| &magic == b"PK\x03\x04")
        .unwrap_or(false)
}

/// List the regular files under the given paths (folders are walked recursively;
/// hidden files such as `.DS_Store` are skipped).
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| NativeError::io(p, e))?;
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(p)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry =
                    entry.map_err(|e| NativeError::Input(format!("{}: {e}", p.display())))?;
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if entry.file_type().is_file() && !hidden {
                    out.push(entry.into_path());
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Read every file under `paths` (folders, zips, files) in parallel.
pub fn gather(paths: &[PathBuf]) -> Result<Gathered> {
    let listed = list_files(paths)?;
    let parts: Vec<Gathered> = listed
        .par_iter()
        .map(|p| {
            let mut g = Gathered::default();
            if is_zip(p) {
                read_zip(p, &mut g);
            } else {
                match std::fs::read(p) {
                    Ok(bytes) => g.files.push(OwnedInput {
                        name: p.display().to_string(),
                        bytes,
                    }),
                    Err(e) => g.unreadable.push(Skipped {
                        path: p.display().to_string(),
                        code: "io".into(),
                        reason: e.to_string(),
                    }),
                }
            }
            g
        })
        .collect();
    let mut all = Gathered::default();
    for g in parts {
        all.files.extend(g.files);
        all.unreadable.extend(g.unreadable);
    }
    Ok(all)
}

/// Read the members of a zip archive from a file.
fn read_zip(path: &Path, into: &mut Gathered) {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => read_zip_bytes(&name, &bytes, into),
        Err(e) => into.unreadable.push(Skipped {
            path: name,
            code: "io".into(),
            reason: e.to_string(),
        }),
    }
}

/// Read the members of an in-memory zip archive (also used for HTTP uploads).
pub fn read_zip_bytes(name: &str, bytes: &[u8], into: &mut Gathered) {
    let bad = |into: &mut Gathered, path: String, reason: String| {
        into.unreadable.push(Skipped {
            path,
            code: "zip".into(),
            reason,
        })
    };
    let mut archive = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => return bad(into, name.to_string(), format!("not a readable zip: {e}")),
    };
    for i in 0..archive.len() {
        let mut member = match archive.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                bad(into, format!("{name}!/#{i}"), e.to_string());
                continue;
            }
        };
        if !member.is_file() {
            continue;
        }
        let inner = String::from_utf8_lossy(member.name_raw()).into_owned();
        let member_name = format!("{name}!/{inner}");
        let base_hidden = inner.rsplit('/').next().is_some_and(|b| b.starts_with('.'))
            || inner.starts_with("__MACOSX/");
        if base_hidden {
            continue;
        }
        if member.size() > MAX_ZIP_MEMBER {
            bad(
                into,
                member_name,
                format!("member of {} bytes exceeds {MAX_ZIP_MEMBER}", member.size()),
            );
            continue;
        }
        let mut buf = Vec::new();
        // Never trust the declared size: read at most the limit + 1 byte.
        match (&mut member).take(MAX_ZIP_MEMBER + 1).read_to_end(&mut buf) {
            Ok(_) if buf.len() as u64 > MAX_ZIP_MEMBER => {
                bad(into, member_name, "member larger than declared".into())
            }
            Ok(_) => into.files.push(OwnedInput {
                name: member_name,
                bytes: buf,
            }),
            Err(e) => bad(into, member_name, e.to_string()),
        }
    }
}
