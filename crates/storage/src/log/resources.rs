//! `LogResources`: caches shared by every partition of a broker, so thousands of partitions
//! stay within bounded file descriptors and index memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moka::sync::Cache;

use super::LogError;
use super::index::SegmentIndex;
use shale_core::disk::{Disk, FileHandle, OpenMode, SharedDisk};

/// Default bound on cached read handles of sealed segments.
pub const DEFAULT_MAX_OPEN_SEGMENTS: u64 = 1024;
/// Default bound on cached sealed-segment index bytes.
pub const DEFAULT_MAX_INDEX_BYTES: u64 = 64 << 20;

/// Shared, bounded caches of sealed-segment read handles and loaded indexes, and the disk
/// every partition log's files live on.
pub struct LogResources {
    disk: SharedDisk,
    handles: Cache<PathBuf, FileHandle>,
    indexes: Cache<PathBuf, Arc<SegmentIndex>>,
    opens: AtomicU64,
    index_loads: AtomicU64,
    activity: Arc<DiskActivity>,
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
            .field("open_handles", &self.handles.entry_count())
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
    /// Caches at most `max_open_segments` read handles and `max_index_bytes` of indexes.
    pub fn new(max_open_segments: u64, max_index_bytes: u64) -> Self {
        Self::on_disk(shale_core::disk::process(), max_open_segments, max_index_bytes)
    }

    /// Like [`new`](Self::new), with the logs' files on `disk` (a simulated one in tests).
    pub fn on_disk(disk: SharedDisk, max_open_segments: u64, max_index_bytes: u64) -> Self {
        LogResources {
            disk,
            handles: Cache::builder().max_capacity(max_open_segments).build(),
            indexes: Cache::builder()
                .max_capacity(max_index_bytes)
                .weigher(|_path: &PathBuf, ix: &Arc<SegmentIndex>| {
                    u32::try_from(ix.weight_bytes()).unwrap_or(u32::MAX)
                })
                .build(),
            opens: AtomicU64::new(0),
            index_loads: AtomicU64::new(0),
            activity: Arc::default(),
        }
    }

    /// A read handle for a sealed segment file, opened on a miss. Evicted handles close
    /// once the last in-flight read drops them.
    pub(crate) fn handle(&self, path: &Path) -> Result<FileHandle, LogError> {
        self.handles
            .try_get_with(path.to_path_buf(), || {
                self.opens.fetch_add(1, Ordering::Relaxed);
                self.disk.open(path, OpenMode::Read)
            })
            .map_err(|e| LogError::io(path, std::io::Error::new(e.kind(), e.to_string())))
    }

    /// Hands a just-sealed segment's open handle to the cache (saves a reopen).
    pub(crate) fn adopt_handle(&self, path: &Path, file: FileHandle) {
        self.handles.insert(path.to_path_buf(), file);
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
        self.handles.invalidate(log_path);
        self.indexes.invalidate(log_path);
    }

    /// When the logs last fsynced.
    pub fn activity(&self) -> &Arc<DiskActivity> {
        &self.activity
    }

    /// The disk the logs' files live on.
    pub fn disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// How many sealed-segment files were opened (a cache-effectiveness metric).
    pub fn segment_opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// How many sealed-segment indexes were loaded from disk.
    pub fn index_loads(&self) -> u64 {
        self.index_loads.load(Ordering::Relaxed)
    }

    /// Currently cached read handles (after pending evictions are applied).
    pub fn open_handles(&self) -> u64 {
        self.handles.run_pending_tasks();
        self.handles.entry_count()
    }
}
