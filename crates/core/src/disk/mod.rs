//! The file seam under the log and the embedded metadata store: every open, write, fsync,
//! rename, remove and directory fsync of their files goes through [`Disk`], so a test can
//! swap the real file system for a simulated one that loses what was never made durable.
//!
//! # Files
//! - `real`: [`RealDisk`], `std::fs` with positional I/O.
//! - `sim`: [`SimDisk`], an in-memory disk that keeps each file's durable bytes and each
//!   directory's durable entries apart from what was only written, and on
//!   [`SimDisk::crash`] keeps exactly the durable state (optionally a torn prefix of the
//!   rest); it also injects fsync failures and a full disk.
//! - `tracking`: [`TrackingDisk`], test-only: the real file system with each file's unsynced
//!   contents held in process memory, so that SIGKILL loses them as a power cut would
//!   (the process-level power-loss suite, `SHALE_TEST_DISK`).
//!
//! The helpers here ([`write_atomic`], [`sync_dir`], [`read_optional`]) are the crash-safe
//! patterns the storage layers share.

mod real;
mod sim;
mod tracking;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

pub use real::RealDisk;
pub use sim::{SECTOR, SimDisk, SimOptions};
pub use tracking::TrackingDisk;

/// What the positions, lengths and buffer addresses of writes through
/// [`Disk::open_direct`] are multiples of: a page, which covers the logical blocks of the
/// devices Linux serves direct I/O on (512 or 4096 bytes).
pub const DIRECT_ALIGN: usize = 4096;

/// Suffix of the temporary file a replacement writes first; leftovers are safe to delete.
pub const TMP_SUFFIX: &str = ".tmp";

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; created empty if missing, never truncated.
    ReadWriteCreate,
    /// Write only; created or truncated to empty.
    CreateTruncate,
}

/// Size and modification time of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Bytes.
    pub len: u64,
    /// Last modification.
    pub modified: SystemTime,
}

/// An open file: positional reads and writes, so one handle serves readers and the writer.
pub trait DiskFile: Send + Sync + Debug {
    /// Reads at `pos` into `buf`; returns the bytes read (0 at the end of the file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Makes the file's data (and size) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Starts writing `len` bytes from `pos` back to the device, without waiting or making
    /// them durable: dirty data then reaches the disk steadily rather than in one burst at
    /// the next sync. A hint: a disk that cannot does nothing.
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        let _ = (pos, len);
        Ok(())
    }
}

/// A shared open file.
pub type FileHandle = Arc<dyn DiskFile>;

/// A handle on the file system that holds a directory, to make everything written to it
/// durable at once (Linux `syncfs(2)`): one call instead of an fsync per file.
pub trait FsSync: Send + Sync + Debug {
    /// Makes the data and size of every file on the file system durable, as `sync_data`
    /// of each would. Fails if writing any file back failed since the handle was opened
    /// (or since a sync last reported a failure), whichever file it was: open the handle
    /// before the writes it is to cover.
    fn sync(&self) -> io::Result<()>;
}

/// A shared [`FsSync`].
pub type FsHandle = Arc<dyn FsSync>;

/// The `Unsupported` error of [`Disk::open_fs`] on a file system that cannot be synced at
/// once (`why`): callers then fsync file by file.
pub(crate) fn no_syncfs(dir: &Path, why: &str) -> io::Error {
    let msg = format!("cannot sync the file system of {} at once: {why}", dir.display());
    io::Error::new(io::ErrorKind::Unsupported, msg)
}

/// Where a [`CountedFile`] is counted: told once, when the file closes.
pub trait FileCount: Send + Sync + Debug {
    /// The file closed (its last handle dropped).
    fn closed(&self);
}

impl FileCount for AtomicU64 {
    fn closed(&self) {
        self.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An open file that counts itself until it drops: how a cache of handles (or a test)
/// knows how many files are open, whoever still holds them.
#[derive(Debug)]
pub struct CountedFile {
    file: FileHandle,
    count: Arc<dyn FileCount>,
}

impl CountedFile {
    /// Wraps `file`, adding one to `open` until the last clone of the result drops.
    pub fn wrap(file: FileHandle, open: &Arc<AtomicU64>) -> FileHandle {
        open.fetch_add(1, Ordering::Relaxed);
        Self::counted_by(file, open.clone())
    }

    /// Wraps `file`, which the caller counted in `count` already; `count` is told when the
    /// last clone of the result drops.
    pub fn counted_by(file: FileHandle, count: Arc<dyn FileCount>) -> FileHandle {
        Arc::new(CountedFile { file, count })
    }
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        self.count.closed();
    }
}

impl DiskFile for CountedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file.write_all_at(buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        self.file.start_writeback(pos, len)
    }
}

/// The file-system operations the storage layers use. Directory entries (creates, renames,
/// removes) are durable only after [`Disk::sync_dir`] of their directory, as on Linux.
pub trait Disk: Send + Sync + Debug {
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileHandle>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a directory durable (creates, renames and removes in it).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (files and directories), in no set order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Size and modification time of a file.
    fn metadata(&self, path: &Path) -> io::Result<FileMeta>;

    /// A handle that syncs the whole file system holding the directory `dir`. A disk that
    /// cannot refuses with `Unsupported`, and its callers fsync file by file.
    fn open_fs(&self, dir: &Path) -> io::Result<FsHandle> {
        Err(no_syncfs(dir, "this disk cannot sync a file system"))
    }

