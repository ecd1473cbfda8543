//! A log's side of its volume's journal: its stream, the frames of its appends and cuts,
//! and what the journal's writer tells it (durable up to an offset, or failed).
//!
//! An append writes its batches to the active segment, then, under the same lock, pushes
//! them to the journal as frames of at most [`Journal::max_payload`] bytes each (whole
//! batches; an append larger than that is split at batch boundaries). The log is durable
//! up to an append once the journal's round holding its last frame is synced.
//!
//! A cut (a follower's truncation, or a reset to a later start) is made durable in the
//! journal first, as a frame of its own, and only then in the segment files, under the
//! log's lock throughout. Replay applies frames in journal order, so a crash at any point
//! replays either the log before the cut (its frame not durable: the segment files were
//! not cut either) or the cut. The other order would not do: a cut made durable in the
//! segment files whose frame a crash then lost could leave frames of bytes past the cut
//! (after the journal's trim point) with the bytes before them gone from both.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError, TryLockError};

use super::buffer::SegmentBuffer;
use super::partition::{Inner, State};
use super::scan::Frame;
use super::{FlushPolicy, LogError};
use crate::journal::{Copied, Member, Op};

/// Dirty bytes of an active segment after which its writeback starts.
const WRITEBACK_CHUNK: u64 = 16 << 10;

impl Member for Inner {
    fn synced(&self, end: i64, generation: u64) {
        self.durable_to(end, generation, false);
    }

    fn try_synced(&self, end: i64, generation: u64) -> bool {
        match self.try_lock() {
            Ok(Some(mut st)) => {
                self.durable_to_locked(&mut st, end, generation, false);
                true
            }
            // Busy; or closed, which the notifier's `synced` finds too.
            Ok(None) | Err(_) => false,
        }
    }

    fn failed(&self, reason: &str) {
        let path = self.journal.as_ref().map_or(self.dir.as_path(), |j| j.journal.path());
        self.sync_failed(LogError::io(path, std::io::Error::other(reason.to_string())));
    }

    fn write_buffer(&self) -> Result<(), String> {
        Inner::write_buffer(self).map_err(|e| e.to_string())
    }

    fn sync_segment(&self) -> Result<(), String> {
        // A roll fsyncs the segment it seals, so the last one written is the only one
        // that may hold bytes no fsync covered.
        let Some(path) = self.buffer().written().map(Path::to_path_buf) else { return Ok(()) };
        let file = match self.resources.writable_slot(&path) {
            Ok((file, _)) => file,
            // Removed since (retention, a reset, a cut): nothing of it is to be kept.
            Err(LogError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        super::segment::sync_data(&*file, &path).map_err(|e| e.to_string())
    }

    fn copy_buffer(&self, budget: &mut u64) -> Result<Copied, String> {
        let Some(j) = &self.journal else { return Ok(Copied::Empty) };
        // Under the buffer's lock: its bytes are not written or dropped meanwhile.
        let b = self.buffer();
        if b.is_empty() {
            return Ok(Copied::Empty);
        }
        let (frames, _) = super::scan::frame(b.bytes(), usize::MAX).map_err(|e| e.to_string())?;
        let chunks: Vec<Chunk> = chunks(&frames, j.journal.max_payload()).collect();
        let cost = chunks.iter().map(|c| j.journal.copy_cost(c.range.len())).sum::<u64>();
        if b.dropping || cost > *budget {
            return Ok(Copied::Held);
        }
        *budget -= cost;
        let (mut first, mut after) = (None, 0);
        for chunk in chunks {
            let payload = &b.bytes()[chunk.range];
            let Some((at, end)) = j.journal.push_copy(j.stream, chunk.epoch, chunk.base, payload)
            else {
                // Frames copied so far are harmless duplicates: replay compares them equal.
                return Ok(Copied::Held);
            };
            first.get_or_insert(at);
            after = end;
        }
        match first {
            Some(first) => {
                j.journal.rebuffer(self.member_key(), first);
                Ok(Copied::To(after))
            }
            None => Ok(Copied::Empty),
        }
    }
}

impl Inner {
    /// Whether appends gather in the segment buffer: with a journal, for logs whose
    /// appends are acknowledged once the journal holds them (see `buffer`).
    pub(super) fn buffering(&self, st: &State) -> bool {
        self.journal.is_some() && st.config.flush == FlushPolicy::Always
    }

    /// Locks the segment buffer.
    pub(super) fn buffer(&self) -> MutexGuard<'_, SegmentBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The segment buffer's lock if it is free now (see `Inner::try_lock`).
    pub(super) fn try_buffer(&self) -> Option<MutexGuard<'_, SegmentBuffer>> {
        match self.buffer.try_lock() {
            Ok(b) => Some(b),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(b)) => Some(b.into_inner()),
        }
    }

