//! The Shale broker: everything a `shale serve` process runs.
//!
//! - `broker`: hosted partitions, produce/fetch with their durability rules, replication,
//!   topic lifecycle, tiering tasks, detection of gone peers.
//! - `groups`: consumer-group coordination and committed offsets — the `shale-groups`
//!   crate, re-exported under its old path.
//! - `txn`: transactions: the rules of a transactional id's coordinator.
//! - `registry`: the schema registry's state, followed from its log `_schemas`, and its
//!   one writer (the rules are `shale-schema`'s).
//! - `api`: the seam under the client-facing front ends (gRPC in `shale-grpc`, Kafka in
//!   `shale-kafka`): every operation a client may ask for, with its authorization, quotas,
//!   audit and counters.
//! - `quota`: per-principal produce, fetch and request-rate quotas, stored in etcd;
//!   requests over quota are held (or refused past `quota.max_delay_ms`).
//! - `auth`: who is calling: principals from bearer tokens and client certificates.
//! - `acl`: authorization: Kafka-style ACLs stored in the metadata store, cached and
//!   watched; the per-request check; producer ids tagged with their principal.
//! - `audit`: the audit trail (refused requests, admin mutations) on its own log target.
//! - `prometheus`: the broker's metrics as Prometheus reads them (served by `shale-admin`).
//! - `metrics`: request metrics shared by the front ends and the metrics exposition.
//! - `settings`: the broker's settings sections (file, env, flags), validated; the front
//!   ends' own sections are theirs (`[kafka]`: `shale_kafka::KafkaSettings`).
//! - `tls`: TLS on the listener and to peers (rustls), with certificates reloaded from disk.
//! - `watched`: a prefix of the metadata store kept in memory by a watch (ACLs, quotas).
//!
//! Below: `shale-storage`, `shale-meta`, `shale-proto` and `shale-core`. Nothing here is
//! used by the client. Above: the front ends, which use `api` only (`scripts/check-layers.sh`).

pub mod acl;
pub mod api;
pub mod audit;
pub mod auth;
pub mod broker;
pub use shale_groups as groups;
pub mod metrics;
mod prometheus;
pub mod quota;
pub mod registry;
pub mod settings;
pub mod tls;
pub mod txn;
pub mod watched;
