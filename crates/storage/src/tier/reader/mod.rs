//! Cold reads: batches below the local log start, served from remote segments.
//!
//! A read finds the segment in the manifest, the byte position in the segment's cached
//! remote index, and then reads `tier.chunk_bytes` chunks of the segment through a hybrid
//! chunk cache (foyer: a memory tier of three quarters of `tier.cache_bytes` over a disk
//! tier of `tier.cache_disk_bytes`), so re-reads and many readers of the same data do not
//! GET it again. Missing chunks are fetched with ranged GETs that coalesce adjacent chunks
//! up to `tier.get_max_bytes`; one GET per chunk range is ever in flight, however many
//! readers want it.
//!
//! **Read-ahead.** A read that starts where an earlier read of the same object ended, or at
//! a segment's first byte, is sequential: it keeps a window of chunks ahead of it cached,
//! held or in flight, and refills the window one whole GET at a time (so a sequential
//! reader costs one GET per `tier.get_max_bytes`). The window starts at one GET and
//! doubles, up to `tier.read_ahead_max_bytes`, each time the reader finds a chunk it needs
//! not there yet: it grows until it covers the bucket's bandwidth-delay product. It
//! continues into the next segment of the manifest. A read anywhere else fetches only what
//! it needs. Chunks read ahead are *held* outside the cache until read, so no eviction
//! drops them before their reader comes (a chunk fetched twice is a GET wasted); they take
//! at most a quarter of `tier.cache_bytes`, shared fairly among the sequential readers,
//! and a window that does not fit waits for room.
//!
//! **Positions.** A sequential read starts at the byte where the earlier one ended, and a
//! read from a segment's first offset at byte 0; only other reads look their position up in
//! the segment's remote index (one GET, then cached). A consumer catching up therefore
//! never waits for an index at a segment boundary.
//!
//! **Isolation.** GETs, the object store's own blocking work (the filesystem store reads on
//! blocking threads) and the disk tier's I/O run on a runtime of their own
//! (`tier.cold_read_threads` workers), at most `tier.remote_read_concurrency` GETs at once,
//! and, while the partition logs are busy (appended or fsynced within the last second: the
//! hot path is at work), writes to the disk tier are limited to
//! `tier.cache_disk_write_bytes_per_sec` (a chunk beyond it stays in memory only) and the
//! cold bytes served to `tier.cold_read_busy_bytes_per_sec`. A
//! cold reader therefore never occupies the threads that serve produce and local fetches,
//! and never blocks them on the bucket.
//!
//! Here: the reader and its read path. `index`: positions in a segment (remote indexes,
//! batch headers, timestamps). `fetch`: chunk lookups, the GETs in flight, read-ahead and
//! warming from the disk tier. `stats`: the counters.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use moka::future::Cache;
use object_store::path::Path as ObjectPath;
use tokio::sync::Semaphore;

mod fetch;
mod index;
mod stats;

use fetch::ChunkFuture;
pub use stats::{ReadCounts, ReadStats};

use super::catalog::{Catalog, PartitionRef};
pub use super::chunk_cache::DiskTier;
use super::chunk_cache::{BUSY_WINDOW, ChunkCache};
use super::manifest::{Manifest, RemoteSegment, names};
use crate::log::{DiskActivity, ReadChunk, RemoteIndex};
use crate::tier::TierSettings;
use shale_core::error::{Error, RangeEnd, offset_out_of_range};
use shale_core::rate::TokenBucket;

/// Reads remote segments through a shared chunk cache.
#[derive(Debug, Clone)]
pub struct RemoteReader {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<Catalog>,
    /// Chunks by `{object path}#{chunk index}` (objects are immutable, keys unique).
    chunks: Arc<ChunkCache>,
    indexes: Cache<ObjectPath, Arc<RemoteIndex>>,
    /// The chunks a GET is bringing now.
    in_flight: Mutex<HashMap<String, ChunkFuture>>,
    /// Chunks read ahead and not read yet, with when they came: held here, outside the
    /// cache, so that no eviction drops them before their reader comes (they go into the
    /// cache when read, or are dropped after `fetch::HELD_FOR`).
    held: Mutex<HashMap<String, (Bytes, shale_core::clock::Instant)>>,
    /// Chunks being loaded from the disk tier into memory ahead of a sequential reader.
    warming: Mutex<HashSet<String>>,
    /// Bytes read ahead, in flight or held: at most `ahead_budget`.
    ahead_bytes: AtomicU64,
    /// A quarter of `tier.cache_bytes`.
    ahead_budget: u64,
    /// Sequential readers: (object, offset the next read will ask for) to the byte where it
    /// starts and the read-ahead window in chunks. Idle readers are forgotten.
    streams: moka::sync::Cache<(ObjectPath, i64), (u64, u64)>,
    permits: Arc<Semaphore>,
    chunk_bytes: u64,
    /// Chunks per GET at most (`get_max_bytes / chunk_bytes`).
    run_chunks: u64,
    /// Read-ahead window limit in chunks.
    max_window: u64,
    runtime: ColdRuntime,
    stats: ReadStats,
    /// Cold reads yield to the hot path: paced while the partition logs are busy.
    pace: Option<Pace>,
}

