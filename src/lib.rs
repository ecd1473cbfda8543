//! Shale: a cloud-native, object-storage-backed log service.
//!
//! # Layout
//! - `record`: Kafka RecordBatch v2 format: header, records codec, compression, validation.
//! - `log`: the partition log on local disk: segments, indexes, group commit, recovery, retention.
//! - `disk`: the file seam under the log, the embedded store and the `file://` bucket: the
//!   real file system, the simulated disk of the in-process power-loss suites, the
//!   test-only tracking disk of the process-level ones, and the crash-safe file patterns.
//! - `tier`: tiered storage: the bucket (object store, its durable `file://` form and its
//!   retry, metrics and fault wrappers), manifests and their catalog, cold reads.
//! - `meta`: the `MetaStore` seam (etcd-level primitives), its etcd and embedded
//!   implementations, and what is written once on top of it: topic/partition/broker
//!   records, membership, controller election and placement.
//! - `topic_config`: per-topic configuration by Kafka names, validated.
//! - `broker`: hosted partitions, produce/fetch with their durability rules, replication,
//!   topic lifecycle, tiering tasks, detection of gone peers.
//! - `groups`: consumer-group coordination (KIP-848 style) and committed offsets.
//! - `rpc`: tonic services, proto <-> domain conversion, status mapping.
//! - `server`: assembles a broker and its gRPC server from settings and injected parts.
//! - `admin`: the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
//! - `metrics`: request metrics shared by the services and the admin listener.
//! - `client`: producer, consumer, admin and group clients.
//! - `cli`: the `shale` command line.
//! - `settings`: broker settings (file, env, flags), validated.
//! - `error`: the public error kinds every layer maps onto.
//! - `clock`: injected time.
//! - `failpoint`: crash, hold and error points for fault tests, armed by environment.
//! - `telemetry`: tracing setup.
//!
//! The intended flow is one way: rpc → broker → log / meta / tier. It does not fully hold
//! yet: `broker` and `groups` import each other, and `client` reaches into `broker` and
//! `server`; splitting the crate along these layers is under way.

pub mod acks;
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
pub mod names;
pub mod proto;
pub mod record;
pub mod rpc;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tier;
pub mod topic_config;

pub use error::{Error, ErrorKind, Result};
