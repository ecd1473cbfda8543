//! Shale's storage: where a partition's bytes live.
//!
//! - `log`: the partition log on local disk: segments, indexes, group commit, recovery,
//!   retention.
//! - `journal`: the write-ahead journal the partitions of a data volume share (being
//!   built: its frame format and ring scan).
//! - `tier`: tiered storage: the bucket gateway (the object-store operations Shale uses,
//!   with retry, metrics and faults written once; the durable `file://` backend), manifests
//!   and their catalog, the uploader, remote retention and the scrubber (reaching a
//!   partition through `tier::TierPartition`), cold reads.
//! - `clean`: log compaction, the cleaner (being built: its offset map and the cleaning of
//!   a section of batches).
//!
//! Below: `shale-core` (records, the disk seam) and `shale-meta` (the tier pointers and
//! upload claims live in the metadata store).

pub mod clean;
mod journal;
pub mod log;
pub mod tier;
