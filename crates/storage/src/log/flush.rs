//! Group commit. `flush_until` waits for a flusher: one loop per partition, on a blocking
//! thread, that fsyncs everything appended so far, and again at once if more was appended
//! meanwhile, until the log's end is durable. A request never waits for a lock or for the
//! requests ahead of it to take turns: each fsync covers every append made before it
//! started, and its end wakes every request it covered, once, through the `synced` watch.
//! `flush_all` is the blocking variant for shutdown and `FlushPolicy::Interval` timers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::LogError;
use super::partition::{Inner, PartitionLog};

impl PartitionLog {
    /// Returns once every offset below `offset` is fsynced.
    pub async fn flush_until(&self, offset: i64) -> Result<(), LogError> {
        let inner = &self.inner;
        if inner.durable.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let mut synced = inner.synced.subscribe();
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
}

impl Inner {
    /// Starts the flusher loop unless one is running.
    fn start_flusher(this: &Arc<Inner>) {
        if this.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = this.clone();
        tokio::task::spawn_blocking(move || inner.flush_loop());
    }

    /// Fsyncs until the log end is durable, then stops. Ends on a failure too: the waiters
    /// see the failed log.
    fn flush_loop(&self) {
        loop {
            let caught_up = self.sync_active().is_err()
                || self.durable.load(Ordering::Acquire) >= self.peek().log_end();
            if caught_up {
                #[cfg(test)]
                std::thread::sleep(std::time::Duration::from_micros(
                    self.flusher_stop_delay_us.load(Ordering::Relaxed),
                ));
                self.flushing.store(false, Ordering::Release);
                // An append that found the loop still running, between the check above and
                // the store, relies on this loop: look again, and carry on unless another
                // loop took over.
                let more = self.durable.load(Ordering::Acquire) < self.peek().log_end()
                    && self.peek().check_open().is_ok();
                if !more || self.flushing.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }

    /// Fsyncs the active segment up to the current log end, outside the partition lock, then
    /// advances the durable offset (unless a truncation rewrote the file meanwhile). Sealed
    /// segments need nothing: a roll fsyncs them before the next segment takes writes.
    pub(super) fn sync_active(&self) -> Result<(), LogError> {
        let (file, path, end, generation) = {
            let st = self.lock()?;
            st.check_open()?;
            let file = st.active.file(&self.resources)?;
            (file, st.active.path.clone(), st.log_end(), st.generation)
        };
        #[cfg(test)]
        {
            let delay = self.sync_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_millis(delay));
            }
        }
        let synced = super::segment::sync_data(&*file, &path);
        let mut st = self.peek();
        if synced.is_err() {
            return self.note_sync(&mut st, synced);
        }
        // Another fsync of this file may have failed meanwhile; ours then proves nothing.
        st.check_open()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.resources.activity().note_write();
        if st.generation == generation {
            self.durable.fetch_max(end, Ordering::AcqRel);
        }
        self.publish(&st);
        Ok(())
    }
}
