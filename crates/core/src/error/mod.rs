//! The public error kinds every layer maps onto, so callers know whether to retry.
//!
//! Each layer keeps its own `thiserror` enum (`record::RecordError`, `log::LogError`,
//! `meta::MetaError`, ...). They all convert into [`Error`], which carries a kind (retry or
//! not), a machine-readable reason, a lowercase message naming the offending value, and
//! key/value details (for example the leader's address, or the valid offset range).
//! `shale_proto::status` maps it 1:1 onto `tonic::Status`; the client maps it back.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

mod reason;

pub use reason::Reason;

/// What kind of failure this is; decides the gRPC code and whether a client retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// This broker does not lead the partition; details name the leader. Retriable.
    NotLeader,
    /// A newer leader epoch or generation exists; the caller is a zombie. Not retriable as is.
    Fenced,
    /// Temporarily unable to serve (shutting down, store unreachable). Retriable.
    Unavailable,
    /// The request is malformed or names an invalid value. Not retriable.
    Invalid,
    /// The topic, partition or key does not exist. Not retriable.
    NotFound,
    /// The thing to create exists already. Not retriable.
    AlreadyExists,
    /// An offset outside the log's range; details give the valid range. Not retriable.
    OutOfRange,
    /// Stored data is corrupt or missing. Not retriable.
    Data,
    /// A bug or an unexpected I/O failure. Not retriable.
    Internal,
    /// The caller's credentials are missing or not valid. Not retriable as is.
    Unauthenticated,
    /// The caller is authenticated but not allowed to do this. Not retriable as is.
    PermissionDenied,
    /// The caller is over a quota; retriable after the delay in `retry_after_ms`.
    ResourceExhausted,
}

impl ErrorKind {
    /// Whether the same request may succeed when sent again (possibly elsewhere).
    pub fn is_retriable(self) -> bool {
        matches!(self, ErrorKind::NotLeader | ErrorKind::Unavailable | ErrorKind::ResourceExhausted)
    }
}

/// A classified error: kind, reason, message and details, and the error it came from.
#[derive(Debug, Clone)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Machine-readable reason; on the wire in SCREAMING_SNAKE_CASE, e.g. `CORRUPT_BATCH`.
    pub reason: Reason,
    /// Lowercase human message that names the bad value and says what to do.
    pub message: String,
    /// Structured details, e.g. `leader_address`, `log_start_offset`.
    pub details: BTreeMap<String, String>,
    /// The underlying error (an I/O error, a store's error), for logs and
    /// [`std::error::Error::source`]; it does not travel on the wire.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are equal when what a caller sees is: kind, reason, message and details.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.reason, &self.message, &self.details)
            == (other.kind, &other.reason, &other.message, &other.details)
    }
}

impl Eq for Error {}

impl Error {
    /// How long the server asked the caller to wait before retrying (`retry_after_ms`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let ms = self.details.get("retry_after_ms")?.parse::<u64>().ok()?;
        Some(std::time::Duration::from_millis(ms))
    }

    /// A new error without details.
    pub fn new(kind: ErrorKind, reason: Reason, message: impl Into<String>) -> Self {
        Error { kind, reason, message: message.into(), details: BTreeMap::new(), source: None }
    }

    /// Keeps the error this one came from.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Adds one detail.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.details.insert(key.to_string(), value.to_string());
        self
    }

    /// An `Invalid` error with reason `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, Reason::InvalidArgument, message)
    }

    /// An `Internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, Reason::Internal, message)
    }

    /// An `Unavailable` error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unavailable, Reason::Unavailable, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result with the public [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error for a partition index past the topic's count.
pub fn partition_out_of_range(topic: &str, partition: u32, count: u32) -> Error {
    Error::new(
        ErrorKind::NotFound,
        Reason::UnknownPartition,
        format!(
            "partition {partition} out of range: topic {topic:?} has {count} partitions (0..={})",
            count.saturating_sub(1)
        ),
    )
    .with("topic", topic)
    .with("partition", partition)
    .with("partitions", count)
}

