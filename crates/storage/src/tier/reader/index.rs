//! Positions in a remote segment: its remote index (GET once, then cached), the batch
//! header at a byte, and the lookup by timestamp.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use object_store::path::Path as ObjectPath;

use super::{Cursor, RemoteReader, closed};
use crate::log::RemoteIndex;
use crate::tier::catalog::PartitionRef;
use crate::tier::manifest::{Manifest, RemoteSegment, names};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::batch::{BatchHeader, HEADER_LEN};

impl RemoteReader {
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
    pub(super) async fn index(
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
    pub(super) async fn header_at(
        &self,
        cursor: &Cursor<'_>,
        pos: u64,
    ) -> Result<BatchHeader, Error> {
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
