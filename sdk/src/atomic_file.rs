//! Writing a file so that a reader never sees half of it and a failure never costs the old
//! content: the SDK runs inside other people's processes and writes into their folders (`bridge
//! restore -o`, `bridge eval --markdown/--plot`, `degradation.json`), so an interrupted write
//! must leave the user's file as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

fn io_err(path: &Path, source: std::io::Error) -> crate::Error {
    crate::Error::Io { path: path.display().to_string(), source }
}

/// Write `bytes` to `path` so that `path` either keeps its old content or gets all of the new:
/// a new temporary file next to the target (`create_new`, so nothing is clobbered), written,
/// fsynced, then renamed over the target (a symbolic link is followed: its target is replaced).
/// `keep` is asked last, before the rename: `false` drops the temporary file and returns
/// [`crate::Error::Cancelled`]. A target that exists but is not a regular file (a device such
/// as `/dev/full`, a pipe) is written in place, every write and the flush checked.
pub fn write_atomic(path: &Path, bytes: &[u8], keep: impl Fn() -> bool) -> crate::Result<()> {
    let target = match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return write_special(path, bytes, keep),
        Ok(_) => path.canonicalize().map_err(|e| io_err(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io_err(path, e)),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().ok_or_else(|| io_err(path, std::io::Error::other("not a file name")))?.to_string_lossy().into_owned();
    let (tmp, mut file) = create_temp(&dir, &name)?;
    let written = (|| -> crate::Result<()> {
        file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        if !keep() {
            return Err(crate::Error::Cancelled);
        }
        std::fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; some file systems cannot fsync a folder (EINVAL).
    match std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(io_err(&dir, e)),
        _ => Ok(()),
    }
}

/// A fresh file `.NAME.bridge-XXXXXXXX.tmp` in `dir` that did not exist before.
fn create_temp(dir: &Path, name: &str) -> crate::Result<(PathBuf, std::fs::File)> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut last = None;
    for k in 0u32..64 {
        let tag = (seed ^ std::process::id().rotate_left(16)).wrapping_add(k.wrapping_mul(0x9E37_79B9));
        let tmp = dir.join(format!(".{name}.bridge-{tag:08x}.tmp"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(&tmp, e)),
        }
    }
    Err(io_err(dir, last.unwrap_or_else(|| std::io::Error::other("no free temporary file name"))))
}

fn write_special(path: &Path, bytes: &[u8], keep: impl Fn() -> bool) -> crate::Result<()> {
    if !keep() {
        return Err(crate::Error::Cancelled);
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.flush().map_err(|e| io_err(path, e))?;
    // Devices and pipes may not support fsync (EINVAL); any other error is a failed write.
    match f.sync_all() {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(io_err(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        crate::test_support::fresh_dir("atomic", tag)
    }

    fn leftovers(d: &Path) -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let d = dir("replace");
        let p = d.join("out.md");
        std::fs::write(&p, b"old content that is longer").unwrap();
        write_atomic(&p, b"new", || true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        write_atomic(&d.join("fresh.md"), b"x", || true).unwrap();
        assert_eq!(std::fs::read(d.join("fresh.md")).unwrap(), b"x");
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Cancelled before the rename: the old file is untouched and the temporary one is gone.
    #[test]
    fn a_cancelled_write_keeps_the_old_content() {
        let d = dir("cancel");
        let p = d.join("out.png");
        std::fs::write(&p, b"old").unwrap();
        assert!(matches!(write_atomic(&p, b"new", || false), Err(crate::Error::Cancelled)));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(leftovers(&d).is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A folder that does not exist is an I/O error naming the path, not a panic.
    #[test]
    fn missing_folder_is_an_error() {
        let d = dir("missing");
        let e = write_atomic(&d.join("no/such/dir/f.md"), b"x", || true).unwrap_err();
        assert!(matches!(e, crate::Error::Io { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
