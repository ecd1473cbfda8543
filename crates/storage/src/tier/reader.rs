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

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::future::Cache;
use object_store::path::Path as ObjectPath;
use tokio::sync::Semaphore;

use super::catalog::{Catalog, PartitionRef};
pub use super::chunk_cache::DiskTier;
use super::chunk_cache::{BUSY_WINDOW, ChunkCache};
use super::manifest::{Manifest, RemoteSegment, names};
use crate::log::{DiskActivity, ReadChunk, RemoteIndex};
use crate::tier::TierSettings;
use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};
use shale_core::rate::TokenBucket;
use shale_core::record::batch::{BatchHeader, HEADER_LEN};

/// A chunk's bytes, shared by every reader waiting for the GET that brings it.
type ChunkFuture = Shared<BoxFuture<'static, Result<Bytes, Error>>>;

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
    /// cache when read, or are dropped after [`HELD_FOR`]).
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

/// What remote reads did since the broker started.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Chunk lookups of reads answered from the memory tier.
    pub chunk_hits: AtomicU64,
    /// Chunks loaded from the disk tier: for a read, or warmed ahead of a sequential reader.
    pub chunk_disk_hits: AtomicU64,
    /// Chunk lookups of reads that waited for a GET (theirs, or one already in flight).
    pub chunk_misses: AtomicU64,
    /// Chunks fetched ahead of a sequential reader.
    pub chunks_read_ahead: AtomicU64,
    /// Ranged GETs of chunks (each covers up to `get_max_bytes`).
    pub chunk_gets: AtomicU64,
    /// Bytes those GETs brought.
    pub chunk_get_bytes: AtomicU64,
    /// Sum over those GETs of bytes times milliseconds in flight: its growth over a period
    /// divided by the period's milliseconds is the bytes in flight on average.
    pub chunk_get_byte_ms: AtomicU64,
    /// Bytes of batches returned to fetches.
    pub bytes_served: AtomicU64,
    /// Milliseconds reads waited, paced while the partition logs were busy.
    pub paced_ms: AtomicU64,
    /// Remote index lookups answered from the cache (including indexes cached on upload).
    pub index_hits: AtomicU64,
    /// Remote index lookups that had to GET the index.
    pub index_misses: AtomicU64,
}

