//! Gathering input files: folders (recursive), zip archives and single files,
//! read into named buffers for the core.

use std::io::Read;
use std::path::{Path, PathBuf};

use ct_triage_core::ingest::{InputFile, Skipped, hidden_member};
use rayon::prelude::*;

use crate::error::{NativeError, Result};

/// Limits on unpacking a zip archive: the core's rules, the same the browser
/// worker applies ([`ct_triage_core::ingest::ArchiveLimits`]).
pub type ZipLimits = ct_triage_core::ingest::ArchiveLimits;

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

/// Read every file under `paths` (folders, zips, files) in parallel, zips
/// with the default [`ZipLimits`] each. Fails when a zip archive is over
/// its limits (a zip bomb); unreadable files and members are listed in
/// [`Gathered::unreadable`].
pub fn gather(paths: &[PathBuf]) -> Result<Gathered> {
    let listed = list_files(paths)?;
    let parts: Vec<Result<Gathered>> = listed
        .par_iter()
        .map(|p| {
            let mut g = Gathered::default();
            if is_zip(p) {
                read_zip(p, &ZipLimits::default(), &mut g)?;
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
            Ok(g)
        })
        .collect();
    let mut all = Gathered::default();
    for g in parts {
        let g = g?;
        all.files.extend(g.files);
        all.unreadable.extend(g.unreadable);
    }
    Ok(all)
}

/// Refuse an archive whose central directory already declares too much.
fn check_declared<R: Read + std::io::Seek>(
    name: &str,
    archive: &mut zip::ZipArchive<R>,
    limits: &ZipLimits,
) -> Result<()> {
    if archive.len() > limits.max_members {
        return Err(NativeError::Limit(format!(
            "{name}: {} members in the zip archive (limit {})",
            archive.len(),
            limits.max_members
        )));
    }
    let mut declared = 0u64;
    for i in 0..archive.len() {
        if let Ok(m) = archive.by_index_raw(i)
            && m.is_file()
        {
            declared = declared.saturating_add(m.size());
        }
    }
    if declared > limits.max_total_bytes {
        return Err(NativeError::Limit(format!(
            "{name}: the zip archive declares {declared} bytes unpacked (limit {})",
            limits.max_total_bytes
        )));
    }
    Ok(())
}

/// Copy one member to `out` in 64 KiB steps, enforcing the member, ratio and
/// total limits on the bytes it actually produces. `used` is what earlier
/// members of the same budget produced.
fn copy_member(
    what: &str,
    member: &mut dyn Read,
    packed: u64,
    limits: &ZipLimits,
    used: &mut u64,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match member.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NativeError::Input(format!("{what}: {e}"))),
        };
        n += k as u64;
        *used += k as u64;
        if n > limits.max_member_bytes {
            return Err(NativeError::Limit(format!(
                "{what}: a zip member unpacks to more than {} bytes",
                limits.max_member_bytes
            )));
        }
        if n > limits.ratio_floor_bytes && n > limits.max_ratio.saturating_mul(packed.max(1)) {
            return Err(NativeError::Limit(format!(
                "{what}: a zip member unpacks to more than {} times its packed size of {packed} \
                 bytes (a zip bomb?)",
                limits.max_ratio
            )));
        }
        if *used > limits.max_total_bytes {
            return Err(NativeError::Limit(format!(
                "{what}: the zip archives unpack to more than {} bytes",
                limits.max_total_bytes
            )));
        }
        out.write_all(&buf[..k])
            .map_err(|e| NativeError::Output(format!("{what}: {e}")))?;
    }
}

/// Read the members of a zip archive file into `into`, within `limits`.
/// Members that cannot be read are listed as unreadable; an archive over
/// its limits is an error ([`NativeError::Limit`]).
pub fn read_zip(path: &Path, limits: &ZipLimits, into: &mut Gathered) -> Result<()> {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => read_zip_from(&name, std::io::BufReader::new(f), limits, into),
        Err(e) => {
            into.unreadable.push(Skipped {
                path: name,
                code: "io".into(),
                reason: e.to_string(),
            });
            Ok(())
        }
    }
}

