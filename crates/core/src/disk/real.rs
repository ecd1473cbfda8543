//! The real file system behind the [`Disk`] seam.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{Disk, DiskFile, FileHandle, FileMeta, FsHandle, FsSync, OpenMode};

/// `std::fs`, with positional reads and writes on open files.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealDisk;

impl DiskFile for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    /// `posix_fadvise(POSIX_FADV_DONTNEED)` on dirty pages starts their writeback (Linux
    /// cannot drop them until it ends, so they stay cached for readers of the tail);
    /// `sync_file_range` would do the same but has no safe binding here.
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        let Some(len) = std::num::NonZeroU64::new(len) else { return Ok(()) };
        rustix::fs::fadvise(self, pos, Some(len), rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }
}

impl Disk for RealDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileHandle> {
        let file = match mode {
            OpenMode::Read => File::open(path)?,
            OpenMode::ReadWrite => OpenOptions::new().read(true).write(true).open(path)?,
            OpenMode::ReadWriteCreate => {
                OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?
            }
            // A new file is created without O_TRUNC (the usual case: temporary files are
            // renamed away); FUSE file systems such as LazyFS then see no truncation.
            OpenMode::CreateTruncate => {
                match OpenOptions::new().write(true).create_new(true).open(path) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => File::create(path)?,
                    opened => opened?,
                }
            }
        };
        Ok(Arc::new(file))
    }

    /// `O_DIRECT | O_DSYNC`; a file system that refuses `O_DIRECT` (tmpfs) answers
    /// `EINVAL`, which is `InvalidInput`.
    fn open_direct(&self, path: &Path) -> io::Result<FileHandle> {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::DIRECT | rustix::fs::OFlags::DSYNC;
        let file = OpenOptions::new().write(true).custom_flags(flags.bits() as i32).open(path)?;
        Ok(Arc::new(file))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    /// Refuses a FUSE file system: its `syncfs(2)` writes dirty pages to the FUSE server
    /// but never asks the server to make them durable (there is no such request), so a
    /// power cut after it can lose what it "synced" (found on LazyFS). An `fsync(2)` of a
    /// file does reach the server.
    #[cfg(target_os = "linux")]
    fn open_fs(&self, dir: &Path) -> io::Result<FsHandle> {
        /// `FUSE_SUPER_MAGIC` of `statfs(2)`.
        const FUSE: u64 = 0x6573_5546;
        let file = File::open(dir)?;
        if rustix::fs::fstatfs(&file)?.f_type as u64 == FUSE {
            return Err(super::no_syncfs(
                dir,
                "syncfs(2) does not reach a FUSE file system's storage",
            ));
        }
        Ok(Arc::new(RealFs(file)))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            // Names that are not UTF-8 are never ours.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn metadata(&self, path: &Path) -> io::Result<FileMeta> {
        let m = fs::metadata(path)?;
        Ok(FileMeta { len: m.len(), modified: m.modified()? })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
}

/// A directory held open for `syncfs(2)`: the kernel reports a writeback error to each
/// open handle of the file system once, so the handle lives as long as the writes it covers.
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct RealFs(File);

#[cfg(target_os = "linux")]
impl FsSync for RealFs {
    fn sync(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.0).map_err(io::Error::from)
    }
}
