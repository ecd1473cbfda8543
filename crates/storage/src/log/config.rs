//! Per-partition log settings, already mapped from Kafka topic configs by the broker.

use std::time::Duration;

/// How the log is made durable; decides whether the broker waits for an fsync before acking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every acknowledged append is fsynced first (group commit). The default.
    Always,
    /// The log fsyncs within this long of an append, on a timer that the first append not
    /// yet fsynced starts; acks may precede the fsync (`flush.policy=interval`).
    Interval(Duration),
}

/// Settings of one partition log (`segment.bytes`, `segment.ms`, `retention.*`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment before it would grow past this many bytes (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll the active segment once its first append is this old (`segment.ms`).
    pub segment_ms: i64,
    /// Delete sealed segments whose newest timestamp is older than this; -1 = unlimited.
    pub retention_ms: i64,
    /// Delete the oldest sealed segments while the log stays above this size; -1 = unlimited.
    pub retention_bytes: i64,
    /// When appends are fsynced (`flush.policy`).
    pub flush: FlushPolicy,
    /// Largest accepted batch including its 12-byte log overhead (`max.message.bytes`).
    pub max_message_bytes: usize,
    /// Bytes of batches between two sparse index entries.
    pub index_interval_bytes: usize,
}

/// Seven days in milliseconds, Kafka's default for `segment.ms` and `retention.ms`.
const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: SEVEN_DAYS_MS,
            retention_ms: SEVEN_DAYS_MS,
            retention_bytes: -1,
            flush: FlushPolicy::Always,
            // Kafka's default (1 MiB + 12 bytes of log overhead) plus headroom for the header.
            max_message_bytes: (1 << 20) + 1024,
            index_interval_bytes: 4096,
        }
    }
}

/// Largest segment size the offset index can address: positions are `u32`.
pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
