//! Shale's gRPC front end: the `shale.v1` services over the broker's operations
//! (`shale_broker::api`), which do the authorization, quotas, audit and counting; these
//! services only translate protobuf messages into those calls and their results back.
//!
//! - `serve`: the server of one broker: the services, health and reflection behind the
//!   layers, over plaintext or TLS.
//! - `auth_layer`: the tower layer that authenticates every call (bearer token, client
//!   certificate) and holds it for its principal's request quota.
//! - `latency`: the tower layer that times every call by method.
//! - `log_service`: `shale.v1.Log` (Produce, ProduceStream, ProduceMany, Fetch, FetchMany,
//!   ListOffsets, InitProducerId).
//! - `log_fetch`: its reads (Fetch, FetchMany), as batches or records, at either
//!   isolation.
//! - `decoded`: fetched batches decoded into records, for `FETCH_FORMAT_RECORDS`.
//! - `admin_service`: `shale.v1.Admin` (topics, configs, moves, cluster metadata, ACLs,
//!   quotas).
//! - `groups_service`: `shale.v1.Groups` (consumer groups and offsets; heartbeats
//!   forwarded to the group's coordinator).
//! - `txn_service`: `shale.v1.Transactions` (transactional producers' calls, forwarded to
//!   the transactional id's coordinator, and their administration).
//! - `forward`: how a call for a coordinator reaches it from any broker.
//! - `replica_service`: `shale.v1.Replica` (broker-to-broker replication).
//! - `convert`: the broker's descriptions of topics, partitions, brokers and ACLs as
//!   protobuf messages.
//!
//! Below: `shale-broker` (only its `api`), `shale-proto` and `shale-core`.

pub mod admin_service;
pub mod auth_layer;
pub mod convert;
mod decoded;
mod forward;
pub mod groups_service;
pub mod latency;
mod log_fetch;
pub mod log_service;
pub mod replica_service;
pub mod serve;
pub mod txn_service;

pub use serve::{GrpcServer, serve};
