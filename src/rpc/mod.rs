//! gRPC services (tonic) over the broker, proto <-> domain conversion, status mapping.
//!
//! - `status`: error kind <-> gRPC code, reason and details as `google.rpc.ErrorInfo`.
//! - `convert`: proto messages <-> domain types.
//! - `log_service`: `shale.v1.Log` (Produce, ProduceStream, Fetch, ListOffsets).
//! - `admin_service`: `shale.v1.Admin` (topics, configs, cluster metadata).
//! - `groups_service`: `shale.v1.Groups` (consumer groups and offsets).
//! - `replica_service`: `shale.v1.Replica` (broker-to-broker replication).

pub mod admin_service;
pub mod convert;
pub mod groups_service;
pub mod log_service;
pub mod replica_service;
pub mod status;

/// Generated protobuf and tonic code for package `shale.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("shale.v1");

    /// Encoded file descriptors, for the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shale_descriptor");
}
