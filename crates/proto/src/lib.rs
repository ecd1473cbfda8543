//! The wire: generated protobuf and tonic code, how errors travel, and the transport
//! settings both ends agree on. Shared by the client and the broker.
//!
//! - `pb`: generated code for package `shale.v1`.
//! - `status`: error kind <-> gRPC code, reason and details as `google.rpc.ErrorInfo`.
//! - `convert`: proto messages <-> the domain types both sides use (acks, records, errors,
//!   partition sets).
//! - `transport`: HTTP/2 windows and stream limits.

pub mod convert;
pub mod status;
pub mod transport;

/// Generated protobuf and tonic code for package `shale.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("shale.v1");

    /// Encoded file descriptors, for the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shale_descriptor");
}
