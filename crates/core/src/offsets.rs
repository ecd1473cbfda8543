//! What `ListOffsets` asks (`OffsetSpec`) and finds (`ListedOffset`): the broker answers
//! it, the group coordinator uses it for resets and lag.

/// Which offset `ListOffsets` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start (in the bucket, for a tiered topic).
    Earliest,
    /// The high watermark.
    Latest,
    /// The last stable offset (the latest offset for a `read_committed` reader).
    LastStable,
    /// The first record at or after this time (ms).
    Timestamp(i64),
    /// The record with the largest timestamp (Kafka's MAX_TIMESTAMP, KIP-734).
    MaxTimestamp,
    /// The local log's start (Kafka's EARLIEST_LOCAL_TIMESTAMP, KIP-405): above the log
    /// start when the oldest records are only in the bucket.
    EarliestLocal,
    /// The last offset in the bucket, -1 when nothing is (Kafka's LATEST_TIERED_TIMESTAMP,
    /// KIP-1005).
    LatestTiered,
}

/// What `ListOffsets` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset, or -1 when no record is at or after the time asked (nor any record, for
    /// the largest timestamp; nor anything in the bucket, for the latest tiered).
    pub offset: i64,
    /// The found record's timestamp for a lookup by time or of the largest, else -1.
    pub timestamp_ms: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The high watermark.
    pub high_watermark: i64,
    /// The leader epoch of the leader that answered (-1 with an offset of -1).
    pub leader_epoch: i32,
}
