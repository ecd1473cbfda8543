//! Shale: a cloud-native, object-storage-backed log service.
//!
//! This crate is the `shale` command line; the system itself is a workspace of crates,
//! each of which may use only the crates below it (`scripts/check-layers.sh` enforces it):
//!
//! ```text
//! shale (this crate: cli, server)
//!   ├─ shale-grpc     the gRPC front end: shale.v1 services over the broker's api
//!   └─ shale-broker   broker, groups, api, admin, auth, acl, quota, metrics, settings, tls
//!        ├─ shale-storage   log, tier
//!        │    └─ shale-meta      MetaStore (etcd, embedded), membership, controller
//!        └─ shale-proto     pb, status, convert, transport
//!   └─ shale-client   producer, consumer, admin and group clients (proto + core only)
//! shale-bench (binary): the load generators, on shale-client (proto + core only)
//! shale-core: record, error, acks, names, topic_config, clock, disk, failpoint
//! ```
//!
//! Modules re-exported here keep the paths `shale::record`, `shale::broker`, ... working
//! for tests, benchmarks and users of this crate.
//!
//! # Layout
//! - `cli`: the `shale` command line (tracing setup and the error exit come from
//!   `shale_client::cli`).
//! - `cpus`: the CPUs a broker process confines itself to (`--cpus`).
//! - `server`: assembles a broker process: the broker, its front ends, the admin listener.
//! - `settings`: the settings file's root: the broker's sections and the front ends'.
//! - re-exported from `shale-core`: `record`, `error`, `acks`, `names`, `topic_config`,
//!   `clock`, `disk`, `failpoint`.
//! - re-exported from `shale-proto`: `proto`; from `shale-client`: `client`; from
//!   `shale-meta`: `meta`; from `shale-storage`: `log`, `tier`; from `shale-broker`:
//!   `broker`, `groups`, `api`, `auth`, `acl`, `metrics`, `tls`; from `shale-admin`: `admin`.

pub mod cli;
pub mod cpus;
pub mod server;
pub mod settings;

pub use shale_admin as admin;
pub use shale_broker::{acl, api, auth, broker, groups, metrics, tls};
pub use shale_client as client;
pub use shale_core::error::{Error, ErrorKind, Result};
pub use shale_core::{acks, clock, disk, error, failpoint, names, record, topic_config};
pub use shale_meta as meta;
pub use shale_proto as proto;
pub use shale_storage::{log, tier};