    /// Opens the existing file `path` for *direct, durable writes* (Linux `O_DIRECT |
    /// O_DSYNC`): each `write_all_at` bypasses the page cache and is durable when it
    /// returns, in one call, where a buffered write and an `fdatasync` copy the bytes into
    /// the page cache and then write them back. Its position, length and buffer address
    /// must be multiples of [`DIRECT_ALIGN`] (`EINVAL` otherwise, as Linux may answer for
    /// a device of larger blocks too: try a write before relying on it). Only writes go
    /// through the handle; read through one from [`open`](Self::open) (Linux keeps the
    /// two coherent). A disk or file system that cannot (tmpfs, some FUSE file systems)
    /// refuses with `Unsupported` or `InvalidInput`; write through `open` and sync then.
    /// No default: a disk that wraps another must say whether it passes them on.
    fn open_direct(&self, path: &Path) -> io::Result<FileHandle>;

    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path, OpenMode::Read)?;
        let len = usize::try_from(file.size()?).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        let n = read_full_at(&*file, &mut buf, 0)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// A shared disk.
pub type SharedDisk = Arc<dyn Disk>;

/// The real file system.
pub fn real() -> SharedDisk {
    Arc::new(RealDisk)
}

/// The disk a broker process stores everything on: the real file system, unless the
/// test-only variable `SHALE_TEST_DISK` says `tracking` (a [`TrackingDisk`]: unsynced
/// contents die with the process) or `tracking-fsync-noop` (the same with fsync of segment
/// files doing nothing, which a power-loss suite must catch). One disk per process, so every layer
/// shares the same view of each file.
pub fn process() -> SharedDisk {
    static DISK: std::sync::OnceLock<SharedDisk> = std::sync::OnceLock::new();
    DISK.get_or_init(|| match std::env::var("SHALE_TEST_DISK").as_deref() {
        Ok("tracking") => {
            tracing::warn!("SHALE_TEST_DISK=tracking: unsynced data is held in memory (test mode)");
            Arc::new(TrackingDisk::new(false))
        }
        Ok("tracking-fsync-noop") => {
            tracing::warn!("SHALE_TEST_DISK=tracking-fsync-noop: segments never fsync (test mode)");
            Arc::new(TrackingDisk::new(true))
        }
        _ => real(),
    })
    .clone()
}

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

/// Reads into `buf` at `pos` until it is full or the file ends; returns the bytes read.
pub fn read_full_at(file: &dyn DiskFile, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over, fsync the directory.
pub fn write_atomic(disk: &dyn Disk, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let file = disk.open(&tmp, OpenMode::CreateTruncate).map_err(at(&tmp))?;
    file.write_all_at(bytes, 0).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    drop(file);
    disk.rename(&tmp, &target).map_err(at(&target))?;
    sync_dir(disk, dir)
}

/// Fsyncs a directory so that created, renamed and removed entries survive a crash.
pub fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<(), FsError> {
    disk.sync_dir(dir).map_err(at(dir))
}

/// Reads a whole file, or `None` if it does not exist.
pub fn read_optional(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    match disk.read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError { path: path.to_path_buf(), source: e }),
    }
}

/// Creates a directory and its parents and makes each new entry durable, so a directory
/// created for new data survives a crash together with that data.
pub fn create_dir_durable(disk: &dyn Disk, dir: &Path) -> Result<(), FsError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if disk.metadata(d).is_ok() || d.as_os_str().is_empty() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    disk.create_dir_all(dir).map_err(at(dir))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(disk, parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> Vec<(SharedDisk, PathBuf, Option<tempfile::TempDir>)> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real_root = tmp.path().to_path_buf();
        vec![
            (real(), real_root, Some(tmp)),
            (Arc::new(SimDisk::new(SimOptions::default())), PathBuf::from("/sim"), None),
        ]
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_file() {
        for (disk, root, _keep) in both() {
            disk.create_dir_all(&root).expect("mkdir");
            write_atomic(&*disk, &root, "f", b"one").expect("write");
            write_atomic(&*disk, &root, "f", b"two").expect("write");
            assert_eq!(disk.read(&root.join("f")).expect("read"), b"two");
            assert_eq!(disk.read_dir(&root).expect("list"), vec!["f".to_string()]);
        }
    }

    #[test]
    fn both_disks_agree_on_basic_operations() {
        for (disk, root, _keep) in both() {
            let dir = root.join("a/b");
            create_dir_durable(&*disk, &dir).expect("mkdir");
            let path = dir.join("x");
            let f = disk.open(&path, OpenMode::ReadWriteCreate).expect("open");
            f.write_all_at(b"hello world", 0).expect("write");
            f.write_all_at(b"W", 6).expect("overwrite");
            assert_eq!(f.size().expect("size"), 11);
            disk.open_fs(&dir).expect("open fs").sync().expect("sync fs");
            let mut buf = [0u8; 5];
            assert_eq!(f.read_at(&mut buf, 6).expect("read"), 5);
            assert_eq!(&buf, b"World");
            f.set_len(5).expect("truncate");
            assert_eq!(disk.read(&path).expect("read"), b"hello");
            assert_eq!(disk.metadata(&path).expect("meta").len, 5);
            disk.rename(&path, &dir.join("y")).expect("rename");
            assert_eq!(
                disk.open(&path, OpenMode::Read).expect_err("moved").kind(),
                io::ErrorKind::NotFound
            );
            assert_eq!(disk.read_dir(&dir).expect("list"), vec!["y".to_string()]);
            disk.remove_file(&dir.join("y")).expect("remove");
            assert!(disk.read_dir(&dir).expect("list").is_empty());
            assert_eq!(
                disk.remove_file(&dir.join("y")).expect_err("gone").kind(),
                io::ErrorKind::NotFound
            );
            disk.remove_dir_all(&root.join("a")).expect("rmdir");
            assert!(disk.metadata(&dir).is_err());
        }
    }
}
