//! The seam under the client-facing front ends: every operation a client may ask of the
//! broker, as the gRPC services and the Kafka listener both call it. Each call takes the
//! caller's [`Identity`] and does, in one place, what surrounds the domain operation:
//! authorization (ACLs, audited when denied), quotas, the audit trail of mutations and the
//! per-topic counters. A front end only translates its wire into these calls and their
//! results back; it never checks an ACL, charges a quota or writes an audit event itself.
//!
//! Quotas are charged here; how a front end applies the wait is its protocol's business:
//! gRPC holds the request for it, Kafka answers at once with `throttle_time_ms` and mutes
//! the connection (KIP-219).
//!
//! - this file: [`Api`], its construction and what front ends read of the broker.
//! - `log`: produce, offsets, producer ids.
//! - `fetch`: consumers' reads, one path for both front ends.
//! - `decoded`: reads decoded into records, for front ends that hand out records.
//! - `health`: this broker's health at a glance.
//! - `admin`: topics, configs, partitions, deleting records, moves, the cluster, ACLs and
//!   quotas.
//! - `groups`: consumer groups (Shale's own protocol) and committed offsets.
//! - `classic`: consumer groups of Kafka's classic protocol.
//! - `share`: share groups' fetches and acknowledgements (KIP-932).
//! - `replica`: broker-to-broker replication, for brokers only.
//! - `txn`: transactions as operators list and describe them.
//! - `sasl`: SASL (PLAIN, SCRAM, OAUTHBEARER) and users' SCRAM credentials.
//! - `registry`: the schema registry: reads from this broker's copy, changes through its
//!   one writer.

mod admin;
mod anywhere;
mod classic;
mod decoded;
mod fetch;
mod groups;
mod health;
mod log;
mod registry;
mod replica;
mod sasl;
mod share;
mod txn;

use std::sync::Arc;

pub use crate::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
pub use crate::auth::scram::{
    Exchange as ScramExchange, Mechanism as ScramMechanism, failed as authentication_failed,
};
pub use crate::auth::{Authenticator, Identity, Principal, Via, unauthenticated};
pub use crate::broker::append_all;
pub use crate::broker::fetch::{FetchChunk, Isolation};
pub use crate::broker::moves::Reassignment;
pub use crate::broker::moves::{ClusterLoad, MoveStatus};
pub use crate::broker::producers::ProducerInfo;
pub use crate::broker::topics::NewTopic;
pub use crate::broker::topics::PartitionDescription;
pub use crate::broker::{Elected, ListedOffset, OffsetSpec};
pub use crate::broker::{Payload, Produced, TopicEntry, TxnProduce};
pub use crate::groups::classic::{
    ClassicRecord, JoinRequest, Joined, Live, LiveMember, OffsetToCommit, State as GroupState,
    SyncRequest, Synced,
};
pub use crate::groups::configs::{GroupConfig, KEYS as GROUP_CONFIG_KEYS};
pub use crate::groups::share::{Ack, Acquired, ShareOffset};
pub use crate::groups::{
    CommitOffsets, CommittedOffset, GroupDescription, GroupListing, GroupProtocol, Heartbeat,
    HeartbeatAnswer, KafkaMember, ListedState, MemberDescription, PartitionLag, ResetOffsets,
    ResetTo,
};
pub use crate::metrics::{RequestMetrics, observe_since};
pub use crate::prometheus::{Exposition, OPENMETRICS};
pub use crate::quota::{Kind as QuotaKind, QuotaLimits};
pub use crate::settings::Settings;
pub use crate::tls::{Http1Listener, Http1Server, ServerTls};
pub use crate::txn::state::{TxnRecord, TxnState};
pub use admin::{ClusterMetadata, TopicMetadata, TopicsWanted};
pub use decoded::{DecodeRead, DecodedPart, committed_filter, decode_read};
pub use fetch::{FetchPartition, FetchShape, Fetched};
pub use health::BrokerHealth;
pub use log::{Admitted, PendingProduce};
pub use registry::{RegistryError, RegistryFailure, SchemaText};
pub use sasl::ScramChange;
pub use shale_meta::controller::Move;
pub use shale_meta::topics::{BrokerRecord, PartitionState};
pub use shale_storage::log::JournalMarks;
pub use share::{AckBatch, ShareChunk, ShareFetch};
pub use txn::{TxnCommitter, TxnFilter, TxnPartition};