    /// The log's key in the journal's registry of buffered members (its address).
    fn member_key(&self) -> usize {
        self as *const Inner as *const () as usize
    }

    /// See [`super::PartitionLog::journal_checkpoint_lag`].
    pub(super) fn checkpoint_lag(&self) -> u64 {
        let Some(j) = &self.journal else { return 0 };
        j.journal.checkpoint_lag(self.member_key(), j.pushed.load(Ordering::Acquire))
    }

    /// Unregisters the log's buffer from the journal, now empty (under the buffer's lock).
    pub(super) fn unbuffered(&self, buffer: &SegmentBuffer) {
        if let (true, Some(j)) = (buffer.is_empty(), &self.journal) {
            j.journal.unbuffered(self.member_key());
        }
    }

    /// Writes the segment buffer to the active segment's file, for a reader, an fsync or
    /// a checkpoint (none needs the writeback started).
    pub(super) fn write_buffer(&self) -> Result<(), LogError> {
        let mut b = self.buffer();
        let written = b.write(&self.resources, false);
        self.unbuffered(&b);
        written
    }

    /// Writes the segment buffer before the active segment's file is read, synced or cut
    /// (under the log's lock). A failure (a full disk) keeps the bytes buffered and fails
    /// the caller; the log goes on.
    pub(super) fn settle_buffer(&self, _st: &mut State) -> Result<(), LogError> {
        self.write_buffer()
    }

    /// Drops the segment buffer: its segment is being removed.
    pub(super) fn discard_buffer(&self) {
        let mut b = self.buffer();
        b.discard(self.resources.buffered());
        self.unbuffered(&b);
    }

    /// Refuses, before anything is written, an append holding a batch larger than the
    /// journal's frames (about half the journal: `Journal::max_payload`): `BatchTooLarge`, naming both sizes.
    pub(super) fn journal_fits(&self, frames: &[Frame]) -> Result<(), LogError> {
        let Some(j) = &self.journal else { return Ok(()) };
        let max = j.journal.max_payload();
        match frames.iter().map(|(_, range)| range.len()).find(|len| *len > max) {
            Some(size) => Err(shale_core::record::RecordError::BatchTooLarge { size, max }.into()),
            None => Ok(()),
        }
    }

    /// Pushes the frames of an append just written (`buf`, framed as `frames`) to the
    /// journal, if the log has one. A push that fails stops the log (fail-stop): its
    /// segment holds bytes the journal does not.
    pub(super) fn journal_append(
        this: &Arc<Inner>,
        st: &mut State,
        buf: &[u8],
        frames: &[Frame],
        buffered: bool,
    ) -> Result<(), LogError> {
        let Some(j) = &this.journal else { return Ok(()) };
        let member: Arc<dyn Member> = this.clone();
        for chunk in chunks(frames, j.journal.max_payload()) {
            let pushed = j.journal.push(
                Op::Append,
                j.stream,
                chunk.epoch,
                chunk.base,
                &buf[chunk.range],
                Some(&member),
                chunk.end,
                st.generation,
                buffered,
            );
            match pushed {
                Ok(at) => j.pushed.store(at, Ordering::Release),
                Err(e) => {
                    let e = std::io::Error::other(e.0);
                    return this.note_sync(st, Err(LogError::io(j.journal.path(), e)));
                }
            }
        }
        Ok(())
    }

