//! Segments: file naming, the active segment (appends and its in-memory index), sealed
//! segment metadata, and building or loading a segment's index.

use std::path::{Path, PathBuf};

use super::buffer::SegmentBuffer;
use super::checkpoint::{RecoveryPoint, read_optional, write_atomic};
use super::index::SegmentIndex;
use super::resources::FileSlot;
use super::scan::{Scanned, Scanner};
use super::{LogError, LogResources};
use shale_core::disk::{Disk, FileHandle, OpenMode};
use shale_core::record::BatchHeader;

/// Suffix of segment data files.
pub(crate) const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// "No timestamp seen yet" for a segment's max timestamp.
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

/// `{base_offset:020}{suffix}`.
pub(crate) fn file_name(base: i64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

/// Path of a segment's file with the given suffix.
pub(crate) fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(file_name(base, suffix))
}

/// The base offset and suffix of a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let digits = name.get(..20)?;
    let suffix = &name[20..];
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || ![LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX].contains(&suffix)
    {
        return None;
    }
    Some((digits.parse().ok()?, suffix))
}

/// Builds a segment's sparse indexes as batches go by (appends, recovery, rebuilds).
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexBuilder {
    /// The index so far.
    pub index: SegmentIndex,
    /// Batch bytes since the last offset entry.
    pub bytes_since_entry: u64,
    /// Largest batch max timestamp so far ([`NO_TIMESTAMP`] if none).
    pub max_timestamp: i64,
    /// Relative base offset of the latest batch.
    pub last_rel: u32,
}

impl IndexBuilder {
    /// A builder for an empty segment.
    pub(crate) fn new() -> Self {
        IndexBuilder { max_timestamp: NO_TIMESTAMP, ..Default::default() }
    }

    /// Notes a batch at relative offset `rel` and byte `pos`: an index entry once
    /// `interval` bytes went by since the last one (position 0 needs none).
    pub(crate) fn add(&mut self, rel: u32, pos: u64, len: u64, max_timestamp: i64, interval: u64) {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        if pos > 0 && self.bytes_since_entry >= interval {
            self.index.push_offset(rel, pos as u32);
            self.index.push_time(self.max_timestamp, rel);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len;
        self.last_rel = rel;
    }

    /// Records the final max timestamp so the time index's last entry is the segment's
    /// max (done before the index is written out).
    pub(crate) fn finish(&mut self) {
        if self.max_timestamp != NO_TIMESTAMP {
            self.index.push_time(self.max_timestamp, self.last_rel);
        }
    }
}

/// Writes both index files of a segment atomically.
pub(crate) fn write_index_files(
    disk: &dyn Disk,
    dir: &Path,
    base: i64,
    index: &SegmentIndex,
) -> Result<(), LogError> {
    write_atomic(disk, dir, &file_name(base, INDEX_SUFFIX), &index.encode_offsets())?;
    write_atomic(disk, dir, &file_name(base, TIME_INDEX_SUFFIX), &index.encode_times())
}

/// Reads a segment's index files, keeping entries below the given limits; `None` if
/// either file is missing or invalid (logged), so the caller rebuilds.
pub(crate) fn read_index_files(
    disk: &dyn Disk,
    dir: &Path,
    base: i64,
    rel_limit: u64,
    pos_limit: u64,
) -> Result<Option<SegmentIndex>, LogError> {
    let offsets = read_optional(disk, &segment_path(dir, base, INDEX_SUFFIX))?;
    let times = read_optional(disk, &segment_path(dir, base, TIME_INDEX_SUFFIX))?;
    let (Some(offsets), Some(times)) = (offsets, times) else { return Ok(None) };
    match SegmentIndex::decode(&offsets, &times, rel_limit, pos_limit) {
        Ok(index) => Ok(Some(index)),
        Err(reason) => {
            let path = segment_path(dir, base, INDEX_SUFFIX);
            tracing::warn!(path = %path.display(), %reason, "index files invalid; rebuilding");
            Ok(None)
        }
    }
}

/// Loads a sealed segment's index, rebuilding (and rewriting) it from the segment's batches
/// when the files are missing, invalid, or lack the final max-timestamp entry.
pub(crate) fn load_sealed_index(
    disk: &dyn Disk,
    dir: &Path,
    seg: &SealedSegment,
    interval: u64,
) -> Result<SegmentIndex, LogError> {
    let rel_limit = (seg.next_offset - seg.base) as u64;
    let loaded = read_index_files(disk, dir, seg.base, rel_limit, seg.size)?;
    if let Some(index) = loaded.filter(|ix| seg.size == 0 || ix.max_timestamp().is_some()) {
        return Ok(index);
    }
    let path = segment_path(dir, seg.base, LOG_SUFFIX);
    let file = disk.open(&path, OpenMode::Read).map_err(|e| LogError::io(&path, e))?;
    let mut builder = IndexBuilder::new();
    // Data below the recovery point was validated when written; framing suffices here.
    let mut scanner = Scanner::new(&*file, &path, 0, seg.size, false);
    loop {
        match scanner.next_batch()? {
            Scanned::Batch { header, pos } => {
                let rel = (header.base_offset - seg.base) as u32;
                builder.add(rel, pos, header.total_len() as u64, header.max_timestamp, interval);
            }
            Scanned::End => break,
            Scanned::Invalid { pos, reason } => {
                return Err(LogError::Corrupt { path, offset: pos as i64, reason });
            }
        }
    }
    builder.finish();
    tracing::info!(path = %path.display(), offset = seg.base, "rebuilt segment index");
    write_index_files(disk, dir, seg.base, &builder.index)?;
    Ok(builder.index)
}

/// A sealed (read-only) segment: a few numbers; its index and file handle live in the
/// shared [`LogResources`](super::LogResources) caches.
#[derive(Debug, Clone)]
pub(crate) struct SealedSegment {
    /// Offset of its first batch (and its file name).
    pub base: i64,
    /// Offset after its last batch (the next segment's base).
    pub next_offset: i64,
    /// File size in bytes.
    pub size: u64,
    /// Largest batch max timestamp, once known (loaded lazily from the time index).
    pub max_timestamp: Option<i64>,
}

/// Uses of an active segment's file between two through the cache's lookup.
const CACHE_TOUCH: u32 = 64;

/// The segment that takes appends, with its in-memory index. Its file handle lives in the
/// shared [`LogResources`] cache like every other segment's, so a broker with many
/// partitions does not hold a descriptor per partition.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    /// Offset of its first batch.
    pub base: i64,
    /// Path of the `.log` file.
    pub path: PathBuf,
    /// Bytes written.
    pub size: u64,
    /// Offset the next batch gets.
    pub next_offset: i64,
    /// Its indexes, built as batches arrive.
    pub builder: IndexBuilder,
    /// Clock time of the first append into the segment (for `segment.ms`).
    pub first_append_ms: Option<i64>,
    /// The file's slot in the shared cache, and uses since the cache last saw one.
    slot: std::sync::Mutex<(Option<FileSlot>, u32)>,
    /// Bytes whose writeback was started (with a journal: see `Inner::write`).
    pub written_back: u64,
}

