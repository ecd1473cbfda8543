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
//! - `reader`: cold reads: chunks fetched, cached and read ahead.
//! - `settings`: the `[tier]` settings.

pub mod bucket;
pub mod catalog;
pub mod durable_local;
pub mod error;
pub mod fault;
pub mod manifest;
pub mod metrics;
pub mod reader;
pub mod retry;
pub mod settings;
pub mod store;

pub use bucket::{Bucket, ObjectInfo};
pub use catalog::{Catalog, PartitionRef};
pub use error::StoreError;
pub use manifest::{Manifest, RemoteSegment, TierPointer};
pub use settings::TierSettings;
pub use store::StoreUrl;