use crate::broker::Broker as Inner;
use shale_core::error::Error;

/// What the front ends may ask of one broker (see the module docs).
#[derive(Debug, Clone)]
pub struct Api {
    broker: Arc<Inner>,
    auth: Arc<Authenticator>,
}

impl Api {
    /// The operations of `broker`, with callers authenticated by `auth`.
    pub fn new(broker: Arc<Inner>, auth: Arc<Authenticator>) -> Api {
        Api { broker, auth }
    }

    /// Turns a caller's credentials into an identity (see [`Authenticator::authenticate`]).
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        certificate: Option<&[u8]>,
    ) -> Result<Identity, Error> {
        self.auth.authenticate(bearer, certificate).await
    }

    /// Charges `n` to `who`'s quota of `kind`: how long to hold or throttle the caller, or
    /// `RESOURCE_EXHAUSTED` when that would be longer than `quota.max_delay_ms`.
    pub fn charge(
        &self,
        who: &Identity,
        kind: QuotaKind,
        n: u64,
    ) -> Result<std::time::Duration, Error> {
        self.broker.quotas().charge(who, kind, n)
    }

    /// [`charge`](Self::charge), then waits out the delay (gRPC's way).
    pub async fn throttle(&self, who: &Identity, kind: QuotaKind, n: u64) -> Result<(), Error> {
        self.broker.quotas().throttle(who, kind, n).await
    }

    /// Whether callers must authenticate (`auth.require`): anonymous ones are refused.
    pub fn auth_required(&self) -> bool {
        self.broker.settings().auth.require
    }

    /// Audits a request refused before it reached an operation (not authenticated).
    pub fn refused(&self, what: &str, why: &Error) {
        crate::audit::refused(what, why);
    }

    /// This broker's id.
    pub fn broker_id(&self) -> i32 {
        self.broker.id()
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.broker.settings().cluster.name
    }

    /// The broker's settings.
    pub fn settings(&self) -> &Settings {
        self.broker.settings()
    }

    /// Request counters and latency histograms (front ends time their requests into them).
    pub fn metrics(&self) -> &Arc<RequestMetrics> {
        self.broker.request_metrics()
    }

    /// Resolves to true once the broker is closing: long-lived streams end then.
    pub fn closed_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.broker.closed_signal()
    }

    /// Runs `task` tracked by the broker: cancelled when it closes.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.broker.spawn(task)
    }

    /// Ready to serve clients: a produce to any partition this broker leads would be
    /// accepted (readiness probes; see [`Inner::readiness`]).
    pub fn is_ready(&self) -> bool {
        self.broker.readiness().is_ok()
    }

    /// [`is_ready`](Self::is_ready), with the reason when not.
    pub fn readiness(&self) -> Result<(), Error> {
        self.broker.readiness()
    }

    /// The broker's wall clock (ms since the epoch): what it stamps records with.
    pub fn now_ms(&self) -> i64 {
        self.broker.clock().now_ms()
    }

    /// Open: not closing (liveness probes).
    pub fn is_open(&self) -> bool {
        !self.broker.is_closing()
    }

    /// The broker's metrics, for a listener that serves them: encoded at each scrape.
    pub fn metrics_exposition(&self) -> Exposition {
        Exposition::new(&self.broker)
    }

    /// A channel to another broker (forwarding to a group's coordinator, a partition's
    /// leader).
    pub fn peer(&self, address: &str) -> Result<tonic::transport::Channel, Error> {
        self.broker.peer(address)
    }
}
