//! Owner-only files and folders (health data: `0700` folders, `0600` files on
//! Unix) and flushing them to disk before anything is acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{NativeError, Result};

/// Create `dir` and its missing parents, owner-only (`0700`) on Unix.
/// Existing folders keep their mode.
pub fn create_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| NativeError::io(dir, e))
}

/// Make an existing folder owner-only (`0700` on Unix): used for the data
/// folder, so files an older version created with wider modes cannot be
/// reached by other users either.
pub fn restrict_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| NativeError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Options that create a file owner-only (`0600` on Unix).
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Create (or truncate) an owner-only file for writing.
pub fn create_file(path: &Path) -> Result<File> {
    private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| NativeError::io(path, e))
}

/// Write `data` to an owner-only file at `path` and flush it to disk.
pub fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = create_file(path)?;
    f.write_all(data).map_err(|e| NativeError::io(path, e))?;
    f.sync_all().map_err(|e| NativeError::io(path, e))
}

/// Flush a folder's entries (new names, renames) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NativeError::io(dir, e))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_folders_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir(&d).unwrap();
        let f = d.join("x");
        write_synced(&f, b"1").unwrap();
        sync_dir(&d).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&f), 0o600);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        restrict_dir(dir.path()).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
    }
}
