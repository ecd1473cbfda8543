//! Group commit. `flush_until` waits for a flusher: the broker's fsync rounds (`rounds`),
//! or with `log.shared_fsync` off a turn in one of a few fsync loops (`rounds`, on
//! blocking threads), each turn fsyncing everything the log appended so far, and the log
//! queued for another turn if more was appended meanwhile, until its end is durable. A
//! request never waits for a lock or for the requests ahead of it to take turns: each
//! fsync covers every append made before it started, and its end wakes every request it
//! covered, once, through the `synced` watch.
//! `flush_all` is the blocking variant for shutdown and `FlushPolicy::Interval` timers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::LogError;
use super::partition::{Inner, PartitionLog, State};

impl PartitionLog {
    /// Returns once every offset below `offset` is fsynced.
    pub async fn flush_until(&self, offset: i64) -> Result<(), LogError> {
        let inner = &self.inner;
        if inner.durable.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let mut synced = inner.synced.subscribe();
        // Appends of this thread whose journal rounds wait for the end of a request's
        // appends (`deferring_journal_kicks`) are awaited here: their rounds start now.
        crate::journal::kicks::wake_deferred();
        loop {
            if inner.durable.load(Ordering::Acquire) >= offset {
                return Ok(());
            }
            {
                let st = inner.peek();
                st.check_open()?;
                if offset > st.log_end() {
                    return Err(st.out_of_range(offset));
                }
            }
            Inner::start_flusher(inner);
            // Every fsync, failure, truncation and close publishes here.
            if synced.changed().await.is_err() {
                return Err(LogError::Closed);
            }
        }
    }

    /// Fsyncs everything appended so far (blocking; run it via `spawn_blocking`).
    pub fn flush_all(&self) -> Result<(), LogError> {
        self.inner.sync_active()
    }

    /// Fsyncs everything appended so far on the calling blocking thread, unless the log's
    /// volume shares fsync rounds (then this does nothing and `flush_until` joins the next
    /// round). For a caller that appended on this thread and waits for the fsync anyway, a
    /// follower between two fetches: it saves the hop to a flusher thread and back.
    pub fn flush_here(&self) -> Result<(), LogError> {
        if self.inner.volume.shared() || self.inner.journal.is_some() {
            return Ok(());
        }
        self.inner.sync_active()
    }
}

impl Inner {
    /// Makes sure an fsync covers every append made so far: queues the log for the next
    /// fsync round (or for a turn in an fsync loop) unless it is queued or being synced,
    /// in which case the round or turn it is in looks again when it ends (`flusher_done`,
    /// `sync_turn`).
    pub(super) fn start_flusher(this: &Arc<Inner>) {
        if this.journal.is_some() {
            // The journal's writer takes every round as soon as it holds a frame.
            return;
        }
        if this.volume.shared() {
            this.again.store(true, Ordering::Release);
            if this.flushing.swap(true, Ordering::AcqRel) {
                return;
            }
            // The round this queues for starts after this call: it covers what `again`
            // asked for.
            this.again.store(false, Ordering::Release);
            this.resources.rounds().submit(this.clone());
            return;
        }
        if this.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        this.resources.rounds().flush_alone(this.clone());
    }

    /// The end of the fsync round this log was in: whether it goes in the next round too
    /// (an fsync was asked for meanwhile and appends are not all durable yet), in which
    /// case it is marked as queued again.
    pub(super) fn flusher_done(&self) -> bool {
        #[cfg(test)]
        std::thread::sleep(std::time::Duration::from_micros(
            self.flusher_stop_delay_us.load(Ordering::Relaxed),
        ));
        self.flushing.store(false, Ordering::Release);
        if !self.again.swap(false, Ordering::AcqRel) {
            return false;
        }
        let more = {
            let st = self.peek();
            self.durable.load(Ordering::Acquire) < st.log_end() && st.check_open().is_ok()
        };
        more && !self.flushing.swap(true, Ordering::AcqRel)
    }

