//! What tiered storage needs from the local log: the sealed segments, a slice of one to
//! upload with an index of its own, and a restart at a later offset for a replica whose
//! older history lives in the bucket.
//!
//! A remote segment's index object is the two local index files back to back: a `u32` BE
//! length of the offset index, the `.index` bytes, then the `.timeindex` bytes. Offsets are
//! relative to the slice's first offset and positions to its first byte, so a slice cut from
//! the middle of a local segment (a new leader whose segments are split differently) indexes
//! the same way as a whole one.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::LogError;
use super::checkpoint::sync_dir;
use super::index::SegmentIndex;
use super::partition::PartitionLog;
use super::scan::{header_at, read_full_at};
use super::segment::remove_segment_files;
use super::segment::{ActiveSegment, IndexBuilder, LOG_SUFFIX, NO_TIMESTAMP, segment_path};
use shale_core::disk::FileHandle;

/// A sealed segment, as the uploader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedRange {
    /// Offset of its first batch.
    pub base: i64,
    /// Offset after its last batch.
    pub next_offset: i64,
    /// Bytes.
    pub size: u64,
}

/// The batches of one sealed segment from a batch boundary to the segment's end, with an
/// index of their own: what one remote segment is made of.
#[derive(Debug)]
pub struct UploadSlice {
    file: FileHandle,
    path: PathBuf,
    /// Byte position of the first batch in the segment file.
    start: u64,
    /// Bytes in the slice.
    pub len: u64,
    /// Offset of the first batch.
    pub base_offset: i64,
    /// Offset after the last batch.
    pub next_offset: i64,
    /// Largest batch max timestamp (-1 when no batch has one).
    pub max_timestamp: i64,
    /// The encoded remote index.
    pub index: Vec<u8>,
}

impl UploadSlice {
    /// Reads `len` bytes at `pos` within the slice (a blocking call).
    pub fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let len = len.min(self.len.saturating_sub(pos) as usize);
        let mut buf = vec![0u8; len];
        let n = read_full_at(&*self.file, &mut buf, self.start + pos)
            .map_err(|e| LogError::io(&self.path, e))?;
        if n < len {
            return Err(LogError::Corrupt {
                path: self.path.clone(),
                offset: self.base_offset,
                reason: format!("segment ended {} bytes early", len - n),
            });
        }
        Ok(buf)
    }
}

/// The index of one remote segment, decoded.
#[derive(Debug, Clone, Default)]
pub struct RemoteIndex {
    index: SegmentIndex,
}

impl RemoteIndex {
    /// Decodes an index object of a segment of `records` offsets and `size` bytes.
    pub fn decode(bytes: &[u8], records: u64, size: u64) -> Result<RemoteIndex, String> {
        if bytes.len() < 4 {
            return Err(format!("index object of {} bytes is too short", bytes.len()));
        }
        let split = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let body = &bytes[4..];
        if split > body.len() {
            return Err(format!(
                "index object claims {split} offset-index bytes of {}",
                body.len()
            ));
        }
        let index = SegmentIndex::decode(&body[..split], &body[split..], records, size)?;
        Ok(RemoteIndex { index })
    }

    /// Byte position (within the segment) to scan from for relative offset `rel`.
    pub fn position(&self, rel: u32) -> u64 {
        u64::from(self.index.lookup(rel).pos)
    }

    /// The relative offset of the last batch known to be older than `ts`, if any: a search
    /// for `ts` may start there.
    pub fn skip_older(&self, ts: i64) -> Option<u32> {
        self.index.lookup_time(ts)
    }

    /// Approximate heap bytes (for cache weighing).
    pub fn weight_bytes(&self) -> usize {
        self.index.weight_bytes()
    }
}

pub(crate) fn encode_remote_index(index: &SegmentIndex) -> Vec<u8> {
    let offsets = index.encode_offsets();
    let times = index.encode_times();
    let mut out = Vec::with_capacity(4 + offsets.len() + times.len());
    out.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    out.extend_from_slice(&offsets);
    out.extend_from_slice(&times);
    out
}

impl PartitionLog {
    /// The sealed segments, oldest first.
    pub fn sealed_ranges(&self) -> Vec<SealedRange> {
        let st = self.inner.peek();
        st.sealed
            .values()
            .map(|s| SealedRange { base: s.base, next_offset: s.next_offset, size: s.size })
            .collect()
    }

