//! The log start offset that DeleteRecords moves (Kafka's KIP-107): a floor under the log,
//! anywhere in a segment (even inside a batch), below which nothing is served. A follower
//! raises its own to its leader's. It only moves up, and it is fsynced (with its directory)
//! before the call that moved it returns, so neither a restart nor a power cut brings
//! deleted records back. Segments wholly below it go at once; retention deletes the ones
//! that fall below it later (a segment sealed after the floor passed into it).
//!
//! File `log-start-offset`: header `SHLS` 1, the offset (i64 BE), CRC-32C (u32 BE) of
//! everything before it. No file: the floor is 0.

use std::path::Path;

use super::LogError;
use super::checkpoint::{FileHeader, read_optional, sync_dir, write_atomic};
use super::partition::PartitionLog;
use super::retention::remove_segment_files;
use shale_core::disk::Disk;

/// Name of the log start file in a partition directory.
pub(crate) const START_FILE: &str = "log-start-offset";
/// `log-start-offset` header: magic `SHLS`, version 1.
pub(crate) const START_HEADER: FileHeader = FileHeader { magic: *b"SHLS", version: 1 };

/// The file bytes for a floor at `offset`.
fn encode(offset: i64) -> Vec<u8> {
    let mut out = START_HEADER.to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Parses the file bytes.
fn decode(bytes: &[u8]) -> Result<i64, String> {
    let body = START_HEADER.check(bytes)?;
    if body.len() != 12 {
        return Err(format!("log start body is {} bytes, expected 12", body.len()));
    }
    let (data, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(data) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("log start crc mismatch".to_string());
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&body[..8]);
    Ok(i64::from_be_bytes(offset))
}

/// The floor stored in `dir` (0 without a file). An unreadable file fails the open: ignoring
/// it would serve records a client deleted.
pub(crate) fn load(disk: &dyn Disk, dir: &Path) -> Result<i64, LogError> {
    let path = dir.join(START_FILE);
    let Some(bytes) = read_optional(disk, &path)? else { return Ok(0) };
    decode(&bytes).map_err(|reason| LogError::Corrupt {
        path,
        offset: -1,
        reason: format!(
            "{reason}; this file holds the log start that DeleteRecords set: restore it, or \
             remove it to serve the records below that start again"
        ),
    })
}

/// Stores the floor atomically (temporary file, fsync, rename, directory fsync).
fn store(disk: &dyn Disk, dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(disk, dir, START_FILE, &encode(offset))
}

impl PartitionLog {
    /// Moves the log start up to `offset` (DeleteRecords, or a follower learning its
    /// leader's): offsets below it are refused from then on, and sealed segments wholly
    /// below it are deleted. Durable before it returns. A lower offset than the current
    /// floor changes nothing; one past the log end is out of range. Returns the log start.
    pub fn advance_log_start(&self, offset: i64) -> Result<i64, LogError> {
        let inner = &*self.inner;
        let mut st = inner.lock()?;
        st.check_open()?;
        if offset <= st.start_floor {
            return Ok(st.log_start());
        }
        if offset > st.log_end() {
            return Err(st.out_of_range(offset));
        }
        store(inner.disk(), &inner.dir, offset)?;
        st.start_floor = offset;
        let below: Vec<i64> =
            st.sealed.values().filter(|s| s.next_offset <= offset).map(|s| s.base).collect();
        let mut bytes = 0;
        for base in &below {
            remove_segment_files(&inner.dir, *base, &inner.resources)?;
            if let Some(seg) = st.sealed.remove(base) {
                st.sealed_bytes -= seg.size;
                bytes += seg.size;
            }
        }
        if !below.is_empty() {
            sync_dir(inner.disk(), &inner.dir)?;
        }
        let start = st.log_start();
        if st.epochs.truncate_from_start(start) {
            st.epochs.store(inner.disk(), &inner.dir)?;
        }
        inner.publish(&st);
        tracing::info!(dir = %inner.dir.display(), log_start = start, segments = below.len(),
            bytes, "log start advanced");
        Ok(start)
    }

    /// The log start DeleteRecords set (or a follower learnt from its leader): nothing below
    /// it is served, locally or from the bucket. 0 when never set.
    pub fn start_floor(&self) -> i64 {
        self.inner.offsets.borrow().start_floor
    }

    /// Where the local bytes begin: the base offset of the oldest segment, at or below the
    /// log start (which DeleteRecords can put inside a segment, even inside a batch).
    pub fn local_base_offset(&self) -> i64 {
        self.inner.peek().base_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_is_pinned() {
        let mut expected = b"SHLS\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 44]);
        expected.extend_from_slice(&crc32c::crc32c(&expected).to_be_bytes());
        assert_eq!(encode(300), expected);
        assert_eq!(decode(&expected), Ok(300));
        let mut bad = expected.clone();
        bad[12] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("crc"));
        assert!(decode(b"SHLS\x02\0\0\0").is_err());
    }
}
