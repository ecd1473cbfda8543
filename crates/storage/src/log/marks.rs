//! A compacted log's marks: where its offsets may have gaps, how far it was cleaned, and
//! when each clean ran (for `delete.retention.ms`), in the file `cleaner-checkpoint`.
//!
//! A log's offsets are continuous except where compaction removed records (its own
//! cleaner's, or its leader's, copied by a follower). Recovery and replay must tell such a
//! gap from a log that lost bytes, so the log says durably where gaps may be *before* it
//! has any there:
//! - `gaps_below`: a gap ending at or below it is one compaction made. Raised before a
//!   cleaned segment is swapped in (to the end of what it replaces) and before a follower
//!   appends batches that skip offsets (to their base); lowered before a cut below it, so
//!   that no gap is ever allowed in bytes appended after the cut.
//! - `cleaned_below`: everything below it was rewritten by the cleaner and is durable in
//!   sealed segments (the cleaner reads only those). Replay skips journal frames below it:
//!   they hold the bytes from before the clean, which no longer compare equal. Raised
//!   with `gaps_below` before a swap, lowered with it before a cut.
//! - `horizons`: `(offset, time)` for recent cleans: the clean at `time` covered every
//!   offset below `offset`. A tombstone below the offset of a clean older than
//!   `delete.retention.ms` has been visible to consumers for at least that long, and goes
//!   (Kafka's rule: KIP-534 stamps the same time into the batch; here it stays beside it).
//!
//! # Format
//! Header `SHCC` 1, `gaps_below` i64, `cleaned_below` i64, count u32, `(offset i64,
//! time_ms i64)` per horizon, CRC-32C u32 of all preceding bytes, all big-endian. Absent:
//! all zero (a log never compacted).

use std::path::Path;

use super::LogError;
use super::checkpoint::{FileHeader, read_optional, write_atomic};
use shale_core::disk::Disk;

/// The file's name in a partition directory.
pub(crate) const MARKS_FILE: &str = "cleaner-checkpoint";
const HEADER: FileHeader = FileHeader { magic: *b"SHCC", version: 1 };
/// Horizons kept: enough for a clean every few minutes over a day of
/// `delete.retention.ms`; the oldest merge into the next when there are more.
const MAX_HORIZONS: usize = 64;

/// Tombstones below this offset go: among `horizons` (`(offset, time_ms)`, both
/// increasing), the cleans that covered them ran at least `delete_retention_ms` before
/// `now_ms`. Shared by a log's marks and a remote log's (the manifest's).
pub(crate) fn tombstones_below(
    horizons: &[(i64, i64)],
    now_ms: i64,
    delete_retention_ms: i64,
) -> i64 {
    horizons
        .iter()
        .take_while(|(_, t)| now_ms.saturating_sub(*t) >= delete_retention_ms)
        .map(|(o, _)| *o)
        .last()
        .unwrap_or(0)
}

/// Notes in `horizons` a clean at `time_ms` that deduplicated everything below `point`,
/// unless an earlier one reached as far.
pub(crate) fn add_horizon(horizons: &mut Vec<(i64, i64)>, point: i64, time_ms: i64) {
    if horizons.last().is_some_and(|(offset, _)| *offset >= point) {
        return;
    }
    horizons.push((point, time_ms));
    if horizons.len() > MAX_HORIZONS {
        // The two oldest merge, keeping the later time: a tombstone then waits longer,
        // never less, than `delete.retention.ms`.
        let (offset, time) = horizons.remove(1);
        horizons[0] = (offset, time);
    }
}

/// See the module's documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub gaps_below: i64,
    pub cleaned_below: i64,
    /// `(offset, time_ms)`, both increasing.
    pub horizons: Vec<(i64, i64)>,
}

impl Marks {
    /// Tombstones below this offset go: cleans that covered them ran at least
    /// `delete_retention_ms` before `now_ms`.
    pub(crate) fn tombstones_below(&self, now_ms: i64, delete_retention_ms: i64) -> i64 {
        tombstones_below(&self.horizons, now_ms, delete_retention_ms)
    }

    /// The first offset no clean has deduplicated: the last clean's cleaning point.
    pub(crate) fn first_dirty(&self) -> i64 {
        self.horizons.last().map_or(0, |(offset, _)| *offset)
    }

