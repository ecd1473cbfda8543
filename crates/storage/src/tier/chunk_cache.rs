//! The chunk cache of cold reads (foyer): a memory tier over a disk tier of
//! `tier.cache_disk_bytes`.
//!
//! **The disk tier opens in the background.** Opening it creates or recovers
//! `tier.cache_disk_bytes` of block files, which on a slow volume (network-attached, FUSE,
//! throttled) takes seconds, and a broker must not hold its start-up, its lease or its
//! first answers for a cache. So the cache starts memory only; the disk tier is built on
//! the cold-read runtime and takes over once it is ready. Until then a chunk not in memory
//! is read from the bucket; the chunks the memory-only cache held are dropped at the switch
//! (read again once). A disk tier that cannot open leaves the cache memory only, with an
//! error in the log naming the directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCacheBuilderPhaseStorage, HybridCachePolicy, PsyncIoEngineConfig, RecoverMode,
    Statistics, StorageFilter, StorageFilterCondition, StorageFilterResult,
};
use tokio::sync::watch;

use crate::log::DiskActivity;
use crate::tier::TierSettings;
use shale_core::error::Error;
use shale_core::rate::TokenBucket;

/// The chunks of remote segments by `{object path}#{chunk index}`.
pub(super) type Chunks = HybridCache<String, Bytes>;

/// The chunk cache: memory only until the disk tier, if any, is open.
#[derive(Debug)]
pub(super) struct ChunkCache {
    current: RwLock<Chunks>,
    /// Whether `current` has its disk tier.
    disk_open: AtomicBool,
    /// True once the cache is in its final shape: the disk tier open, or none to open.
    settled: watch::Sender<bool>,
}

