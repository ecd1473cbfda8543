//! The leader-epoch checkpoint: which leader epoch wrote which offsets, for replica truncation.

use std::path::Path;

use super::LogError;
use super::checkpoint::{FileHeader, read_optional, write_atomic};
use shale_core::disk::Disk;

/// Name of the leader-epoch checkpoint file in a partition directory.
pub(crate) const EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// `leader-epoch-checkpoint` header: magic `SHLE`, version 1.
pub(crate) const EPOCH_HEADER: FileHeader = FileHeader { magic: *b"SHLE", version: 1 };

/// The first offset written under one leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset appended under it.
    pub start_offset: i64,
}

/// The in-memory epoch list, ordered by epoch and start offset, mirrored to its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// The entries, oldest first.
    pub(super) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub(super) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `offset`; returns whether the list changed. Only a
    /// newer epoch counts: a batch from an older epoch is already covered by its entry.
    pub(super) fn assign(&mut self, epoch: i32, offset: i64) -> bool {
        match self.entries.last() {
            Some(last) if epoch <= last.epoch || offset < last.start_offset => false,
            _ => {
                self.entries.push(EpochEntry { epoch, start_offset: offset });
                true
            }
        }
    }

    /// Drops epochs that start at or after `end` (the log was truncated there).
    pub(super) fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// Forgets epochs wholly below `start` (retention moved the log start); the epoch that
    /// covers `start` is kept and now starts there.
    pub(super) fn truncate_from_start(&mut self, start: i64) -> bool {
        let covering = self.entries.partition_point(|e| e.start_offset <= start);
        if covering == 0 {
            return false;
        }
        let mut changed = covering > 1;
        self.entries.drain(..covering - 1);
        if self.entries[0].start_offset != start {
            self.entries[0].start_offset = start;
            changed = true;
        }
        changed
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch `<= epoch` and the offset where it
    /// ends (the next epoch's start, or `log_end` for the latest). For an epoch older than
    /// every known one, the requested epoch and the start of the first known one, as Kafka
    /// answers: a follower holding data of that epoch must cut it there, since nothing of
    /// it is in this log. `None` only when no epoch is known at all.
    pub(super) fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        if i == 0 {
            return self.entries.first().map(|first| (epoch, first.start_offset));
        }
        let end = self.entries.get(i).map_or(log_end, |next| next.start_offset);
        Some((self.entries[i - 1].epoch, end))
    }

    /// File bytes: header, count u32, then (epoch i32, start offset i64) per entry, then a
    /// CRC-32C of everything before it; all big-endian.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = EPOCH_HEADER.to_vec();
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.start_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses the file bytes.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = EPOCH_HEADER.check(bytes)?;
        if body.len() < 8 {
            return Err("epoch checkpoint too short".to_string());
        }
        let (data, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(data) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("epoch checkpoint crc mismatch".to_string());
        }
        let count = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let list = &body[4..body.len() - 4];
        if list.len() != count * 12 {
            return Err(format!("epoch checkpoint says {count} entries, has {} bytes", list.len()));
        }
        let mut cache = EpochCache::default();
        for c in list.chunks_exact(12) {
            let epoch = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let mut off = [0u8; 8];
            off.copy_from_slice(&c[4..12]);
            if !cache.assign(epoch, i64::from_be_bytes(off)) {
                return Err(format!("epoch checkpoint entries out of order at epoch {epoch}"));
            }
        }
        Ok(cache)
    }

    /// Loads the checkpoint; `Ok(None)` if it is missing or invalid (logged).
    pub(super) fn load(disk: &dyn Disk, dir: &Path) -> Result<Option<Self>, LogError> {
        let path = dir.join(EPOCH_FILE);
        let Some(bytes) = read_optional(disk, &path)? else { return Ok(None) };
        match Self::decode(&bytes) {
            Ok(c) => Ok(Some(c)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring invalid epoch checkpoint");
                Ok(None)
            }
        }
    }

    /// Writes the checkpoint atomically (rare: only when the epoch list changes).
    pub(super) fn store(&self, disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        write_atomic(disk, dir, EPOCH_FILE, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(list: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in list {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn assign_keeps_only_newer_epochs() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 20));
        assert!(!c.assign(2, 20));
        assert!(c.assign(4, 20));
        assert_eq!(c.latest(), Some(EpochEntry { epoch: 4, start_offset: 20 }));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries().len(), 2);
        assert!(c.truncate_from_start(15));
        assert_eq!(c.entries(), &[EpochEntry { epoch: 3, start_offset: 15 }]);
        assert!(!c.truncate_from_start(15));
    }

    #[test]
    fn end_offset_for_epoch() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.end_offset_for(1, 50), Some((1, 10)));
        assert_eq!(c.end_offset_for(2, 50), Some((1, 10)));
        assert_eq!(c.end_offset_for(7, 50), Some((3, 50)));
    }

    /// Before: an epoch older than the first known one got no answer, and the follower
    /// skipped truncation, keeping a tail this log never had (e.g. after retention or a
    /// reset to the tiered end dropped the older epochs).
    #[test]
    fn an_epoch_older_than_any_known_ends_where_the_first_known_starts() {
        let c = cache(&[(4, 100), (6, 150)]);
        assert_eq!(c.end_offset_for(2, 200), Some((2, 100)));
        assert_eq!(EpochCache::default().end_offset_for(2, 200), None);
    }

    #[test]
    fn file_format_is_pinned() {
        let c = cache(&[(1, 0), (3, 258)]);
        let mut expected = b"SHLE\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2]);
        expected.extend_from_slice(&crc32c::crc32c(&expected).to_be_bytes());
        assert_eq!(c.encode(), expected);
        assert_eq!(EpochCache::decode(&expected), Ok(c));
        let mut bad = expected.clone();
        bad[13] ^= 1;
        assert!(EpochCache::decode(&bad).is_err());
    }
}