    /// One fsync turn of a log that fsyncs alone (see `SyncRounds::flush_alone`): fsyncs
    /// what was appended, and says whether the log needs another turn, because appends
    /// landed meanwhile. A log that is caught up (or failed: its waiters see the failure)
    /// stops being queued.
    pub(super) fn sync_turn(&self) -> bool {
        let caught_up = self.sync_active().is_err()
            || self.durable.load(Ordering::Acquire) >= self.peek().log_end();
        if !caught_up {
            return true;
        }
        #[cfg(test)]
        std::thread::sleep(std::time::Duration::from_micros(
            self.flusher_stop_delay_us.load(Ordering::Relaxed),
        ));
        self.flushing.store(false, Ordering::Release);
        // An append that found the log still queued, between the check above and the
        // store, relies on this turn: look again, and queue the log again unless another
        // caller did.
        let more = self.durable.load(Ordering::Acquire) < self.peek().log_end()
            && self.peek().check_open().is_ok();
        more && !self.flushing.swap(true, Ordering::AcqRel)
    }

    /// Fsyncs the active segment up to the current log end, outside the partition lock, then
    /// advances the durable offset (unless a truncation rewrote the file meanwhile). Sealed
    /// segments need nothing: a roll fsyncs them before the next segment takes writes.
    pub(super) fn sync_active(&self) -> Result<(), LogError> {
        let (file, path, end, generation) = {
            let mut st = self.lock()?;
            st.check_open()?;
            if let Err(e) = self.volume_ok() {
                return self.note_sync(&mut st, Err(e));
            }
            self.settle_buffer(&mut st)?;
            self.journal_caught_up(&mut st)?;
            let file = st.active.file(&self.resources)?;
            (file, st.active.path.clone(), st.log_end(), st.generation)
        };
        #[cfg(test)]
        self.test_sync_delay();
        let synced = super::segment::sync_data(&*file, &path);
        if let Err(e) = synced {
            self.sync_failed(e);
            return self.peek().check_open();
        }
        self.synced_to(end, generation);
        self.peek().check_open()
    }

    /// The log's end and generation, before an fsync that is to cover them; `None` once
    /// the log takes no more writes.
    pub(super) fn capture(&self) -> Option<(i64, u64)> {
        let st = self.lock().ok()?;
        st.check_open().ok()?;
        Some((st.log_end(), st.generation))
    }

    /// An fsync that began when the log ended at `end` (at `generation`) succeeded: the
    /// durable offset advances, unless a truncation rewrote the file meanwhile or another
    /// fsync of the log failed (ours then proves nothing).
    pub(super) fn synced_to(&self, end: i64, generation: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.resources.activity().note_write();
        self.durable_to(end, generation, true);
    }

    /// Appends up to `end` (at `generation`) are durable, by an fsync of the log's segment
    /// (`segment`) or a round of its journal: the durable offset advances, unless a
    /// truncation rewrote the file meanwhile or the log stopped.
    pub(super) fn durable_to(&self, end: i64, generation: u64, segment: bool) {
        self.durable_to_locked(&mut self.peek(), end, generation, segment);
    }

    /// [`durable_to`](Self::durable_to) under the log's lock, `st`.
    pub(super) fn durable_to_locked(
        &self,
        st: &mut State,
        end: i64,
        generation: u64,
        segment: bool,
    ) {
        if st.check_open().is_err() {
            return;
        }
        if st.generation == generation {
            self.durable.fetch_max(end, Ordering::AcqRel);
            if segment && end >= st.log_end() {
                st.unsynced = false;
            }
        }
        self.publish(st);
    }

    /// An fsync covering this log failed: the log stops (see `note_sync`).
    pub(super) fn sync_failed(&self, e: LogError) {
        let mut st = self.peek();
        let _ = self.note_sync(&mut st, Err(e));
    }

    /// Test hook: the delay set to force overlap with an fsync.
    #[cfg(test)]
    pub(super) fn test_sync_delay(&self) {
        let delay = self.sync_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            let _counted = self.resources.rounds().count_sync();
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
    }
}

impl super::rounds::RoundLog for Inner {
    fn volume(&self) -> &Arc<super::rounds::Volume> {
        &self.volume
    }
    fn sync_active(&self) -> Result<(), LogError> {
        Inner::sync_active(self)
    }
    fn sync_turn(&self) -> bool {
        Inner::sync_turn(self)
    }
    fn flusher_done(&self) -> bool {
        Inner::flusher_done(self)
    }
    fn capture(&self) -> Option<(i64, u64)> {
        Inner::capture(self)
    }
    fn synced_to(&self, end: i64, generation: u64) {
        Inner::synced_to(self, end, generation)
    }
    fn sync_failed(&self, e: LogError) {
        Inner::sync_failed(self, e)
    }
    #[cfg(test)]
    fn test_sync_delay(&self) {
        Inner::test_sync_delay(self)
    }
}