impl ChunkCache {
    /// A cache of `memory_bytes` in memory, with the disk tier `disk` (none with
    /// `tier.cache_disk_bytes = 0`) opening in the background on `runtime`.
    pub(super) async fn open(
        memory_bytes: u64,
        chunk_bytes: u64,
        settings: &TierSettings,
        disk: Option<DiskTier>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<ChunkCache>, Error> {
        let memory = builder(memory_bytes, chunk_bytes, runtime)
            .build()
            .await
            .map_err(|e| Error::internal(format!("cannot open the cold-read chunk cache: {e}")))?;
        let disk = disk.filter(|_| settings.cache_disk_bytes > 0);
        let cache = Arc::new(ChunkCache {
            current: RwLock::new(memory),
            disk_open: AtomicBool::new(false),
            settled: watch::channel(disk.is_none()).0,
        });
        if let Some(disk) = disk {
            let (settings, runtime2) = (settings.clone(), runtime.clone());
            let weak = Arc::downgrade(&cache);
            runtime.spawn(async move {
                let dir = disk.dir.display().to_string();
                let began = shale_core::clock::monotonic_now();
                let opened = open_disk_tier(memory_bytes, chunk_bytes, &settings, disk, &runtime2);
                let Some(cache) = weak.upgrade() else { return };
                match opened.await {
                    Ok(chunks) => {
                        *cache.current.write().unwrap_or_else(|e| e.into_inner()) = chunks;
                        cache.disk_open.store(true, Ordering::Release);
                        let took = shale_core::clock::monotonic_now().saturating_duration_since(began);
                        tracing::info!(dir, took_ms = took.as_millis() as u64, bytes = settings.cache_disk_bytes,
                            "the cold-read cache's disk tier is open");
                    }
                    Err(e) => tracing::error!(dir, error = %e,
                        "the cold-read cache's disk tier cannot open; cold reads cache in memory only"),
                }
                cache.settled.send_replace(true);
            });
        }
        Ok(cache)
    }

    /// The cache as it is now (a handle: cheap to clone).
    pub(super) fn get(&self) -> Chunks {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the disk tier is open (false while it opens, when it could not, or with none).
    pub(super) fn disk_open(&self) -> bool {
        self.disk_open.load(Ordering::Acquire)
    }

    /// Waits until [`is_settled`](Self::is_settled).
    pub(super) async fn settled(&self) {
        let mut rx = self.settled.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The memory tier's builder, at the storage phase.
fn builder(
    memory_bytes: u64,
    chunk_bytes: u64,
    runtime: &tokio::runtime::Handle,
) -> HybridCacheBuilderPhaseStorage<String, Bytes, foyer::DefaultHasher> {
    HybridCacheBuilder::new()
        .with_name("shale-chunks")
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .memory(memory_bytes as usize)
        // Each shard holds its share of the capacity and evicts on its own: with few
        // chunks per shard, an unlucky hash evicts chunks well before the whole tier is
        // full. Lookups are per chunk (a few hundred a second), so one lock is no
        // contention at the default size.
        .with_shards((memory_bytes / (64 * chunk_bytes)).clamp(1, 16) as usize)
        .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
        .storage()
        .with_spawner(runtime.clone().into())
}

/// The cache with its disk tier in `disk.dir`: the same memory tier over block files of
/// `tier.cache_disk_bytes` in all, recovered if an earlier run left them.
async fn open_disk_tier(
    memory_bytes: u64,
    chunk_bytes: u64,
    settings: &TierSettings,
    disk: DiskTier,
    runtime: &tokio::runtime::Handle,
) -> Result<Chunks, Error> {
    let DiskTier { dir, activity } = disk;
    // A disk tier made slow on purpose by a test: the broker serves meanwhile.
    shale_core::failpoint::hold("tier.cache_disk.hold").await;
    let descriptors = crate::log::descriptor_limit();
    let (block, capacity) = disk_blocks(chunk_bytes, settings.cache_disk_bytes, descriptors);
    // Creating the files is blocking work: off the runtime's workers.
    let device = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            // Direct I/O: a chunk written is on the disk when the write returns, so the disk
            // tier never leaves a backlog of dirty pages whose writeback would hold up the
            // logs' fsyncs later. Buffered where the filesystem refuses it.
            match FsDeviceBuilder::new(&dir).with_capacity(capacity).with_direct(true).build() {
                Ok(device) => Ok(device),
                Err(e) => {
                    let why = "direct I/O is refused: the disk tier uses buffered I/O";
                    tracing::info!(error = %e, dir = %dir.display(), "{why}");
                    FsDeviceBuilder::new(&dir)
                        .with_capacity(capacity)
                        .build()
                        .map_err(|e| cache_error(&dir, e))
                }
            }
        })
        .await
        .map_err(|e| Error::internal(format!("the disk tier's open task failed: {e}")))??
    };
    let admission = YieldToAppends::new(activity, settings.cache_disk_write_bytes_per_sec);
    builder(memory_bytes, chunk_bytes, runtime)
        .with_io_engine_config(PsyncIoEngineConfig::new())
        .with_engine_config(
            BlockEngineConfig::new(device)
                .with_block_size(block)
                .with_buffer_pool_size(2 * block)
                .with_submit_queue_size_threshold(4 * block)
                .with_admission_filter(StorageFilter::new().with_condition(admission)),
        )
        .with_recover_mode(RecoverMode::Quiet)
        .build()
        .await
        .map_err(|e| cache_error(&dir, e))
}

/// The disk tier's block size and capacity. A block holds whole entries (room for several
/// chunks and their keys) and is one open file: blocks grow so that the disk tier keeps at
/// most a quarter of the process's open-file limit open, the rest being the logs' and the
/// connections'.
fn disk_blocks(chunk_bytes: u64, capacity: u64, descriptors: Option<u64>) -> (usize, usize) {
    let mut block = (4 * chunk_bytes).max(16 << 20);
    let capacity = capacity.max(2 * block);
    if let Some(limit) = descriptors {
        let files = (limit / 4).max(2);
        // Rounded up to a 4 KiB multiple, which direct I/O needs.
        block = block.max(capacity.div_ceil(files).next_multiple_of(4096));
    }
    (block as usize, capacity.max(2 * block) as usize)
}

/// Where the chunk cache's disk tier lives, and the partition logs' writes it (and cold
/// reads) yield to.
#[derive(Debug)]
pub struct DiskTier {
    /// The disk tier's directory.
    pub dir: PathBuf,
    /// When the partition logs last wrote.
    pub activity: Arc<DiskActivity>,
}

/// Admission to the disk tier: every chunk while the partition logs are idle; while they
/// wrote within [`BUSY_WINDOW`], at most `rate` bytes per second (a token bucket holding
/// a quarter of a second), so that caching cold reads does not compete with appends for the
/// disk. `rate` 0 = no limit.
#[derive(Debug)]
struct YieldToAppends {
    activity: Arc<DiskActivity>,
    /// Starts empty; `None` without a limit.
    bucket: Option<Mutex<TokenBucket>>,
}

/// How recently a log append or fsync counts as the hot path at work.
pub(super) const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

impl StorageFilterCondition for YieldToAppends {
    fn filter(&self, _: &Arc<Statistics>, _: u64, size: usize) -> StorageFilterResult {
        match self.admit(size) {
            true => StorageFilterResult::Admit,
            false => StorageFilterResult::Reject,
        }
    }
}

impl YieldToAppends {
    fn new(activity: Arc<DiskActivity>, rate: u64) -> Self {
        let now = shale_core::clock::monotonic_now();
        let bucket = (rate > 0).then(|| Mutex::new(TokenBucket::new(rate, rate / 4, 0, now)));
        YieldToAppends { activity, bucket }
    }

