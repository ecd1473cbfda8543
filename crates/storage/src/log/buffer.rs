//! The active segment's write buffer, for a log whose appends the journal makes durable
//! (`flush.policy=always` with `log.journal`): appends gather here and reach the segment
//! file up to [`BUFFER_BYTES_MAX`] at a time, one `pwrite` (and the start of its
//! writeback) instead of one per append. At 1,000 partitions each append is one small
//! record, and its `pwrite` was a fifth of the broker's CPU; at 100 partitions a `pwrite`
//! and a writeback (one I/O submission, a virtio kick) per 16 KiB were a fifth again, and
//! the thread hop of the append that found its buffer full (docs/benchmarks.md).
//!
//! Buffered bytes are durable in the journal before they are acknowledged, but not in the
//! segment, so the journal must keep their frames: the log registers with the journal when
//! its buffer stops being empty (`Journal::push`, at the position of the first frame
//! whose bytes are buffered) and unregisters when the buffer is written, under the
//! buffer's lock, so that a registration never outlives the bytes it covers. A checkpoint
//! writes the buffers of the logs registered below its point (taking only this lock, never
//! the log's, which an append waiting for room in the journal holds) and trims no further
//! than the first frame of a buffer it could not write.
//!
//! Everything that syncs, cuts or scans the active segment's file writes the buffer
//! first: fsyncs (rolls, closes, `flush_all`, interval flushes), truncations, retention
//! and lookups by time. A read of batches does not: it copies the buffered batches it
//! reaches ([`BufferedTail`]), so a consumer at the tail costs no `pwrite`. A reset drops
//! the buffer (its bytes are in a file being removed).
//!
//! Lock order: the log's state, then its buffer, then the journal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{LogError, LogResources};

/// Bytes a buffer holds at most before they are written: at 100 partitions and 50 MB/s,
/// a second of one partition's appends, so that most buffers are written by checkpoints
/// (off the request path) rather than by the append that fills them.
const BUFFER_BYTES_MAX: usize = 512 << 10;

/// Bytes a buffer holds at least before they are written (a small journal's).
const BUFFER_BYTES_MIN: usize = 16 << 10;

/// How many bytes a log's buffer holds before they are written, for a journal of
/// `capacity` bytes: a 256th of it within 16 KiB ..= 512 KiB (512 KiB for the default
/// 256 MiB), and never more than one checkpoint copies forward
/// ([`crate::journal::largest_copy`]), so that the buffer of a log whose file fails
/// writes can always be copied (the budget, a 32nd of the journal, takes 8 buffers from a
/// journal of 4 MiB; a smaller one, as tests make, has buffers of one budget).
pub(super) fn buffer_bytes(capacity: u64) -> usize {
    let share = usize::try_from(capacity / 256).unwrap_or(usize::MAX);
    share.clamp(BUFFER_BYTES_MIN, BUFFER_BYTES_MAX).min(crate::journal::largest_copy(capacity))
}

/// Bytes all the buffers of one [`super::LogResources`] may hold; past it an append
/// writes its log's buffer first (30,000 partitions with a full buffer each would
/// otherwise hold 15 GiB).
pub(super) const BUFFERED_BYTES_MAX: u64 = 64 << 20;

/// Bytes of empty buffers kept for reuse: a buffer that is written is given back, and the
/// next log to buffer takes it, so a steady append path allocates nothing for them (the
/// logs' buffers in use are counted against [`BUFFERED_BYTES_MAX`]).
const POOLED_BYTES: usize = 16 << 20;

/// What the buffers of one [`super::LogResources`] share: the bytes they hold, and the
/// pool of empty ones.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    bytes: AtomicU64,
    pool: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// An empty buffer with room for `limit` bytes.
    fn take(&self, limit: usize) -> Vec<u8> {
        let pooled = self.pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = pooled.unwrap_or_default();
        buffer.reserve_exact(limit);
        buffer
    }

    /// Keeps `buffer` for reuse, emptied, unless the pool is full.
    fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < BUFFER_BYTES_MIN {
            return;
        }
        buffer.clear();
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if (pool.len() + 1) * buffer.capacity() <= POOLED_BYTES {
            pool.push(buffer);
        }
    }
}

/// Bytes appended to the active segment and not yet written to its file.
#[derive(Debug)]
pub(crate) struct SegmentBuffer {
    /// Where `bytes` start in their file, [`written`](Self::written).
    at: u64,
    bytes: Vec<u8>,
    /// Bytes held at most ([`buffer_bytes`] of the log's journal).
    limit: usize,
    /// The segment file the log last wrote or buffered bytes for: the file buffered bytes
    /// belong to (opened through the shared cache when they are written: a handle held
    /// here would count against the broker's open files while the buffer fills, and
    /// 10,000 partitions would hold 10,000), and what a checkpoint fsyncs on a file system
    /// that cannot be synced at once (see `Member::sync_segment`).
    written: Option<PathBuf>,
    /// Set while a reset makes its frame durable, before it drops the buffer: a copy of
    /// the buffered bytes made then would land after the reset's frame (see
    /// `Member::copy_buffer`), so none is.
    pub(super) dropping: bool,
}

