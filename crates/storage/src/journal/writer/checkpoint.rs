//! The checkpointer: makes the segment files durable (`syncfs`, or an fsync of each
//! segment written since the last checkpoint where the file system cannot be synced at
//! once) and moves the journal's trim point behind them, writing the segment buffers it
//! would trim past (see the rules in `writer`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use shale_core::clock::monotonic_now;

use super::{Copied, Failed, Journal, Member, ROOM_WARNING};
use crate::journal::Op;
use crate::journal::frame::{ALIGN, HEADER_LEN, footprint};

/// Journal bytes a log's segment buffer may lag behind a checkpoint before the checkpoint
/// writes it to its file (capped at a quarter of the journal; see `trim_limit`): at 1,000
/// partitions and more, buffers are written in pieces of about this over the partitions
/// (idle ones' not one record at a time), whatever the checkpoints' size.
const BUFFER_LAG: u64 = 24 << 20;

/// Bytes of frames one checkpoint copies forward at most, in a journal of `capacity`
/// bytes: a 32nd of it (8 MiB of the default 256, 16 full segment buffers). Copies move
/// the journal's end, so more than a fraction of the lag after which buffers are written
/// would copy the same buffers again at the next checkpoint.
pub(crate) fn copy_budget(capacity: u64) -> u64 {
    capacity / 32
}

/// The most payload bytes one copy frame takes within a checkpoint's budget, in a journal
/// of `capacity` bytes: a segment buffer holds no more, so that a buffer whose file fails
/// can always be copied forward (one held past the budget would hold the trim point, and
/// its own log's appends would wait for room for good).
pub(crate) fn largest_copy(capacity: u64) -> usize {
    let budget = copy_budget(capacity) / ALIGN * ALIGN;
    budget.saturating_sub(HEADER_LEN as u64) as usize
}

impl Journal {
    /// The checkpointer thread: when asked, makes the segment files durable and moves the
    /// trim point to where the open round ended when it began.
    pub(super) fn checkpoints(&self) {
        loop {
            let point = {
                let mut w = self.lock();
                while !w.checkpoint_asked && !w.closed && w.failed.is_none() {
                    w = self.checkpoint.wait(w).unwrap_or_else(PoisonError::into_inner);
                }
                if w.closed || w.failed.is_some() {
                    return;
                }
                w.checkpoint_asked = false;
                if w.open.end() == w.trim {
                    continue;
                }
                w.aimed = w.open.end();
                (w.open.end(), std::mem::take(&mut w.room_wanted))
            };
            let (point, all) = point;
            if let Err(reason) = self.checkpoint_to(point, all) {
                self.fail(reason);
                return;
            }
        }
    }

    /// The member at `key` (the address of its log) has no buffered segment bytes any
    /// more: they are in its segment file (called under the buffer's lock).
    pub(crate) fn unbuffered(&self, key: usize) {
        let mut w = self.lock();
        if let (Some((member, _)), None) = (w.buffered.remove(&key), &self.fs) {
            w.written.insert(key, member);
        }
    }

    /// Journal bytes from the oldest frame of the member at `key` that the journal still
    /// keeps for it to the journal's end (`pushed`: the position after the member's last
    /// frame): from the first frame of its buffered bytes, else from the trim point if it
    /// pushed past it (those bytes are durable in its segment once the next checkpoint
    /// syncs them: an upper bound, by at most a checkpoint's bytes); 0 when its segment
    /// files hold everything.
    pub(crate) fn checkpoint_lag(&self, key: usize, pushed: u64) -> u64 {
        let w = self.lock();
        let buffered = w.buffered.get(&key).map(|(_, from)| *from);
        let from = buffered.or((pushed > w.trim).then_some(w.trim));
        from.map_or(0, |from| w.open.end().saturating_sub(from))
    }

