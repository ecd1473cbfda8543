//! Cold reads: batches below the local log start, served from remote segments.
//!
//! A read finds the segment in the manifest, the byte position in the segment's cached
//! remote index, and then reads `tier.chunk_bytes` chunks of the segment through a hybrid
//! chunk cache (foyer: a memory tier of `tier.cache_bytes` over a disk tier of
//! `tier.cache_disk_bytes`), so re-reads and many readers of the same data do not GET it
//! again. Missing chunks are fetched with ranged GETs that coalesce adjacent chunks up to
//! `tier.get_max_bytes`; one GET per chunk range is ever in flight, however many readers
//! want it.
//!
//! **Read-ahead.** A read that starts where an earlier read of the same object ended is
//! sequential: it keeps a window of chunks ahead of it cached or in flight, and refills the
//! window one whole GET at a time (so a sequential reader costs one GET per
//! `tier.get_max_bytes`). The window starts at one GET and doubles, up to
//! `tier.read_ahead_max_bytes`, each time the reader finds a chunk it needs not there yet:
//! it grows until it covers the bucket's bandwidth-delay product. It continues into the
//! next segment of the manifest. A read anywhere else fetches only what it needs.
//!
//! **Isolation.** GETs, the object store's own blocking work (the filesystem store reads on
//! blocking threads) and the disk tier's I/O run on a runtime of their own
//! (`tier.cold_read_threads` workers), at most `tier.remote_read_concurrency` GETs at once,
//! and writes to the disk tier are limited to `tier.cache_disk_write_bytes_per_sec`. A
//! cold reader therefore never occupies the threads that serve produce and local fetches,
//! and never blocks them on the bucket.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, PsyncIoEngineConfig, RecoverMode,
};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::future::Cache;
use object_store::path::Path as ObjectPath;
use tokio::sync::Semaphore;

use super::catalog::{Catalog, PartitionRef};
use super::manifest::{Manifest, RemoteSegment, names};
use crate::log::{ReadChunk, RemoteIndex};
use crate::tier::TierSettings;
use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};
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
    chunks: HybridCache<String, Bytes>,
    indexes: Cache<ObjectPath, Arc<RemoteIndex>>,
    /// The chunks a GET is bringing now.
    in_flight: Mutex<HashMap<String, ChunkFuture>>,
    /// Sequential readers: (object, chunk where the next read will start) to the read-ahead
    /// window in chunks. Idle readers are forgotten.
    streams: moka::sync::Cache<(ObjectPath, u64), u64>,
    permits: Arc<Semaphore>,
    chunk_bytes: u64,
    /// Chunks per GET at most (`get_max_bytes / chunk_bytes`).
    run_chunks: u64,
    /// Read-ahead window limit in chunks.
    max_window: u64,
    /// Bytes of the memory tier.
    cache_bytes: u64,
    runtime: ColdRuntime,
    stats: ReadStats,
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
    /// Chunk lookups of reads answered from the disk tier.
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
    /// See [`ReadStats::index_hits`].
    pub index_hits: u64,
    /// See [`ReadStats::index_misses`].
    pub index_misses: u64,
    /// Bytes of chunks in the memory tier now.
    pub cache_bytes: u64,
    /// Bytes written to the disk tier since the broker started.
    pub cache_disk_write_bytes: u64,
    /// Bytes read from the disk tier since the broker started.
    pub cache_disk_read_bytes: u64,
}

/// Where one read is in a remote segment.
struct Cursor<'a> {
    segment: &'a RemoteSegment,
    path: ObjectPath,
    /// Whether the read waited for the bucket (a chunk it needed was not cached).
    waited: std::sync::atomic::AtomicBool,
}

