//! Remote retention, run by the leader after its uploads: the oldest remote segments older
//! than `retention.ms` (unless `cleanup.policy` is `compact` alone), or while the partition (remote plus untiered local bytes) stays at
//! or above `retention.bytes` without them, or wholly below the log start DeleteRecords set,
//! leave the manifest first; their objects are deleted after. The newest remote segment
//! stays, so the remote log keeps its end offset, unless DeleteRecords removed all of it:
//! the uploader then starts again from the local log.

use super::catalog::{Catalog, Current, PartitionRef};
use super::manifest::{RemoteSegment, names};
use super::partition::TierPartition;
use shale_core::error::Error;
use shale_core::topic_config::TopicConfig;

/// Drops the expired remote segments of `p` from `current` at leader epoch `epoch`; returns
/// the manifest after.
pub(super) async fn expire<P: TierPartition + ?Sized>(
    catalog: &Catalog,
    p: &P,
    pref: &PartitionRef,
    current: Current,
    epoch: i32,
    now_ms: i64,
) -> Result<Current, Error> {
    let config = p.topic_config();
    let segments = &current.manifest.segments;
    let tiered_end = current.manifest.end_offset().unwrap_or(0);
    // Local bytes not in the bucket (later sealed segments, the active one) count towards
    // the partition's size too.
    let log = p.local_log();
    let sealed = log.sealed_ranges();
    let sealed_bytes: u64 = sealed.iter().map(|s| s.size).sum();
    let active_bytes = log.size_bytes().saturating_sub(sealed_bytes);
    let local_only =
        sealed.iter().filter(|s| s.base >= tiered_end).map(|s| s.size).sum::<u64>() + active_bytes;
    let floor = log.start_floor();
    let expired = expired_count(segments, &config, local_only, now_ms, floor);
    if expired == 0 {
        return Ok(current);
    }
    let kept = segments[expired..].to_vec();
    let next = catalog.commit(pref, &current, kept, epoch).await?;
    p.set_tier_pointer(next.pointer.clone());
    let doomed: Vec<_> = segments[..expired]
        .iter()
        .flat_map(|s| {
            // A version 1 segment has its index in an object of its own.
            let index = (s.index_bytes == 0).then(|| catalog.object(pref, &names::index(&s.name)));
            std::iter::once(catalog.object(pref, &names::log(&s.name))).chain(index)
        })
        .collect();
    catalog.bucket().remove_quietly(&doomed).await;
    tracing::info!(
        topic = %pref.topic,
        partition = pref.partition,
        segments = expired,
        remote_start = next.manifest.start_offset().unwrap_or(-1),
        "remote retention deleted segments"
    );
    Ok(next)
}

/// How many of the oldest `segments` retention removes, the newest never among them, when
/// `local_only` bytes of the partition are not in the bucket; and every segment wholly below
/// `floor` (records DeleteRecords removed), the newest too.
fn expired_count(
    segments: &[RemoteSegment],
    config: &TopicConfig,
    local_only: u64,
    now_ms: i64,
    floor: i64,
) -> usize {
    let deleted = segments.iter().take_while(|s| s.next_offset <= floor).count();
    let Some((_, older)) = segments.split_last() else { return 0 };
    // `compact` alone keeps each key's latest record for good.
    let deletes = config.cleanup_policy.deletes();
    let mut total = segments.iter().map(|s| s.size_bytes).sum::<u64>() + local_only;
    let mut expired = 0;
    for (i, seg) in older.iter().enumerate() {
        let by_size = deletes
            && config.retention_bytes >= 0
            && total - seg.size_bytes >= config.retention_bytes as u64;
        let by_time = deletes
            && config.retention_ms >= 0
            && seg.max_timestamp >= 0
            && now_ms.saturating_sub(seg.max_timestamp) > config.retention_ms;
        if i >= deleted && !by_size && !by_time {
            break;
        }
        total -= seg.size_bytes;
        expired += 1;
    }
    expired.max(deleted)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A remote segment of ten offsets at `base`.
    pub(crate) fn seg(base: i64, size: u64, max_timestamp: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: base + 10,
            size_bytes: size,
            max_timestamp,
            upload_epoch: 1,
            name: names::segment_stem(base, 1),
            index_bytes: 0,
            aborted: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_segments_expire_by_size_or_time_and_the_newest_stays() {
        let segments = [seg(0, 100, 1_000), seg(10, 100, 2_000), seg(20, 100, 3_000)];
        let config = |bytes: i64, ms: i64| TopicConfig {
            retention_bytes: bytes,
            retention_ms: ms,
            ..TopicConfig::default()
        };
        // 300 remote + 50 local: keeping 250 or more means dropping one segment.
        assert_eq!(expired_count(&segments, &config(250, -1), 50, 0, 0), 1);
        assert_eq!(expired_count(&segments, &config(251, -1), 50, 0, 0), 0);
        // Everything is old: all but the newest go.
        assert_eq!(expired_count(&segments, &config(-1, 10), 0, 1_000_000, 0), 2);
        // Only the first is older than 1.5 s at t = 2.6 s.
        assert_eq!(expired_count(&segments, &config(-1, 1_500), 0, 2_600, 0), 1);
        assert_eq!(expired_count(&segments, &config(-1, -1), 0, i64::MAX, 0), 0);
        assert_eq!(expired_count(&[], &config(0, 0), 0, i64::MAX, 0), 0);
    }

    #[test]
    fn segments_wholly_below_the_log_start_expire_whatever_the_retention() {
        let segments = [seg(0, 100, 1_000), seg(10, 100, 2_000), seg(20, 100, 3_000)];
        let keep_all = TopicConfig { retention_bytes: -1, retention_ms: -1, ..Default::default() };
        // The segment holding the log start stays (part of it is still served).
        assert_eq!(expired_count(&segments, &keep_all, 0, i64::MAX, 15), 1);
        assert_eq!(expired_count(&segments, &keep_all, 0, i64::MAX, 20), 2);
        assert_eq!(expired_count(&segments, &keep_all, 0, i64::MAX, 29), 2);
        // All of it deleted: the newest goes too.
        assert_eq!(expired_count(&segments, &keep_all, 0, i64::MAX, 30), 3);
        // And by retention on top: the first two by size after the one below the start.
        let by_size = TopicConfig { retention_bytes: 100, ..keep_all };
        assert_eq!(expired_count(&segments, &by_size, 0, i64::MAX, 10), 2);
    }
}