    /// How far a checkpoint up to `point` may trim (`last`: where the last one aimed).
    /// Buffers whose first frame is more than [`BUFFER_LAG`] below `point` are written
    /// first (`all`: every buffer below `point`), and with them, oldest first among those
    /// older than half the lag, this checkpoint's share of the buffered logs (as many as
    /// the lag holds checkpoints `point - last` bytes long). So buffers are written a few
    /// at each checkpoint, evenly: by the lag alone, logs that restart their buffers
    /// together (a hundred busy partitions, written by one checkpoint) reach it together
    /// again, and one checkpoint in several wrote them all, a burst of the whole lag's
    /// bytes into the page cache and its `syncfs` that set the acknowledgements' p99. A
    /// younger buffer holds the trim point at its first frame. A buffer that cannot be
    /// written (a failing file, a full disk) is copied forward, up to
    /// [`copy_budget`](Self::copy_budget) bytes per checkpoint; buffers past that hold the
    /// trim point.
    fn trim_limit(&self, point: u64, last: u64, all: bool) -> Result<u64, Failed> {
        let lag = match all {
            true => 0,
            false => BUFFER_LAG.min(self.capacity / 4),
        };
        let below = point.saturating_sub(lag);
        // The candidates (every buffer past the lag is one), taken under the journal's
        // lock, which pushes take; chosen among outside it.
        let (mut behind, logs) = {
            let w = self.lock();
            let older = point.saturating_sub(lag / 2);
            let behind: Vec<(u64, Arc<dyn Member>)> = w
                .buffered
                .values()
                .filter(|(_, from)| *from < older)
                .map(|(member, from)| (*from, member.clone()))
                .collect();
            (behind, w.buffered.len() as u64)
        };
        let share = match lag {
            0 => 0,
            lag => (logs * point.saturating_sub(last)).div_ceil(lag) as usize,
        };
        let old = behind.iter().filter(|(from, _)| *from < below).count();
        let count = old.max(share);
        if count < behind.len() {
            // The oldest `count`, those past the lag among them.
            behind.select_nth_unstable_by_key(count, |(from, _)| *from);
            behind.truncate(count);
        }
        let (mut unwritten, mut first_error) = (0, None);
        for (_, member) in behind {
            if let Err(e) = member.write_buffer() {
                unwritten += 1;
                first_error.get_or_insert(e);
            }
        }
        // Buffers still below `below` could not be written (a failing file, a full disk):
        // their frames are copied forward, so that their logs fail alone (appends refused
        // once their buffers are full) rather than hold the trim point for every log.
        let stuck: Vec<Arc<dyn Member>> = {
            let w = self.lock();
            w.buffered.values().filter(|(_, from)| *from < below).map(|(m, _)| m.clone()).collect()
        };
        let (mut copied, mut budget, mut left) = (None, self.copy_budget(), 0);
        for member in stuck {
            match member.copy_buffer(&mut budget) {
                Ok(Copied::To(end)) => copied = copied.max(Some(end)),
                Ok(Copied::Empty) => {}
                Ok(Copied::Held) => left += 1,
                Err(e) => tracing::warn!(journal = %self.path().display(), error = %e,
                    "cannot copy a log's buffered bytes forward in the journal"),
            }
        }
        if let Some(error) = first_error.filter(|_| self.warn_stuck_now()) {
            tracing::warn!(journal = %self.path().display(), logs = unwritten, held = left,
                %error, "segment buffers cannot be written to their files; their partitions \
                 refuse appends once the buffers are full, and the journal keeps their \
                 acknowledged bytes, copying them forward (held: past what one checkpoint \
                 copies, or no room, so they hold the trim point)");
        }
        if let Some(end) = copied {
            self.stats.copied.fetch_add(1, Ordering::Relaxed);
            // The copies are durable before the trim point passes the frames they copy.
            self.wait_synced(end)?;
        }
        let w = self.lock();
        Ok(w.buffered.values().map(|(_, from)| *from).fold(point, u64::min))
    }

