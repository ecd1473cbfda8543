//! A test-only disk for process-level power-loss tests: the real file system, except that
//! what a file was given since its last fsync lives only in this process's memory. When
//! the process is killed (SIGKILL), that is gone, as unsynced data is at a power cut; what
//! the files hold on the real disk is exactly what was fsynced.
//!
//! A direct write (`open_direct`, the journal's rounds) is written through and synced as it
//! is made, as `O_DSYNC` makes it durable before it returns.
//!
//! Only file contents are modelled: creates, renames and removes reach the real file
//! system at once (the in-process [`super::SimDisk`] suites cover directory entries). A
//! file created and never fsynced survives a kill empty (or as last synced).
//!
//! Chosen with `SHALE_TEST_DISK=tracking` (see [`super::process`]). With
//! `SHALE_TEST_DISK=tracking-fsync-noop`, fsync of segment files (`*.log`, local segments
//! and segment objects in a `file://` bucket) and of the journal does nothing, so a kill loses every record
//! written since start, which the power-loss suites must catch; the files a broker needs
//! to start at all (its id, partition metadata, the embedded store) still sync, so the
//! suites report the loss rather than a broker that cannot start.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Disk, DiskFile, FileHandle, FileMeta, FsHandle, FsSync, OpenMode, RealDisk};

/// One change not yet fsynced.
#[derive(Debug, Clone)]
enum Op {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// The unsynced changes of one file, shared by every handle open on it.
#[derive(Debug)]
struct Pending {
    /// Where the file is now (renames move it).
    path: PathBuf,
    ops: Vec<Op>,
}

type Shared = Arc<Mutex<Pending>>;

/// Every file's unsynced changes, by where the file is now.
type Files = Arc<Mutex<HashMap<PathBuf, Shared>>>;

fn lock(p: &Shared) -> MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// The real file system with unsynced file contents held in memory.
#[derive(Debug, Default)]
pub struct TrackingDisk {
    files: Files,
    fsync_noop: bool,
}

impl TrackingDisk {
    /// A tracking disk; with `fsync_noop`, fsync of segment files writes nothing to the
    /// real disk.
    pub fn new(fsync_noop: bool) -> Self {
        TrackingDisk { files: Files::default(), fsync_noop }
    }

    fn files(&self) -> MutexGuard<'_, HashMap<PathBuf, Shared>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self, path: &Path) -> Shared {
        self.files()
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Pending { path: path.to_path_buf(), ops: vec![] }))
            })
            .clone()
    }

    /// The logical size of the file at `path` whose real size is `real`.
    fn logical_len(&self, path: &Path, real: u64) -> u64 {
        match self.files().get(path) {
            Some(p) => apply_len(real, &lock(p).ops),
            None => real,
        }
    }
}

/// The size after `ops` of a file of size `len`.
fn apply_len(mut len: u64, ops: &[Op]) -> u64 {
    for op in ops {
        match op {
            Op::Write { pos, bytes } => len = len.max(pos + bytes.len() as u64),
            Op::SetLen(l) => len = *l,
        }
    }
    len
}

/// Whether `path` holds records: a segment file, local or in a `file://` bucket (also while
/// staged), or the data directory's journal (whose rounds acknowledge appends).
fn is_segment(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name == "journal" || name.split('#').next().is_some_and(|n| n.ends_with(".log"))
}

/// An open file: the real file underneath, and the shared unsynced changes.
#[derive(Debug)]
struct TrackedFile {
    real: File,
    writable: bool,
    pending: Shared,
    fsync_noop: bool,
    /// From `open_direct`: each write aligned, and synced as it is made (with the file's
    /// other unsynced changes: a little more durable than a real direct write, which
    /// leaves those to their own fsync).
    direct: bool,
}

impl TrackedFile {
    fn sync(&self, all: bool) -> io::Result<()> {
        let mut p = lock(&self.pending);
        if self.fsync_noop && is_segment(&p.path) {
            return Ok(());
        }
        if !p.ops.is_empty() {
            match self.writable {
                true => write_back(&mut p, &self.real)?,
                false => {
                    let file = open_for_write(&p.path)?;
                    write_back(&mut p, &file)?
                }
            }
        }
        match all {
            true => self.real.sync_all(),
            false => self.real.sync_data(),
        }
    }
}

