//! Writing cleaned segments beside the ones they replace: consecutive sealed segments are
//! grouped while their sizes add up to at most `segment.bytes` (as Kafka groups them, so a
//! cleaned segment is never larger than its sources together and small cleaned segments
//! merge), and each group's batches, cleaned, go into one new segment named after the
//! group's first base offset with the suffix `.cleaned` (`log::swap`, which swaps them in): its `.log`, `.index` and
//! `.timeindex`, each fsynced, and their directory. It covers the group's offsets, from its
//! first base to the next segment's base, gaps and all. Nothing of the log changes here:
//! swapping the new segments in is the next step.

use std::path::Path;

use super::offset_map::OffsetMap;
use super::section::{Cleaned, Markers, Rules, clean_batch};
use crate::log::LogError;
use crate::log::checkpoint::write_atomic;
use crate::log::scan::{Scanned, Scanner, read_full_at};
use crate::log::segment::{
    INDEX_SUFFIX, IndexBuilder, LOG_SUFFIX, TIME_INDEX_SUFFIX, file_name, segment_path,
};
use crate::log::swap::{CLEANED, cleaned_path};
use shale_core::disk::{Disk, OpenMode};
use shale_core::record::Limits;

/// A sealed segment to clean: its base, the next segment's base, its size.
pub(crate) type Source = crate::log::SealedRange;

/// A cleaned segment written beside its sources: its base is its first source's, its next
/// offset its last source's.
pub(crate) type Written = crate::log::cleaned::CleanedSegment;

/// Bytes of a cleaned segment written between two writeback hints.
const WRITEBACK_CHUNK: u64 = 1 << 20;

/// How the rewrite writes.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `segment.bytes`: the most bytes of sources one cleaned segment takes.
    pub(crate) segment_bytes: u64,
    /// `index.interval.bytes`: bytes between two index entries.
    pub(crate) index_interval: u64,
}

/// Cleans `sources` (consecutive sealed segments of the log in `dir`, in offset order)
/// against `map` under `rules`, into cleaned segments beside them, durable when this
/// returns; `markers` follows the transactions (and lists the abort markers removed);
/// `pace` is called with the bytes of each batch read (the cleaner's I/O budget waits
/// there).
pub(crate) fn write_cleaned(
    disk: &dyn Disk,
    dir: &Path,
    sources: &[Source],
    map: &OffsetMap,
    (rules, markers): (&Rules, &mut Markers),
    layout: &Layout,
    pace: &mut dyn FnMut(u64),
) -> Result<Vec<Written>, LogError> {
    let mut written = Vec::new();
    for group in groups(sources, layout.segment_bytes) {
        let rules = (rules, &mut *markers);
        written.push(write_group(disk, dir, group, map, rules, layout, pace)?);
    }
    Ok(written)
}