    /// Whether to say now that buffers cannot be written: at most every [`ROOM_WARNING`].
    fn warn_stuck_now(&self) -> bool {
        let mut last = self.stuck_warned.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= ROOM_WARNING);
        if due {
            *last = Some(monotonic_now());
        }
        due
    }

    /// Puts a copy of frames the journal holds already, of a member's buffered bytes that
    /// cannot reach its segment file, into the open round, without waiting for room:
    /// `None` when there is none. Returns where the copy starts and the position after
    /// it. Replay applies both: whichever comes second compares equal with what the first
    /// appended.
    pub(crate) fn push_copy(
        &self,
        stream: u32,
        epoch: i32,
        base_offset: i64,
        payload: &[u8],
    ) -> Option<(u64, u64)> {
        let mut w = self.lock();
        if w.failed.is_some() || w.closed {
            return None;
        }
        let trim = w.trim;
        let margin = self.file.overwrite_margin();
        let at =
            w.open.push_op(trim, margin, Op::Append, stream, epoch, base_offset, payload).ok()?;
        let end = w.open.end();
        drop(w);
        self.work.notify_one();
        Some((at, end))
    }

    /// Bytes of frames one checkpoint copies forward at most ([`copy_budget`]).
    pub(crate) fn copy_budget(&self) -> u64 {
        copy_budget(self.capacity)
    }

    /// Room a push (not a copy) leaves free: a checkpoint's copies, and as much again for
    /// the end of the ring they may skip, so that copies fit even when the journal is full
    /// and appends are waiting for the checkpoint that makes them; and what every push and
    /// copy leaves, the bytes a write of the ring may overwrite past its end (a page with
    /// direct writes: `JournalFile::overwrite_margin`).
    pub(super) fn copy_reserve(&self) -> u64 {
        2 * self.copy_budget() + 2 * footprint(0) + self.file.overwrite_margin()
    }

    /// What copying `len` bytes of payload as one frame takes from the budget.
    pub(crate) fn copy_cost(&self, len: usize) -> u64 {
        footprint(len)
    }

    /// Moves the registration of the buffered member at `key` to `from`, the first frame
    /// of a copy of its buffered bytes (under the member's buffer lock).
    pub(crate) fn rebuffer(&self, key: usize, from: u64) {
        if let Some((_, at)) = self.lock().buffered.get_mut(&key) {
            *at = from;
        }
    }

    /// One checkpoint up to `point` (an end of the open round, read under the lock), or
    /// less far if a member's buffered bytes hold it back (see `trim_limit`; `all`: write
    /// every buffer below `point`).
    fn checkpoint_to(&self, point: u64, all: bool) -> Result<(), String> {
        let mut last = self.checkpointing.lock().unwrap_or_else(PoisonError::into_inner);
        if point <= self.lock().trim {
            return Ok(());
        }
        let aimed = point;
        let point = self.trim_limit(point, *last, all).map_err(|e| e.0)?;
        *last = aimed;
        if point <= self.lock().trim {
            return Ok(());
        }
        let started = monotonic_now();
        match &self.fs {
            Some(fs) => fs.sync().map_err(|e| {
                format!("checkpoint: cannot sync the file system of {}: {e}", self.path().display())
            })?,
            None => {
                // Everyone whose segment bytes before `point` reached a file since the last
                // checkpoint is here: a push adds its member after writing (or buffering)
                // them, a written buffer its member once the bytes are in the file, and
                // `trim_limit` wrote the buffers it trims past before this.
                let written = std::mem::take(&mut self.lock().written);
                for member in written.into_values() {
                    member.sync_segment().map_err(|e| format!("checkpoint: {e}"))?;
                }
            }
        }
        self.file.set_trim(point).map_err(|e| format!("checkpoint: {e}"))?;
        {
            let mut w = self.lock();
            w.trim = point;
            self.note_free(&w);
        }
        self.progress.notify_all();
        let s = &self.stats;
        s.checkpoints.fetch_add(1, Ordering::Relaxed);
        s.checkpoint_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Test only: where the next frame goes.
    #[cfg(test)]
    pub(crate) fn end(&self) -> u64 {
        self.lock().open.end()
    }

    /// Test only: holds checkpoints off while the guard lives.
    #[cfg(test)]
    pub(crate) fn hold_checkpoints(&self) -> std::sync::MutexGuard<'_, u64> {
        self.checkpointing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Test only: a checkpoint as the checkpointer makes one when it is due (young
    /// buffers left unwritten), up to everything pushed so far.
    #[cfg(test)]
    pub(crate) fn checkpoint_as_due(&self) -> Result<(), String> {
        let point = self.lock().open.end();
        self.checkpoint_to(point, false)
    }

    /// A checkpoint now, up to everything pushed so far (a clean shutdown: the next start
    /// then replays nothing).
    pub(crate) fn checkpoint_now(&self) -> Result<(), Failed> {
        let point = {
            let w = self.lock();
            if let Some(reason) = &w.failed {
                return Err(Failed(reason.clone()));
            }
            w.open.end()
        };
        self.checkpoint_to(point, true).map_err(|reason| {
            self.fail(reason.clone());
            Failed(reason)
        })
    }
}
