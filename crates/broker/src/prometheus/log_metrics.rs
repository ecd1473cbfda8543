//! The partition logs' own metrics on `/metrics`: the shared journal's, the log cleaner's
//! per compacted partition, and the remote compactor's.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::encode::{family, one};

/// The journal's metrics (`log.journal`).
pub(super) fn journal(
    enc: &mut DescriptorEncoder<'_>,
    j: &shale_storage::log::JournalStats,
) -> fmt::Result {
    let counters: [(&str, &str, u64); 6] = [
        ("log_journal_rounds", "Rounds the journal wrote and synced", j.rounds),
        ("log_journal_bytes", "Bytes of those rounds", j.bytes),
        (
            "log_journal_round_partitions",
            "Partitions acknowledged by those rounds, one per partition per round (over \
             log_journal_rounds: partitions per round)",
            j.round_partitions,
        ),
        ("log_journal_checkpoints", "Checkpoints that trimmed the journal", j.checkpoints),
        (
            "log_journal_room_waits",
            "Appends that waited for a checkpoint because the journal was full",
            j.room_waits,
        ),
        (
            "log_journal_copies",
            "Checkpoints that copied a partition's buffered bytes forward in the journal, \
             its segment file failing writes (the partition refuses appends once its buffer \
             is full)",
            j.copies,
        ),
    ];
    for (name, help, v) in counters {
        one(enc, name, help, ConstCounter::new(v))?;
    }
    one(
        enc,
        "log_journal_sync_seconds",
        "Seconds spent writing and syncing journal rounds (over log_journal_rounds: the mean)",
        ConstCounter::new(j.sync_seconds),
    )?;
    one(
        enc,
        "log_journal_checkpoint_seconds",
        "Seconds spent in checkpoints (syncfs of the data directory, then the trim point)",
        ConstCounter::new(j.checkpoint_seconds),
    )?;
    one(
        enc,
        "log_journal_occupancy_bytes",
        "Bytes of the journal not yet trimmed by a checkpoint",
        ConstGauge::new(j.occupancy as i64),
    )?;
    one(
        enc,
        "log_journal_capacity_bytes",
        "Bytes of the journal (log.journal_bytes)",
        ConstGauge::new(j.capacity as i64),
    )
}

/// A counter of a partition's cleaning state.
type Field = fn(&crate::broker::Cleaning) -> u64;

/// The log cleaner's metrics, per partition of a compacted topic hosted here.
pub(super) fn cleaner(
    enc: &mut DescriptorEncoder<'_>,
    hosted: &[Arc<crate::broker::Partition>],
) -> fmt::Result {
    let compacted: Vec<_> =
        hosted.iter().filter(|p| p.compacts()).map(|p| (p, p.cleaning())).collect();
    let labels = |p: &crate::broker::Partition| {
        vec![("topic", p.topic().to_string()), ("partition", p.index().to_string())]
    };
    family(
        enc,
        "partition_cleaner_dirty_ratio",
        "Compacted partitions: dirty bytes over cleanable bytes, as the cleaner last saw them \
         (a clean is due at min.cleanable.dirty.ratio)",
        compacted.iter().map(|(p, c)| (labels(p), ConstGauge::new(c.dirty.dirty_ratio))).collect(),
    )?;
    family(
        enc,
        "partition_cleaner_dirty_bytes",
        "Compacted partitions: bytes of cleanable segments no clean has deduplicated yet (the \
         cleaner's lag)",
        compacted
            .iter()
            .map(|(p, c)| (labels(p), ConstGauge::new(c.dirty.dirty_bytes as i64)))
            .collect(),
    )?;
    family(
        enc,
        "partition_cleaner_last_clean_timestamp_seconds",
        "Compacted partitions: when the last clean ended (0: none since the broker started)",
        compacted
            .iter()
            .map(|(p, c)| (labels(p), ConstGauge::new(c.last_clean_ms as f64 / 1000.0)))
            .collect(),
    )?;
    let counters: [(&str, &str, Field); 4] = [
        ("partition_cleaner_cleans", "Compacted partitions: cleans", |c| c.cleans),
        ("partition_cleaner_bytes_read", "Compacted partitions: bytes the cleans read", |c| {
            c.bytes_read
        }),
        (
            "partition_cleaner_bytes_removed",
            "Compacted partitions: bytes the cleans removed from the log",
            |c| c.bytes_removed,
        ),
        (
            "partition_cleaner_failures",
            "Compacted partitions: cleans that failed (each logged; tried again at the next look)",
            |c| c.failures,
        ),
    ];
    for (name, help, f) in counters {
        let series = compacted.iter().map(|(p, c)| (labels(p), ConstCounter::new(f(c)))).collect();
        family(enc, name, help, series)?;
    }
    Ok(())
}

/// The remote compactor's metrics (compacted topics with `remote.storage.enable`).
pub(super) fn remote_compaction(
    enc: &mut DescriptorEncoder<'_>,
    s: &shale_storage::tier::compactor::CompactionStats,
) -> fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    let counters = [
        ("tier_compactions", "Remote compactions committed", &s.compactions),
        ("tier_compaction_failures", "Remote compactions that failed", &s.failures),
        ("tier_compaction_read_bytes", "Bytes remote compactions read", &s.bytes_read),
        (
            "tier_compaction_written_bytes",
            "Bytes of replacement segments remote compactions wrote",
            &s.bytes_written,
        ),
        (
            "tier_compaction_removed_bytes",
            "Bytes committed remote compactions removed from remote logs",
            &s.bytes_removed,
        ),
        (
            "tier_compaction_requests",
            "Bucket requests of remote compactions (over tier_compaction_read_bytes: the cost \
             per byte compacted)",
            &s.requests,
        ),
    ];
    for (name, help, v) in counters {
        one(enc, name, help, ConstCounter::new(v.load(Relaxed)))?;
    }
    let last = s.last_ms.load(Relaxed);
    one(
        enc,
        "tier_compaction_last_timestamp_seconds",
        "When the last remote compaction was committed (0: none yet)",
        ConstGauge::new(last as f64 / 1000.0),
    )
}
