//! Whether a remote log is due for compaction, by the topic's settings: the same rules as a
//! local log's (`clean::pass`), on the manifest's segments. The dirty part starts where
//! the last remote compaction's cleaning point was (the manifest's `compacted`); a segment
//! is cleanable once its newest record is older than `min.compaction.lag.ms`; a clean is
//! due when the dirty share of the cleanable bytes reaches `min.cleanable.dirty.ratio`, or
//! the oldest dirty record is older than `max.compaction.lag.ms`.

use crate::tier::manifest::{Manifest, RemoteSegment};
use shale_core::topic_config::TopicConfig;

/// A remote log's dirty state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// The first offset no remote compaction deduplicated.
    pub(crate) first_dirty: i64,
    /// How many of the oldest segments may be compacted now.
    pub(crate) cleanable: usize,
    /// Bytes of cleanable segments holding dirty offsets.
    pub(crate) dirty_bytes: u64,
    /// Bytes of all cleanable segments.
    pub(crate) cleanable_bytes: u64,
    /// Whether a compaction is due.
    pub(crate) due: bool,
}

/// The dirty state of `m` under `config` at `now_ms`.
pub(crate) fn plan(m: &Manifest, config: &TopicConfig, now_ms: i64) -> Plan {
    let start = m.start_offset().unwrap_or(0);
    let first_dirty = m.compacted.last().map_or(start, |(offset, _)| *offset).max(start);
    let min_lag = config.min_compaction_lag_ms;
    let old_enough =
        |s: &RemoteSegment| min_lag <= 0 || s.max_timestamp <= now_ms.saturating_sub(min_lag);
    let cleanable = m.segments.iter().take_while(|s| old_enough(s)).count();
    let (mut dirty_bytes, mut cleanable_bytes, mut oldest_dirty) = (0, 0, None);
    for s in &m.segments[..cleanable] {
        cleanable_bytes += s.size_bytes;
        if s.next_offset > first_dirty {
            dirty_bytes += s.size_bytes;
            oldest_dirty.get_or_insert(s.max_timestamp);
        }
    }
    let ratio =
        if cleanable_bytes == 0 { 0.0 } else { dirty_bytes as f64 / cleanable_bytes as f64 };
    let overdue = oldest_dirty
        .is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > config.max_compaction_lag_ms);
    let dirty = m.segments[..cleanable].iter().any(|s| s.next_offset > first_dirty);
    let due = dirty && (ratio >= config.min_cleanable_dirty_ratio || overdue);
    Plan { first_dirty, cleanable, dirty_bytes, cleanable_bytes, due }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::retention::tests::seg;

    fn manifest(segments: Vec<RemoteSegment>, compacted: Vec<(i64, i64)>) -> Manifest {
        Manifest { segments, compacted, ..Manifest::empty("t", "id", 0) }
    }

    #[test]
    fn a_remote_log_is_due_by_its_dirty_ratio_or_its_oldest_dirty_record() {
        let config = TopicConfig { min_cleanable_dirty_ratio: 0.5, ..TopicConfig::default() };
        let segments = vec![seg(0, 100, 1_000), seg(10, 100, 2_000), seg(20, 100, 3_000)];
        // Never compacted: all dirty.
        let p = plan(&manifest(segments.clone(), vec![]), &config, 10_000);
        assert_eq!((p.first_dirty, p.cleanable, p.dirty_bytes, p.due), (0, 3, 300, true));
        // Compacted below 20: a third dirty, not due...
        let m = manifest(segments.clone(), vec![(20, 5_000)]);
        let p = plan(&m, &config, 10_000);
        assert_eq!((p.first_dirty, p.dirty_bytes, p.cleanable_bytes, p.due), (20, 100, 300, false));
        // ...unless its dirty record is older than max.compaction.lag.ms.
        let lagging = TopicConfig { max_compaction_lag_ms: 5_000, ..config.clone() };
        assert!(plan(&m, &lagging, 10_000).due);
        // Compacted through the end: nothing dirty, whatever the lag.
        let p = plan(&manifest(segments.clone(), vec![(30, 5_000)]), &lagging, 10_000);
        assert_eq!((p.dirty_bytes, p.due), (0, false));
        // min.compaction.lag.ms: only segments whose newest record is old enough.
        let young = TopicConfig { min_compaction_lag_ms: 8_500, ..config };
        let p = plan(&manifest(segments, vec![]), &young, 10_000);
        assert_eq!((p.cleanable, p.dirty_bytes, p.due), (1, 100, true));
        assert!(!plan(&manifest(vec![], vec![]), &young, 10_000).due);
    }
}
