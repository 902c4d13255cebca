//! Atomic writes of the per-network config files, as Neutron's `replace_file`.
//!
//! dnsmasq re-reads `host`, `opts` and `addn_hosts` on SIGHUP and may do so
//! at any moment (a respawn, a neighbouring agent's HUP), so a reader must see
//! either the old or the new file, never half of one: write a temporary file
//! in the same directory, then rename it over the target.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode of the per-network directory (Neutron: 0755).
pub const DIR_MODE: u32 = 0o755;

/// Mode of the files in it (Neutron's `replace_file` default: 0644).
pub const FILE_MODE: u32 = 0o644;

/// Creates `dir` (and parents) with mode 0755 if missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Writes `contents` to `path` atomically with mode 0644.
///
/// No fsync: the files are regenerated from the server's state on every
/// start, so durability across a power cut buys nothing, and atomicity
/// against concurrent readers comes from the rename alone.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .permissions(fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    // tempfile's permissions are filtered by the umask; set them exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `contents` atomically unless the file already holds exactly that;
/// returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<bool> {
    match fs::read(path) {
        Ok(old) if old == contents => Ok(false),
        _ => write_atomic(path, contents).map(|()| true),
    }
}

/// Removes a file; a file that is already gone is fine.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a tree that is already gone is fine.
pub fn remove_dir_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_atomically_with_modes_and_reports_changes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        ensure_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, DIR_MODE);
        let file = dir.join("host");
        assert!(write_if_changed(&file, b"one\n").unwrap());
        assert!(!write_if_changed(&file, b"one\n").unwrap());
        assert!(write_if_changed(&file, b"two\n").unwrap());
        assert_eq!(fs::read(&file).unwrap(), b"two\n");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, FILE_MODE);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        remove_if_exists(&file).unwrap();
        remove_if_exists(&file).unwrap();
        remove_dir_if_exists(&dir).unwrap();
        remove_dir_if_exists(&dir).unwrap();
    }
}