/// Consecutive sources whose sizes add up to at most `segment_bytes` (at least one each),
/// each group's offsets within a segment's relative range (an index keeps them as `u32`).
fn groups(sources: &[Source], segment_bytes: u64) -> Vec<&[Source]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, s) in sources.iter().enumerate() {
        let span = s.next_offset - sources[start].base;
        if i > start && (bytes + s.size > segment_bytes || span > i64::from(i32::MAX)) {
            out.push(&sources[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += s.size;
    }
    if start < sources.len() {
        out.push(&sources[start..]);
    }
    out
}

/// Cleans one group of sources into one segment.
fn write_group(
    disk: &dyn Disk,
    dir: &Path,
    group: &[Source],
    map: &OffsetMap,
    (rules, markers): (&Rules, &mut Markers),
    layout: &Layout,
    pace: &mut dyn FnMut(u64),
) -> Result<Written, LogError> {
    let base = group[0].base;
    let out_path = cleaned_path(dir, base, LOG_SUFFIX);
    let out =
        disk.open(&out_path, OpenMode::CreateTruncate).map_err(|e| LogError::io(&out_path, e))?;
    let mut index = IndexBuilder::new();
    let (mut size, mut written_back) = (0u64, 0u64);
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    for source in group {
        let path = segment_path(dir, source.base, LOG_SUFFIX);
        let file = disk.open(&path, OpenMode::Read).map_err(|e| LogError::io(&path, e))?;
        let mut scanner = Scanner::new(&*file, &path, 0, source.size, true);
        loop {
            let (header, pos) = match scanner.next_batch()? {
                Scanned::Batch { header, pos } => (header, pos),
                Scanned::End => break,
                Scanned::Invalid { pos, reason } => {
                    let offset = source.base;
                    let reason = format!("a sealed segment's batch at byte {pos}: {reason}");
                    return Err(LogError::Corrupt { path, offset, reason });
                }
            };
            let mut batch = vec![0u8; header.total_len()];
            read_full_at(&*file, &mut batch, pos).map_err(|e| LogError::io(&path, e))?;
            pace(batch.len() as u64);
            let cleaned = clean_batch(&batch, map, (rules, &mut *markers), &limits)?;
            let bytes = match &cleaned {
                Cleaned::Whole => &batch,
                Cleaned::Part(bytes) => bytes,
                Cleaned::Gone => continue,
            };
            out.write_all_at(bytes, size).map_err(|e| LogError::io(&out_path, e))?;
            if size + bytes.len() as u64 - written_back >= WRITEBACK_CHUNK {
                // A hint, as appends give theirs: the bytes reach the disk as they are
                // written, not in one burst at the fsync below, which would hold the
                // journal's fsyncs (and every acknowledgement) behind it.
                let _ = out.start_writeback(written_back, size + bytes.len() as u64 - written_back);
                written_back = size + bytes.len() as u64;
            }
            let max_ts = shale_core::record::BatchHeader::parse(bytes)?.max_timestamp;
            let rel = (header.base_offset - base) as u32;
            index.add(rel, size, bytes.len() as u64, max_ts, layout.index_interval);
            size += bytes.len() as u64;
        }
    }
    out.sync_data().map_err(|e| LogError::io(&out_path, e))?;
    index.finish();
    // Each index file is written atomically, its directory fsynced after: the `.log` file
    // created above is then durable by name too.
    let name = |suffix| format!("{}{CLEANED}", file_name(base, suffix));
    write_atomic(disk, dir, &name(INDEX_SUFFIX), &index.index.encode_offsets())?;
    write_atomic(disk, dir, &name(TIME_INDEX_SUFFIX), &index.index.encode_times())?;
    let max_timestamp = index.index.max_timestamp();
    let next_offset = group[group.len() - 1].next_offset;
    Ok(Written { base, next_offset, size, max_timestamp })
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::clean::section::map_section;
    use crate::log::index::SegmentIndex;
    use shale_core::disk::{SimDisk, SimOptions};
    use shale_core::record::batch::stamp;
    use shale_core::record::{BatchBuilder, BatchHeader, Compression, Record, decode_batches};

    pub(crate) const DIR: &str = "/log";

    /// `segments` sources of `per` batches of two records each, from offset 0, every record keyed by
    /// `i % keys`; written and synced on `disk`. Returns them and every batch in order.
    pub(crate) fn sources(
        disk: &SimDisk,
        segments: usize,
        per: usize,
        keys: u8,
    ) -> (Vec<Source>, Vec<Vec<u8>>) {
        disk.create_dir_all(Path::new(DIR)).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        let (mut out, mut all, mut next) = (Vec::new(), Vec::new(), 0i64);
        for _ in 0..segments {
            let base = next;
            let mut bytes = Vec::new();
            for _ in 0..per {
                let mut b = BatchBuilder::new(Compression::None);
                for _ in 0..2 {
                    b.push(Record {
                        key: Some(Bytes::from(vec![(next as u8 + b.len() as u8) % keys])),
                        value: Some(Bytes::from(vec![1; 100])),
                        headers: vec![],
                        timestamp_ms: 1_000 + next,
                    });
                }
                let mut batch = b.build().to_vec();
                stamp(&mut batch, next, 0);
                next += 2;
                bytes.extend_from_slice(&batch);
                all.push(batch);
            }
            let path = segment_path(Path::new(DIR), base, LOG_SUFFIX);
            let file = disk.open(&path, OpenMode::CreateTruncate).unwrap();
            file.write_all_at(&bytes, 0).unwrap();
            file.sync_data().unwrap();
            out.push(Source { base, next_offset: next, size: bytes.len() as u64 });
        }
        disk.sync_dir(Path::new(DIR)).unwrap();
        (out, all)
    }

    pub(crate) fn read(disk: &SimDisk, path: &Path) -> Vec<u8> {
        let file = disk.open(path, OpenMode::Read).unwrap();
        let mut buf = vec![0u8; file.size().unwrap() as usize];
        read_full_at(&*file, &mut buf, 0).unwrap();
        buf
    }

    /// The cleaned segments hold exactly the batches cleaning them in memory gives, group
    /// by group, cover their sources' offsets, index every batch they hold, and survive a
    /// power cut once written.
    #[test]
    fn cleaned_segments_hold_the_cleaned_batches_and_are_durable() {
        let disk = SimDisk::new(SimOptions { seed: 3, torn_tails: true, ..Default::default() });
        let (sources, batches) = sources(&disk, 5, 6, 4);
        let mut map = OffsetMap::with_memory(1 << 20);
        let limits = Limits::default();
        let end = sources[4].next_offset;
        map_section(batches.iter().map(Vec::as_slice), &mut map, &limits, end, &Default::default())
            .unwrap();
        let rules = Rules::default();
        let layout = Layout { segment_bytes: 2 * sources[0].size, index_interval: 200 };
        let written = write_cleaned(
            &disk,
            Path::new(DIR),
            &sources,
            &map,
            (&rules, &mut Markers::removing()),
            &layout,
            &mut |_| {},
        )
        .unwrap();
        disk.crash();

        // Groups of two sources: 0-1, 2-3, 4.
        let bases: Vec<i64> = written.iter().map(|w| w.base).collect();
        assert_eq!(bases, [sources[0].base, sources[2].base, sources[4].base]);
        assert_eq!(written[2].next_offset, end);
        let mut want = Vec::new();
        for b in &batches {
            match clean_batch(b, &map, (&rules, &mut Markers::removing()), &limits).unwrap() {
                Cleaned::Whole => want.push(b.clone()),
                Cleaned::Part(p) => want.push(p),
                Cleaned::Gone => {}
            }
        }
        let mut got = Vec::new();
        for w in &written {
            let bytes = read(&disk, &cleaned_path(Path::new(DIR), w.base, LOG_SUFFIX));
            assert_eq!(bytes.len() as u64, w.size, "the size written");
            let offsets = read(&disk, &cleaned_path(Path::new(DIR), w.base, INDEX_SUFFIX));
            let times = read(&disk, &cleaned_path(Path::new(DIR), w.base, TIME_INDEX_SUFFIX));
            let index = SegmentIndex::decode(&offsets, &times, u64::MAX, w.size).unwrap();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                assert!(h.base_offset >= w.base && h.next_offset() <= w.next_offset);
                let rel = (h.base_offset - w.base) as u32;
                assert!(u64::from(index.lookup(rel).pos) <= pos as u64, "indexed at or before");
                got.push(bytes[pos..pos + h.total_len()].to_vec());
                pos += h.total_len();
            }
        }
        assert_eq!(got, want, "the cleaned batches, in order");
        let records = decode_batches(&Bytes::from(got.concat()), &limits).unwrap();
        assert_eq!(records.len(), 4, "one record per key");
    }

    #[test]
    fn sources_group_up_to_the_segment_size_and_never_split() {
        let s = |base, size| Source { base, next_offset: base + 1, size };
        let sources = [s(0, 60), s(1, 30), s(2, 30), s(3, 200), s(4, 10)];
        let bases: Vec<Vec<i64>> =
            groups(&sources, 100).iter().map(|g| g.iter().map(|s| s.base).collect()).collect();
        assert_eq!(bases, [vec![0, 1], vec![2], vec![3], vec![4]]);
    }
}
