//! Group commit: `flush_until` coalesces concurrent callers into one fsync at a time;
//! `flush_all` is the blocking variant for shutdown and `FlushPolicy::Interval` timers.

use std::sync::atomic::Ordering;

use super::LogError;
use super::partition::{Inner, PartitionLog};

impl PartitionLog {
    /// Returns once every offset below `offset` is fsynced. At most one fsync per partition
    /// is in flight; callers that wait meanwhile are covered by the next single fsync, which
    /// includes every append made until it starts.
    pub async fn flush_until(&self, offset: i64) -> Result<(), LogError> {
        if self.inner.durable.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _turn = self.inner.flush_lock.lock().await;
        // The fsync we waited for may have covered us.
        if self.inner.durable.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.sync_active(Some(offset)))
            .await
            .map_err(|e| LogError::io(&self.inner.dir, std::io::Error::other(e)))?
    }

    /// Fsyncs everything appended so far (blocking; run it via `spawn_blocking`).
    pub fn flush_all(&self) -> Result<(), LogError> {
        self.inner.sync_active(None)
    }
}

impl Inner {
    /// Fsyncs the active segment up to the current log end, outside the partition lock, then
    /// advances the durable offset (unless a truncation rewrote the file meanwhile). Sealed
    /// segments need nothing: a roll fsyncs them before the next segment takes writes.
    pub(super) fn sync_active(&self, until: Option<i64>) -> Result<(), LogError> {
        let (file, path, end, generation) = {
            let st = self.lock()?;
            st.check_open()?;
            if let Some(offset) = until.filter(|&o| o > st.log_end()) {
                return Err(st.out_of_range(offset));
            }
            (st.active.file.clone(), st.active.path.clone(), st.log_end(), st.generation)
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
