//! Shale: a cloud-native, object-storage-backed log service.
//!
//! # Layout
//! - `record`: Kafka RecordBatch v2 format: header, records codec, compression, validation.
//! - `log`: the partition log on local disk: segments, indexes, group commit, recovery, retention.
//! - `meta`: the `MetaStore` seam (etcd-level primitives), its etcd and embedded
//!   implementations, and what is written once on top of it: topic/partition/broker
//!   records, membership, controller election and placement.
//! - `topic_config`: per-topic configuration by Kafka names, validated.
//! - `broker`: hosted partitions, produce/fetch with their durability rules, topic lifecycle.
//! - `rpc`: tonic services, proto <-> domain conversion, status mapping.
//! - `server`: assembles a broker and its gRPC server from settings and injected parts.
//! - `client`: producer, consumer and admin clients.
//! - `cli`: the `shale` command line.
//! - `settings`: broker settings (file, env, flags), validated.
//! - `error`: the public error kinds every layer maps onto.
//! - `clock`: injected time.
//! - `disk`: the file seam under the log and the embedded store (real and simulated disks)
//!   and the crash-safe file patterns they share.
//! - `telemetry`: tracing setup.
//!
//! Data flows one way: rpc → broker → log / meta. Lower layers never import upper ones.

pub mod admin;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod disk;
pub mod error;
pub mod failpoint;
pub mod groups;
pub mod log;
pub mod meta;
pub mod metrics;
pub mod record;
pub mod rpc;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tier;
pub mod topic_config;

pub use error::{Error, ErrorKind, Result};