/// [`read_zip`] of an archive in memory, named `name` in messages.
pub fn read_zip_bytes(
    name: &str,
    bytes: &[u8],
    limits: &ZipLimits,
    into: &mut Gathered,
) -> Result<()> {
    read_zip_from(name, std::io::Cursor::new(bytes), limits, into)
}

fn read_zip_from<R: Read + std::io::Seek>(
    name: &str,
    reader: R,
    limits: &ZipLimits,
    into: &mut Gathered,
) -> Result<()> {
    let bad = |into: &mut Gathered, path: String, reason: String| {
        into.unreadable.push(Skipped {
            path,
            code: "zip".into(),
            reason,
        })
    };
    let mut archive = match zip::ZipArchive::new(reader) {
        Ok(a) => a,
        Err(e) => {
            bad(into, name.to_string(), format!("not a readable zip: {e}"));
            return Ok(());
        }
    };
    check_declared(name, &mut archive, limits)?;
    let mut used = 0u64;
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
        if hidden_member(&inner) {
            continue;
        }
        let member_name = format!("{name}!/{inner}");
        let packed = member.compressed_size();
        let mut bytes = Vec::with_capacity(
            member
                .size()
                .min(limits.max_member_bytes)
                .min(limits.max_total_bytes)
                .min(1 << 20) as usize,
        );
        match copy_member(
            &member_name,
            &mut member,
            packed,
            limits,
            &mut used,
            &mut bytes,
        ) {
            Ok(_) => into.files.push(OwnedInput {
                name: member_name,
                bytes,
            }),
            Err(e @ NativeError::Limit(_)) => return Err(e),
            Err(e) => bad(into, member_name, e.to_string()),
        }
    }
    Ok(())
}

/// Read until `buf` is full or the end; the number of bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What [`extract_zip`] unpacked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Members left out, with the reason (unreadable, nested archive).
    pub skipped: Vec<Skipped>,
}

/// A file name from a member's base name: `[A-Za-z0-9._-]`, at most 96 characters.
fn safe_base(inner: &str) -> String {
    let base: String = inner
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    if base.is_empty() {
        "member".into()
    } else {
        base
    }
}

