//! `LogResources`: caches shared by every partition of a broker, so thousands of partitions
//! stay within bounded file descriptors and index memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moka::sync::Cache;

use super::LogError;
use super::index::SegmentIndex;
use super::rounds::SyncRounds;
use shale_core::disk::{CountedFile, Disk, FileHandle, OpenMode, SharedDisk};

/// Default bound on open segment files (active and sealed, all partitions together).
pub const DEFAULT_MAX_OPEN_SEGMENTS: u64 = 1024;
/// Default bound on cached sealed-segment index bytes.
pub const DEFAULT_MAX_INDEX_BYTES: u64 = 64 << 20;

/// Shared, bounded caches of segment file handles and sealed-segment indexes, and the disk
/// every partition log's files live on.
///
/// Every segment file a log reads or writes, the active segment's included, is opened
/// through this cache, so a broker holds at most `max_open_segments` of them open at rest,
/// however many partitions it hosts (plus those an operation in flight still uses). An
/// evicted active segment's unsynced writes stay in the page cache, and the next fsync,
/// through whichever handle, covers them: on Linux a file's writeback error is reported to
/// the next fsync of any descriptor opened before or after it, until one has seen it.
pub struct LogResources {
    /// The disk, which also holds the cache of segment files and the bound on open files.
    disk: Arc<SheddingDisk>,
    indexes: Cache<PathBuf, Arc<SegmentIndex>>,
    opens: AtomicU64,
    index_loads: AtomicU64,
    activity: Arc<DiskActivity>,
    /// Interval fsyncs running at once, all logs together: with many partitions their
    /// timers fire together, and unbounded they would take a blocking thread each.
    interval_syncs: Arc<tokio::sync::Semaphore>,
    /// The fsync rounds the logs share (`log.shared_fsync`).
    rounds: Arc<SyncRounds>,
    /// The logs' segment buffers: their bytes, and the empty ones kept (see `buffer`).
    buffered: super::buffer::Buffers,
}

/// Interval fsyncs (`flush.policy=interval`) that run at once, all logs together.
const INTERVAL_SYNCS: usize = 4;

/// The logs' disk with the cache of their segment files: an open refused for want of
/// descriptors (`EMFILE`, `ENFILE`) closes the cached segment files and is tried once
/// more. Every file the logs open (segments, indexes, checkpoints) goes through it, so a
/// broker whose descriptor limit is below its cache keeps serving with fewer files open.
#[derive(Debug)]
struct SheddingDisk {
    inner: SharedDisk,
    files: Cache<PathBuf, Cached>,
    capacity: u64,
    /// Every file open through this disk holds a place until its last handle drops.
    budget: Arc<FileBudget>,
    sheds: AtomicU64,
}

/// How long an open waits for a place among the logs' open files when every one is in use
/// by an operation in flight (none idle in the cache to close), before it is refused.
#[cfg(not(test))]
const BUDGET_WAIT: Duration = Duration::from_secs(10);
#[cfg(test)]
const BUDGET_WAIT: Duration = Duration::from_millis(300);

