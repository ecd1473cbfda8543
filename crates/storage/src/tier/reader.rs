//! Cold reads: batches below the local log start, served from remote segments.
//!
//! A read finds the segment in the manifest, the byte position in the segment's cached
//! remote index, and then reads fixed-size chunks of the segment with ranged GETs. Chunks
//! live in a moka cache weighted by bytes (`tier.cache_bytes`), so consumers reading the
//! same data share it. A read that will span several chunks requests them together (up to
//! `tier.read_ahead_chunks` besides the first), and each read starts fetching the next
//! `tier.read_ahead_chunks` in the background for a sequential consumer. Remote requests
//! hold a permit of their own semaphore (`tier.remote_read_concurrency`) and run on the
//! async runtime, never on the blocking threads the local log uses, so a cold reader waits
//! on the bucket without holding up appends.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use moka::future::Cache;
use object_store::path::Path as ObjectPath;
use tokio::sync::Semaphore;

use super::catalog::{Catalog, PartitionRef};
use super::manifest::{Manifest, RemoteSegment, names};
use crate::log::{ReadChunk, RemoteIndex};
use crate::tier::TierSettings;
use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};
use shale_core::record::batch::{BatchHeader, HEADER_LEN};

/// Reads remote segments through a shared chunk cache.
#[derive(Debug, Clone)]
pub struct RemoteReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<Catalog>,
    chunks: Cache<(ObjectPath, u64), Bytes>,
    indexes: Cache<ObjectPath, Arc<RemoteIndex>>,
    permits: Semaphore,
    chunk_bytes: u64,
    read_ahead: u64,
    stats: ReadStats,
}

/// What remote reads did since the broker started.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Chunk lookups of reads answered from the cache (including chunks read ahead).
    pub chunk_hits: AtomicU64,
    /// Chunk lookups of reads that had to GET the chunk.
    pub chunk_misses: AtomicU64,
    /// Chunks fetched in the background: ahead of a sequential reader, or alongside the
    /// first chunk of a read that spans several.
    pub chunks_read_ahead: AtomicU64,
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
    /// See [`ReadStats::chunk_misses`].
    pub chunk_misses: u64,
    /// See [`ReadStats::chunks_read_ahead`].
    pub chunks_read_ahead: u64,
    /// See [`ReadStats::bytes_served`].
    pub bytes_served: u64,
    /// See [`ReadStats::index_hits`].
    pub index_hits: u64,
    /// See [`ReadStats::index_misses`].
    pub index_misses: u64,
    /// Bytes of chunks held by the cache now.
    pub cache_bytes: u64,
}

/// Where one read is in a remote segment.
struct Cursor<'a> {
    segment: &'a RemoteSegment,
    path: ObjectPath,
}

impl RemoteReader {
    /// A reader over `catalog`'s bucket with the cache sizes of `settings`.
    pub fn new(catalog: Arc<Catalog>, settings: &TierSettings) -> RemoteReader {
        let chunks = Cache::builder()
            .max_capacity(settings.cache_bytes)
            .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        // Indexes are small (one entry per 4 KiB of segment): a tenth of the budget.
        let indexes = Cache::builder()
            .max_capacity((settings.cache_bytes / 10).max(1 << 20))
            .weigher(|_, v: &Arc<RemoteIndex>| u32::try_from(v.weight_bytes()).unwrap_or(u32::MAX))
            .build();
        RemoteReader {
            inner: Arc::new(Inner {
                catalog,
                chunks,
                indexes,
                permits: Semaphore::new(settings.remote_read_concurrency.max(1)),
                chunk_bytes: settings.chunk_bytes.max(4096),
                read_ahead: u64::from(settings.read_ahead_chunks),
                stats: ReadStats::default(),
            }),
        }
    }

