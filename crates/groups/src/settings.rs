//! `[groups]`: the coordinator's timeouts, a section of the broker's settings file.

use serde::{Deserialize, Serialize};

/// `[groups]`: consumer group timeouts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupSettings {
    /// A member is removed after this long without a heartbeat, unless it asks for
    /// another timeout (ms).
    pub session_timeout_ms: u32,
    /// Shortest session timeout a member may ask for (ms).
    pub min_session_timeout_ms: u32,
    /// Longest session timeout a member may ask for (ms).
    pub max_session_timeout_ms: u32,
    /// How often members are told to heartbeat (ms); at most a third of their session
    /// timeout.
    pub heartbeat_interval_ms: u32,
    /// A member that holds on to a partition it was told to give up for longer than this
    /// is removed from the group (ms).
    pub rebalance_timeout_ms: u32,
    /// How often the coordinator refreshes the lag of its groups for `/metrics` (ms).
    pub lag_metrics_interval_ms: u32,
    /// How long the first rebalance of an empty group of Kafka's classic protocol waits
    /// for more members to join, each joining member extending it up to its rebalance
    /// timeout (ms; Kafka's `group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: u32,
    /// Session timeout of a member of Kafka's consumer protocol (KIP-848), which the
    /// broker sets rather than the client (ms; Kafka's `group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: u32,
    /// How often members of Kafka's consumer protocol are told to heartbeat (ms; Kafka's
    /// `group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat_interval_ms: u32,
    /// Session timeout of a share-group member (KIP-932; ms, Kafka's
    /// `group.share.session.timeout.ms`).
    pub share_session_timeout_ms: u32,
    /// How often share-group members are told to heartbeat (ms; Kafka's
    /// `group.share.heartbeat.interval.ms`).
    pub share_heartbeat_interval_ms: u32,
    /// How long a record stays with the share member that acquired it, unless its group
    /// says otherwise (ms; Kafka's `group.share.record.lock.duration.ms`).
    pub share_record_lock_duration_ms: u32,
    /// Shortest lock a group may set (ms; Kafka's `group.share.min.record.lock.duration.ms`).
    pub share_min_record_lock_duration_ms: u32,
    /// Longest lock a group may set (ms; Kafka's `group.share.max.record.lock.duration.ms`).
    pub share_max_record_lock_duration_ms: u32,
    /// Deliveries a record gets at most, unless its group says otherwise (Kafka's
    /// `group.share.delivery.count.limit`).
    pub share_delivery_count_limit: u16,
    /// Smallest delivery limit a group may set.
    pub share_min_delivery_count_limit: u16,
    /// Largest delivery limit a group may set.
    pub share_max_delivery_count_limit: u16,
    /// Records in flight per share partition at most (Kafka's
    /// `group.share.partition.max.record.locks`).
    pub share_partition_max_record_locks: u32,
    /// What a share group's dead-letter topic's name must start with (KIP-1191's
    /// `errors.deadletterqueue.topic.name.prefix`), so a group cannot have the broker write
    /// into just any topic.
    pub share_dead_letter_topic_prefix: String,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            session_timeout_ms: 10_000,
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 300_000,
            heartbeat_interval_ms: 1_000,
            rebalance_timeout_ms: 60_000,
            lag_metrics_interval_ms: 10_000,
            initial_rebalance_delay_ms: 3_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            share_session_timeout_ms: 45_000,
            share_heartbeat_interval_ms: 5_000,
            share_record_lock_duration_ms: 30_000,
            share_min_record_lock_duration_ms: 15_000,
            share_max_record_lock_duration_ms: 60_000,
            share_delivery_count_limit: 5,
            share_min_delivery_count_limit: 2,
            share_max_delivery_count_limit: 10,
            share_partition_max_record_locks: 2_000,
            share_dead_letter_topic_prefix: "dlq.".to_string(),
        }
    }
}
