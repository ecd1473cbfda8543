//! Batch framing: reading batches back from a segment file (positional header reads for
//! lookups, a buffered, CRC-checking scanner for recovery and index rebuilds), and
//! splitting an append's buffer into its batches.

use std::ops::Range;
use std::path::Path;

use super::LogError;
use shale_core::disk::DiskFile;
pub(crate) use shale_core::disk::read_full_at;
use shale_core::record::batch::{BatchHeader, CRC_START, HEADER_LEN};
use shale_core::record::{BatchFrames, RecordError};

/// Read size of the recovery scanner: large sequential reads, bounded memory.
const SCAN_CHUNK: usize = 1 << 20;

/// Reads and parses the batch header at `pos` of a segment whose first `end` bytes were
/// validated. A missing or malformed header there means the file changed under us.
pub(crate) fn header_at(
    file: &dyn DiskFile,
    path: &Path,
    pos: u64,
    end: u64,
) -> Result<BatchHeader, LogError> {
    let corrupt =
        |reason: String| LogError::Corrupt { path: path.to_path_buf(), offset: pos as i64, reason };
    if pos + HEADER_LEN as u64 > end {
        return Err(corrupt(format!("batch header at byte {pos} runs past byte {end}")));
    }
    let mut buf = [0u8; HEADER_LEN];
    let n = read_full_at(file, &mut buf, pos).map_err(|e| LogError::io(path, e))?;
    let header = BatchHeader::parse(&buf[..n]).map_err(|e| corrupt(e.to_string()))?;
    if pos + header.total_len() as u64 > end {
        return Err(corrupt(format!("batch at byte {pos} runs past byte {end}")));
    }
    Ok(header)
}

/// What the scanner found at its position.
#[derive(Debug)]
pub(crate) enum Scanned {
    /// A whole, valid batch at byte `pos`.
    Batch {
        /// The parsed header.
        header: BatchHeader,
        /// Byte position of the batch.
        pos: u64,
    },
    /// Clean end of the scanned range.
    End,
    /// The bytes at `pos` are not a valid batch: a torn or corrupt tail starts there.
    Invalid {
        /// Where the invalid bytes start.
        pos: u64,
        /// What is wrong, for the log.
        reason: String,
    },
}

/// Walks the batches of a segment file from a position, checking framing, magic and
/// (optionally) CRC-32C, with large sequential reads and memory bounded by the read size
/// (a huge batch's CRC is computed chunk by chunk, never buffered whole).
pub(crate) struct Scanner<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    pos: u64,
    end: u64,
    verify_crc: bool,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> Scanner<'a> {
    /// Scans `file` from byte `pos` to byte `end` (the file length).
    pub(crate) fn new(
        file: &'a dyn DiskFile,
        path: &'a Path,
        pos: u64,
        end: u64,
        verify_crc: bool,
    ) -> Self {
        Scanner { file, path, pos, end, verify_crc, buf: Vec::new(), buf_pos: 0 }
    }

    /// The buffered bytes starting at file position `at`, at least `need` of them unless the
    /// file ends first.
    fn bytes_at(&mut self, at: u64, need: usize) -> Result<&[u8], LogError> {
        let buf_end = self.buf_pos + self.buf.len() as u64;
        if at < self.buf_pos || at + need as u64 > buf_end {
            let want = need.max(SCAN_CHUNK).min(self.end.saturating_sub(at) as usize);
            self.buf.resize(want, 0);
            let n = read_full_at(self.file, &mut self.buf, at)
                .map_err(|e| LogError::io(self.path, e))?;
            self.buf.truncate(n);
            self.buf_pos = at;
        }
        Ok(&self.buf[(at - self.buf_pos) as usize..])
    }

    /// The next batch, the end, or where the invalid tail starts. `Err` only for I/O.
    pub(crate) fn next_batch(&mut self) -> Result<Scanned, LogError> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Scanned::End);
        }
        let invalid = |reason: String| Ok(Scanned::Invalid { pos, reason });
        let head = self.bytes_at(pos, HEADER_LEN)?;
        let header = match BatchHeader::parse(head) {
            Ok(h) => h,
            Err(e) => return invalid(e.to_string()),
        };
        let total = header.total_len() as u64;
        if pos + total > self.end {
            return invalid(format!("batch of {total} bytes runs past the end of the file"));
        }
        if header.last_offset_delta < 0 {
            return invalid(format!("negative last offset delta {}", header.last_offset_delta));
        }
        if self.verify_crc {
            let mut crc = 0u32;
            let mut at = pos + CRC_START as u64;
            while at < pos + total {
                let left = (pos + total - at) as usize;
                let chunk = self.bytes_at(at, left.min(SCAN_CHUNK))?;
                if chunk.is_empty() {
                    return invalid("file shrank while scanning".to_string());
                }
                let take = chunk.len().min(left);
                crc = crc32c::crc32c_append(crc, &chunk[..take]);
                at += take as u64;
            }
            if crc != header.crc {
                return invalid(format!(
                    "crc mismatch: stored {:#010x}, computed {crc:#010x}",
                    header.crc
                ));
            }
        }
        self.pos = pos + total;
        Ok(Scanned::Batch { header, pos })
    }
}

/// One batch of an append: its header and its byte range in the buffer.
pub(super) type Frame = (BatchHeader, Range<usize>);

/// The batches of one append: on the stack for the usual few (an append allocates nothing
/// for them).
pub(super) type Frames = smallvec::SmallVec<[Frame; 4]>;

/// Splits an append into batches, re-checking framing (header, magic, sizes) only: the
/// caller validated CRCs and records.
pub(super) fn frame(buf: &[u8], max_batch: usize) -> Result<(Frames, i64), LogError> {
    if buf.is_empty() {
        return Err(RecordError::Corrupt("empty append: expected at least one batch".into()).into());
    }
    let mut frames = Frames::new();
    let mut records = 0i64;
    for item in BatchFrames::new(buf, max_batch) {
        let (header, range) = item?;
        if header.last_offset_delta < 0 {
            let delta = header.last_offset_delta;
            return Err(RecordError::Corrupt(format!("negative last offset delta {delta}")).into());
        }
        records += i64::from(header.last_offset_delta) + 1;
        frames.push((header, range));
    }
    Ok((frames, records))
}
