//! The checkpointer: makes the segment files durable (`syncfs`, or an fsync of each
//! segment written since the last checkpoint where the file system cannot be synced at
//! once) and moves the journal's trim point behind them, writing the segment buffers it
//! would trim past (see the rules in `writer`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use shale_core::clock::monotonic_now;

use super::{Failed, Journal, Member};

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

    /// How far a checkpoint up to `point` may trim. Buffers whose first frame is more than
    /// three checkpoints' worth of bytes (at most a quarter of the journal) below `point`
    /// are written first (`all`: every buffer below `point`); a younger one, or one that
    /// cannot be written (a full disk), holds the trim point at its first frame. At 1,000
    /// partitions a buffer fills in about three checkpoints, so most are written by their
    /// own appends rather than one by one here, and the trim point lags by that much.
    fn trim_limit(&self, point: u64, all: bool) -> u64 {
        let lag = match all {
            true => 0,
            false => (3 * self.checkpoint_bytes).min(self.capacity / 4),
        };
        let below = point.saturating_sub(lag);
        let behind: Vec<Arc<dyn Member>> = {
            let w = self.lock();
            w.buffered.values().filter(|(_, from)| *from < below).map(|(m, _)| m.clone()).collect()
        };
        for member in behind {
            member.write_buffer();
        }
        let w = self.lock();
        w.buffered.values().map(|(_, from)| *from).fold(point, u64::min)
    }

    /// One checkpoint up to `point` (an end of the open round, read under the lock), or
    /// less far if a member's buffered bytes hold it back (see `trim_limit`; `all`: write
    /// every buffer below `point`).
    fn checkpoint_to(&self, point: u64, all: bool) -> Result<(), String> {
        let _one = self.checkpointing.lock().unwrap_or_else(PoisonError::into_inner);
        if point <= self.lock().trim {
            return Ok(());
        }
        let point = self.trim_limit(point, all);
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
        self.lock().trim = point;
        self.progress.notify_all();
        let s = &self.stats;
        s.checkpoints.fetch_add(1, Ordering::Relaxed);
        s.checkpoint_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
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