/// A point-in-time copy of [`ReadStats`] and the cache's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// See [`ReadStats::chunk_hits`].
    pub chunk_hits: u64,
    /// See [`ReadStats::chunk_disk_hits`].
    pub chunk_disk_hits: u64,
    /// See [`ReadStats::chunk_misses`].
    pub chunk_misses: u64,
    /// See [`ReadStats::chunks_read_ahead`].
    pub chunks_read_ahead: u64,
    /// See [`ReadStats::chunk_gets`].
    pub chunk_gets: u64,
    /// See [`ReadStats::chunk_get_bytes`].
    pub chunk_get_bytes: u64,
    /// See [`ReadStats::chunk_get_byte_ms`].
    pub chunk_get_byte_ms: u64,
    /// See [`ReadStats::bytes_served`].
    pub bytes_served: u64,
    /// See [`ReadStats::paced_ms`].
    pub paced_ms: u64,
    /// See [`ReadStats::index_hits`].
    pub index_hits: u64,
    /// See [`ReadStats::index_misses`].
    pub index_misses: u64,
    /// Bytes of chunks in the memory tier now.
    pub cache_bytes: u64,
    /// Bytes read ahead now, in flight or held until read.
    pub read_ahead_bytes: u64,
    /// Bytes written to the disk tier since the broker started.
    pub cache_disk_write_bytes: u64,
    /// Bytes read from the disk tier since the broker started.
    pub cache_disk_read_bytes: u64,
    /// Whether the disk tier is open (it opens in the background after start-up).
    pub cache_disk_open: bool,
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
            .on_thread_start(move || lower_priority(nice))
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
    /// `OFFSET_OUT_OF_RANGE` when no remote segment holds `offset`.
    ///
    /// The read runs on the cold-read runtime (its lookups, waits and copies), so that the
    /// caller's threads only hand the answer on.
    pub async fn read(
        &self,
        p: &PartitionRef,
        manifest: &Arc<Manifest>,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<ReadChunk, Error> {
        let (reader, p, manifest) = (self.clone(), p.clone(), manifest.clone());
        let read =
            async move { reader.read_here(&p, &manifest, offset, max_bytes, upper_bound).await };
        // Ends by itself: its GETs are under the bucket's timeout and retries.
        let task = self.inner.runtime.handle().spawn(read);
        let chunk =
            task.await.unwrap_or_else(|e| Err(Error::unavailable(format!("cold read: {e}"))))?;
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
        // Find the batch holding `offset`.
        let first_batch = loop {
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

    /// Starts the GETs of the chunks `needed` of the cursor's segment that are missing,
    /// and keeps the `window` chunks after them (continuing into the next segment if it
    /// starts below `upper_bound`) cached or in flight, a whole GET at a time: it starts
    /// GETs only once at least `get_max_bytes` of the window (or the whole window, when
    /// smaller) is missing, or the missing part reaches the end of an object. Needed chunks
    /// that are missing go in the same GETs as the window's.
    fn read_ahead(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        cursor: &Cursor<'_>,
        needed: Range<u64>,
        window: u64,
        upper_bound: i64,
    ) {
        let cb = self.inner.chunk_bytes;
        let size = cursor.segment.size_bytes;
        let chunks = size.div_ceil(cb);
        // A whole GET at a time, or the whole window when it is smaller than a GET.
        let run = self.inner.run_chunks.min(window);
        // A window that would stop less than a whole GET short of an object's end takes the
        // end too, rather than leave a short GET for later (a small object is one GET).
        let whole = self.inner.run_chunks;
        let stretch = |to: u64, chunks: u64| if to + whole > chunks { chunks } else { to };
        let waiting = needed.clone().any(|i| !self.present(&chunk_key(&cursor.path, i)));
        // A reader waiting on chunks it needs gets them and the rest of its window in whole
        // GETs from the first; otherwise the window after the read is refilled.
        let (from, to) = match waiting {
            true => (needed.start, needed.end.max(needed.start + window)),
            false => (needed.end, needed.end + window),
        };
        if from < chunks {
            let range = from..stretch(to, chunks).min(chunks);
            let (min_missing, needed_until) = match waiting {
                true => (1, needed.end),
                false => (run, 0),
            };
            self.ensure(&cursor.path, size, range, min_missing, needed_until);
        }
        if to > chunks {
            // Not past what this reader may read now.
            let next = manifest.find(cursor.segment.next_offset);
            if let Some(next) = next.filter(|next| next.base_offset < upper_bound) {
                let path = self.cursor(p, next).path;
                let n = next.size_bytes.div_ceil(cb);
                let range = from.saturating_sub(chunks)..stretch(to - chunks, n).min(n);
                self.ensure(&path, next.size_bytes, range, run, 0);
            }
        }
    }

    /// Starts GETs for the chunks of `range` of the object at `path` (`size` bytes) that are
    /// neither cached, held nor in flight, when there are at least `min_missing` of them or
    /// they reach the object's end; adjacent ones go in one GET of up to `get_max_bytes`.
    /// Chunks from `needed_until` on are read ahead: a GET of only such chunks waits for
    /// room in the read-ahead budget (it is not started now if there is none).
    fn ensure(
        &self,
        path: &ObjectPath,
        size: u64,
        range: Range<u64>,
        min_missing: u64,
        needed_until: u64,
    ) {
        let inner = &self.inner;
        let last = size.div_ceil(inner.chunk_bytes);
        // Under the in-flight lock from the check to the GETs' start: two readers that both
        // find a chunk missing do not both fetch it.
        let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<u64> =
            range.filter(|&i| i < last && !self.present_in(&map, &chunk_key(path, i))).collect();
        let reaches_end = missing.last().is_some_and(|&i| i + 1 == last);
        if missing.is_empty() || (missing.len() as u64) < min_missing && !reaches_end {
            return;
        }
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in &missing {
            match runs.last_mut() {
                Some(run) if i == run.end && run.end - run.start < inner.run_chunks => run.end += 1,
                _ => runs.push(i..i + 1),
            }
        }
        for run in runs {
            let ahead = run.start.max(needed_until)..run.end.max(needed_until);
            let ahead_bytes = self.span_bytes(size, ahead.clone());
            if run.start >= needed_until {
                let used = inner.ahead_bytes.load(Ordering::Relaxed);
                if used + ahead_bytes > inner.ahead_budget {
                    return;
                }
            }
            inner.ahead_bytes.fetch_add(ahead_bytes, Ordering::Relaxed);
            self.start_get(&mut map, path, size, run, ahead);
        }
    }

    /// Loads the chunks of `range` that only the disk tier holds into the memory tier, in
    /// the background: a sequential reader then finds its next chunk in memory instead of
    /// waiting for the disk in series with its reads. Chunks in memory or not on disk (in
    /// flight or held ones are not: `ensure` GETs only what the cache lacks) are left alone.
    fn warm(&self, path: &ObjectPath, range: Range<u64>) {
        let inner = &self.inner;
        for i in range {
            let key = chunk_key(path, i);
            if inner.chunks.get().memory().contains(&key)
                || !inner.chunks.get().storage().may_contains(&key)
            {
                continue;
            }
            if !inner.warming.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone()) {
                continue;
            }
            let inner = inner.clone();
            // Ends by itself: one read of the disk tier (which puts the chunk in memory).
            self.inner.runtime.handle().spawn(async move {
                match inner.chunks.get().get(&key).await {
                    Ok(Some(_)) => {
                        inner.stats.chunk_disk_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "the chunk cache's disk tier failed a read")
                    }
                }
                inner.warming.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            });
        }
    }

    /// Bytes of chunks `run` of an object of `size` bytes.
    fn span_bytes(&self, size: u64, run: Range<u64>) -> u64 {
        let cb = self.inner.chunk_bytes;
        (run.end * cb).min(size).saturating_sub(run.start * cb)
    }

    /// Whether the chunk `key` is cached, held or in flight.
    fn present(&self, key: &String) -> bool {
        self.present_in(&self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()), key)
    }

    /// [`Self::present`] for a caller holding the in-flight lock (`in_flight`).
    fn present_in(&self, in_flight: &HashMap<String, ChunkFuture>, key: &String) -> bool {
        let inner = &self.inner;
        in_flight.contains_key(key)
            || inner.held.lock().unwrap_or_else(|e| e.into_inner()).contains_key(key)
            || inner.chunks.get().contains(key)
    }

    /// Drops the read-ahead chunks held longer than [`HELD_FOR`]: their readers went away.
    fn drop_stale_held(&self) {
        let inner = &self.inner;
        let now = shale_core::clock::monotonic_now();
        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, (chunk, at)| {
            let keep = now.duration_since(*at) < HELD_FOR;
            if !keep {
                inner.ahead_bytes.fetch_sub(chunk.len() as u64, Ordering::Relaxed);
            }
            keep
        });
    }

    /// The held read-ahead chunk `key`, now read: it moves to the cache.
    fn take_held(&self, key: &str) -> Option<Bytes> {
        let inner = &self.inner;
        let (chunk, _) = inner.held.lock().unwrap_or_else(|e| e.into_inner()).remove(key)?;
        inner.ahead_bytes.fetch_sub(chunk.len() as u64, Ordering::Relaxed);
        inner.chunks.get().insert(key.to_string(), chunk.clone());
        Some(chunk)
    }

    /// One ranged GET for chunks `run` of the object at `path`, on the cold-read runtime;
    /// each chunk is in `in_flight` (the caller holds its lock) until it is in the cache,
    /// or, for the chunks of `ahead` (read ahead, counted in `ahead_bytes`), held.
    fn start_get(
        &self,
        in_flight: &mut HashMap<String, ChunkFuture>,
        path: &ObjectPath,
        size: u64,
        run: Range<u64>,
        ahead: Range<u64>,
    ) {
        self.drop_stale_held();
        let ahead_bytes = self.span_bytes(size, ahead.clone());
        let first = run.start;
        let cb = self.inner.chunk_bytes;
        let bytes = run.start * cb..(run.end * cb).min(size);
        let keys: Vec<String> = run.map(|i| chunk_key(path, i)).collect();
        let task = {
            let inner = self.inner.clone();
            let (path, keys) = (path.clone(), keys.clone());
            async move {
                let got = async {
                    let _permit = inner.permits.acquire().await.map_err(|_| closed())?;
                    let sent = shale_core::clock::monotonic_now();
                    let got = inner.catalog.bucket().get_range(&path, bytes).await?;
                    Ok::<_, Error>((got, sent.elapsed()))
                }
                .await;
                let got = got.map(|(all, took)| {
                    let byte_ms = all.len() as u128 * took.as_millis();
                    let s = &inner.stats;
                    s.chunk_get_byte_ms.fetch_add(byte_ms as u64, Ordering::Relaxed);
                    all
                });
                match &got {
                    Ok(all) => {
                        let s = &inner.stats;
                        s.chunk_gets.fetch_add(1, Ordering::Relaxed);
                        s.chunk_get_bytes.fetch_add(all.len() as u64, Ordering::Relaxed);
                        let n = ahead.end - ahead.start;
                        s.chunks_read_ahead.fetch_add(n, Ordering::Relaxed);
                        let now = shale_core::clock::monotonic_now();
                        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
                        for (j, key) in keys.iter().enumerate() {
                            let chunk = slice_chunk(all, j, cb);
                            if ahead.contains(&(first + j as u64)) {
                                // Counted once: a chunk held already (it cannot be, as
                                // `ensure` checks under the lock) is replaced, not added.
                                if let Some((old, _)) = held.insert(key.clone(), (chunk, now)) {
                                    let old = old.len() as u64;
                                    inner.ahead_bytes.fetch_sub(old, Ordering::Relaxed);
                                }
                            } else {
                                inner.chunks.get().insert(key.clone(), chunk);
                            }
                        }
                    }
                    Err(_) => drop(inner.ahead_bytes.fetch_sub(ahead_bytes, Ordering::Relaxed)),
                }
                // After the cache (or `held`) has them, so a reader finds each chunk there or
                // here.
                let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                for key in &keys {
                    map.remove(key);
                }
                got
            }
        };
        // Ends by itself: one GET under the bucket's timeout and retries. Awaited through
        // the shared futures below by every reader of these chunks.
        let handle = self.inner.runtime.handle().spawn(task);
        let all = async move {
            handle.await.unwrap_or_else(|e| Err(Error::unavailable(format!("cold read: {e}"))))
        }
        .boxed()
        .shared();
        for (j, key) in keys.into_iter().enumerate() {
            let all = all.clone();
            let chunk = async move { all.await.map(|all| slice_chunk(&all, j, cb)) };
            in_flight.insert(key, chunk.boxed().shared());
        }
    }

    /// The first batch ending after `from` whose max timestamp is at or after `ts` among the
    /// remote segments, as (its base offset, its max timestamp): at batch granularity, as the
    /// local lookup (the batch found may begin below `from`).
    pub async fn offset_for_timestamp(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        ts: i64,
        from: i64,
    ) -> Result<Option<(i64, i64)>, Error> {
        let candidates =
            manifest.segments.iter().filter(|s| s.next_offset > from && s.max_timestamp >= ts);
        for segment in candidates {
            let cursor = self.cursor(p, segment);
            let index = self.index(p, segment).await?;
            let by_time = index.skip_older(ts).map_or(0, |rel| index.position(rel));
            let rel = u32::try_from((from - segment.base_offset).max(0)).unwrap_or(u32::MAX);
            let mut pos = by_time.max(index.position(rel));
            while pos < segment.size_bytes {
                let header = self.header_at(&cursor, pos).await?;
                if header.next_offset() > from && header.max_timestamp >= ts {
                    return Ok(Some((header.base_offset, header.max_timestamp)));
                }
                pos += header.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// Caches the index of a segment this broker has just uploaded (`bytes`, as put in the
    /// bucket), so that the first cold read of it, typically a consumer a little behind the
    /// local retention, does not GET it back: one request less on its first record.
    pub async fn remember_index(&self, p: &PartitionRef, segment: &RemoteSegment, bytes: &[u8]) {
        let path = self.inner.catalog.object(p, &names::index(&segment.name));
        match decode_index(&path, segment, bytes) {
            Ok(index) => self.inner.indexes.insert(path, index).await,
            // Not fatal: a read would GET it and report the problem then.
            Err(e) => tracing::warn!(error = %e, "an uploaded index does not decode"),
        }
    }

    /// The cached remote index of `segment`.
    async fn index(
        &self,
        p: &PartitionRef,
        segment: &RemoteSegment,
    ) -> Result<Arc<RemoteIndex>, Error> {
        let path = self.inner.catalog.object(p, &names::index(&segment.name));
        let inner = self.inner.clone();
        let segment = segment.clone();
        let p = p.clone();
        let entry = self
            .inner
            .indexes
            .entry(path.clone())
            .or_try_insert_with(async move {
                // On the cold-read runtime, as the chunks' GETs. Ends by itself: one GET
                // under the bucket's timeout and retries.
                let runtime = inner.runtime.handle().clone();
                let got = runtime.spawn(async move {
                    let _permit = inner.permits.acquire().await.map_err(|_| closed())?;
                    let bucket = inner.catalog.bucket();
                    let bytes = match segment.index_bytes {
                        // Version 1: the index is an object of its own.
                        0 => bucket.get(&path).await?,
                        n => {
                            let log = inner.catalog.object(&p, &names::log(&segment.name));
                            let at = segment.size_bytes;
                            bucket.get_range(&log, at..at + n).await?
                        }
                    };
                    decode_index(&path, &segment, &bytes)
                });
                got.await.unwrap_or_else(|e| Err(Error::unavailable(format!("cold read: {e}"))))
            })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())?;
        let s = &self.inner.stats;
        let counter = if entry.is_fresh() { &s.index_misses } else { &s.index_hits };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(entry.into_value())
    }

    /// The batch header at byte `pos` of the segment.
    async fn header_at(&self, cursor: &Cursor<'_>, pos: u64) -> Result<BatchHeader, Error> {
        let size = cursor.segment.size_bytes;
        let corrupt = |reason: String| {
            Error::new(
                ErrorKind::Internal,
                Reason::CorruptRemoteSegment,
                format!("remote segment {} at byte {pos}: {reason}", cursor.path),
            )
        };
        if pos + HEADER_LEN as u64 > size {
            return Err(corrupt(format!("a batch header would run past the end ({size} bytes)")));
        }
        let bytes = self.bytes(cursor, pos..pos + HEADER_LEN as u64).await?;
        let header = BatchHeader::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if pos + header.total_len() as u64 > size {
            return Err(corrupt(format!("the batch runs past the end ({size} bytes)")));
        }
        Ok(header)
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

    /// Chunk `i` of the cursor's segment: from the memory tier, the disk tier, or the GET
    /// bringing it (started here if none is).
    async fn chunk(&self, cursor: &Cursor<'_>, i: u64) -> Result<Bytes, Error> {
        let last = cursor.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((_, chunk)) = last.filter(|(j, _)| *j == i) {
            return Ok(chunk);
        }
        let chunk = self.lookup(cursor, i).await?;
        *cursor.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((i, chunk.clone()));
        Ok(chunk)
    }

    /// [`Self::chunk`] without the cursor's memo.
    async fn lookup(&self, cursor: &Cursor<'_>, i: u64) -> Result<Bytes, Error> {
        let inner = &self.inner;
        let key = chunk_key(&cursor.path, i);
        let mut refetch = false;
        loop {
            let pending = {
                let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if !map.contains_key(&key) {
                    if let Some(chunk) = self.take_held(&key) {
                        inner.stats.chunk_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(chunk);
                    }
                    if refetch || !inner.chunks.get().contains(&key) {
                        let size = cursor.segment.size_bytes;
                        self.start_get(&mut map, &cursor.path, size, i..i + 1, 0..0);
                    }
                }
                map.get(&key).cloned()
            };
            if let Some(pending) = pending {
                cursor.waited.store(true, Ordering::Relaxed);
                inner.stats.chunk_misses.fetch_add(1, Ordering::Relaxed);
                let chunk = pending.await?;
                // A chunk read ahead is held for its reader: this is it.
                self.take_held(&key);
                return Ok(chunk);
            }
            // A chunk being warmed from the disk tier is counted there (as a disk hit).
            let in_memory = inner.chunks.get().memory().contains(&key)
                || inner.warming.lock().unwrap_or_else(|e| e.into_inner()).contains(&key);
            match inner.chunks.get().get(&key).await {
                Ok(Some(entry)) => {
                    let s = &inner.stats;
                    let counter = if in_memory { &s.chunk_hits } else { &s.chunk_disk_hits };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return Ok(entry.value().clone());
                }
                // Evicted since, or the disk tier failed: GET it.
                Ok(None) => refetch = true,
                Err(e) => {
                    tracing::debug!(error = %e, "the chunk cache's disk tier failed a read");
                    refetch = true;
                }
            }
        }
    }
}

/// Chunks a sequential reader has loaded from the disk tier ahead of its reads (at most its
/// read-ahead window): one is enough to overlap the disk with the reads, two absorb a slow
/// disk read.
const WARM_CHUNKS: u64 = 2;

/// How long a chunk read ahead is held for its reader, who may have gone.
const HELD_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Lowers the calling thread's CPU priority to `nice` (Linux, where nice is per thread).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::warn!(error = %e, nice, "cannot lower a cold-read thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The cache key of chunk `i` of the object at `path`.
fn chunk_key(path: &ObjectPath, i: u64) -> String {
    format!("{path}#{i}")
}

/// Chunk `j` of the bytes `all` of a GET that started at a chunk boundary.
fn slice_chunk(all: &Bytes, j: usize, chunk_bytes: u64) -> Bytes {
    let from = (j as u64 * chunk_bytes).min(all.len() as u64) as usize;
    let to = (from as u64 + chunk_bytes).min(all.len() as u64) as usize;
    all.slice(from..to)
}

/// The remote index of `segment` from the bytes of its index object at `path`.
fn decode_index(
    path: &ObjectPath,
    segment: &RemoteSegment,
    bytes: &[u8],
) -> Result<Arc<RemoteIndex>, Error> {
    let records = (segment.next_offset - segment.base_offset) as u64;
    RemoteIndex::decode(bytes, records, segment.size_bytes).map(Arc::new).map_err(|reason| {
        Error::new(
            ErrorKind::Internal,
            Reason::CorruptRemoteIndex,
            format!("remote index {path} is invalid: {reason}"),
        )
    })
}

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
    use super::*;
    use crate::log::{LogConfig, LogResources, PartitionLog};
    use crate::tier::Bucket;
    use crate::tier::metrics::Op;
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
            });
            current = catalog.commit(&p, &current, segments, 1).await.unwrap();
            from = slice.next_offset;
        }
        (catalog, p, current.manifest, dir)
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