/// Cold reads served while the partition logs wrote within [`BUSY_WINDOW`] (produce or
/// replication is using the broker) are paced to `rate` bytes per second: a catch-up reader
/// takes a bounded share of the broker's cores and disk from producers. `rate` 0 = no pacing.
#[derive(Debug)]
struct Pace {
    activity: Arc<DiskActivity>,
    /// Up to a tenth of a second of credit, so short bursts go through unpaced.
    bucket: Option<Mutex<TokenBucket>>,
}

impl Pace {
    /// Paced to `rate` bytes per second while `activity` says the logs are busy.
    fn new(activity: Arc<DiskActivity>, rate: u64) -> Pace {
        let now = shale_core::clock::monotonic_now();
        let bucket = (rate > 0).then(|| Mutex::new(TokenBucket::new(rate, rate / 10, 0, now)));
        Pace { activity, bucket }
    }

    /// How long a read of `bytes` waits before it is handed on.
    fn delay(&self, bytes: u64) -> std::time::Duration {
        match &self.bucket {
            Some(bucket) if self.activity.busy_within(BUSY_WINDOW) => {
                let now = shale_core::clock::monotonic_now();
                bucket.lock().unwrap_or_else(|e| e.into_inner()).take(bytes, now)
            }
            _ => std::time::Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("chunk_bytes", &self.chunk_bytes)
            .field("run_chunks", &self.run_chunks)
            .field("max_window", &self.max_window)
            .finish_non_exhaustive()
    }
}

/// The runtime cold reads run on; shut down without waiting when the reader goes.
struct ColdRuntime(Option<tokio::runtime::Runtime>);

impl ColdRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        // Present until drop.
        self.0.as_ref().map(|rt| rt.handle()).expect("the cold-read runtime lives until drop")
    }
}

impl Drop for ColdRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Where one read is in a remote segment.
struct Cursor<'a> {
    segment: &'a RemoteSegment,
    path: ObjectPath,
    /// Whether the read waited for the bucket (a chunk it needed was not cached).
    waited: std::sync::atomic::AtomicBool,
    /// The chunk the read used last: the batch headers it walks mostly fall in one chunk.
    last: Mutex<Option<(u64, Bytes)>>,
}