/// Unpack the zip archive `archive` into the folder `dest` as flat files
/// named `<nnnnn>-<base name>` (owner-only, synced), streaming each member
/// with the limits enforced on what it produces; `used` carries the bytes
/// unpacked so far against [`ZipLimits::max_total_bytes`] across several
/// archives. Member paths never become paths (no traversal), links and
/// folders are left out, and so are nested zip archives (a second layer of
/// bomb). Over a limit, [`NativeError::Limit`] — the caller removes `dest`.
pub fn extract_zip(
    archive_path: &Path,
    dest: &Path,
    limits: &ZipLimits,
    used: &mut u64,
) -> Result<Extracted> {
    let name = archive_path
        .file_name()
        .map_or_else(|| "upload.zip".into(), |n| n.to_string_lossy().into_owned());
    let file = std::fs::File::open(archive_path).map_err(|e| NativeError::io(archive_path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| NativeError::Input(format!("{name}: not a readable zip archive: {e}")))?;
    check_declared(&name, &mut archive, limits)?;
    let mut done = Extracted::default();
    for i in 0..archive.len() {
        let mut member = match archive.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                done.skipped.push(Skipped {
                    path: format!("{name}!/#{i}"),
                    code: "zip".into(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !member.is_file() {
            continue;
        }
        let inner = String::from_utf8_lossy(member.name_raw()).into_owned();
        if hidden_member(&inner) {
            continue;
        }
        let what = format!("{name}!/{inner}");
        let packed = member.compressed_size();
        let path = dest.join(format!("{:05}-{}", done.files + 1, safe_base(&inner)));
        // The first bytes decide whether it is a nested archive.
        let mut head = [0u8; 4];
        let got = match read_up_to(&mut member, &mut head) {
            Ok(n) => n,
            Err(e) => {
                done.skipped.push(Skipped {
                    path: what,
                    code: "zip".into(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if got == 4 && &head == b"PK\x03\x04" {
            done.skipped.push(Skipped {
                path: what,
                code: "zip".into(),
                reason: "a zip archive inside a zip archive is not unpacked".into(),
            });
            continue;
        }
        *used += got as u64;
        let mut out = crate::private_fs::create_file(&path)?;
        let written = std::io::Write::write_all(&mut out, &head[..got])
            .map_err(|e| NativeError::io(&path, e))
            .and_then(|_| copy_member(&what, &mut member, packed, limits, used, &mut out))
            .and_then(|n| {
                out.sync_all().map_err(|e| NativeError::io(&path, e))?;
                Ok(n + got as u64)
            });
        match written {
            Ok(n) => {
                done.files += 1;
                done.bytes += n;
            }
            Err(e @ (NativeError::Limit(_) | NativeError::Io { .. })) => return Err(e),
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&path);
                done.skipped.push(Skipped {
                    path: what,
                    code: "zip".into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.add_symlink("link", "/etc/passwd", opts).unwrap();
        w.finish().unwrap().into_inner()
    }

    /// Bytes that do not compress (so the ratio limit stays out of the way).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn extract(zip: &[u8], limits: &ZipLimits) -> (tempfile::TempDir, Result<Extracted>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload.zip");
        std::fs::write(&path, zip).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mut used = 0;
        let r = extract_zip(&path, &out, limits, &mut used);
        (dir, r)
    }

    #[test]
    fn members_become_flat_files_and_links_hidden_and_nested_zips_stay_out() {
        let inner = zip_of(&[("x.dcm", b"DICM".to_vec())]);
        let z = zip_of(&[
            ("../../etc/evil.dcm", b"one".to_vec()),
            ("study/a b.dcm", b"two".to_vec()),
            ("study/.DS_Store", b"hidden".to_vec()),
            ("__MACOSX/study/._a.dcm", b"hidden".to_vec()),
            ("nested.zip", inner),
        ]);
        let (dir, r) = extract(&z, &ZipLimits::default());
        let got = r.unwrap();
        assert_eq!((got.files, got.bytes), (2, 6));
        assert_eq!(got.skipped.len(), 1, "{:?}", got.skipped);
        assert!(got.skipped[0].reason.contains("inside a zip"));
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["00001-evil.dcm", "00002-a_b.dcm"]);
        assert!(!dir.path().join("etc").exists());
    }

    #[test]
    fn a_compression_bomb_is_refused_while_it_unpacks() {
        // 64 MiB of zeros deflate to ≈ 64 KB: over a ratio of 100 once past 1 MiB.
        let z = zip_of(&[("zeros.dcm", vec![0u8; 64 << 20])]);
        assert!(z.len() < 200_000, "{}", z.len());
        let (dir, r) = extract(&z, &ZipLimits::default());
        let e = r.unwrap_err();
        assert!(matches!(e, NativeError::Limit(_)), "{e}");
        assert!(e.to_string().contains("times its packed size"), "{e}");
        // It stopped at 100 × the packed size, far from the 64 MiB it unpacks to.
        let written: u64 = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(written <= 100 * z.len() as u64, "{written} bytes written");
    }

    #[test]
    fn totals_and_members_are_capped() {
        let z = zip_of(&[("a", noise(300_000, 1)), ("b", noise(300_000, 2))]);
        let small = ZipLimits {
            max_total_bytes: 500_000,
            ..ZipLimits::default()
        };
        // Refused from the declared sizes, before anything is unpacked.
        let (dir, r) = extract(&z, &small);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("declares 600000 bytes"), "{e}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            0
        );
        let (_d, r) = extract(
            &z,
            &ZipLimits {
                max_member_bytes: 200_000,
                ..ZipLimits::default()
            },
        );
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("more than 200000 bytes")
        );
        let (_d, r) = extract(
            &z,
            &ZipLimits {
                max_members: 1,
                ..ZipLimits::default()
            },
        );
        assert!(r.unwrap_err().to_string().contains("members"));
        // In memory (gather, batch, analyze): the same limits.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.zip");
        std::fs::write(&path, &z).unwrap();
        let mut g = Gathered::default();
        assert!(read_zip(&path, &small, &mut g).is_err());
        let mut g = Gathered::default();
        read_zip(&path, &ZipLimits::default(), &mut g).unwrap();
        assert_eq!(g.files.len(), 2);
        assert_eq!(g.total_bytes(), 600_000);
    }
}
