//! The sparse offset index and the time index of one segment: in memory, encoded, looked up.
//!
//! Both live in memory as sorted vectors (the active segment's inside the partition, sealed
//! ones in the shared cache) and are written whole, atomically, when a segment is sealed, the
//! log is closed, or a segment is truncated. Appends never touch index files, so the write
//! path costs no extra syscalls; recovery trusts index entries only below the recovery point.

use super::checkpoint::FileHeader;

/// `.index` file header: magic `SHIX`, version 1.
pub(crate) const OFFSET_INDEX_HEADER: FileHeader = FileHeader { magic: *b"SHIX", version: 1 };
/// `.timeindex` file header: magic `SHTX`, version 1.
pub(crate) const TIME_INDEX_HEADER: FileHeader = FileHeader { magic: *b"SHTX", version: 1 };
/// Bytes per `.index` entry: relative offset u32 BE, file position u32 BE.
const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per `.timeindex` entry: timestamp i64 BE, relative offset u32 BE.
const TIME_ENTRY_LEN: usize = 12;

/// One offset index entry: the batch starting at `base + rel` is at byte `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OffsetEntry {
    /// Batch base offset minus the segment base offset.
    pub rel: u32,
    /// Byte position of that batch in the segment file.
    pub pos: u32,
}

/// One time index entry: every batch with base offset `<= base + rel` has max timestamp `<= ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest batch max timestamp so far in the segment.
    pub ts: i64,
    /// Relative base offset of the batch appended when the entry was made.
    pub rel: u32,
}

/// The offset and time index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
}

impl SegmentIndex {
    /// Adds an offset entry; ignored unless it moves both offset and position forward.
    pub(crate) fn push_offset(&mut self, rel: u32, pos: u32) {
        if self.offsets.last().is_none_or(|l| rel > l.rel && pos > l.pos) {
            self.offsets.push(OffsetEntry { rel, pos });
        }
    }

    /// Adds a time entry; ignored unless `ts` grows (the index only records new maxima).
    pub(crate) fn push_time(&mut self, ts: i64, rel: u32) {
        if self.times.last().is_none_or(|l| ts > l.ts && rel >= l.rel) {
            self.times.push(TimeEntry { ts, rel });
        }
    }

    /// The last entry at or before relative offset `rel` (position 0 if none): where to start
    /// scanning for the batch containing `rel`.
    pub(crate) fn lookup(&self, rel: u32) -> OffsetEntry {
        let i = self.offsets.partition_point(|e| e.rel <= rel);
        if i == 0 { OffsetEntry::default() } else { self.offsets[i - 1] }
    }

    /// The relative offset of the last time entry older than `ts`: every batch up to it has a
    /// max timestamp below `ts`, so a search for `ts` may skip them.
    pub(crate) fn lookup_time(&self, ts: i64) -> Option<u32> {
        let i = self.times.partition_point(|e| e.ts < ts);
        if i == 0 { None } else { Some(self.times[i - 1].rel) }
    }