impl RemoteReader {
    /// A reader over `catalog`'s bucket with the cache and read-ahead settings of
    /// `settings`, and the disk tier `disk` (memory only without one, or with
    /// `tier.cache_disk_bytes = 0`). A disk tier left by an earlier run is recovered.
    pub async fn open(
        catalog: Arc<Catalog>,
        settings: &TierSettings,
        disk: Option<DiskTier>,
    ) -> Result<RemoteReader, Error> {
        let nice = settings.cold_read_nice;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.cold_read_threads.max(1))
            .max_blocking_threads(8)
            .thread_name("shale-cold-read")
            .on_thread_start(move || shale_core::task::lower_thread_priority(nice, "cold read"))
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the cold-read runtime: {e}")))?;
        let runtime = ColdRuntime(Some(runtime));
        let chunk_bytes = settings.chunk_bytes.max(4096);
        // `tier.cache_bytes` bounds the memory of cold reads: a quarter of it for chunks
        // read ahead and not read yet, the rest for the memory tier.
        let cache_bytes = settings.cache_bytes.max(2 * chunk_bytes);
        let ahead_budget = (cache_bytes / 4).max(chunk_bytes);
        let memory_bytes = cache_bytes - ahead_budget;
        let activity = disk.as_ref().map(|d| d.activity.clone());
        let chunks =
            ChunkCache::open(memory_bytes, chunk_bytes, settings, disk, runtime.handle()).await?;
        // Indexes are small (one entry per 4 KiB of segment): a tenth of the memory tier.
        let indexes = Cache::builder()
            .max_capacity((settings.cache_bytes / 10).max(1 << 20))
            .weigher(|_, v: &Arc<RemoteIndex>| u32::try_from(v.weight_bytes()).unwrap_or(u32::MAX))
            .build();
        let run_chunks = (settings.get_max_bytes / chunk_bytes).max(1);
        Ok(RemoteReader {
            inner: Arc::new(Inner {
                catalog,
                chunks,
                indexes,
                in_flight: Mutex::default(),
                held: Mutex::default(),
                warming: Mutex::default(),
                ahead_bytes: AtomicU64::new(0),
                ahead_budget,
                streams: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(std::time::Duration::from_secs(30))
                    .build(),
                permits: Arc::new(Semaphore::new(settings.remote_read_concurrency.max(1))),
                chunk_bytes,
                run_chunks,
                max_window: (settings.read_ahead_max_bytes / chunk_bytes).max(run_chunks),
                runtime,
                stats: ReadStats::default(),
                pace: activity
                    .map(|activity| Pace::new(activity, settings.cold_read_busy_bytes_per_sec)),
            }),
        })
    }

    /// Waits until the chunk cache is in its final shape: its disk tier open (or failed
    /// to open), or none configured.
    pub async fn cache_settled(&self) {
        self.inner.chunks.settled().await;
    }

    /// Cache and request counts since the broker started.
    pub fn counts(&self) -> ReadCounts {
        let s = &self.inner.stats;
        let chunks = self.inner.chunks.get();
        let disk = chunks.statistics();
        ReadCounts {
            chunk_hits: s.chunk_hits.load(Ordering::Relaxed),
            chunk_disk_hits: s.chunk_disk_hits.load(Ordering::Relaxed),
            chunk_misses: s.chunk_misses.load(Ordering::Relaxed),
            chunks_read_ahead: s.chunks_read_ahead.load(Ordering::Relaxed),
            chunk_gets: s.chunk_gets.load(Ordering::Relaxed),
            chunk_get_bytes: s.chunk_get_bytes.load(Ordering::Relaxed),
            chunk_get_byte_ms: s.chunk_get_byte_ms.load(Ordering::Relaxed),
            bytes_served: s.bytes_served.load(Ordering::Relaxed),
            paced_ms: s.paced_ms.load(Ordering::Relaxed),
            index_hits: s.index_hits.load(Ordering::Relaxed),
            index_misses: s.index_misses.load(Ordering::Relaxed),
            cache_bytes: chunks.memory().usage() as u64,
            read_ahead_bytes: self.inner.ahead_bytes.load(Ordering::Relaxed),
            cache_disk_write_bytes: disk.disk_write_bytes() as u64,
            cache_disk_open: self.inner.chunks.disk_open(),
            cache_disk_read_bytes: disk.disk_read_bytes() as u64,
        }
    }

    /// The catalog this reader reads through.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// Whole batches of `p` from the one containing `offset`, about `max_bytes` (at least
    /// one batch), none reaching `upper_bound`, from the remote segments of `manifest`.
    /// `OFFSET_OUT_OF_RANGE` when no remote segment holds `offset`. A compacted segment may
    /// hold no batch from `offset` to its end (or none at all): the read goes on at the
    /// next segment, and past the last one answers no bytes with the remote log's end as
    /// the next offset (the local log goes on from there).
    ///
    /// The read runs on the cold-read runtime (its lookups, waits and copies), so that the
    /// caller's threads only hand the answer on.
    pub fn read<'a>(
        &'a self,
        p: &'a PartitionRef,
        manifest: &'a Arc<Manifest>,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> BoxFuture<'a, Result<ReadChunk, Error>> {
        // Boxed here: a coroutine's body is compiled in each crate that polls it, and this
        // one carries the cache's code into every crate above.
        self.read_inner(p, manifest, offset, max_bytes, upper_bound).boxed()
    }

    /// [`read`](Self::read), unboxed.
    async fn read_inner(
        &self,
        p: &PartitionRef,
        manifest: &Arc<Manifest>,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<ReadChunk, Error> {
        let mut offset = offset;
        let chunk = loop {
            let (reader, part, m) = (self.clone(), p.clone(), manifest.clone());
            let read =
                async move { reader.read_here(&part, &m, offset, max_bytes, upper_bound).await };
            // Ends by itself: its GETs are under the bucket's timeout and retries.
            let task = self.inner.runtime.handle().spawn(read);
            let chunk = task
                .await
                .unwrap_or_else(|e| Err(Error::unavailable(format!("cold read: {e}"))))?;
            let next = chunk.next_offset;
            if chunk.bytes.is_empty() && next > offset && manifest.find(next).is_some() {
                offset = next;
                continue;
            }
            break chunk;
        };
        if let Some(pace) = &self.inner.pace {
            let delay = pace.delay(chunk.bytes.len() as u64);
            if !delay.is_zero() {
                self.inner.stats.paced_ms.fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
                shale_core::clock::sleep(delay).await;
            }
        }
        Ok(chunk)
    }

    async fn read_here(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<ReadChunk, Error> {
        let Some(segment) = manifest.find(offset) else {
            return Err(out_of_range(p, manifest, offset));
        };
        if offset >= upper_bound {
            return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset });
        }
        // A compacted segment with no batch left: nothing to GET.
        let past = ReadChunk { bytes: Bytes::new(), next_offset: segment.next_offset };
        if segment.size_bytes == 0 {
            return Ok(past);
        }
        let cursor = self.cursor(p, segment);
        // A sequential reader's read starts where its last one ended, and a read from a
        // segment's first offset at its first byte: neither needs (or waits to GET) the
        // index.
        let stream = self.inner.streams.remove(&(cursor.path.clone(), offset));
        let mut pos = match (stream, offset - segment.base_offset) {
            (Some((pos, _)), _) => pos,
            (None, 0) => 0,
            (None, rel) => self.index(p, segment).await?.position(rel as u32),
        };
        let window = stream.map(|(_, window)| window);
        // Start the GETs of every chunk the read will likely span together (coalesced),
        // and, for a sequential reader, those of its read-ahead window.
        let cb = self.inner.chunk_bytes;
        let size = segment.size_bytes;
        let first = pos / cb;
        let last = (pos + max_bytes as u64).min(size).max(pos + 1).div_ceil(cb) - 1;
        // A read from a segment's first byte is taken for a sequential reader starting (a
        // consumer catching up from the beginning): it gets a first window.
        let limit = self.window_limit();
        let window = window.or((pos == 0).then_some(self.inner.run_chunks.min(limit)));
        match window {
            // Sequential: what the read needs and its window, in as few GETs as possible.
            Some(window) => {
                let needed = first..last + 1;
                self.read_ahead(p, manifest, &cursor, needed, window, upper_bound);
                self.warm(&cursor.path, last + 1..(last + 1 + window.min(WARM_CHUNKS)));
            }
            None => self.ensure(&cursor.path, size, first..last + 1, 1, last + 1),
        }
        // Find the batch holding `offset` (or, compacted, the first after it).
        let first_batch = loop {
            if pos >= size {
                return Ok(past);
            }
            let header = self.header_at(&cursor, pos).await?;
            if header.next_offset() > offset {
                break header;
            }
            pos += header.total_len() as u64;
        };
        if first_batch.next_offset() > upper_bound {
            return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset });
        }
        // Whole batches up to about max_bytes, within the segment and below the bound.
        let start = pos;
        let mut end = pos + first_batch.total_len() as u64;
        let mut next_offset = first_batch.next_offset();
        while end < size && ((end - start) as usize) < max_bytes {
            let header = self.header_at(&cursor, end).await?;
            let len = header.total_len() as u64;
            if header.next_offset() > upper_bound || (end + len - start) as usize > max_bytes {
                break;
            }
            end += len;
            next_offset = header.next_offset();
        }
        let bytes = self.bytes(&cursor, start..end).await?;
        self.inner.stats.bytes_served.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // Remember where this reader goes next, with its window: one GET to start with,
        // doubled each time it had to wait for the bucket, unless every GET permit is
        // taken (more in flight would only queue), within `window_limit`.
        let inner = &self.inner;
        let window = match window {
            None => inner.run_chunks.min(limit),
            Some(w)
                if cursor.waited.load(Ordering::Relaxed)
                    && inner.permits.available_permits() > 0 =>
            {
                (w * 2).min(limit)
            }
            Some(w) => w.min(limit),
        };
        let next = if end < size {
            Some(((cursor.path.clone(), next_offset), end))
        } else {
            manifest.find(segment.next_offset).map(|s| ((self.cursor(p, s).path, s.base_offset), 0))
        };
        if let Some((key, pos)) = next {
            self.inner.streams.insert(key, (pos, window));
        }
        Ok(ReadChunk { bytes, next_offset })
    }

    /// The most chunks one sequential reader may have read ahead: `tier.read_ahead_max_bytes`,
    /// and no more than its share of the read-ahead budget among the sequential readers, at
    /// least one chunk.
    fn window_limit(&self) -> u64 {
        let inner = &self.inner;
        // The count is exact only once recent insertions are applied.
        inner.streams.run_pending_tasks();
        let readers = inner.streams.entry_count().max(1);
        let fits = inner.ahead_budget / inner.chunk_bytes / readers;
        inner.max_window.min(fits).max(1)
    }

    fn cursor<'a>(&self, p: &PartitionRef, segment: &'a RemoteSegment) -> Cursor<'a> {
        Cursor {
            segment,
            path: self.inner.catalog.object(p, &names::log(&segment.name)),
            waited: std::sync::atomic::AtomicBool::new(false),
            last: Mutex::default(),
        }
    }

    /// Bytes `range` of the segment, from cached chunks.
    async fn bytes(&self, cursor: &Cursor<'_>, range: Range<u64>) -> Result<Bytes, Error> {
        let cb = self.inner.chunk_bytes;
        let (first, last) = (range.start / cb, (range.end - 1) / cb);
        let chunks =
            futures::future::try_join_all((first..=last).map(|i| self.chunk(cursor, i))).await?;
        if chunks.len() == 1 {
            let from = (range.start - first * cb) as usize;
            return Ok(chunks[0].slice(from..from + (range.end - range.start) as usize));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for (i, chunk) in (first..=last).zip(chunks) {
            let chunk_start = i * cb;
            let from = range.start.saturating_sub(chunk_start) as usize;
            let to = ((range.end - chunk_start) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[from..to]);
        }
        Ok(out.freeze())
    }
}