    /// Whether a chunk of `size` bytes may be written to the disk tier now.
    fn admit(&self, size: usize) -> bool {
        match &self.bucket {
            Some(bucket) if self.activity.busy_within(BUSY_WINDOW) => {
                let now = shale_core::clock::monotonic_now();
                bucket.lock().unwrap_or_else(|e| e.into_inner()).try_take(size as u64, now)
            }
            _ => true,
        }
    }
}

fn cache_error(dir: &std::path::Path, e: foyer::Error) -> Error {
    Error::internal(format!("cannot open the chunk cache in {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_disk_tier_keeps_at_most_a_quarter_of_the_open_file_limit_open() {
        let files = |(block, capacity): (usize, usize)| capacity / block;
        // 4 GiB in 16 MiB blocks: 256 files, within a quarter of 20,000.
        assert_eq!(super::disk_blocks(MIB, 4096 * MIB, Some(20_000)), (16 << 20, 4 << 30));
        // At a limit of 300, 75 files at most: the blocks grow (and stay 4 KiB aligned).
        let (block, capacity) = super::disk_blocks(MIB, 4096 * MIB, Some(300));
        assert!(files((block, capacity)) <= 75, "{block} {capacity}");
        assert_eq!(block % 4096, 0);
        assert_eq!(capacity, 4 << 30);
        assert_eq!(super::disk_blocks(MIB, 4096 * MIB, None), (16 << 20, 4 << 30));
    }

    /// The disk tier takes every chunk while the partition logs are idle, and at most
    /// `tier.cache_disk_write_bytes_per_sec` while they write.
    #[test]
    fn the_disk_tier_yields_to_appends() {
        let activity = Arc::new(DiskActivity::default());
        let admission = YieldToAppends::new(activity.clone(), MIB);
        let admitted = |n: usize| (0..n).filter(|_| admission.admit(MIB as usize / 4)).count();
        assert_eq!(admitted(100), 100, "idle logs: every chunk is written");
        activity.note_write();
        // A quarter of a second of the rate at most, however fast the chunks come.
        let busy = admitted(100);
        assert!(busy <= 1, "{busy} of 100 quarter-MiB chunks written at 1 MiB/s");
    }
}