/// Writes a file's unsynced changes to the real file through `file`; the caller fsyncs.
fn write_back(p: &mut Pending, file: &File) -> io::Result<()> {
    for op in &p.ops {
        match op {
            Op::Write { pos, bytes } => FileExt::write_all_at(file, bytes, *pos)?,
            Op::SetLen(l) => file.set_len(*l)?,
        }
    }
    p.ops.clear();
    Ok(())
}

/// The real file at `path`, opened for writing.
fn open_for_write(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// The whole tracking disk synced at once: every file's unsynced changes written and
/// fsynced (with `fsync_noop`, every file's but the segments').
#[derive(Debug)]
struct TrackingFs {
    files: Files,
    fsync_noop: bool,
}

impl FsSync for TrackingFs {
    fn sync(&self) -> io::Result<()> {
        let files: Vec<Shared> =
            self.files.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for file in files {
            let mut p = lock(&file);
            if self.fsync_noop && is_segment(&p.path) {
                continue;
            }
            if !p.ops.is_empty() {
                let file = open_for_write(&p.path)?;
                write_back(&mut p, &file)?;
                file.sync_data()?;
            }
        }
        Ok(())
    }
}

impl DiskFile for TrackedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let p = lock(&self.pending);
        let real_len = self.real.metadata()?.len();
        let len = apply_len(real_len, &p.ops);
        if pos >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - pos) as usize);
        let window = &mut buf[..n];
        window.fill(0);
        // What the real file has, then each unsynced change in order over it.
        if pos < real_len {
            let want = window.len().min((real_len - pos) as usize);
            super::read_full_at(&self.real, &mut window[..want], pos)?;
        }
        let end = pos + n as u64;
        let mut size = real_len;
        for op in &p.ops {
            match op {
                Op::Write { pos: at, bytes } => {
                    let (from, to) = ((*at).max(pos), (at + bytes.len() as u64).min(end));
                    if from < to {
                        let src = &bytes[(from - at) as usize..(to - at) as usize];
                        window[(from - pos) as usize..(to - pos) as usize].copy_from_slice(src);
                    }
                    size = size.max(at + bytes.len() as u64);
                }
                Op::SetLen(l) => {
                    // Bytes past the new end are gone; a later extension reads zeros.
                    if *l < end && *l < size {
                        let from = (*l).max(pos);
                        window[(from - pos) as usize..].fill(0);
                    }
                    size = *l;
                }
            }
        }
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        let align = super::DIRECT_ALIGN as u64;
        let aligned = |n: u64| n.is_multiple_of(align);
        if self.direct
            && !(aligned(pos) && aligned(buf.len() as u64) && aligned(buf.as_ptr() as u64))
        {
            return Err(io::Error::from_raw_os_error(22));
        }
        lock(&self.pending).ops.push(Op::Write { pos, bytes: buf.to_vec() });
        match self.direct {
            true => self.sync(false),
            false => Ok(()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(false)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(true)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        lock(&self.pending).ops.push(Op::SetLen(len));
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let p = lock(&self.pending);
        Ok(apply_len(self.real.metadata()?.len(), &p.ops))
    }
}

