//! The partition log on local disk: segments, sparse indexes, group commit, recovery,
//! retention.
//!
//! # Files
//! - `config`: [`LogConfig`] and [`FlushPolicy`], mapped from Kafka topic configs by the broker.
//! - `error`: [`LogError`] and its mapping onto the public error kinds.
//! - `partition`: [`PartitionLog`]: open, offsets watch, accessors, close.
//! - `append`: the write path: leader and replicated appends, segment rolls.
//! - `start`: the log start DeleteRecords moves, and its file.
//! - `read`: reads of whole batches outside the lock, and the timestamp lookup.
//! - `flush`: group commit (`flush_until`) and `flush_all`.
//! - `rounds`: fsync rounds shared by every log on a file system (one `syncfs` for many),
//!   and the failure of a whole file system.
//! - `journaled`: a log's side of its volume's journal (`crate::journal`): its stream, the
//!   frames of its appends and cuts, what the journal's writer tells it.
//! - `replay`: opening a volume's journal, and replaying it into the logs' segment files.
//! - `retention`: time/size retention, `truncate_to`, segment file removal.
//! - `recovery`: opening a directory: trust the recovery point, re-validate after it,
//!   truncate a torn tail.
//! - `segment`: file naming, the active segment, sealed segment metadata, index building.
//! - `index`: the sparse offset index and time index (in memory, encoded, lookups).
//! - `scan`: reading batches back: positional header reads and a CRC-checking scanner.
//! - `epoch`: the leader-epoch checkpoint.
//! - `marks`: a compacted log's marks (where its offsets may skip, how far it was
//!   cleaned, when), in `cleaner-checkpoint`.
//! - `checkpoint`: the shared file header, atomic file replace, the recovery point.
//! - `tiering`: what the uploader and cold reads need: sealed segment slices with their own
//!   index, the remote index format, and resetting a replica to a later start.
//! - `resources`: [`LogResources`], the broker-wide caches of segment file handles (active
//!   and sealed) and indexes.
//!
//! # On-disk format
//! A partition directory `{data_dir}/{topic}-{partition}/` holds:
//! - `{base_offset:020}.log`: Kafka RecordBatch v2 batches back to back, exactly as on the
//!   wire, with no file header: each batch carries its own magic byte (2), so a segment can
//!   be uploaded, served and range-read byte for byte.
//! - `{base_offset:020}.index`: header `SHIX` + version 1 + 3 zero bytes, then 8-byte
//!   entries `(relative offset u32 BE, byte position u32 BE)`, one per
//!   `index_interval_bytes` of batches, both strictly increasing.
//! - `{base_offset:020}.timeindex`: header `SHTX` 1, then 12-byte entries
//!   `(max timestamp so far i64 BE, relative offset u32 BE)` added only when the max
//!   timestamp grows; the last entry is the segment's max timestamp.
//! - `leader-epoch-checkpoint`: header `SHLE` 1, count u32 BE, `(epoch i32 BE, start offset
//!   i64 BE)` per entry, CRC-32C u32 BE of all preceding bytes.
//! - `log-start-offset`: header `SHLS` 1, offset i64 BE, CRC-32C u32 BE: the log start
//!   DeleteRecords set (absent: 0).
//! - `recovery-point`: header `SHRP` 1, offset i64, segment base i64, byte position u64,
//!   segment max timestamp i64 (all BE), CRC-32C u32 BE. Everything below it is fsynced and
//!   valid; recovery re-validates only after it.
//! - `cleaner-checkpoint`: a compacted log's marks (`marks` gives its format); absent for
//!   a log never compacted.
//!
//! Index files, checkpoints and the recovery point are written whole (temporary file,
//! fsync, rename, directory fsync) when a segment is sealed, the log is truncated or closed,
//! so appends write only the `.log` file. Index files of the active segment are trusted
//! only below the recovery point.

mod append;
mod buffer;
pub(crate) mod checkpoint;
pub(crate) mod cleaned;
mod config;
mod epoch;
mod error;
mod flush;
pub(crate) mod index;
mod journaled;
pub(crate) mod marks;
mod partition;
mod read;
mod recovery;
mod replay;
mod resources;
mod rounds;
pub(crate) use resources::descriptor_limit;
mod retention;
pub(crate) mod scan;
pub(crate) mod segment;
mod start;
mod stream;
pub(crate) mod swap;
mod tiering;

#[cfg(test)]
#[allow(unsafe_code, reason = "a global allocator counting allocations, in the test binary only")]
mod alloc_tests;
#[cfg(test)]
pub(crate) mod journal_tests;
#[cfg(test)]
mod power_loss_tests;
#[cfg(test)]
mod tests;

pub use crate::journal::kicks::{
    JournalMarks, deferring as deferring_journal_kicks,
    deferring_task as deferring_journal_kicks_task,
};
pub use checkpoint::FileHeader;
pub use config::{FlushPolicy, LogConfig};
pub use epoch::EpochEntry;
pub use error::LogError;
pub use partition::{OffsetsListener, PartitionLog};
pub use replay::{JournalSettings, JournalStats, MIN_JOURNAL_BYTES, ReplayStats};
pub use resources::{
    DEFAULT_MAX_INDEX_BYTES, DEFAULT_MAX_OPEN_SEGMENTS, DiskActivity, LogResources,
    out_of_descriptors,
};
pub(crate) use tiering::encode_remote_index;
pub use tiering::{RemoteIndex, SealedRange, UploadSlice};

use bytes::Bytes;

/// The log's offsets, published on a watch channel after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOffsets {
    /// First offset still in the log.
    pub log_start: i64,
    /// Offset the next append gets.
    pub log_end: i64,
    /// Every offset below this is fsynced.
    pub durable_end: i64,
    /// The log start DeleteRecords set (0 when never set): nothing below it is served,
    /// locally or from the bucket.
    pub start_floor: i64,
}

/// The result of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Log end after the append (`last_offset + 1`).
    pub log_end_offset: i64,
    /// Largest batch max timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Log start at the time of the append (Kafka returns it in produce responses).
    pub log_start_offset: i64,
    /// Number of batches appended.
    pub batch_count: usize,
    /// Bytes appended.
    pub bytes: usize,
    /// Base offset of the segment the batches went to (it changes when the log rolls).
    pub segment_base: i64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChunk {
    /// Back-to-back batches; empty at the log end or when nothing is below the upper bound.
    pub bytes: Bytes,
    /// The offset to read next.
    pub next_offset: i64,
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Sealed segments deleted.
    pub deleted_segments: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Log start after the pass.
    pub log_start_offset: i64,
    /// Whether the active segment was rolled because it passed `segment_ms`.
    pub rolled: bool,
}

/// What recovery did when the log was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryStats {
    /// Batches re-validated (after the recovery point).
    pub batches_validated: u64,
    /// Bytes re-validated.
    pub bytes_validated: u64,
    /// Bytes cut off as a torn or invalid tail.
    pub bytes_truncated: u64,
    /// Segments deleted because they followed the invalid tail.
    pub segments_deleted: usize,
}