/// Chunks a sequential reader has loaded from the disk tier ahead of its reads (at most its
/// read-ahead window): one is enough to overlap the disk with the reads, two absorb a slow
/// disk read.
const WARM_CHUNKS: u64 = 2;

fn closed() -> Error {
    Error::unavailable("remote reader closed")
}

fn out_of_range(p: &PartitionRef, manifest: &Manifest, offset: i64) -> Error {
    let (start, end) = (manifest.start_offset().unwrap_or(-1), manifest.end_offset().unwrap_or(-1));
    offset_out_of_range(offset, start, end, RangeEnd::RemoteEnd)
        .with("topic", &p.topic)
        .with("partition", p.partition)
}

#[cfg(test)]
mod tests {
    use super::fetch::chunk_key;
    use super::*;
    use crate::log::{LogConfig, LogResources, PartitionLog};
    use crate::tier::Bucket;
    use crate::tier::metrics::Op;
    use shale_core::record::batch::BatchHeader;
    use shale_core::record::{BatchBuilder, Compression, Record};
    use shale_meta::{EmbeddedStore, Keys, MetaStore};

    const MIB: u64 = 1024 * 1024;

    /// Segments of about `segment_mib` MiB holding `records` records of 64 KiB, in a memory
    /// bucket under a committed manifest, as the uploader leaves them.
    async fn tiered(
        segment_mib: u64,
        records: usize,
    ) -> (Arc<Catalog>, PartitionRef, Arc<Manifest>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = shale_core::clock::system();
        let config = LogConfig { segment_bytes: segment_mib * MIB, ..LogConfig::default() };
        let resources = Arc::new(LogResources::default());
        let log = PartitionLog::open(dir.path().join("t-0"), config, clock.clone(), resources);
        let log = log.unwrap();
        for i in 0..records {
            let mut b = BatchBuilder::new(Compression::None);
            let value = Bytes::from(vec![(i % 251) as u8; 64 * 1024]);
            b.push(Record { key: None, value: Some(value), headers: vec![], timestamp_ms: 1 });
            log.append(&mut b.build().to_vec(), 1).unwrap();
        }
        let (catalog, p, manifest) = upload(&log).await;
        (catalog, p, manifest, dir)
    }