/// `NOT_LEADER`, the one way it is built: this broker does not (or no longer) lead
/// `topic`-`partition`, so the write or read was not done here. `leader` and
/// `leader_epoch` are what this broker knows of the current leadership (`-1` for a leader
/// it does not know), `leader_address` where that leader serves (empty when unknown);
/// `message` says what happened. Details, always all five: `topic`, `partition`,
/// `leader_id`, `leader_epoch`, `leader_address`. Clients refresh metadata and retry.
pub fn not_leader(
    topic: &str,
    partition: u32,
    (leader, leader_epoch): (i32, i32),
    leader_address: &str,
    message: impl Into<String>,
) -> Error {
    Error::new(ErrorKind::NotLeader, Reason::NotLeader, message)
        .with("topic", topic)
        .with("partition", partition)
        .with("leader_id", leader)
        .with("leader_epoch", leader_epoch)
        .with("leader_address", leader_address)
}

/// What bounds a valid offset range from above, named by the detail key that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    /// The high watermark: consumers may fetch up to it (a fetch at it waits).
    HighWatermark,
    /// The local log end: a read at it returns nothing yet.
    LogEnd,
    /// The end of the tiered log: the offset after the last record in the bucket
    /// (exclusive: that offset is read locally).
    RemoteEnd,
}

impl RangeEnd {
    /// The detail key of the end offset.
    pub fn key(self) -> &'static str {
        match self {
            RangeEnd::HighWatermark => "high_watermark",
            RangeEnd::LogEnd => "log_end_offset",
            RangeEnd::RemoteEnd => "remote_end_offset",
        }
    }
}

/// `OFFSET_OUT_OF_RANGE`, the one way it is built: `offset` is outside `start` up to `end`
/// (inclusive, except [`RangeEnd::RemoteEnd`]). Details: `offset`, `log_start_offset`, and
/// the end under [`RangeEnd::key`].
pub fn offset_out_of_range(offset: i64, start: i64, end: i64, bound: RangeEnd) -> Error {
    let range = match bound {
        RangeEnd::RemoteEnd => format!("{start}..{end}"),
        RangeEnd::HighWatermark | RangeEnd::LogEnd => format!("{start}..={end}"),
    };
    Error::new(
        ErrorKind::OutOfRange,
        Reason::OffsetOutOfRange,
        format!("offset {offset} is out of range: valid offsets are {range}"),
    )
    .with("offset", offset)
    .with("log_start_offset", start)
    .with(bound.key(), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_always_carries_the_same_five_details() {
        let e = not_leader("t", 3, (2, 7), "127.0.0.1:9092", "broker 1 does not lead t-3");
        assert_eq!((e.kind, &e.reason), (ErrorKind::NotLeader, &Reason::NotLeader));
        let got: Vec<(&str, &str)> =
            e.details.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("leader_address", "127.0.0.1:9092"),
                ("leader_epoch", "7"),
                ("leader_id", "2"),
                ("partition", "3"),
                ("topic", "t")
            ]
        );
    }

    #[test]
    fn offset_out_of_range_has_one_shape_whatever_bounds_it() {
        for (bound, key, range) in [
            (RangeEnd::HighWatermark, "high_watermark", "3..=9"),
            (RangeEnd::LogEnd, "log_end_offset", "3..=9"),
            (RangeEnd::RemoteEnd, "remote_end_offset", "3..9"),
        ] {
            let e = offset_out_of_range(42, 3, 9, bound);
            assert_eq!((e.kind, &e.reason), (ErrorKind::OutOfRange, &Reason::OffsetOutOfRange));
            assert_eq!(e.message, format!("offset 42 is out of range: valid offsets are {range}"));
            let keys: Vec<&str> = e.details.keys().map(String::as_str).collect();
            let mut want = vec!["log_start_offset", "offset", key];
            want.sort();
            assert_eq!(keys, want);
        }
    }
}
