//! Shale's Kafka front end: a listener that speaks the Kafka wire protocol, so that
//! unmodified Kafka clients, tools and frameworks produce, fetch, commit and administer
//! through it. Every request is translated into the broker's operations
//! (`shale_broker::api`, the seam the gRPC front end uses too), which do the
//! authorization, quotas, audit and counting; record batches pass through byte for byte.
//! The codec is the `kafka-protocol` crate, generated from Kafka's own message schemas.
//!
//! - `settings`: `[kafka]`, this listener's section of the settings file.
//! - `listener`: accepts connections (plaintext or TLS) and names each client.
//! - `connection`: one connection: requests started in order, answers written in order.
//! - `frame`: the size-prefixed framing, checked before allocation; request headers.
//! - `dispatch`: routes a request to its API, after the version and authentication checks.
//! - `versions`: the APIs and versions served, and `ApiVersions`.
//! - `errors`: Shale's errors as Kafka error codes, one table.
//! - `metadata`: `Metadata`, `DescribeCluster`.
//! - `produce`: `Produce`, `InitProducerId`.
//! - `fetch`: `Fetch`, with long-polls and incremental fetch sessions (`sessions`).
//! - `offsets`: `ListOffsets`, `OffsetForLeaderEpoch`.
//! - `delete_records`: `DeleteRecords`.
//! - `producers`: `DescribeProducers`.
//! - `txns`: `ListTransactions`, `DescribeTransactions`.
//! - `topics`: `CreateTopics`, `DeleteTopics`, `CreatePartitions`.
//! - `configs`: `DescribeConfigs`, `AlterConfigs`, `IncrementalAlterConfigs`.
//! - `groups`: the classic group protocol (`FindCoordinator`, `JoinGroup`, `SyncGroup`,
//!   `Heartbeat`, `LeaveGroup`).
//! - `commits`: `OffsetCommit`, `OffsetFetch`.
//! - `sasl`: `SaslHandshake`, `SaslAuthenticate` (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER),
//!   `AlterUserScramCredentials`, `DescribeUserScramCredentials`.
//! - `acls`: `CreateAcls`, `DescribeAcls`, `DeleteAcls` on Shale's ACLs.
//! - `moves`: `AlterPartitionReassignments`, `ListPartitionReassignments`, `ElectLeaders`.
//! - `group_admin`: `ListGroups`, `DescribeGroups`, `DeleteGroups`, `OffsetDelete`.
//! - `consumer_groups`: Kafka's consumer protocol (`ConsumerGroupHeartbeat`,
//!   `ConsumerGroupDescribe`).
//! - `share_groups`: share groups' membership (`ShareGroupHeartbeat`,
//!   `ShareGroupDescribe`); `share_fetch`: `ShareFetch`, `ShareAcknowledge`, in share
//!   sessions (`share_sessions`); `share_offsets`: `DescribeShareGroupOffsets`,
//!   `AlterShareGroupOffsets`, `DeleteShareGroupOffsets`.
//!
//! Below: `shale-broker` (only its `api`) and `shale-core`.

mod acls;
mod call;
mod commits;
mod configs;
mod connection;
mod consumer_groups;
mod delete_records;
mod dispatch;
mod errors;
mod fetch;
mod frame;
#[cfg(test)]
mod fuzz_tests;
mod group_admin;
mod groups;
mod listener;
mod metadata;
mod moves;
mod offsets;
mod produce;
mod producers;
mod sasl;
mod sessions;
mod settings;
mod share_fetch;
mod share_groups;
mod share_offsets;
mod share_sessions;
mod topics;
mod transactions;
mod txns;
mod versions;

pub use listener::{KafkaServer, serve};
pub use settings::{DEFAULT_KAFKA_PORT, KafkaSettings, MECHANISMS};

use shale_broker::api::Api;

/// What every connection of a listener shares.
#[derive(Debug)]
pub(crate) struct Kafka {
    /// The broker's operations.
    pub api: Api,
    /// `[kafka]`.
    pub settings: settings::KafkaSettings,
    /// Incremental fetch sessions (KIP-227).
    pub sessions: sessions::FetchSessions,
    /// Share sessions (KIP-932).
    pub share_sessions: share_sessions::ShareSessions,
}

impl Kafka {
    fn new(api: Api, settings: KafkaSettings) -> Kafka {
        let sessions = sessions::FetchSessions::new(settings.fetch_session_cache_slots);
        let share_sessions = share_sessions::ShareSessions::new(settings.share_session_cache_slots);
        Kafka { api, settings, sessions, share_sessions }
    }
}
