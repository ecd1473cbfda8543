//! Shale: a cloud-native, object-storage-backed log service.
//!
//! # Layout
//! - `record`: Kafka RecordBatch v2 format: header, records codec, compression, validation.
//! - `log`: the partition log on local disk: segments, indexes, group commit, recovery, retention.
//! - `meta`: the `MetaStore` seam (etcd-level primitives) and its embedded implementation.
//! - `topic_config`: per-topic configuration by Kafka names, validated.
//! - `broker`: partition manager and request handling on top of log and meta.
//! - `rpc`: tonic services, proto <-> domain conversion, status mapping.
//! - `client`: producer, consumer and admin clients.
//! - `cli`: the `shale` command line.
//! - `settings`: broker settings (file, env, flags), validated.
//! - `error`: the public error kinds every layer maps onto.
//! - `clock`: injected time.
//! - `telemetry`: tracing setup.

pub mod clock;
pub mod error;
pub mod log;
pub mod meta;
pub mod record;

pub use error::{Error, ErrorKind, Result};
