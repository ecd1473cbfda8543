//! How the simulated disk behaves: what a crash tears, which operations fail.

#[cfg(doc)]
use super::SimDisk;
#[cfg(doc)]
use crate::disk::Disk;

/// The unit a torn overwrite keeps or loses ([`SimOptions::torn_overwrites`]): a disk
/// sector, the most a device writes atomically.
pub const SECTOR: usize = 512;

/// How the simulated disk behaves.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Seed of the choices a crash makes (how much of an unsynced tail survives).
    pub seed: u64,
    /// On a crash, keep a random prefix of each file's unsynced appended bytes, part of it
    /// possibly zeroed (a size that reached the disk before the data did).
    pub torn_tails: bool,
    /// On a crash, keep each [`SECTOR`] of a file's unsynced overwrites (bytes written over
    /// durable ones) or lose it, at random, one sector independently of the next: a write
    /// over preallocated space that the power cut tore.
    pub torn_overwrites: bool,
    /// Test-only: every fsync (file and directory) does nothing.
    pub fsync_noop: bool,
    /// [`Disk::open_fs`] fails as on a file system whose `syncfs(2)` does not reach its
    /// storage (FUSE): files are synced one by one.
    pub no_syncfs: bool,
    /// [`Disk::open_direct`] fails with `EINVAL`, as on a file system without `O_DIRECT`
    /// (tmpfs): callers write through the page cache and sync.
    pub no_direct: bool,
    /// Bytes the disk holds; a write that would pass it fails with `ENOSPC`.
    pub capacity: Option<u64>,
    /// On a crash, keep a random prefix of the directory changes (creates, renames,
    /// removals) made since their directory's last fsync, in the order they were made, as
    /// a journaling file system may have committed some of them on its own; without it a
    /// crash loses every such change.
    pub torn_dirs: bool,
}