impl Disk for TrackingDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileHandle> {
        let (real, writable) = match mode {
            OpenMode::Read => (File::open(path)?, false),
            OpenMode::ReadWrite => (OpenOptions::new().read(true).write(true).open(path)?, true),
            // The entry is created at once; a truncation is a change like any other.
            OpenMode::ReadWriteCreate | OpenMode::CreateTruncate => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                (f, true)
            }
        };
        let pending = self.pending(path);
        if mode == OpenMode::CreateTruncate {
            lock(&pending).ops.push(Op::SetLen(0));
        }
        let fsync_noop = self.fsync_noop;
        Ok(Arc::new(TrackedFile { real, writable, pending, fsync_noop, direct: false }))
    }

    /// Writes synced as they are made (under `fsync_noop`, a segment's or the journal's
    /// are held like any other unsynced write, and a kill loses them).
    fn open_direct(&self, path: &Path) -> io::Result<FileHandle> {
        let real = OpenOptions::new().read(true).write(true).open(path)?;
        let pending = self.pending(path);
        let fsync_noop = self.fsync_noop;
        Ok(Arc::new(TrackedFile { real, writable: true, pending, fsync_noop, direct: true }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealDisk.create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealDisk.rename(from, to)?;
        let mut files = self.files();
        files.remove(to);
        if let Some(p) = files.remove(from) {
            lock(&p).path = to.to_path_buf();
            files.insert(to.to_path_buf(), p);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove_file(path)?;
        self.files().remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove_dir_all(path)?;
        self.files().retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealDisk.sync_dir(path)
    }

    fn open_fs(&self, _dir: &Path) -> io::Result<FsHandle> {
        Ok(Arc::new(TrackingFs { files: self.files.clone(), fsync_noop: self.fsync_noop }))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        RealDisk.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<FileMeta> {
        let m = RealDisk.metadata(path)?;
        Ok(FileMeta { len: self.logical_len(path, m.len), ..m })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_are_seen_but_reach_the_file_only_at_fsync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let disk = TrackingDisk::new(false);
        let f = disk.open(&path, OpenMode::ReadWriteCreate).expect("open");
        f.write_all_at(b"hello world", 0).expect("write");
        f.sync_data().expect("sync");
        f.write_all_at(b"W", 6).expect("write");
        f.set_len(9).expect("cut");
        f.write_all_at(b"!", 10).expect("extend");
        // What the process sees: every change, a hole of zeros included.
        assert_eq!(disk.read(&path).expect("read"), b"hello Wor\0!");
        assert_eq!(disk.metadata(&path).expect("meta").len, 11);
        let other = disk.open(&path, OpenMode::Read).expect("second handle");
        assert_eq!(other.size().expect("size"), 11, "handles share the changes");
        // What a kill leaves: only what was fsynced.
        assert_eq!(std::fs::read(&path).expect("real"), b"hello world");
        other.sync_all().expect("sync from a read-only handle");
        assert_eq!(std::fs::read(&path).expect("real"), b"hello Wor\0!");
        f.write_all_at(b"?", 11).expect("append");
        disk.open_fs(dir.path()).expect("open fs").sync().expect("sync fs");
        assert_eq!(std::fs::read(&path).expect("real"), b"hello Wor\0!?", "synced with the rest");
    }

    #[test]
    fn a_truncating_open_and_a_rename_are_tracked_and_fsync_noop_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old").expect("seed");
        let disk = TrackingDisk::new(false);
        let f = disk.open(&a, OpenMode::CreateTruncate).expect("open");
        f.write_all_at(b"new!", 0).expect("write");
        disk.rename(&a, &b).expect("rename");
        assert_eq!(disk.read(&b).expect("read"), b"new!");
        assert_eq!(std::fs::read(&b).expect("real"), b"old", "not synced yet");
        f.sync_all().expect("sync");
        assert_eq!(std::fs::read(&b).expect("real"), b"new!");

        let noop = TrackingDisk::new(true);
        let seg = dir.path().join("00000000000000000000.log");
        let g = noop.open(&seg, OpenMode::ReadWriteCreate).expect("open");
        g.write_all_at(b"lost", 0).expect("write");
        g.sync_all().expect("sync");
        assert_eq!(noop.read(&seg).expect("read"), b"lost");
        assert_eq!(std::fs::read(&seg).expect("real"), b"", "fsync of a segment did nothing");
        let h = noop.open(&b, OpenMode::ReadWriteCreate).expect("open");
        h.write_all_at(b"kept", 4).expect("write");
        h.sync_all().expect("sync");
        assert_eq!(std::fs::read(&b).expect("real"), b"new!kept", "other files still sync");
        h.write_all_at(b"!", 8).expect("write");
        noop.open_fs(dir.path()).expect("open fs").sync().expect("sync fs");
        assert_eq!(std::fs::read(&seg).expect("real"), b"", "a file system sync skips it too");
        assert_eq!(std::fs::read(&b).expect("real"), b"new!kept!", "and syncs the rest");
    }
}
