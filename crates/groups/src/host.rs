//! What the group coordinator needs from the broker it runs on, and nothing more: the
//! coordinator takes a `&dyn GroupHost`, not the whole `Broker`, so it can be read, tested
//! and changed without the broker's internals.

use std::collections::BTreeSet;

use async_trait::async_trait;

use shale_core::error::Error;
use shale_meta::topics::TopicRecord;

/// The broker as the coordinator sees it.
#[async_trait]
pub trait GroupHost: Send + Sync {
    /// This broker's id.
    fn broker_id(&self) -> i32;

    /// Wall-clock milliseconds (session timeouts, commit timestamps).
    fn now_ms(&self) -> i64;

    /// Live brokers that may coordinate groups, as (id, address).
    fn coordinator_candidates(&self) -> Vec<(i32, String)>;

    /// Names of every topic, sorted.
    fn topic_names(&self) -> Vec<String>;

    /// Whether `principal` may read `topic` (always, without authorization).
    fn may_read(&self, principal: &str, topic: &str) -> bool;

    /// A topic's stored record (id, partition count, configs), or `UNKNOWN_TOPIC`.
    fn topic_record(&self, name: &str) -> Result<TopicRecord, Error>;

    /// The racks of a partition's replicas (rack-aware assignment); none when unknown or
    /// when no broker has a rack.
    fn replica_racks(&self, _topic: &str, _partition: u32) -> BTreeSet<String> {
        BTreeSet::new()
    }

    /// `ListOffsets` for any partition, answered by its leader.
    async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: shale_core::offsets::OffsetSpec,
    ) -> Result<shale_core::offsets::ListedOffset, Error>;
}