impl ActiveSegment {
    /// The recovery point at the segment's end: everything written so far is valid.
    pub(super) fn end_point(&self) -> RecoveryPoint {
        RecoveryPoint {
            offset: self.next_offset,
            segment_base: self.base,
            position: self.size,
            max_timestamp: self.builder.max_timestamp,
        }
    }

    /// Opens (creating if needed) the segment file for `base` with `size` valid bytes.
    pub(super) fn open(
        resources: &LogResources,
        dir: &Path,
        base: i64,
        size: u64,
        builder: IndexBuilder,
    ) -> Result<Self, LogError> {
        let path = segment_path(dir, base, LOG_SUFFIX);
        resources.create(&path)?;
        Ok(ActiveSegment {
            base,
            path,
            size,
            next_offset: base,
            builder,
            first_append_ms: None,
            slot: Default::default(),
            written_back: size,
        })
    }

    /// A read-write handle to the segment file, from the shared cache: through the slot
    /// the segment keeps while the file stays open, and through the cache's lookup every
    /// [`CACHE_TOUCH`]th time, so that the cache still sees the file as in use when it
    /// chooses what to close.
    pub(super) fn file(&self, resources: &LogResources) -> Result<FileHandle, LogError> {
        let mut slot = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.1 += 1;
        if slot.1 < CACHE_TOUCH
            && let Some(file) = slot.0.as_ref().and_then(FileSlot::file)
        {
            return Ok(file);
        }
        let (file, fresh) = resources.writable_slot(&self.path)?;
        *slot = (Some(fresh), 0);
        Ok(file)
    }