    /// Waits until the journal holds every frame of this log durably (under the log's
    /// lock), before an fsync of its segment makes the same bytes durable there: a segment
    /// file must never be ahead of the journal, or a cut the journal holds would be
    /// replayed over bytes appended after it whose frames it lacks.
    pub(super) fn journal_caught_up(&self, st: &mut State) -> Result<(), LogError> {
        let Some(j) = &self.journal else { return Ok(()) };
        match j.journal.wait_synced(j.pushed.load(Ordering::Acquire)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = std::io::Error::other(e.0);
                self.note_sync(st, Err(LogError::io(j.journal.path(), e)))
            }
        }
    }

    /// Makes the frame of a cut (`Truncate` or `Reset` at `offset`) durable in the journal,
    /// if the log has one, before the caller makes the cut (under the log's lock).
    pub(super) fn journal_cut(&self, st: &mut State, op: Op, offset: i64) -> Result<(), LogError> {
        let Some(j) = &self.journal else { return Ok(()) };
        let end = st.log_end();
        let pushed = j.journal.push(op, j.stream, 0, offset, &[], None, end, st.generation, false);
        if let Ok(at) = pushed {
            j.pushed.store(at, Ordering::Release);
        }
        match pushed.and_then(|at| j.journal.wait_synced(at)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = std::io::Error::other(e.0);
                self.note_sync(st, Err(LogError::io(j.journal.path(), e)))
            }
        }
    }

    /// With a journal, starts the writeback of the active segment's bytes once
    /// [`WRITEBACK_CHUNK`] of them are dirty: acknowledgements do not fsync segments, and
    /// without this their dirty pages would pile up until a checkpoint's `syncfs` wrote them
    /// in one burst, stalling the journal's fsyncs behind it (measured at 50,000 records/s:
    /// p99 17 ms at one partition with a checkpoint per 32 MiB, 2.2 ms with this).
    pub(super) fn start_writeback(&self, st: &mut State) {
        // A buffered log starts the writeback of each buffer it writes.
        if self.journal.is_none() || self.buffering(st) {
            return;
        }
        let a = &mut st.active;
        a.written_back = a.written_back.min(a.size);
        if a.size - a.written_back < WRITEBACK_CHUNK {
            return;
        }
        if let Ok(file) = a.file(&self.resources) {
            // A hint: a failure here is the next fsync's to report.
            let _ = file.start_writeback(a.written_back, a.size - a.written_back);
        }
        a.written_back = a.size;
    }

    /// Retires the log's stream, durably: its frames are replayed nowhere from now on.
    pub(super) fn retire_stream(&self) -> Result<(), LogError> {
        let Some(j) = &self.journal else { return Ok(()) };
        let streams = j.journal.streams();
        streams.retire(j.stream).map_err(|e| LogError::io(streams.path(), e))
    }
}

/// One journal frame's share of an append: whole batches of at most the journal's frame
/// payload (a larger batch was refused before it was written, see `journal_fits`).
struct Chunk {
    /// The leader epoch of its first batch.
    epoch: i32,
    base: i64,
    /// The offset after its last batch.
    end: i64,
    /// Its bytes in the append's buffer.
    range: std::ops::Range<usize>,
}

/// Splits the batches `frames` into journal frames of at most `max` payload bytes each.
fn chunks(frames: &[Frame], max: usize) -> impl Iterator<Item = Chunk> + '_ {
    let mut rest = frames;
    std::iter::from_fn(move || {
        let (first, _) = rest.first()?;
        let mut bytes = 0;
        let n = rest
            .iter()
            .take_while(|(_, range)| {
                bytes += range.len();
                bytes <= max
            })
            .count()
            .max(1);
        let (chunk, later) = rest.split_at(n);
        rest = later;
        let range = chunk[0].1.start..chunk[n - 1].1.end;
        debug_assert!(range.len() <= max, "journal_fits refused larger batches");
        let end = chunk[n - 1].0.next_offset();
        Some(Chunk { epoch: first.partition_leader_epoch, base: first.base_offset, end, range })
    })
}

impl super::PartitionLog {
    /// Whether an append of `bytes` now would touch memory only: buffered in the active
    /// segment's buffer and pushed to the journal, with no roll (which fsyncs the segment
    /// it seals), no write of a full buffer and no wait for room in the journal. Such an
    /// append can run on the task that received it rather than on a blocking thread. A
    /// hint: another append may change it meanwhile (at worst, this one writes a buffer).
    pub fn appends_in_memory(&self, bytes: usize) -> bool {
        let inner = &*self.inner;
        let Some(j) = &inner.journal else { return false };
        if !j.journal.has_room(bytes) {
            return false;
        }
        let st = inner.peek();
        if !inner.buffering(&st) || st.check_open().is_err() {
            return false;
        }
        let a = &st.active;
        let limit = st.config.segment_bytes.min(super::config::MAX_SEGMENT_BYTES);
        let now = inner.clock.now_ms();
        let old = a.first_append_ms.is_some_and(|t| now.saturating_sub(t) >= st.config.segment_ms);
        if a.size + bytes as u64 > limit || old {
            return false;
        }
        inner.buffer().fits(bytes, inner.resources.buffered())
    }
}
