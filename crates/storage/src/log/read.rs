//! The read path: whole batches from an offset (the file read outside the partition lock),
//! and the timestamp lookup behind ListOffsets.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::partition::PartitionLog;
use super::scan::{header_at, read_full_at};
use super::segment::{LOG_SUFFIX, SealedSegment, segment_path};
use super::{LogError, ReadChunk};
use shale_core::disk::{DiskFile, FileHandle};
use shale_core::record::BatchFrames;

/// Where a read goes, captured under the lock and used outside it.
struct ReadTarget {
    path: PathBuf,
    source: ReadSource,
    /// Bytes of the segment that hold complete batches.
    end: u64,
    /// The truncation generation seen under the lock.
    generation: u64,
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
        // A truncation or retention pass between the lock and the file read can pull the
        // bytes away; the state after it decides between out-of-range and a retry.
        let mut attempts = 0;
        loop {
            let target = match self.read_target(offset, upper_bound)? {
                Some(target) => target,
                None => return Ok(ReadChunk { bytes: Bytes::new(), next_offset: offset }),
            };
            let result = self.read_at(&target, offset, max_bytes, upper_bound);
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

    /// Under the lock: checks the range and captures where `offset` is; `None` when the
    /// answer is an empty chunk.
    fn read_target(&self, offset: i64, upper_bound: i64) -> Result<Option<ReadTarget>, LogError> {
        let st = self.inner.lock()?;
        if offset < st.log_start() || offset > st.log_end() {
            return Err(st.out_of_range(offset));
        }
        if offset == st.log_end() || offset >= upper_bound {
            return Ok(None);
        }
        let a = &st.active;
        let generation = st.generation;
        if offset >= a.base {
            let pos = u64::from(a.builder.index.lookup((offset - a.base) as u32).pos);
            let source = ReadSource::Active { file: a.file(&self.inner.resources)?, pos };
            return Ok(Some(ReadTarget { path: a.path.clone(), source, end: a.size, generation }));
        }
        let seg = st.sealed.range(..=offset).next_back().map(|(_, s)| s.clone());
        let seg = seg.ok_or_else(|| st.out_of_range(offset))?;
        let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
        let end = seg.size;
        let source = ReadSource::Sealed { seg, interval: st.config.index_interval_bytes as u64 };
        Ok(Some(ReadTarget { path, source, end, generation }))
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

    /// The first batch whose max timestamp is `>= ts`, as (its base offset, its max
    /// timestamp); `None` if every batch is older. Like Kafka's ListOffsets, at batch
    /// granularity (the caller can refine within the batch with the record codec).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let (sealed, interval, active) = {
            let st = self.inner.lock()?;
            let a = &st.active;
            let start =
                a.builder.index.lookup_time(ts).map_or(0, |rel| a.builder.index.lookup(rel).pos);
            let file = a.file(&self.inner.resources)?;
            let active = (file, a.path.clone(), u64::from(start), a.size, a.builder.max_timestamp);
            let sealed: Vec<SealedSegment> = st.sealed.values().cloned().collect();
            (sealed, st.config.index_interval_bytes as u64, active)
        };
        for seg in &sealed {
            if self.inner.sealed_max_timestamp(seg, interval)? < ts {
                continue;
            }
            let index = self.inner.sealed_index(seg, interval)?;
            let start = index.lookup_time(ts).map_or(0, |rel| index.lookup(rel).pos);
            let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
            let file = self.inner.resources.handle(&path)?;
            if let Some(found) = first_at_or_after(&*file, &path, u64::from(start), seg.size, ts)? {
                return Ok(Some(found));
            }
        }
        let (file, path, start, end, max) = active;
        if max < ts {
            return Ok(None);
        }
        first_at_or_after(&*file, &path, start, end, ts)
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

/// Scans batch headers from `pos` for the first batch with max timestamp `>= ts`.
fn first_at_or_after(
    file: &dyn DiskFile,
    path: &Path,
    mut pos: u64,
    end: u64,
    ts: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    while pos < end {
        let header = header_at(file, path, pos, end)?;
        if header.max_timestamp >= ts {
            return Ok(Some((header.base_offset, header.max_timestamp)));
        }
        pos += header.total_len() as u64;
    }
    Ok(None)
}
