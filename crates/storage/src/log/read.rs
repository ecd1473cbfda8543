//! The read path: whole batches from an offset (the file read outside the partition lock),
//! and the lookups by time behind ListOffsets (the first batch reaching a time, the largest
//! timestamp).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::buffer::BufferedTail;
use super::index::SegmentIndex;
use super::partition::PartitionLog;
use super::scan::{header_at, read_full_at};
use super::segment::{LOG_SUFFIX, NO_TIMESTAMP, SealedSegment, segment_path};
use super::{LogError, ReadChunk};
use shale_core::disk::{DiskFile, FileHandle};
use shale_core::record::{BatchFrames, BatchHeader};

/// Where a read goes, captured under the lock and used outside it.
struct ReadTarget {
    path: PathBuf,
    source: ReadSource,
    /// Bytes of the segment that hold complete batches.
    end: u64,
    /// For a sealed segment, the offset after it: the next segment's base. A compacted
    /// segment may hold no batch from a given offset to it.
    next_offset: Option<i64>,
    /// The truncation generation seen under the lock.
    generation: u64,
}

/// What [`PartitionLog::read_target`] found.
enum Found {
    /// The answer is an empty chunk (at the end, or at the upper bound).
    Nothing,
    At(ReadTarget),
    /// Not for a memory-only read: the batch is in the file, or a lock was held.
    Elsewhere,
}

/// The segment a read goes to.
enum ReadSource {
    /// The active segment: its handle and the index position to scan from.
    Active { file: FileHandle, pos: u64 },
    /// A sealed segment: handle and index come from the shared caches.
    Sealed { seg: SealedSegment, interval: u64 },
}