/// The hard bound on the files the logs hold open (`log.fd_cache_capacity`): segment
/// files cached or in use, and the index, checkpoint and snapshot files operations open
/// for a moment. An open takes a place, waiting when there is none; the handle gives it
/// back when its last clone drops.
#[derive(Debug)]
struct FileBudget {
    open: AtomicU64,
    /// The most open at once.
    most: AtomicU64,
    capacity: u64,
    /// Threads waiting for a place (under this lock, which `freed` waits on).
    waiting: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

impl FileBudget {
    fn new(capacity: u64) -> Self {
        FileBudget {
            open: AtomicU64::new(0),
            most: AtomicU64::new(0),
            capacity,
            waiting: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Takes a place if one is free.
    fn try_take(&self) -> bool {
        let taken = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.capacity).then_some(n + 1)
        });
        match taken {
            Ok(before) => {
                self.most.fetch_max(before + 1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes a place, waiting up to `wait` for one to be given back; whether it did.
    fn take(&self, wait: Duration) -> bool {
        if self.try_take() {
            return true;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *waiting += 1;
        let (mut waiting, result) = self
            .freed
            .wait_timeout_while(waiting, wait, |_| !self.try_take())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *waiting -= 1;
        !result.timed_out()
    }

    fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        // Under the lock, so a waiter between its failed take and its wait is not missed.
        let waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *waiting > 0 {
            self.freed.notify_one();
        }
    }
}

impl shale_core::disk::FileCount for FileBudget {
    fn closed(&self) {
        self.give_back();
    }
}

/// Why an open was refused: every place in the [`FileBudget`] stayed in use for
/// [`BUDGET_WAIT`]. Travels inside an `io::Error` to [`LogError::io`].
#[derive(Debug, thiserror::Error)]
#[error("all {capacity} files the partition logs may keep open are in use")]
pub(crate) struct BudgetExhausted {
    pub(crate) capacity: u64,
}

impl SheddingDisk {
    /// Closes up to `most` cached files, only those no operation is using when `idle_only`
    /// (the others close when their operation ends), and forgets them.
    fn close_cached(&self, most: u64, idle_only: bool) {
        let mut closed = 0;
        for (path, entry) in self.files.iter() {
            if closed == most {
                break;
            }
            if idle_only && !entry.close_if_idle() {
                continue;
            }
            entry.close(); // a no-op after close_if_idle
            self.files.invalidate(&*path);
            closed += 1;
        }
    }

    fn shed(&self, path: &Path) {
        let cached = self.files.entry_count();
        self.close_cached(u64::MAX, false);
        self.sheds.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), cached, capacity = self.capacity,
            limit = ?descriptor_limit(),
            "out of file descriptors: closed the cached segment files and retrying; keep \
             log.fd_cache_capacity well below the process limit (ulimit -n)");
    }
}

impl SheddingDisk {
    /// Takes a place among the open files: at the bound, closes idle cached files (an
    /// eighth of the bound, so the scan is rare) and waits if none was idle.
    fn take_place(&self) -> std::io::Result<()> {
        if self.budget.try_take() {
            return Ok(());
        }
        self.close_cached((self.capacity / 8).max(1), true);
        if self.budget.take(BUDGET_WAIT) {
            Ok(())
        } else {
            Err(std::io::Error::other(BudgetExhausted { capacity: self.capacity }))
        }
    }
}

impl SheddingDisk {
    /// Opens `path` with `open` in a place among the open files: out of descriptors, sheds
    /// the cached files and tries once more; the file counted against the budget, or the
    /// place given back.
    fn counted_open(
        &self,
        path: &Path,
        open: impl Fn() -> std::io::Result<FileHandle>,
    ) -> std::io::Result<FileHandle> {
        self.take_place()?;
        let opened = match open() {
            Err(e) if out_of_descriptors(&e) => {
                self.shed(path);
                open()
            }
            r => r,
        };
        match opened {
            Ok(file) => Ok(CountedFile::counted_by(file, self.budget.clone())),
            Err(e) => {
                self.budget.give_back();
                Err(e)
            }
        }
    }
}

impl Disk for SheddingDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<FileHandle> {
        self.counted_open(path, || self.inner.open(path, mode))
    }
    /// Counted among the open files like any other (the journal's direct handle).
    fn open_direct(&self, path: &Path) -> std::io::Result<FileHandle> {
        self.counted_open(path, || self.inner.open_direct(path))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn open_fs(&self, dir: &Path) -> std::io::Result<shale_core::disk::FsHandle> {
        self.inner.open_fs(dir)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> std::io::Result<shale_core::disk::FileMeta> {
        self.inner.metadata(path)
    }
}

/// A cached segment file handle and whether it was opened for writing. The handle sits in
/// a slot the broker empties itself when it closes the file: the cache drops what it
/// evicts or invalidates only at its next housekeeping, and a descriptor must close at
/// once.
#[derive(Clone, Debug)]
struct Cached {
    slot: Arc<std::sync::Mutex<Option<FileHandle>>>,
    writable: bool,
}

impl Cached {
    fn new(file: FileHandle, writable: bool) -> Self {
        Cached { slot: Arc::new(std::sync::Mutex::new(Some(file))), writable }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<FileHandle>> {
        self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handle, unless the file was closed.
    fn file(&self) -> Option<FileHandle> {
        self.slot().clone()
    }

    /// Lets go of the handle: the file closes now, or when the operation using it ends.
    fn close(&self) {
        self.slot().take();
    }

    /// Closes the file if no operation is using it; whether it did.
    fn close_if_idle(&self) -> bool {
        let mut slot = self.slot();
        let idle = slot.as_ref().is_some_and(|f| Arc::strong_count(f) == 1);
        if idle {
            slot.take();
        }
        idle
    }
}

/// A file's place in the cache of segment files, kept by the active segment so its appends
/// skip the cache's lookup (a hash of the path and the cache's bookkeeping, a few percent
/// of a broker's CPU at thousands of partitions). The cache empties the slot when it
/// closes the file (eviction, shedding), and the holder then goes through the cache again.
#[derive(Clone, Debug)]
pub(crate) struct FileSlot(Cached);

impl FileSlot {
    /// The handle, unless the cache closed the file.
    pub(crate) fn file(&self) -> Option<FileHandle> {
        self.0.file()
    }
}

/// When a partition log last appended or fsynced: the hot path at work, which cold reads
/// and the disk tier of their cache hold back for.
#[derive(Debug, Default)]
pub struct DiskActivity {
    /// Milliseconds since the first use of this clock at the last write, plus one (0 =
    /// never).
    last_write_ms: AtomicU64,
}

impl DiskActivity {
    /// Records a partition log's append or fsync.
    pub fn note_write(&self) {
        self.last_write_ms.store(since_start_ms(), Ordering::Relaxed);
    }

    /// Whether a partition log appended or fsynced within the last `window`.
    pub fn busy_within(&self, window: Duration) -> bool {
        let last = self.last_write_ms.load(Ordering::Relaxed);
        last != 0 && since_start_ms().saturating_sub(last) < window.as_millis() as u64
    }
}

fn since_start_ms() -> u64 {
    static START: OnceLock<shale_core::clock::Instant> = OnceLock::new();
    let start = *START.get_or_init(shale_core::clock::monotonic_now);
    start.elapsed().as_millis() as u64 + 1
}

impl std::fmt::Debug for LogResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogResources")
            .field("open_files", &self.disk.files.entry_count())
            .field("index_bytes", &self.indexes.weighted_size())
            .finish()
    }
}

impl Default for LogResources {
    fn default() -> Self {
        LogResources::new(DEFAULT_MAX_OPEN_SEGMENTS, DEFAULT_MAX_INDEX_BYTES)
    }
}

impl LogResources {
    /// Keeps at most `max_open_segments` segment files open and `max_index_bytes` of
    /// indexes cached. The segment files get at most half of the process's descriptor
    /// limit (`ulimit -n`), with a warning if that is fewer than asked for: the other half
    /// is for connections, index and checkpoint files, and the cold-read cache.
    pub fn new(max_open_segments: u64, max_index_bytes: u64) -> Self {
        let max_open_segments = match descriptor_limit() {
            Some(limit) if max_open_segments > limit / 2 => {
                let capped = (limit / 2).max(16);
                tracing::warn!(
                    asked = max_open_segments,
                    capped,
                    limit,
                    "log.fd_cache_capacity is over half the process's open-file limit \
                     (ulimit -n); keeping at most {capped} segment files open"
                );
                capped
            }
            _ => max_open_segments,
        };
        Self::on_disk(shale_core::disk::process(), max_open_segments, max_index_bytes)
    }

    /// Like [`new`](Self::new), with the logs' files on `disk` (a simulated one in tests).
    pub fn on_disk(disk: SharedDisk, max_open_segments: u64, max_index_bytes: u64) -> Self {
        let files = Cache::builder()
            .max_capacity(max_open_segments)
            .eviction_listener(|_path, entry: Cached, _cause| entry.close())
            .build();
        LogResources {
            disk: Arc::new(SheddingDisk {
                inner: disk,
                files,
                capacity: max_open_segments,
                budget: Arc::new(FileBudget::new(max_open_segments)),
                sheds: AtomicU64::new(0),
            }),
            indexes: Cache::builder()
                .max_capacity(max_index_bytes)
                .weigher(|_path: &PathBuf, ix: &Arc<SegmentIndex>| {
                    u32::try_from(ix.weight_bytes()).unwrap_or(u32::MAX)
                })
                .build(),
            opens: AtomicU64::new(0),
            index_loads: AtomicU64::new(0),
            activity: Arc::default(),
            interval_syncs: Arc::new(tokio::sync::Semaphore::new(INTERVAL_SYNCS)),
            rounds: Arc::new(SyncRounds::new(true)),
            buffered: super::buffer::Buffers::default(),
        }
    }

    /// Whether logs on one file system share fsync rounds (one `syncfs(2)` for many logs,
    /// and one failure stopping them all), or fsync one by one. On unless set here; the
    /// broker sets `log.shared_fsync`, off by default.
    pub fn with_shared_fsync(mut self, shared: bool) -> Self {
        self.rounds = Arc::new(SyncRounds::new(shared));
        self
    }

    /// Bytes in the logs' segment buffers, all together.
    pub(super) fn buffered(&self) -> &super::buffer::Buffers {
        &self.buffered
    }

    /// The fsync rounds the logs share.
    pub(super) fn rounds(&self) -> &Arc<SyncRounds> {
        &self.rounds
    }

    /// Fsync rounds that synced a whole file system for several logs at once.
    pub fn shared_fsyncs(&self) -> u64 {
        self.rounds.fs_rounds()
    }

    /// Logs the shared fsyncs covered (over [`shared_fsyncs`](Self::shared_fsyncs): logs
    /// per round).
    pub fn shared_fsync_logs(&self) -> u64 {
        self.rounds.fs_round_logs()
    }

    /// A handle to read a segment file, opened on a miss. Evicted handles close once the
    /// last operation in flight drops them.
    pub(crate) fn handle(&self, path: &Path) -> Result<FileHandle, LogError> {
        match self.disk.files.get(path).and_then(|c| c.file()) {
            Some(file) => Ok(file),
            None => self.open(path, false),
        }
    }

    /// A handle to read and write a segment file that exists (the active segment's), with
    /// its slot in the cache, which the caller may keep to skip the cache's lookup while
    /// the file stays open.
    pub(crate) fn writable_slot(&self, path: &Path) -> Result<(FileHandle, FileSlot), LogError> {
        if let Some(cached) = self.disk.files.get(path).filter(|c| c.writable)
            && let Some(file) = cached.file()
        {
            return Ok((file, FileSlot(cached)));
        }
        let (file, cached) = self.open_cached(path, OpenMode::ReadWrite)?;
        Ok((file, FileSlot(cached)))
    }

    /// Creates a segment file (or opens it, never truncating) and caches its handle.
    pub(crate) fn create(&self, path: &Path) -> Result<FileHandle, LogError> {
        self.open_with(path, OpenMode::ReadWriteCreate)
    }

    fn open(&self, path: &Path, writable: bool) -> Result<FileHandle, LogError> {
        self.open_with(path, if writable { OpenMode::ReadWrite } else { OpenMode::Read })
    }

    /// Opens and caches a handle (see [`SheddingDisk`] for running out of descriptors).
    fn open_with(&self, path: &Path, mode: OpenMode) -> Result<FileHandle, LogError> {
        self.open_cached(path, mode).map(|(file, _)| file)
    }

    fn open_cached(&self, path: &Path, mode: OpenMode) -> Result<(FileHandle, Cached), LogError> {
        let file = self.disk.open(path, mode).map_err(|e| LogError::io(path, e))?;
        self.opens.fetch_add(1, Ordering::Relaxed);
        let cached = Cached::new(file.clone(), mode != OpenMode::Read);
        self.disk.files.insert(path.to_path_buf(), cached.clone());
        Ok((file, cached))
    }

    /// A sealed segment's index, loaded by `load` on a miss (concurrent misses load once).
    pub(crate) fn index(
        &self,
        log_path: &Path,
        load: impl FnOnce() -> Result<SegmentIndex, LogError>,
    ) -> Result<Arc<SegmentIndex>, LogError> {
        self.indexes
            .try_get_with(log_path.to_path_buf(), || {
                self.index_loads.fetch_add(1, Ordering::Relaxed);
                load().map(Arc::new)
            })
            .map_err(|e| match Arc::try_unwrap(e) {
                Ok(e) => e,
                Err(shared) => LogError::Corrupt {
                    path: log_path.to_path_buf(),
                    offset: 0,
                    reason: format!("could not load segment index: {shared}"),
                },
            })
    }

    /// Puts a just-sealed segment's index in the cache.
    pub(crate) fn adopt_index(&self, log_path: &Path, index: SegmentIndex) {
        self.indexes.insert(log_path.to_path_buf(), Arc::new(index));
    }

    /// Forgets a segment whose files are deleted or about to change.
    pub(crate) fn evict(&self, log_path: &Path) {
        if let Some(entry) = self.disk.files.remove(log_path) {
            entry.close();
        }
        self.indexes.invalidate(log_path);
    }

    /// When the logs last fsynced.
    pub fn activity(&self) -> &Arc<DiskActivity> {
        &self.activity
    }

    /// Permits for interval fsyncs, shared by every log (see `INTERVAL_SYNCS`).
    pub(crate) fn interval_syncs(&self) -> Arc<tokio::sync::Semaphore> {
        self.interval_syncs.clone()
    }

    /// The disk the logs' files live on.
    pub fn disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// The disk the logs' files live on, shared.
    pub(crate) fn disk_handle(&self) -> SharedDisk {
        self.disk.clone()
    }

    /// How many segment files were opened (a cache-effectiveness metric).
    pub fn segment_opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// How many times running out of descriptors closed every cached segment file.
    pub fn descriptor_sheds(&self) -> u64 {
        self.disk.sheds.load(Ordering::Relaxed)
    }

    /// How many sealed-segment indexes were loaded from disk.
    pub fn index_loads(&self) -> u64 {
        self.index_loads.load(Ordering::Relaxed)
    }

    /// Currently cached segment file handles (after pending evictions are applied).
    pub fn open_handles(&self) -> u64 {
        self.disk.files.run_pending_tasks();
        self.disk.files.iter().filter(|(_, entry)| entry.file().is_some()).count() as u64
    }

    /// Files the logs have open now: segment files cached or in use, and the index,
    /// checkpoint and snapshot files operations have open; at most the bound.
    pub fn open_files(&self) -> u64 {
        self.disk.budget.open.load(Ordering::Acquire)
    }

    /// The most files the logs had open at once since the start.
    pub fn open_files_peak(&self) -> u64 {
        self.disk.budget.most.load(Ordering::Relaxed)
    }

    /// The bound on the files the logs have open (`log.fd_cache_capacity`, capped at half
    /// the process's descriptor limit).
    pub fn open_files_limit(&self) -> u64 {
        self.disk.capacity
    }

    /// The bound on cached segment file handles.
    pub fn max_open_segments(&self) -> u64 {
        self.disk.capacity
    }
}

/// Whether an open failed for want of file descriptors (the process's or the system's).
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23)) // EMFILE, ENFILE
}

/// The process's soft limit on open files (`ulimit -n`), if it has one.
pub(crate) fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}