impl SegmentBuffer {
    /// An empty buffer that holds up to `limit` bytes.
    pub(super) fn new(limit: usize) -> Self {
        SegmentBuffer { at: 0, bytes: Vec::new(), limit, written: None, dropping: false }
    }

    /// Notes that bytes of the segment file `path` were written or buffered.
    pub(super) fn note_written(&mut self, path: &std::path::Path) {
        // Compared as bytes: `Path`'s equality parses both into components, per append.
        if self.written.as_deref().map(std::path::Path::as_os_str) != Some(path.as_os_str()) {
            self.written = Some(path.to_path_buf());
        }
    }

    /// The segment file the log last wrote or buffered bytes for.
    pub(super) fn written(&self) -> Option<&std::path::Path> {
        self.written.as_deref()
    }

    /// Where the bytes waiting start in their file: the file holds every byte before.
    pub(super) fn at(&self) -> u64 {
        self.at
    }

    /// The bytes waiting (whole batches).
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether no bytes wait.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `len` more bytes may be buffered (rather than written through), counting
    /// them against `total`, the bytes of every buffer.
    pub(super) fn fits(&self, len: usize, total: &Buffers) -> bool {
        self.bytes.len() + len <= self.limit
            && total.bytes.load(Ordering::Relaxed) + len as u64 <= BUFFERED_BYTES_MAX
    }

    /// Buffers `buf`, to be written at `pos` of the segment file `path` (the bytes
    /// buffered already end at `pos`); `total` counts them and lends the buffer.
    pub(super) fn add(&mut self, path: &std::path::Path, pos: u64, buf: &[u8], total: &Buffers) {
        if self.bytes.is_empty() {
            self.note_written(path);
            self.at = pos;
            if self.bytes.capacity() == 0 {
                self.bytes = total.take(self.limit);
            }
        }
        debug_assert_eq!(self.at + self.bytes.len() as u64, pos, "a buffer grows at its end");
        self.bytes.extend_from_slice(buf);
        total.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    }

    /// Writes the buffered bytes to their file, and with `writeback` starts their
    /// writeback (a hint: dirty pages then reach the disk steadily, not in the next
    /// checkpoint's `syncfs`); the buffer is empty afterwards, unless the write failed (a
    /// full disk): the bytes then stay for the next try, their frames kept by the journal.
    pub(super) fn write(
        &mut self,
        resources: &LogResources,
        writeback: bool,
    ) -> Result<(), LogError> {
        let Some(path) = self.written.as_deref().filter(|_| !self.bytes.is_empty()) else {
            return Ok(());
        };
        let (file, _slot) = resources.writable_slot(path)?;
        if let Err(e) = file.write_all_at(&self.bytes, self.at) {
            let e = std::io::Error::new(e.kind(), format!("writing buffered appends: {e}"));
            return Err(LogError::io(path, e));
        }
        if writeback {
            let _ = file.start_writeback(self.at, self.bytes.len() as u64);
        }
        self.discard(resources.buffered());
        Ok(())
    }

    /// Forgets the buffered bytes (written, or their segment is being removed), and gives
    /// the buffer back to the pool.
    pub(super) fn discard(&mut self, total: &Buffers) {
        total.bytes.fetch_sub(self.bytes.len() as u64, Ordering::Relaxed);
        total.give(std::mem::take(&mut self.bytes));
        self.dropping = false;
    }
}

/// An active segment as a reader sees it while bytes wait in its buffer: the file up to
/// `written`, then a copy of the buffered bytes from `tail_at` (taken under the buffer's
/// lock), so that a read of the newest batches neither writes the buffer nor waits for
/// the file system. Read-only.
#[derive(Debug)]
pub(super) struct BufferedTail {
    pub(super) file: shale_core::disk::FileHandle,
    /// Bytes of the file that hold batches (where the buffer starts).
    pub(super) written: u64,
    /// Where `tail` starts in the segment (at or after `written`).
    pub(super) tail_at: u64,
    pub(super) tail: bytes::Bytes,
}

impl BufferedTail {
    fn read_only(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a read of a segment's buffered tail cannot write or sync the segment",
        )
    }
}

impl shale_core::disk::DiskFile for BufferedTail {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        if pos < self.written {
            let n = buf.len().min(usize::try_from(self.written - pos).unwrap_or(usize::MAX));
            return self.file.read_at(&mut buf[..n], pos);
        }
        if pos < self.tail_at {
            return Err(std::io::Error::other(format!(
                "byte {pos} of the segment is neither in its file (up to byte {}) nor in the \
                 buffered bytes read (from byte {})",
                self.written, self.tail_at
            )));
        }
        let from = usize::try_from(pos - self.tail_at).unwrap_or(usize::MAX);
        let rest = self.tail.get(from..).unwrap_or_default();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn write_all_at(&self, _buf: &[u8], _pos: u64) -> std::io::Result<()> {
        Err(self.read_only())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Err(self.read_only())
    }

    fn sync_all(&self) -> std::io::Result<()> {
        Err(self.read_only())
    }

    fn set_len(&self, _len: u64) -> std::io::Result<()> {
        Err(self.read_only())
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(self.tail_at + self.tail.len() as u64)
    }
}
