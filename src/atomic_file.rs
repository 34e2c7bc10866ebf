//! One way to replace a file so that a reader (or a crash) never sees half of it: write a temporary
//! sibling, fsync it, rename it over the target, fsync the directory. Shards' manifests and
//! statistics, HDF5 files, checkpoints and pictures all go through here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The temporary sibling a write to `path` goes through: `NAME.partial-PID`, in the same directory
/// (a rename is atomic only within one filesystem).
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.partial-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = fs::File::create(tmp).at(tmp)?;
        f.write_all(bytes).at(tmp)
    })
}

/// Lets `write` create the file at the temporary path it is given (for writers that insist on a
/// path of their own: libtorch's archives, image encoders), then syncs it and renames it over
/// `path`. On an error from `write` the temporary file is removed and `path` is untouched.
pub fn write_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let tmp = partial_path(path);
    if let Err(e) = write(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let synced = fs::File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp);
    if let Err(e) = synced.and_then(|()| fs::rename(&tmp, path).at(path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(sync_dir(parent_dir(path))?)
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk now, without
/// waiting (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`): a file written in a long stream is
/// then mostly on disk when it is fsynced, so that fsync does not stall the writer, and the disk
/// works while the CPU does. Only a hint: durability still comes from the fsync, so a failure is
/// ignored, and elsewhere it does nothing.
pub fn start_writeback(file: &fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) {
            // SAFETY: a plain syscall on an open descriptor of a file we own; it reads no memory
            // of ours.
            let _ = unsafe {
                libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_partial() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("a.json");
        write(&path, b"one")?;
        write(&path, b"two")?;
        assert_eq!(fs::read(&path).at(&path)?, b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .at(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .at(dir.path())?;
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        Ok(())
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("ckpt.ot");
        write(&path, b"old")?;
        let failed: Result<()> = write_with(&path, |tmp| {
            fs::write(tmp, b"half").at(tmp)?;
            Err(Error::format(tmp, "encoder failed"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).at(&path)?, b"old");
        assert!(!partial_path(&path).exists());
        Ok(())
    }
}
