//! Crash-safe file replacement, shared by the log, the embedded metadata store and the
//! broker's partition metadata.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of the temporary file a replacement writes first; leftovers are safe to delete.
pub const TMP_SUFFIX: &str = ".tmp";

/// An I/O failure with the path it happened on.
#[derive(Debug)]
pub struct FsError {
    /// The file or directory involved.
    pub path: PathBuf,
    /// The underlying error.
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError { path: path.to_path_buf(), source }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over, fsync the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let mut file = File::create(&tmp).map_err(at(&tmp))?;
    file.write_all(bytes).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(at(&target))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that created, renamed and removed entries survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "f", b"one").expect("write");
        write_atomic(dir.path(), "f", b"two").expect("write");
        assert_eq!(fs::read(dir.path().join("f")).expect("read"), b"two");
        assert!(!dir.path().join(format!("f{TMP_SUFFIX}")).exists());
    }
}