    /// Every sealed segment of `log` uploaded to a memory bucket under a committed
    /// manifest, as the uploader leaves them.
    async fn upload(log: &PartitionLog) -> (Arc<Catalog>, PartitionRef, Arc<Manifest>) {
        let clock = shale_core::clock::system();
        let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock);
        let bucket = Bucket::open("memory://", &TierSettings::default()).unwrap();
        let catalog = Arc::new(Catalog::new(bucket, meta, Keys::new("c").unwrap(), "c"));
        let p = PartitionRef { topic: "t".into(), topic_id: "id".into(), partition: 0 };
        let mut current = catalog.current(&p).await.unwrap();
        let mut from = 0;
        while let Some(slice) = log.upload_slice(from).unwrap() {
            let stem = names::segment_stem(slice.base_offset, 1);
            // As the uploader writes it: the batches, then the index.
            let mut data = slice.read(0, slice.len as usize).unwrap();
            data.extend_from_slice(&slice.index);
            catalog
                .bucket()
                .put(&catalog.object(&p, &names::log(&stem)), data.into())
                .await
                .unwrap();
            let mut segments = current.manifest.segments.clone();
            segments.push(RemoteSegment {
                base_offset: slice.base_offset,
                next_offset: slice.next_offset,
                size_bytes: slice.len,
                max_timestamp: slice.max_timestamp,
                upload_epoch: 1,
                name: stem,
                index_bytes: slice.index.len() as u64,
                aborted: Vec::new(),
            });
            current = catalog.commit(&p, &current, segments, 1).await.unwrap();
            from = slice.next_offset;
        }
        (catalog, p, current.manifest)
    }

    fn gets(catalog: &Catalog) -> u64 {
        catalog.bucket().metrics.get(Op::Get).requests
    }

    /// Reads the whole remote log from offset 0 as a consumer does (1 MiB per fetch),
    /// checking that every offset comes once and in order; returns the bytes read.
    async fn read_all(reader: &RemoteReader, p: &PartitionRef, m: &Arc<Manifest>) -> u64 {
        let end = m.end_offset().unwrap();
        let (mut offset, mut bytes) = (0, 0);
        while offset < end {
            let chunk = reader.read(p, m, offset, MIB as usize, end).await.unwrap();
            let mut rest = &chunk.bytes[..];
            while !rest.is_empty() {
                let header = BatchHeader::parse(rest).unwrap();
                assert_eq!(header.base_offset, offset, "offsets come once and in order");
                offset = header.next_offset();
                rest = &rest[header.total_len()..];
            }
            assert_eq!(offset, chunk.next_offset);
            bytes += chunk.bytes.len() as u64;
        }
        bytes
    }

    fn settings(cache_bytes: u64, disk_bytes: u64) -> TierSettings {
        TierSettings {
            chunk_bytes: MIB,
            get_max_bytes: 4 * MIB,
            read_ahead_max_bytes: 16 * MIB,
            cache_bytes,
            cache_disk_bytes: disk_bytes,
            cache_disk_write_bytes_per_sec: 0,
            ..TierSettings::default()
        }
    }

    /// A sequential reader costs one GET per `get_max_bytes` (adjacent chunks coalesced,
    /// read ahead a whole GET at a time), across segment boundaries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sequential_cold_read_costs_one_get_per_get_max_bytes() {
        let (catalog, p, m, _dir) = tiered(12, 400).await;
        assert!(m.segments.len() >= 2, "{} segments", m.segments.len());
        let settings = settings(256 * MIB, 0);
        let reader = RemoteReader::open(catalog.clone(), &settings, None).await.unwrap();
        let before = gets(&catalog);
        let bytes = read_all(&reader, &p, &m).await;
        assert_eq!(bytes, m.size_bytes());
        let data_gets = reader.counts().chunk_gets;
        // Per segment: its chunks in runs of four, plus one partial run at its end.
        let bound: u64 = m.segments.iter().map(|s| s.size_bytes.div_ceil(4 * MIB) + 1).sum();
        assert!(
            data_gets <= bound,
            "{data_gets} GETs for {} MiB in {} segments (at most {bound})",
            bytes / MIB,
            m.segments.len()
        );
        // Each segment is read from its first byte: no index is needed, none is fetched
        // (it would be a GET, and a wait, per segment crossed).
        assert_eq!(gets(&catalog) - before, data_gets, "chunk GETs only");
        let counts = reader.counts();
        assert!(counts.chunks_read_ahead > 0, "{counts:?}");
        assert_eq!(counts.chunk_get_bytes, m.size_bytes(), "every byte fetched once");
    }

    /// A compacted log, tiered: segments that begin or end in a gap and segments with no
    /// batch left read back from offset 0, across the gaps, exactly as the local log
    /// serves them (before: "a batch header would run past the end" at a segment ending
    /// in a gap, and at an empty one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compacted_remote_log_reads_back_across_its_gaps() {
        use crate::clean::{CleanRequest, OffsetMap};
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 2048, ..LogConfig::default() };
        let resources = Arc::new(LogResources::default());
        let clock = shale_core::clock::system();
        let log = PartitionLog::open(dir.path().join("t-0"), config, clock, resources).unwrap();
        for i in 0..600u32 {
            // Most records update key 0: whole segments empty out, others end in gaps.
            let key = if i % 7 == 0 { (i / 7) % 10 } else { 0 };
            let mut b = BatchBuilder::new(Compression::None);
            b.push(Record {
                key: Some(Bytes::from(key.to_be_bytes().to_vec())),
                value: Some(Bytes::from(vec![(i % 251) as u8; 100])),
                headers: vec![],
                timestamp_ms: 1,
            });
            log.append(&mut b.build().to_vec(), 1).unwrap();
        }
        let req = CleanRequest::always(log.log_end_offset(), 0);
        let cleaned = log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut |_: u64| {});
        assert!(cleaned.unwrap().unwrap().swapped);
        let (catalog, p, m) = upload(&log).await;
        let end = m.end_offset().unwrap();
        assert!(m.segments.iter().any(|s| s.size_bytes == 0), "an emptied segment");
        let mut local = Vec::new();
        let mut offset = 0;
        while offset < end {
            let chunk = log.read(offset, MIB as usize, end).unwrap();
            local.extend_from_slice(&chunk.bytes);
            offset = chunk.next_offset;
        }
        let reader = RemoteReader::open(catalog, &settings(64 * MIB, 0), None).await.unwrap();
        let (mut remote, mut offset) = (Vec::new(), 0);
        while offset < end {
            let chunk = reader.read(&p, &m, offset, 4096, end).await.unwrap();
            assert!(chunk.next_offset > offset, "no progress at {offset}");
            remote.extend_from_slice(&chunk.bytes);
            offset = chunk.next_offset;
        }
        assert!(!local.is_empty());
        assert_eq!(remote, local, "the remote log serves the cleaned batches, byte for byte");
    }

    /// Many sequential readers at once share the read-ahead budget (a quarter of
    /// `tier.cache_bytes`), and what they read ahead is held until read, so none of it is
    /// evicted first and fetched again: every byte is fetched once, nothing is left held.
    /// (With a window of a whole GET each, eight readers would need 40 MiB here.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_sequential_readers_share_the_memory_tier_without_fetching_twice() {
        let (catalog, p, m, _dir) = tiered(4, 8 * 64).await;
        let readers = m.segments.len().min(8);
        assert!(readers >= 6, "{} segments", m.segments.len());
        let settings = settings(24 * MIB, 0);
        let reader = RemoteReader::open(catalog.clone(), &settings, None).await.unwrap();
        // Reader k reads segment k from its start, 256 KiB at a time, in turn with the
        // others.
        let mut at: Vec<i64> = m.segments[..readers].iter().map(|s| s.base_offset).collect();
        let mut bytes = 0;
        while at.iter().zip(&m.segments).any(|(&o, s)| o < s.next_offset) {
            for (o, s) in at.iter_mut().zip(&m.segments) {
                if *o < s.next_offset {
                    let chunk = reader.read(&p, &m, *o, 256 * 1024, s.next_offset).await.unwrap();
                    bytes += chunk.bytes.len() as u64;
                    *o = chunk.next_offset;
                }
            }
        }
        let total: u64 = m.segments[..readers].iter().map(|s| s.size_bytes).sum();
        assert_eq!(bytes, total);
        let counts = reader.counts();
        assert!(
            counts.chunk_get_bytes <= total,
            "fetched {} of {total} bytes: {counts:?}",
            counts.chunk_get_bytes
        );
        assert_eq!(counts.read_ahead_bytes, 0, "every chunk read ahead was read: {counts:?}");
    }

    /// Reads at scattered offsets fetch what they need and nothing ahead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_reads_do_not_read_ahead() {
        let (catalog, p, m, _dir) = tiered(24, 400).await;
        let settings = settings(256 * MIB, 0);
        let reader = RemoteReader::open(catalog.clone(), &settings, None).await.unwrap();
        let end = m.end_offset().unwrap();
        for offset in [350, 20, 200, 120, 290].map(|o| o % m.end_offset().unwrap()) {
            let chunk = reader.read(&p, &m, offset, 64 * 1024, end).await.unwrap();
            assert_eq!(BatchHeader::parse(&chunk.bytes).unwrap().base_offset, offset);
        }
        let counts = reader.counts();
        assert_eq!(counts.chunks_read_ahead, 0, "{counts:?}");
        // A 64 KiB read at a chunk's edge may need two chunks: one GET either way.
        assert_eq!(counts.chunk_gets, 5, "{counts:?}");
    }

    /// The cold-read threads run at `tier.cold_read_nice`, below the threads serving
    /// produce: under CPU contention a catch-up reader gets the smaller share.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_reads_run_on_threads_of_lower_priority() {
        let (catalog, p, m, _dir) = tiered(1, 40).await;
        // The default, as every other reader this test process may have open.
        let settings = settings(64 * MIB, 0);
        assert_eq!(settings.cold_read_nice, 10);
        let reader = RemoteReader::open(catalog, &settings, None).await.unwrap();
        read_all(&reader, &p, &m).await;
        let mut nices = vec![];
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim() == "shale-cold-read" {
                // Field 19 of stat is the nice value; fields after the `(comm)` are plain.
                let stat = std::fs::read_to_string(task.join("stat")).unwrap();
                let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split(' ').collect();
                nices.push(fields[17].parse::<i32>().unwrap());
            }
        }
        assert!(!nices.is_empty(), "no shale-cold-read thread found");
        assert!(nices.iter().all(|&n| n == 10), "nice values of the cold-read threads: {nices:?}");
    }

    /// Cold reads are paced to `tier.cold_read_busy_bytes_per_sec` while the partition logs
    /// write, and not at all while they are idle.
    #[test]
    fn cold_reads_are_paced_while_the_logs_are_busy() {
        let activity = Arc::new(DiskActivity::default());
        let pace = Pace::new(activity.clone(), MIB);
        assert!(pace.delay(10 * MIB).is_zero(), "idle logs: no pacing");
        activity.note_write();
        let waits: Vec<f64> = (0..3).map(|_| pace.delay(MIB).as_secs_f64()).collect();
        // 1 MiB at 1 MiB/s each: the bucket starts empty (its tenth of a second of credit
        // builds up over idle time).
        for (i, wait) in waits.iter().enumerate() {
            let expected = i as f64 + 1.0;
            assert!((wait - expected).abs() < 0.05, "read {i} waits {wait:.3} s, not {expected}");
        }
    }

    /// A sequential reader of chunks only the disk tier holds finds its next chunks in
    /// memory: they are loaded while it reads the current one. Before, each chunk's disk
    /// read came in series with the reads (a re-read from the disk tier ran at about 630
    /// MiB/s where one from memory ran at 905).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sequential_reader_warms_its_next_chunks_from_the_disk_tier() {
        let (catalog, p, m, _dir) = tiered(20, 330).await;
        let cache = tempfile::tempdir().unwrap();
        let disk = DiskTier { dir: cache.path().into(), activity: Arc::default() };
        let settings = settings(8 * MIB, 256 * MIB);
        let reader = RemoteReader::open(catalog.clone(), &settings, Some(disk)).await.unwrap();
        reader.cache_settled().await;
        read_all(&reader, &p, &m).await;
        let path = catalog.object(&p, &names::log(&m.segments[0].name));
        let (first, next) = (chunk_key(&path, 0), chunk_key(&path, 1));
        let deadline = std::time::Duration::from_secs(10);
        let on_disk = async {
            while !reader.inner.chunks.get().storage().may_contains(&next) {
                shale_core::clock::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(deadline, on_disk).await.expect("chunk 1 written to the disk tier");
        let chunks = reader.inner.chunks.get();
        let memory = chunks.memory();
        assert!(!memory.contains(&first) && !memory.contains(&next), "evicted from memory");
        // A consumer starting over reads chunk 0; chunk 1 comes into memory meanwhile.
        let gets = reader.counts().chunk_gets;
        let end = m.end_offset().unwrap();
        reader.read(&p, &m, 0, MIB as usize, end).await.unwrap();
        let warmed = async {
            while !memory.contains(&next) {
                shale_core::clock::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(deadline, warmed).await.unwrap_or_else(|_| {
            panic!("the next chunk was not loaded from the disk tier: {:?}", reader.counts())
        });
        assert_eq!(reader.counts().chunk_gets, gets, "warming GETs nothing");
    }

    /// Chunks the memory tier had to let go are served by the disk tier: a second reader of
    /// the same range costs no GET. Without the disk tier it would GET everything again.
    /// With the logs idle, the disk tier's write limit does not hold it back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_reader_is_served_from_the_cache_without_a_get() {
        let (catalog, p, m, _dir) = tiered(20, 330).await;
        let cache = tempfile::tempdir().unwrap();
        // 8 MiB of memory (two GETs) for ~20 MiB read: most chunks live only on disk
        // afterwards.
        let settings =
            TierSettings { cache_disk_write_bytes_per_sec: MIB, ..settings(8 * MIB, 256 * MIB) };
        let disk = DiskTier { dir: cache.path().into(), activity: Arc::default() };
        let reader = RemoteReader::open(catalog.clone(), &settings, Some(disk));
        let reader = reader.await.unwrap();
        reader.cache_settled().await;
        read_all(&reader, &p, &m).await;
        // The disk tier writes in the background: a second reader a moment later finds it
        // all there.
        let deadline = std::time::Duration::from_secs(10);
        let written = async {
            while reader.counts().cache_disk_write_bytes < reader.counts().chunk_get_bytes {
                shale_core::clock::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(deadline, written).await.unwrap_or_else(|_| {
            panic!("the disk tier did not write every chunk: {:?}", reader.counts())
        });
        let first = reader.counts();
        let before = gets(&catalog);
        read_all(&reader, &p, &m).await;
        let second = reader.counts();
        assert_eq!(gets(&catalog) - before, 0, "the second reader GET nothing: {second:?}");
        assert!(second.chunk_disk_hits > first.chunk_disk_hits, "{second:?}");
    }
}