    /// Writes already-stamped batches at the end of the file and indexes them. On a failed
    /// write the file is cut back so no partial batch stays visible.
    ///
    /// With a `buffer` the bytes are buffered instead; a buffer they do not fit in is
    /// written first (a failure then refuses this append, and the buffer keeps its bytes
    /// for a later try), and bytes larger than a buffer are written at once.
    pub(super) fn append(
        &mut self,
        resources: &LogResources,
        buf: &[u8],
        batches: &[(BatchHeader, std::ops::Range<usize>)],
        interval: u64,
        now_ms: i64,
        buffer: Option<&mut SegmentBuffer>,
    ) -> Result<(), LogError> {
        let total = resources.buffered();
        match buffer {
            Some(b) => {
                if !b.fits(buf.len(), total) {
                    // The appends before this one first: a failure refuses this one whole.
                    b.write(resources, true)?;
                }
                match b.fits(buf.len(), total) {
                    true => b.add(&self.path, self.size, buf, total),
                    false => self.write_through(resources, buf)?,
                }
            }
            None => self.write_through(resources, buf)?,
        }
        for (header, range) in batches {
            let rel = (header.base_offset - self.base) as u32;
            let pos = self.size + range.start as u64;
            self.builder.add(rel, pos, range.len() as u64, header.max_timestamp, interval);
        }
        if let Some((last, _)) = batches.last() {
            self.next_offset = last.next_offset();
        }
        self.size += buf.len() as u64;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Writes `buf` at the end of the file; on a failed write the file is cut back so no
    /// partial batch stays visible.
    fn write_through(&self, resources: &LogResources, buf: &[u8]) -> Result<(), LogError> {
        let file = self.file(resources)?;
        if let Err(e) = file.write_all_at(buf, self.size) {
            if let Err(cut) = file.set_len(self.size) {
                tracing::error!(path = %self.path.display(), error = %cut,
                    "could not cut back a failed append; recovery will truncate it");
            }
            return Err(LogError::io(&self.path, e));
        }
        Ok(())
    }

    /// Whether no batch has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Fsyncs the data file.
    pub(super) fn sync(&self, resources: &LogResources) -> Result<(), LogError> {
        sync_data(&*self.file(resources)?, &self.path)
    }

    /// Writes the index files, including the final max-timestamp entry.
    pub(super) fn write_index(&mut self, disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        self.builder.finish();
        write_index_files(disk, dir, self.base, &self.builder.index)
    }
}

/// Fsyncs a segment's data. The failpoint `log.fsync_eio` turns it into an EIO, a disk
/// error on demand for the fault tests of broker processes.
pub(super) fn sync_data(
    file: &dyn shale_core::disk::DiskFile,
    path: &Path,
) -> Result<(), LogError> {
    if shale_core::failpoint::active("log.fsync_eio") {
        return Err(LogError::io(path, std::io::Error::from_raw_os_error(5)));
    }
    file.sync_data().map_err(|e| LogError::io(path, e))
}

/// Deletes a segment's files (the `.log` first, so a crash never leaves a segment without
/// its data but with an index) and forgets its cached handle and index.
pub(crate) fn remove_segment_files(
    dir: &Path,
    base: i64,
    resources: &LogResources,
) -> Result<(), LogError> {
    let log = segment_path(dir, base, LOG_SUFFIX);
    resources.evict(&log);
    remove_if_exists(resources.disk(), &log)?;
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let path = segment_path(dir, base, suffix);
        if let Err(e) = remove_if_exists(resources.disk(), &path) {
            // Harmless: recovery removes index files whose segment is gone.
            tracing::warn!(path = %path.display(), error = %e, "could not remove index file");
        }
    }
    Ok(())
}

fn remove_if_exists(disk: &dyn Disk, path: &Path) -> Result<(), LogError> {
    match disk.remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LogError::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_zero_padded_and_parse_back() {
        assert_eq!(file_name(42, LOG_SUFFIX), "00000000000000000042.log");
        assert_eq!(parse_file_name("00000000000000000042.timeindex"), Some((42, ".timeindex")));
        assert_eq!(parse_file_name("00000000000000000042.log.tmp"), None);
        assert_eq!(parse_file_name("recovery-point"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log"), None);
    }

    #[test]
    fn builder_indexes_every_interval_and_tracks_max_timestamp() {
        let mut b = IndexBuilder::new();
        for i in 0..10u32 {
            b.add(i * 2, u64::from(i) * 1000, 1000, 100 - i64::from(i % 3), 2500);
        }
        // Entries after 3000 bytes: at positions 3000, 6000, 9000.
        assert_eq!(b.index.offset_entries(), 3);
        assert_eq!(b.index.lookup(13).pos, 6000);
        assert_eq!(b.max_timestamp, 100);
        b.finish();
        assert_eq!(b.index.max_timestamp(), Some(100));
    }
}
