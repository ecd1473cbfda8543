//! Shale's storage: where a partition's bytes live.
//!
//! - `log`: the partition log on local disk: segments, indexes, group commit, recovery,
//!   retention.
//! - `tier`: tiered storage: the bucket (object store, its durable `file://` form and its
//!   retry, metrics and fault wrappers), manifests and their catalog, cold reads.
//!
//! Below: `shale-core` (records, the disk seam) and `shale-meta` (the tier pointers and
//! upload claims live in the metadata store).

pub mod log;
pub mod tier;