    /// Notes a clean at `time_ms` that rewrote everything below `end` and deduplicated
    /// everything below `point` (its cleaning point, at or below `end`).
    pub(crate) fn cleaned(&mut self, end: i64, point: i64, time_ms: i64) {
        self.gaps_below = self.gaps_below.max(end);
        self.cleaned_below = self.cleaned_below.max(end);
        add_horizon(&mut self.horizons, point, time_ms);
    }

    /// Lowers the marks to `offset`, before a cut there: bytes appended after it are the
    /// log's own and continuous.
    pub(crate) fn cut(&mut self, offset: i64) -> bool {
        let before = self.clone();
        self.gaps_below = self.gaps_below.min(offset);
        self.cleaned_below = self.cleaned_below.min(offset);
        self.horizons.retain(|(o, _)| *o <= offset);
        *self != before
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        out.extend_from_slice(&self.gaps_below.to_be_bytes());
        out.extend_from_slice(&self.cleaned_below.to_be_bytes());
        out.extend_from_slice(&(self.horizons.len() as u32).to_be_bytes());
        for (offset, time) in &self.horizons {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&time.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Marks, String> {
        let body = HEADER.check(bytes)?;
        // Fixed-size fields at `at`, from a body whose length is checked first.
        let field = |at: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[at..at + 8]);
            a
        };
        if body.len() < 24 {
            return Err(format!("the cleaner checkpoint's body is {} bytes", body.len()));
        }
        let (data, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(data) != crc {
            return Err("the cleaner checkpoint fails its CRC".into());
        }
        let count = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
        if body.len() != 24 + count * 16 {
            return Err(format!("the cleaner checkpoint's {count} horizons do not fit its size"));
        }
        let at = |i: usize| i64::from_be_bytes(field(i));
        let horizons = (0..count).map(|i| (at(20 + i * 16), at(28 + i * 16))).collect();
        Ok(Marks { gaps_below: at(0), cleaned_below: at(8), horizons })
    }

    /// The marks of the log in `dir` (all zero without the file). A file that does not
    /// decode is an error: without it, recovery would cut a compacted log at its first gap.
    pub(crate) fn load(disk: &dyn Disk, dir: &Path) -> Result<Marks, LogError> {
        let path = dir.join(MARKS_FILE);
        let Some(bytes) = read_optional(disk, &path)? else { return Ok(Marks::default()) };
        Marks::decode(&bytes).map_err(|reason| LogError::Corrupt {
            path,
            offset: -1,
            reason: format!(
                "{reason}; this file says where the compacted log may skip offsets: restore \
                 it, or remove the partition directory and let the replica copy its leader"
            ),
        })
    }

    /// Stores the marks durably (with their directory).
    pub(crate) fn store(&self, disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        write_atomic(disk, dir, MARKS_FILE, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_pinned_and_checked() {
        let marks = Marks { gaps_below: 300, cleaned_below: 200, horizons: vec![(100, 7)] };
        let bytes = marks.encode();
        let mut want = b"SHCC\x01\0\0\0".to_vec();
        want.extend_from_slice(&300i64.to_be_bytes());
        want.extend_from_slice(&200i64.to_be_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        want.extend_from_slice(&100i64.to_be_bytes());
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&crc32c::crc32c(&want).to_be_bytes());
        assert_eq!(bytes, want);
        assert_eq!(Marks::decode(&bytes), Ok(marks));
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert!(Marks::decode(&bad).is_err());
        assert!(Marks::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn tombstones_go_below_the_cleans_old_enough() {
        let mut m = Marks::default();
        m.cleaned(100, 100, 1_000);
        m.cleaned(250, 200, 5_000);
        assert_eq!(m.tombstones_below(1_500, 1_000), 0);
        assert_eq!(m.tombstones_below(2_000, 1_000), 100);
        assert_eq!(m.tombstones_below(6_000, 1_000), 200);
        assert!(m.cut(150));
        assert_eq!(
            (m.gaps_below, m.cleaned_below, m.horizons.clone()),
            (150, 150, vec![(100, 1_000)])
        );
        assert!(!m.cut(150));
    }

    #[test]
    fn merged_horizons_never_shorten_a_tombstones_wait() {
        let mut m = Marks::default();
        for i in 1..=(MAX_HORIZONS as i64 + 10) {
            m.cleaned(i * 10, i * 10, i * 100);
        }
        assert_eq!(m.horizons.len(), MAX_HORIZONS);
        // Each kept horizon's time is at least the time of the clean that covered it.
        for (offset, time) in &m.horizons {
            assert!(*time >= offset * 10, "{offset} at {time}");
        }
    }
}
