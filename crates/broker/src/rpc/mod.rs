//! gRPC services (tonic) over the broker.
//!
//! - `convert`: proto messages <-> the broker's descriptions of topics, partitions and brokers.
//! - `log_service`: `shale.v1.Log` (Produce, ProduceStream, Fetch, ListOffsets).
//! - `admin_service`: `shale.v1.Admin` (topics, configs, cluster metadata).
//! - `groups_service`: `shale.v1.Groups` (consumer groups and offsets).
//! - `replica_service`: `shale.v1.Replica` (broker-to-broker replication).

pub mod admin_service;
pub mod convert;
pub mod groups_service;
pub mod log_service;
pub mod replica_service;