    /// The largest timestamp recorded (the segment's max once sealed).
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.times.last().map(|e| e.ts)
    }

    /// The last offset entry, if any.
    pub(crate) fn last_offset_entry(&self) -> Option<OffsetEntry> {
        self.offsets.last().copied()
    }

    /// Drops entries at or beyond relative offset `rel` or byte position `pos`.
    pub(crate) fn truncate(&mut self, rel: u32, pos: u32) {
        self.offsets.retain(|e| e.rel < rel && e.pos < pos);
        self.times.retain(|e| e.rel < rel);
    }

    /// Number of offset entries.
    #[cfg(test)]
    pub(crate) fn offset_entries(&self) -> usize {
        self.offsets.len()
    }

    /// Approximate heap bytes, for the cache weigher.
    pub(crate) fn weight_bytes(&self) -> usize {
        64 + self.offsets.len() * std::mem::size_of::<OffsetEntry>()
            + self.times.len() * std::mem::size_of::<TimeEntry>()
    }

    /// The `.index` file bytes.
    pub(crate) fn encode_offsets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FileHeader::LEN + self.offsets.len() * OFFSET_ENTRY_LEN);
        OFFSET_INDEX_HEADER.write(&mut out);
        for e in &self.offsets {
            out.extend_from_slice(&e.rel.to_be_bytes());
            out.extend_from_slice(&e.pos.to_be_bytes());
        }
        out
    }

    /// The `.timeindex` file bytes.
    pub(crate) fn encode_times(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FileHeader::LEN + self.times.len() * TIME_ENTRY_LEN);
        TIME_INDEX_HEADER.write(&mut out);
        for e in &self.times {
            out.extend_from_slice(&e.ts.to_be_bytes());
            out.extend_from_slice(&e.rel.to_be_bytes());
        }
        out
    }

    /// Decodes both files, keeping only entries below `rel_limit` and `pos_limit` (the
    /// trusted part of the segment). Fails on a bad header, a partial entry or entries out
    /// of order: the caller then rebuilds the index from the segment.
    pub(crate) fn decode(
        offsets: &[u8],
        times: &[u8],
        rel_limit: u64,
        pos_limit: u64,
    ) -> Result<Self, String> {
        let mut index = SegmentIndex::default();
        for chunk in entries(offsets, OFFSET_INDEX_HEADER, OFFSET_ENTRY_LEN, ".index")? {
            let rel = be_u32(&chunk[0..4]);
            let pos = be_u32(&chunk[4..8]);
            if u64::from(rel) >= rel_limit || u64::from(pos) >= pos_limit {
                continue;
            }
            if index.offsets.last().is_some_and(|l| rel <= l.rel || pos <= l.pos) {
                return Err(format!("offset index entry ({rel}, {pos}) out of order"));
            }
            index.offsets.push(OffsetEntry { rel, pos });
        }
        for chunk in entries(times, TIME_INDEX_HEADER, TIME_ENTRY_LEN, ".timeindex")? {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[0..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = be_u32(&chunk[8..12]);
            if u64::from(rel) >= rel_limit {
                continue;
            }
            if index.times.last().is_some_and(|l| ts <= l.ts || rel < l.rel) {
                return Err(format!("time index entry ({ts}, {rel}) out of order"));
            }
            index.times.push(TimeEntry { ts, rel });
        }
        Ok(index)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

/// Checks the header and splits the rest into whole entries.
fn entries<'a>(
    bytes: &'a [u8],
    header: FileHeader,
    entry_len: usize,
    what: &str,
) -> Result<std::slice::ChunksExact<'a, u8>, String> {
    let body = header.check(bytes).map_err(|e| format!("{what} file: {e}"))?;
    if body.len() % entry_len != 0 {
        return Err(format!("{what} file has a partial entry ({} body bytes)", body.len()));
    }
    Ok(body.chunks_exact(entry_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut ix = SegmentIndex::default();
        ix.push_offset(10, 4100);
        ix.push_offset(20, 8200);
        ix.push_offset(20, 9000); // not forward in offset: ignored
        ix.push_time(1_000, 10);
        ix.push_time(900, 15); // not a new maximum: ignored
        ix.push_time(2_000, 20);
        ix
    }

    #[test]
    fn lookups_find_floor_entries() {
        let ix = sample();
        assert_eq!(ix.lookup(0), OffsetEntry { rel: 0, pos: 0 });
        assert_eq!(ix.lookup(9), OffsetEntry { rel: 0, pos: 0 });
        assert_eq!(ix.lookup(10), OffsetEntry { rel: 10, pos: 4100 });
        assert_eq!(ix.lookup(19), OffsetEntry { rel: 10, pos: 4100 });
        assert_eq!(ix.lookup(u32::MAX), OffsetEntry { rel: 20, pos: 8200 });
        assert_eq!(ix.lookup_time(1_000), None);
        assert_eq!(ix.lookup_time(1_001), Some(10));
        assert_eq!(ix.lookup_time(i64::MAX), Some(20));
        assert_eq!(ix.max_timestamp(), Some(2_000));
    }

    #[test]
    fn file_formats_are_pinned() {
        let ix = sample();
        assert_eq!(
            ix.encode_offsets(),
            [
                b"SHIX\x01\0\0\0".as_slice(),
                &[0, 0, 0, 10, 0, 0, 0x10, 0x04],
                &[0, 0, 0, 20, 0, 0, 0x20, 0x08]
            ]
            .concat()
        );
        assert_eq!(
            ix.encode_times(),
            [
                b"SHTX\x01\0\0\0".as_slice(),
                &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 10],
                &[0, 0, 0, 0, 0, 0, 0x07, 0xd0, 0, 0, 0, 20]
            ]
            .concat()
        );
    }

    #[test]
    fn decode_round_trips_and_filters_untrusted_entries() {
        let ix = sample();
        let back = SegmentIndex::decode(&ix.encode_offsets(), &ix.encode_times(), 1 << 40, 1 << 40)
            .expect("valid files");
        assert_eq!(back, ix);
        let cut = SegmentIndex::decode(&ix.encode_offsets(), &ix.encode_times(), 20, 1 << 40)
            .expect("valid files");
        assert_eq!(cut.last_offset_entry(), Some(OffsetEntry { rel: 10, pos: 4100 }));
        assert_eq!(cut.max_timestamp(), Some(1_000));
    }

    #[test]
    fn decode_rejects_bad_files() {
        let ix = sample();
        let mut torn = ix.encode_offsets();
        torn.pop();
        assert!(SegmentIndex::decode(&torn, &ix.encode_times(), 99, 1 << 20).is_err());
        let mut wrong_magic = ix.encode_offsets();
        wrong_magic[0] = b'X';
        assert!(SegmentIndex::decode(&wrong_magic, &ix.encode_times(), 99, 1 << 20).is_err());
        let mut disorder = OFFSET_INDEX_HEADER.to_vec();
        disorder.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0, 10]);
        assert!(SegmentIndex::decode(&disorder, &ix.encode_times(), 99, 1 << 20).is_err());
    }

    #[test]
    fn truncate_drops_entries_at_or_after_the_cut() {
        let mut ix = sample();
        ix.truncate(20, u32::MAX);
        assert_eq!(ix.offset_entries(), 1);
        assert_eq!(ix.max_timestamp(), Some(1_000));
        ix.truncate(u32::MAX, 4100);
        assert_eq!(ix.offset_entries(), 0);
    }
}
