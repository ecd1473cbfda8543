//! A compacted partition's side of the log cleaner (`broker::cleaner`): what a clean of its
//! log may touch, and its cleaning state, for `/metrics` and `shale topic describe`.

use shale_core::record::control::AbortedSet;
use shale_storage::clean::{CleanRequest, CleanStats, CompactionConfig, DirtyState};

use super::Partition;

/// What the cleaner last found and did in one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cleaning {
    /// How dirty the log was when the cleaner last looked.
    pub dirty: DirtyState,
    /// When the last clean ended (ms since the epoch; 0: none since the broker started).
    pub last_clean_ms: i64,
    /// Cleans since the broker started.
    pub cleans: u64,
    /// Bytes those cleans read.
    pub bytes_read: u64,
    /// Bytes those cleans removed from the log.
    pub bytes_removed: u64,
    /// Cleans that failed (each logged with its error).
    pub failures: u64,
}

impl Partition {
    /// Whether the topic is compacted (`cleanup.policy` `compact` or `compact,delete`).
    pub fn compacts(&self) -> bool {
        self.config().cleanup_policy.compacts()
    }

    /// What a clean of this replica's log may do now: nothing at or past the last stable
    /// offset (a follower may still cut past the high watermark, consumers may not have
    /// seen it, and a transaction open there may still abort, as Kafka's cleaner stops at
    /// the first unstable offset), the records of aborted transactions removed, and
    /// on a tiered topic nothing not yet in the bucket (so that every record, a tombstone
    /// above all, reaches the bucket as produced: a tombstone cleaned away before its
    /// upload would leave the older values in the bucket for good), by the topic's
    /// settings. Abort markers may go, their transactions forgotten first
    /// ([`forget_aborted`](Self::forget_aborted)), except on a tiered topic. Each
    /// producer's last batch is kept (see
    /// [`clean_request_with_producers`](Self::clean_request_with_producers)).
    pub(crate) fn clean_request(&self, now_ms: i64) -> CleanRequest {
        let c = self.config();
        let mut upper_bound = self.last_stable_offset();
        if c.remote_storage_enable {
            let tiered = self.remote().and_then(|r| r.pointer()).map_or(-1, |p| p.end_offset);
            upper_bound = upper_bound.min(tiered);
        }
        CleanRequest {
            upper_bound,
            now_ms,
            config: CompactionConfig {
                min_cleanable_dirty_ratio: c.min_cleanable_dirty_ratio,
                min_compaction_lag_ms: c.min_compaction_lag_ms,
                max_compaction_lag_ms: c.max_compaction_lag_ms,
                delete_retention_ms: c.delete_retention_ms,
            },
            last_batches: Default::default(),
            aborted: AbortedSet::new(self.producers.aborted_in(i64::MIN, upper_bound)),
            // The bucket's copy of a tiered topic keeps its records and markers, and reads
            // from it take the partition's list of aborted transactions.
            abort_markers: !c.remote_storage_enable,
        }
    }

    /// [`clean_request`](Self::clean_request) with each producer's last batch to keep.
    pub(crate) fn clean_request_with_producers(&self, now_ms: i64) -> CleanRequest {
        CleanRequest { last_batches: self.producers.last_batches(), ..self.clean_request(now_ms) }
    }

    /// What the cleaner last found and did here.
    pub fn cleaning(&self) -> Cleaning {
        *self.cleaning.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes how dirty the log is.
    pub(crate) fn note_dirty(&self, dirty: DirtyState) {
        self.cleaning.lock().unwrap_or_else(|p| p.into_inner()).dirty = dirty;
    }

    /// Notes a clean that ended at `now_ms`.
    pub(crate) fn note_clean(&self, stats: &CleanStats, now_ms: i64) {
        let mut c = self.cleaning.lock().unwrap_or_else(|p| p.into_inner());
        c.last_clean_ms = now_ms;
        c.cleans += 1;
        c.bytes_read += stats.bytes_read;
        if stats.swapped {
            c.bytes_removed += stats.bytes_before.saturating_sub(stats.bytes_after);
        }
    }

    /// Notes a clean that failed.
    pub(crate) fn note_clean_failed(&self) {
        self.cleaning.lock().unwrap_or_else(|p| p.into_inner()).failures += 1;
    }
}