    /// Cache and request counts since the broker started.
    pub fn counts(&self) -> ReadCounts {
        let s = &self.inner.stats;
        ReadCounts {
            chunk_hits: s.chunk_hits.load(Ordering::Relaxed),
            chunk_misses: s.chunk_misses.load(Ordering::Relaxed),
            chunks_read_ahead: s.chunks_read_ahead.load(Ordering::Relaxed),
            bytes_served: s.bytes_served.load(Ordering::Relaxed),
            index_hits: s.index_hits.load(Ordering::Relaxed),
            index_misses: s.index_misses.load(Ordering::Relaxed),
            cache_bytes: self.inner.chunks.weighted_size(),
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
        let cursor =
            Cursor { segment, path: self.inner.catalog.object(p, &names::log(&segment.name)) };
        let index = self.index(p, segment).await?;
        let mut pos = index.position((offset - segment.base_offset) as u32);
        // The read will likely run into the chunks after the one at `pos`: start them now,
        // so they arrive alongside it instead of one round trip after another.
        let cb = self.inner.chunk_bytes;
        let wanted = ((pos % cb + max_bytes as u64).div_ceil(cb)).saturating_sub(1);
        self.fetch_ahead(&cursor, (pos / cb + 1) * cb, wanted.min(self.inner.read_ahead));
        // Find the batch holding `offset`.
        let first = loop {
            let header = self.header_at(&cursor, pos).await?;
            if header.next_offset() > offset {
                break header;
            }
            pos += header.total_len() as u64;
        };
        if first.next_offset() > upper_bound {
            return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset });
        }
        // Whole batches up to about max_bytes, within the segment and below the bound.
        let start = pos;
        let mut end = pos + first.total_len() as u64;
        let mut next_offset = first.next_offset();
        while end < segment.size_bytes && ((end - start) as usize) < max_bytes {
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
        self.fetch_ahead(&cursor, end, self.inner.read_ahead);
        Ok(ReadChunk { bytes, next_offset })
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
        let cursor =
            Cursor { segment, path: self.inner.catalog.object(p, &names::log(&segment.name)) };
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
        let entry = self
            .inner
            .indexes
            .entry(path.clone())
            .or_try_insert_with(async move {
                let _permit = inner.permits.acquire().await.map_err(|_| closed())?;
                let bytes = inner.catalog.bucket().get(&path).await?;
                decode_index(&path, &segment, &bytes)
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
        let chunks = futures::future::try_join_all(
            (first..=last).map(|i| self.chunk(&cursor.path, cursor.segment.size_bytes, i)),
        )
        .await?;
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

    /// Chunk `i` of an object of `size` bytes.
    async fn chunk(&self, path: &ObjectPath, size: u64, i: u64) -> Result<Bytes, Error> {
        let inner = self.inner.clone();
        let (bytes, loaded) = fetch_chunk(inner, path.clone(), size, i).await?;
        let counter =
            if loaded { &self.inner.stats.chunk_misses } else { &self.inner.stats.chunk_hits };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Starts fetching, in the background, the `chunks` chunks from the one holding byte
    /// `from` that are not cached: ahead of a sequential reader, and the rest of a read
    /// while its first chunk is on its way.
    fn fetch_ahead(&self, cursor: &Cursor<'_>, from: u64, chunks: u64) {
        let cb = self.inner.chunk_bytes;
        let size = cursor.segment.size_bytes;
        let next = from / cb;
        for i in next..next + chunks {
            if i * cb >= size || self.inner.chunks.contains_key(&(cursor.path.clone(), i)) {
                continue;
            }
            let inner = self.inner.clone();
            let path = cursor.path.clone();
            // Detached: one chunk's GET, bounded by the bucket's timeout and retries.
            shale_core::task::spawn_detached(async move {
                match fetch_chunk(inner.clone(), path, size, i).await {
                    Ok((_, true)) => {
                        inner.stats.chunks_read_ahead.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((_, false)) => {}
                    Err(e) => tracing::debug!(error = %e, "read-ahead failed"),
                }
            });
        }
    }
}

/// Chunk `i` of the object at `path` of `size` bytes, and whether this call fetched it.
async fn fetch_chunk(
    inner: Arc<Inner>,
    path: ObjectPath,
    size: u64,
    i: u64,
) -> Result<(Bytes, bool), Error> {
    let cb = inner.chunk_bytes;
    let range = i * cb..((i + 1) * cb).min(size);
    let key = (path.clone(), i);
    let loader = inner.clone();
    let entry = inner
        .chunks
        .entry(key)
        .or_try_insert_with(async move {
            let _permit = loader.permits.acquire().await.map_err(|_| closed())?;
            Ok::<_, Error>(loader.catalog.bucket().get_range(&path, range).await?)
        })
        .await
        .map_err(|e: Arc<Error>| (*e).clone())?;
    let fresh = entry.is_fresh();
    Ok((entry.into_value(), fresh))
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