impl RemoteReader {
    /// A reader over `catalog`'s bucket with the cache and read-ahead settings of
    /// `settings`; the disk tier goes in `cache_dir` (memory only without one, or with
    /// `tier.cache_disk_bytes = 0`). A disk tier left by an earlier run is recovered.
    pub async fn open(
        catalog: Arc<Catalog>,
        settings: &TierSettings,
        cache_dir: Option<PathBuf>,
    ) -> Result<RemoteReader, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.cold_read_threads.max(1))
            .max_blocking_threads(8)
            .thread_name("shale-cold-read")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the cold-read runtime: {e}")))?;
        let runtime = ColdRuntime(Some(runtime));
        let chunk_bytes = settings.chunk_bytes.max(4096);
        let memory = HybridCacheBuilder::new()
            .with_name("shale-chunks")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .memory(settings.cache_bytes.max(chunk_bytes) as usize)
            // Each shard holds its share of the capacity: room for several chunks each.
            .with_shards((settings.cache_bytes / (8 * chunk_bytes)).clamp(1, 16) as usize)
            .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
            .storage()
            .with_spawner(runtime.handle().clone().into());
        let chunks = match cache_dir.filter(|_| settings.cache_disk_bytes > 0) {
            None => memory.build().await,
            Some(dir) => {
                // A block holds whole entries: room for several chunks and their keys.
                let block = (4 * chunk_bytes).max(16 << 20) as usize;
                let capacity = (settings.cache_disk_bytes as usize).max(2 * block);
                let mut throttle = foyer::Throttle::new();
                throttle.write_throughput =
                    NonZeroUsize::new(settings.cache_disk_write_bytes_per_sec as usize);
                let device = FsDeviceBuilder::new(&dir)
                    .with_capacity(capacity)
                    .with_throttle(throttle)
                    .build()
                    .map_err(|e| cache_error(&dir, e))?;
                memory
                    .with_io_engine_config(PsyncIoEngineConfig::new())
                    .with_engine_config(
                        BlockEngineConfig::new(device)
                            .with_block_size(block)
                            .with_buffer_pool_size(2 * block)
                            .with_submit_queue_size_threshold(4 * block),
                    )
                    .with_recover_mode(RecoverMode::Quiet)
                    .build()
                    .await
            }
        }
        .map_err(|e| Error::internal(format!("cannot open the cold-read chunk cache: {e}")))?;
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
                streams: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(std::time::Duration::from_secs(120))
                    .build(),
                permits: Arc::new(Semaphore::new(settings.remote_read_concurrency.max(1))),
                chunk_bytes,
                run_chunks,
                max_window: (settings.read_ahead_max_bytes / chunk_bytes).max(run_chunks),
                cache_bytes: settings.cache_bytes.max(chunk_bytes),
                runtime,
                stats: ReadStats::default(),
            }),
        })
    }

    /// Cache and request counts since the broker started.
    pub fn counts(&self) -> ReadCounts {
        let s = &self.inner.stats;
        let disk = self.inner.chunks.statistics();
        ReadCounts {
            chunk_hits: s.chunk_hits.load(Ordering::Relaxed),
            chunk_disk_hits: s.chunk_disk_hits.load(Ordering::Relaxed),
            chunk_misses: s.chunk_misses.load(Ordering::Relaxed),
            chunks_read_ahead: s.chunks_read_ahead.load(Ordering::Relaxed),
            chunk_gets: s.chunk_gets.load(Ordering::Relaxed),
            chunk_get_bytes: s.chunk_get_bytes.load(Ordering::Relaxed),
            chunk_get_byte_ms: s.chunk_get_byte_ms.load(Ordering::Relaxed),
            bytes_served: s.bytes_served.load(Ordering::Relaxed),
            index_hits: s.index_hits.load(Ordering::Relaxed),
            index_misses: s.index_misses.load(Ordering::Relaxed),
            cache_bytes: self.inner.chunks.memory().usage() as u64,
            cache_disk_write_bytes: disk.disk_write_bytes() as u64,
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
    pub async fn read(
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
        let index = self.index(p, segment).await?;
        let mut pos = index.position((offset - segment.base_offset) as u32);
        // Start the GETs of every chunk the read will likely span together (coalesced),
        // and, for a sequential reader, those of its read-ahead window.
        let cb = self.inner.chunk_bytes;
        let size = segment.size_bytes;
        let first = pos / cb;
        let last = (pos + max_bytes as u64).min(size).max(pos + 1).div_ceil(cb) - 1;
        let window = self.inner.streams.remove(&(cursor.path.clone(), first));
        match window {
            // Sequential: what the read needs and its window, in as few GETs as possible.
            Some(window) => self.read_ahead(p, manifest, &cursor, first..last + 1, window),
            None => self.ensure(&cursor.path, size, first..last + 1, 1, false),
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
        // taken (more in flight would only queue) or the windows of all sequential
        // readers would no longer fit in half the memory tier (read-ahead evicted before
        // it is read is fetched twice).
        let inner = &self.inner;
        let readers = inner.streams.entry_count().max(1);
        let fits = inner.cache_bytes / 2 / inner.chunk_bytes / readers;
        let max = inner.max_window.min(fits).max(inner.run_chunks);
        let window = match window {
            None => inner.run_chunks,
            Some(w)
                if cursor.waited.load(Ordering::Relaxed)
                    && inner.permits.available_permits() > 0 =>
            {
                (w * 2).min(max)
            }
            Some(w) => w.min(max),
        };
        let next = if end < size {
            Some((cursor.path.clone(), end / cb))
        } else {
            manifest.find(segment.next_offset).map(|s| (self.cursor(p, s).path, 0))
        };
        if let Some(next) = next {
            self.inner.streams.insert(next, window);
        }
        Ok(ReadChunk { bytes, next_offset })
    }

    fn cursor<'a>(&self, p: &PartitionRef, segment: &'a RemoteSegment) -> Cursor<'a> {
        Cursor {
            segment,
            path: self.inner.catalog.object(p, &names::log(&segment.name)),
            waited: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Starts the GETs of the chunks `needed` of the cursor's segment that are missing,
    /// and keeps the `window` chunks after them (continuing into the next segment) cached or
    /// in flight, a whole GET at a time: it starts GETs only once at least `get_max_bytes`
    /// of the window is missing, or the missing part reaches the end of an object. Needed
    /// chunks that are missing go in the same GETs as the window's.
    fn read_ahead(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        cursor: &Cursor<'_>,
        needed: Range<u64>,
        window: u64,
    ) {
        let cb = self.inner.chunk_bytes;
        let size = cursor.segment.size_bytes;
        let chunks = size.div_ceil(cb);
        let run = self.inner.run_chunks;
        // A window that would stop less than a GET short of the object's end takes the end
        // too, rather than leave a short GET for later.
        let stretch = |to: u64| if to + run > chunks { chunks } else { to };
        let inner = &self.inner;
        let waiting = needed.clone().any(|i| {
            let key = chunk_key(&cursor.path, i);
            !inner.chunks.contains(&key)
                && !inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&key)
        });
        // A reader waiting on chunks it needs gets them and the rest of its window in whole
        // GETs from the first; otherwise the window after the read is refilled.
        let (from, to) = match waiting {
            true => (needed.start, needed.end.max(needed.start + window)),
            false => (needed.end, needed.end + window),
        };
        if from < chunks {
            let range = from..stretch(to).min(chunks);
            self.ensure(&cursor.path, size, range, if waiting { 1 } else { run }, true);
        }
        if to > chunks {
            if let Some(next) = manifest.find(cursor.segment.next_offset) {
                let path = self.cursor(p, next).path;
                let n = next.size_bytes.div_ceil(cb);
                let range = from.saturating_sub(chunks)..(to - chunks).min(n);
                self.ensure(&path, next.size_bytes, range, self.inner.run_chunks, true);
            }
        }
    }

    /// Starts GETs for the chunks of `range` of the object at `path` (`size` bytes) that are
    /// neither cached nor in flight, when there are at least `min_missing` of them or they
    /// reach the object's end; adjacent ones go in one GET of up to `get_max_bytes`.
    fn ensure(
        &self,
        path: &ObjectPath,
        size: u64,
        range: Range<u64>,
        min_missing: u64,
        ahead: bool,
    ) {
        let inner = &self.inner;
        let last = size.div_ceil(inner.chunk_bytes);
        let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<u64> = range
            .filter(|&i| i < last)
            .filter(|&i| {
                let key = chunk_key(path, i);
                !map.contains_key(&key) && !inner.chunks.contains(&key)
            })
            .collect();
        let reaches_end = missing.last().is_some_and(|&i| i + 1 == last);
        if missing.is_empty() || (missing.len() as u64) < min_missing && !reaches_end {
            return;
        }
        let mut run = missing[0]..missing[0] + 1;
        for &i in &missing[1..] {
            if i == run.end && run.end - run.start < inner.run_chunks {
                run.end += 1;
            } else {
                self.start_get(&mut map, path, size, run, ahead);
                run = i..i + 1;
            }
        }
        self.start_get(&mut map, path, size, run, ahead);
    }

    /// One ranged GET for chunks `run` of the object at `path`, on the cold-read runtime;
    /// each chunk is in `in_flight` (the caller holds its lock) until it is in the cache.
    fn start_get(
        &self,
        in_flight: &mut HashMap<String, ChunkFuture>,
        path: &ObjectPath,
        size: u64,
        run: Range<u64>,
        ahead: bool,
    ) {
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
                if let Ok(all) = &got {
                    let s = &inner.stats;
                    s.chunk_gets.fetch_add(1, Ordering::Relaxed);
                    s.chunk_get_bytes.fetch_add(all.len() as u64, Ordering::Relaxed);
                    if ahead {
                        s.chunks_read_ahead.fetch_add(keys.len() as u64, Ordering::Relaxed);
                    }
                    for (j, key) in keys.iter().enumerate() {
                        inner.chunks.insert(key.clone(), slice_chunk(all, j, cb));
                    }
                }
                // After the cache has them, so a reader finds each chunk in one or the other.
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

    /// The first offset at or after `ts` among the remote segments, with its batch's max
    /// timestamp, at batch granularity (as the local lookup).
    pub async fn offset_for_timestamp(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, Error> {
        let Some(segment) = manifest.first_at_or_after(ts) else { return Ok(None) };
        let cursor = self.cursor(p, segment);
        let index = self.index(p, segment).await?;
        let mut pos = index.skip_older(ts).map_or(0, |rel| index.position(rel));
        while pos < segment.size_bytes {
            let header = self.header_at(&cursor, pos).await?;
            if header.max_timestamp >= ts {
                return Ok(Some((header.base_offset, header.max_timestamp)));
            }
            pos += header.total_len() as u64;
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
        let inner = &self.inner;
        let key = chunk_key(&cursor.path, i);
        let mut refetch = false;
        loop {
            let pending = {
                let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if !map.contains_key(&key) && (refetch || !inner.chunks.contains(&key)) {
                    self.start_get(
                        &mut map,
                        &cursor.path,
                        cursor.segment.size_bytes,
                        i..i + 1,
                        false,
                    );
                }
                map.get(&key).cloned()
            };
            if let Some(pending) = pending {
                cursor.waited.store(true, Ordering::Relaxed);
                inner.stats.chunk_misses.fetch_add(1, Ordering::Relaxed);
                return pending.await;
            }
            let in_memory = inner.chunks.memory().contains(&key);
            match inner.chunks.get(&key).await {
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

fn cache_error(dir: &std::path::Path, e: foyer::Error) -> Error {
    Error::internal(format!("cannot open the chunk cache in {}: {e}", dir.display()))
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
    async fn read_all(reader: &RemoteReader, p: &PartitionRef, m: &Manifest) -> u64 {
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
        let index_gets = m.segments.len() as u64;
        assert_eq!(gets(&catalog) - before, data_gets + index_gets, "chunk and index GETs only");
        let counts = reader.counts();
        assert!(counts.chunks_read_ahead > 0, "{counts:?}");
        assert_eq!(counts.chunk_get_bytes, m.size_bytes(), "every byte fetched once");
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

    /// Chunks the memory tier had to let go are served by the disk tier: a second reader of
    /// the same range costs no GET. Without the disk tier it would GET everything again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_reader_is_served_from_the_cache_without_a_get() {
        let (catalog, p, m, _dir) = tiered(20, 330).await;
        let cache = tempfile::tempdir().unwrap();
        // 8 MiB of memory (two GETs) for ~20 MiB read: most chunks live only on disk
        // afterwards.
        let settings = settings(8 * MIB, 256 * MIB);
        let reader = RemoteReader::open(catalog.clone(), &settings, Some(cache.path().into()));
        let reader = reader.await.unwrap();
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
