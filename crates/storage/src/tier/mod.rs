//! Tiered storage: sealed segments go to an S3-compatible bucket (or a local directory in
//! the embedded default), listed per partition by a manifest that only the partition leader
//! writes, fenced by leader epoch through a small etcd pointer.
//!
//! - `bucket`: the gateway, the only way to the object store: the operations Shale uses,
//!   each with fault injection (`fault`), a timeout per attempt and retries (`retry`), and
//!   counts (`metrics`), written once; its errors are `error::StoreError`.
//! - `store`: the backend from settings (`s3://`, `file://`, `memory://`); `durable_local`
//!   makes the `file://` bucket's writes durable before they return.
//! - `manifest`: the manifest, the object layout, and the etcd pointer's value.
//! - `catalog`: reading the current manifest of a partition and committing a new one.
//! - `partition`: `TierPartition`, what tiering needs from a hosted partition.
//! - `uploader`: sealed segments to the bucket, for the partitions a broker leads.
//! - `retention`: remote retention, after each upload pass.
//! - `compactor`: remote compaction of compacted topics, after remote retention.
//! - `throttle`: the upload rate limit, for uploads and compactions alike.
//! - `scrubber`: deletes objects no manifest lists and no upload claims.
//! - `reader`: cold reads: chunks fetched, cached and read ahead.
//! - `settings`: the `[tier]` settings.

pub mod bucket;
pub mod catalog;
mod chunk_cache;
pub mod compactor;
pub mod durable_local;
pub mod error;
pub mod fault;
pub mod manifest;
pub mod metrics;
pub mod partition;
pub mod reader;
mod retention;
pub mod retry;
pub mod scrubber;
pub mod settings;
pub mod store;
mod throttle;
pub mod uploader;

pub use bucket::{Bucket, ObjectInfo};
pub use catalog::{Catalog, PartitionRef};
pub use error::StoreError;
pub use manifest::{Manifest, RemoteSegment, TierPointer};
/// Object keys, as the bucket names them.
pub use object_store::path::Path as ObjectPath;
pub use partition::TierPartition;
pub use settings::TierSettings;
pub use store::StoreUrl;