    /// The sealed segment holding `from`, sliced from the batch starting at `from` to its
    /// end, with the slice's index; `None` when no sealed segment holds `from` (it is in the
    /// active segment, past the end, or already deleted). A blocking call.
    pub fn upload_slice(&self, from: i64) -> Result<Option<UploadSlice>, LogError> {
        let _fence = self.inner.fence_in();
        let (seg, interval) = {
            let st = self.inner.lock()?;
            let seg = st.sealed.range(..=from).next_back().map(|(_, s)| s.clone());
            match seg {
                Some(s) if from < s.next_offset => (s, st.config.index_interval_bytes as u64),
                _ => return Ok(None),
            }
        };
        let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
        let index = self.inner.sealed_index(&seg, interval)?;
        let file = self.inner.resources.handle(&path)?;
        let mut pos = u64::from(index.lookup((from - seg.base) as u32).pos);
        let corrupt = |pos: u64, reason: String| LogError::Corrupt {
            path: path.clone(),
            offset: pos as i64,
            reason,
        };
        // The batch starting at `from`, or in a compacted segment the first after it (the
        // slice then begins with a gap, or holds nothing when the segment has no batch
        // from `from` on).
        let start = loop {
            if pos >= seg.size {
                break pos;
            }
            let header = header_at(&*file, &path, pos, seg.size)?;
            if header.base_offset >= from {
                break pos;
            }
            if header.next_offset() > from {
                return Err(corrupt(
                    pos,
                    format!(
                        "offset {from} is inside the batch {}..{}, not at a batch boundary",
                        header.base_offset,
                        header.next_offset()
                    ),
                ));
            }
            pos += header.total_len() as u64;
        };
        let mut builder = IndexBuilder::new();
        let mut at = start;
        while at < seg.size {
            let header = header_at(&*file, &path, at, seg.size)?;
            let len = header.total_len() as u64;
            let rel = (header.base_offset - from) as u32;
            builder.add(rel, at - start, len, header.max_timestamp, interval);
            at += len;
        }
        builder.finish();
        let max_timestamp = match builder.max_timestamp {
            NO_TIMESTAMP => -1,
            ts => ts.max(-1),
        };
        Ok(Some(UploadSlice {
            file,
            path,
            start,
            len: seg.size - start,
            base_offset: from,
            next_offset: seg.next_offset,
            max_timestamp,
            index: encode_remote_index(&builder.index),
        }))
    }

    /// Empties the log and starts it again at `offset`, for a replica whose log ends below
    /// the leader's log start (a replaced broker, or one that was away while older data
    /// moved to the bucket): it copies only what the leader still has locally. The reset is
    /// durable before this returns.
    pub fn reset_to(&self, offset: i64) -> Result<(), LogError> {
        let inner = &*self.inner;
        let _fence = inner.fence_in();
        let dir = &inner.dir;
        let mut st = inner.lock()?;
        st.check_open()?;
        // No copy of the buffered bytes may follow the reset's frame in the journal.
        inner.buffer().dropping = true;
        let cut = inner.journal_cut(&mut st, crate::journal::Op::Reset, offset);
        if cut.is_err() {
            inner.buffer().dropping = false;
        }
        cut?;
        inner.discard_buffer();
        st.generation += 1;
        inner.lower_marks(&mut st, offset)?;
        st.stored_point = None;
        let mut bases: Vec<i64> = st.sealed.keys().copied().collect();
        bases.push(st.active.base);
        st.sealed.clear();
        st.sealed_bytes = 0;
        for base in bases {
            remove_segment_files(dir, base, &inner.resources)?;
        }
        st.active = ActiveSegment::open(&inner.resources, dir, offset, 0, IndexBuilder::new())?;
        inner.resources.evict(&st.active.path);
        st.active.write_index(inner.disk(), dir)?;
        sync_dir(inner.disk(), dir)?;
        st.active.end_point().store(inner.disk(), dir)?;
        st.stored_point = Some(st.active.end_point());
        inner.durable.store(offset, Ordering::Release);
        // Epochs start again with the first batch fetched.
        if st.epochs.truncate_from_end(i64::MIN) {
            st.epochs.store(inner.disk(), dir)?;
        }
        inner.publish(&st);
        tracing::info!(dir = %dir.display(), offset, "log reset to start at a later offset");
        Ok(())
    }
}