impl PartitionLog {
    /// Whole batches from the one containing `offset`, up to about `max_bytes` (at least one
    /// batch), none reaching `upper_bound`. The file read happens outside the lock.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<ReadChunk, LogError> {
        let _fence = self.inner.fence_in();
        // A truncation or retention pass between the lock and the file read can pull the
        // bytes away; the state after it decides between out-of-range and a retry.
        let (mut attempts, mut offset) = (0, offset);
        loop {
            let target = match self.read_target(offset, max_bytes, upper_bound, false)? {
                Found::At(target) => target,
                Found::Nothing => {
                    return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset });
                }
                // `read_target` sends only a memory-only read elsewhere.
                Found::Elsewhere => unreachable!("a read that may wait was sent elsewhere"),
            };
            let result = self.read_at(&target, offset, max_bytes, upper_bound);
            // Nothing from `offset` to the segment's end (a compacted segment whose last
            // batches were removed): the read goes on at the next segment.
            if let Ok(chunk) = &result
                && chunk.bytes.is_empty()
                && chunk.next_offset > offset
            {
                (offset, attempts) = (chunk.next_offset, 0);
                continue;
            }
            let Err(e) = result else { return result };
            let st = self.inner.lock()?;
            if offset < st.log_start() || offset > st.log_end() {
                return Err(st.out_of_range(offset));
            }
            attempts += 1;
            if st.generation == target.generation || attempts == 3 {
                return Err(e);
            }
        }
    }

    /// [`read`](Self::read) when it touches memory only and waits for nothing: `None`
    /// when the batch holding `offset` is not in the active segment's buffer, or when a
    /// lock it needs is held (an append writing a full buffer or rolling holds the log's
    /// across file I/O); the caller then reads on a thread that may wait. A consumer at
    /// the tail reads this way, on the runtime's worker that serves it.
    pub fn read_if_buffered(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Option<ReadChunk>, LogError> {
        let Some(_fence) = self.inner.try_fence_in() else { return Ok(None) };
        match self.read_target(offset, max_bytes, upper_bound, true)? {
            Found::Nothing => Ok(Some(ReadChunk { bytes: Bytes::new(), next_offset: offset })),
            Found::At(target) => self.read_at(&target, offset, max_bytes, upper_bound).map(Some),
            Found::Elsewhere => Ok(None),
        }
    }

    /// Under the lock: checks the range and captures where `offset` is. A read of the
    /// active segment that reaches bytes still in its buffer (within `max_bytes` of where
    /// it starts) takes a copy of them, and one that does not reads the file up to where
    /// they start: the buffer stays as it is. With `memory_only` a read that starts in
    /// the file, or would wait for a held lock, is [`Found::Elsewhere`].
    fn read_target(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        memory_only: bool,
    ) -> Result<Found, LogError> {
        let st = match memory_only {
            true => match self.inner.try_lock()? {
                Some(st) => st,
                None => return Ok(Found::Elsewhere),
            },
            false => self.inner.lock()?,
        };
        if offset < st.log_start() || offset > st.log_end() {
            return Err(st.out_of_range(offset));
        }
        if offset == st.log_end() || offset >= upper_bound {
            return Ok(Found::Nothing);
        }
        let a = &st.active;
        let generation = st.generation;
        if offset >= a.base {
            let mut pos = u64::from(a.builder.index.lookup((offset - a.base) as u32).pos);
            let file = a.file(&self.inner.resources)?;
            let (path, mut end) = (a.path.clone(), a.size);
            let b = match memory_only {
                true => match self.inner.try_buffer() {
                    Some(b) => b,
                    None => return Ok(Found::Elsewhere),
                },
                false => self.inner.buffer(),
            };
            // The first buffered batch's base offset (the buffer holds whole batches): from
            // it on, the batch holding `offset` is buffered, and the read starts there.
            let buffered_from = BatchHeader::parse(b.bytes()).ok().map(|h| h.base_offset);
            let in_memory = !b.is_empty() && buffered_from.is_some_and(|from| offset >= from);
            if memory_only && !in_memory {
                return Ok(Found::Elsewhere);
            }
            if in_memory {
                pos = pos.max(b.at());
            }
            let file: shale_core::disk::FileHandle = if b.is_empty() {
                file
            } else if !in_memory && b.at().saturating_sub(pos) >= max_bytes as u64 {
                // The read starts in the file and ends there: nothing buffered is needed.
                end = b.at();
                file
            } else {
                let tail_at = pos.max(b.at());
                let from = usize::try_from(tail_at - b.at()).unwrap_or(usize::MAX);
                let tail = Bytes::copy_from_slice(b.bytes().get(from..).unwrap_or_default());
                std::sync::Arc::new(BufferedTail { file, written: b.at(), tail_at, tail })
            };
            let source = ReadSource::Active { file, pos };
            return Ok(Found::At(ReadTarget { path, source, end, next_offset: None, generation }));
        }
        if memory_only {
            // A sealed segment is read from its file.
            return Ok(Found::Elsewhere);
        }
        let seg = st.sealed.range(..=offset).next_back().map(|(_, s)| s.clone());
        let seg = seg.ok_or_else(|| st.out_of_range(offset))?;
        let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
        let (end, next_offset) = (seg.size, Some(seg.next_offset));
        let source = ReadSource::Sealed { seg, interval: st.config.index_interval_bytes as u64 };
        Ok(Found::At(ReadTarget { path, source, end, next_offset, generation }))
    }

    /// Outside the lock: finds the batch containing `offset` and reads whole batches in one
    /// positional read.
    fn read_at(
        &self,
        target: &ReadTarget,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<ReadChunk, LogError> {
        let (file, mut pos) = match &target.source {
            ReadSource::Active { file, pos } => (file.clone(), *pos),
            ReadSource::Sealed { seg, interval } => {
                let index = self.inner.sealed_index(seg, *interval)?;
                let file = self.inner.resources.handle(&target.path)?;
                (file, u64::from(index.lookup((offset - seg.base) as u32).pos))
            }
        };
        let path = &target.path;
        let first = loop {
            if let Some(next_offset) =
                target.next_offset.filter(|n| pos >= target.end && *n > offset)
            {
                return Ok(ReadChunk { bytes: Bytes::new(), next_offset });
            }
            let header = header_at(&*file, path, pos, target.end)?;
            if header.next_offset() > offset {
                break header;
            }
            pos += header.total_len() as u64;
        };
        if first.next_offset() > upper_bound {
            return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset });
        }
        let want = first.total_len().max(max_bytes.min((target.end - pos) as usize));
        let mut buf = vec![0u8; want];
        let n = read_full_at(&*file, &mut buf, pos).map_err(|e| LogError::io(path, e))?;
        let (mut kept, mut next_offset) = (0, offset);
        for item in BatchFrames::new(&buf[..n], usize::MAX) {
            match item {
                Ok((header, range)) if header.next_offset() <= upper_bound => {
                    kept = range.end;
                    next_offset = header.next_offset();
                }
                _ => break,
            }
        }
        if kept == 0 {
            return Err(LogError::Corrupt {
                path: path.clone(),
                offset,
                reason: format!("short read of the batch at byte {pos}"),
            });
        }
        buf.truncate(kept);
        Ok(ReadChunk { bytes: Bytes::from(buf), next_offset })
    }

    /// The first batch ending after `from` (and after the log start) whose max timestamp is
    /// `>= ts`, as (its base offset, its max timestamp); `None` if every such batch is older.
    /// Like Kafka's ListOffsets, at batch granularity: the caller refines within the batch
    /// with the record codec (the batch found may begin below `from`).
    pub fn offset_for_timestamp(&self, ts: i64, from: i64) -> Result<Option<(i64, i64)>, LogError> {
        let _fence = self.inner.fence_in();
        let (segments, interval, from) = self.lookup_targets(from, Some(ts))?;
        for seg in &segments {
            if seg.next_offset <= from || self.segment_max(seg, interval)? < ts {
                continue;
            }
            let (file, path, start) = self.scan_start(seg, interval, from, Some(ts))?;
            let found = scan(&*file, &path, start, seg.end, |h| {
                (h.next_offset() > from && h.max_timestamp >= ts).then_some(())
            })?;
            if let Some(h) = found {
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// The largest max timestamp of the batches that start at or after `from` (and the log
    /// start) and end at or below `until`; `None` when there is none (or none has a
    /// timestamp). Segments wholly in range answer from their metadata; only the segments
    /// holding `from` or `until` are scanned, batch header by batch header. ListOffsets'
    /// MAX_TIMESTAMP (KIP-734) is built on it.
    pub fn max_timestamp(&self, from: i64, until: i64) -> Result<Option<i64>, LogError> {
        let _fence = self.inner.fence_in();
        let (segments, interval, from) = self.lookup_targets(from, None)?;
        let mut max = None;
        for seg in &segments {
            if seg.next_offset <= from || seg.base >= until {
                continue;
            }
            let ts = if seg.base >= from && seg.next_offset <= until {
                Some(self.segment_max(seg, interval)?).filter(|ts| *ts != NO_TIMESTAMP)
            } else {
                let (file, path, start) = self.scan_start(seg, interval, from, None)?;
                let mut best: Option<i64> = None;
                scan(&*file, &path, start, seg.end, |h| {
                    if h.next_offset() > until {
                        return Some(());
                    }
                    if h.base_offset >= from && h.max_timestamp != NO_TIMESTAMP {
                        best = best.max(Some(h.max_timestamp));
                    }
                    None
                })?;
                best
            };
            max = max.max(ts);
        }
        Ok(max.filter(|ts| *ts >= 0))
    }

    /// Under the lock: every segment (the active one last) as a lookup from `from` (for
    /// `ts`) sees it, the index interval, and `from` raised to the log start.
    fn lookup_targets(
        &self,
        from: i64,
        ts: Option<i64>,
    ) -> Result<(Vec<Target>, u64, i64), LogError> {
        let mut st = self.inner.lock()?;
        self.inner.settle_buffer(&mut st)?;
        let from = from.max(st.log_start());
        let a = &st.active;
        let mut segments: Vec<Target> = st
            .sealed
            .values()
            .map(|s| Target {
                base: s.base,
                next_offset: s.next_offset,
                end: s.size,
                sealed: Some(s.clone()),
                active: None,
            })
            .collect();
        let active = ActiveTarget {
            file: a.file(&self.inner.resources)?,
            path: a.path.clone(),
            start: start_position(&a.builder.index, a.base, from, ts),
            max_timestamp: a.builder.max_timestamp,
        };
        segments.push(Target {
            base: a.base,
            next_offset: a.next_offset,
            end: a.size,
            sealed: None,
            active: Some(active),
        });
        Ok((segments, st.config.index_interval_bytes as u64, from))
    }

    /// A segment's max timestamp ([`NO_TIMESTAMP`] when no batch has one).
    fn segment_max(&self, seg: &Target, interval: u64) -> Result<i64, LogError> {
        match (&seg.sealed, &seg.active) {
            (Some(s), _) => self.inner.sealed_max_timestamp(s, interval),
            (None, Some(a)) => Ok(a.max_timestamp),
            (None, None) => Ok(NO_TIMESTAMP),
        }
    }

    /// A segment's file handle and path, and the byte position a scan from `from` (for
    /// `ts`) starts at.
    fn scan_start(
        &self,
        seg: &Target,
        interval: u64,
        from: i64,
        ts: Option<i64>,
    ) -> Result<(FileHandle, PathBuf, u64), LogError> {
        if let Some(a) = &seg.active {
            return Ok((a.file.clone(), a.path.clone(), a.start));
        }
        let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
        let sealed = seg.sealed.as_ref().expect("a target is sealed or active");
        let index = self.inner.sealed_index(sealed, interval)?;
        let start = start_position(&index, seg.base, from, ts);
        Ok((self.inner.resources.handle(&path)?, path, start))
    }

    /// Test view: the byte position the read path starts scanning from for `offset`.
    #[cfg(test)]
    pub(super) fn index_position(&self, offset: i64) -> (i64, u64) {
        let st = self.inner.peek();
        let a = &st.active;
        if offset >= a.base {
            return (a.base, u64::from(a.builder.index.lookup((offset - a.base) as u32).pos));
        }
        let seg = st.sealed.range(..=offset).next_back().map(|(_, s)| s.clone()).expect("in range");
        let interval = st.config.index_interval_bytes as u64;
        drop(st);
        let index = self.inner.sealed_index(&seg, interval).expect("index loads");
        (seg.base, u64::from(index.lookup((offset - seg.base) as u32).pos))
    }
}

/// One segment as a lookup by time sees it, captured under the lock.
struct Target {
    base: i64,
    next_offset: i64,
    /// Bytes of the segment that hold complete batches.
    end: u64,
    sealed: Option<SealedSegment>,
    active: Option<ActiveTarget>,
}

/// The active segment's handle, where a scan of it starts, and its max timestamp, taken
/// under the lock (its index changes with every append).
struct ActiveTarget {
    file: FileHandle,
    path: PathBuf,
    start: u64,
    max_timestamp: i64,
}

/// Where a scan of a segment (based at `base`, indexed by `index`) for batches ending after
/// `from`, and reaching `ts` when given, may start: past the batches the indexes rule out.
fn start_position(index: &SegmentIndex, base: i64, from: i64, ts: Option<i64>) -> u64 {
    let rel = u32::try_from((from - base).max(0)).unwrap_or(u32::MAX);
    let by_offset = index.lookup(rel).pos;
    let by_time = ts.and_then(|ts| index.lookup_time(ts)).map_or(0, |rel| index.lookup(rel).pos);
    u64::from(by_offset.max(by_time))
}

/// Reads batch headers from `pos` to `end` until `stop` says so; the header it stopped at.
fn scan(
    file: &dyn DiskFile,
    path: &Path,
    mut pos: u64,
    end: u64,
    mut stop: impl FnMut(&BatchHeader) -> Option<()>,
) -> Result<Option<BatchHeader>, LogError> {
    while pos < end {
        let header = header_at(file, path, pos, end)?;
        if stop(&header).is_some() {
            return Ok(Some(header));
        }
        pos += header.total_len() as u64;
    }
    Ok(None)
}
