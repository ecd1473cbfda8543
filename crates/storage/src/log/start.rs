//! The log start offset that DeleteRecords moves (Kafka's KIP-107): a floor under the log,
//! anywhere in a segment (even inside a batch), below which nothing is served. A follower
//! raises its own to its leader's. It only moves up, and it is fsynced (with its directory)
//! before the call that moved it returns, so neither a restart nor a power cut brings
//! deleted records back. Segments wholly below it go at once; retention deletes the ones
//! that fall below it later (a segment sealed after the floor passed into it).
//!
//! Its file (`log-start-offset`) is read and written by `checkpoint`.

use super::LogError;
use super::checkpoint::{store_start, sync_dir};
use super::partition::PartitionLog;
use super::segment::remove_segment_files;

impl PartitionLog {
    /// Moves the log start up to `offset` (DeleteRecords, or a follower learning its
    /// leader's): offsets below it are refused from then on, and sealed segments wholly
    /// below it are deleted. Durable before it returns. A lower offset than the current
    /// floor changes nothing; one past the log end is out of range. Returns the log start.
    pub fn advance_log_start(&self, offset: i64) -> Result<i64, LogError> {
        let inner = &*self.inner;
        let _fence = inner.fence_in();
        let mut st = inner.lock()?;
        st.check_open()?;
        if offset <= st.start_floor {
            return Ok(st.log_start());
        }
        if offset > st.log_end() {
            return Err(st.out_of_range(offset));
        }
        store_start(inner.disk(), &inner.dir, offset)?;
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
