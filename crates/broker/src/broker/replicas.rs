//! The partition replicas a broker hosts and what serves them: the registry of open
//! partitions, the follower fetchers, channels to the other brokers, the log resources
//! shared by every partition, and the local-disk usage behind the produce budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use shale_core::error::Error;
use shale_storage::log::LogResources;

use super::replication::follower;
use super::{Partition, TopicPartition};

/// An assigned partition that failed to open.
#[derive(Debug)]
pub(super) struct OpenFailure {
    /// The open's error.
    pub(super) error: Error,
    /// What to open it with again: a retriable failure (out of descriptors) is tried again
    /// every [`OPEN_RETRY`](super::follow::OPEN_RETRY), any failure on the next resync.
    pub(super) spec: super::partition::PartitionSpec,
}

/// Open partitions by topic and index. Looked up for every partition of every produce and
/// fetch: by [`TopicPartitionRef`] (no `String` made per lookup), hashed with hashbrown's
/// default hasher (foldhash) rather than SipHash.
pub(super) type PartitionMap = hashbrown::HashMap<TopicPartition, Arc<Partition>>;

/// A borrowed [`TopicPartition`] to look one up by; it hashes as a `TopicPartition` does
/// (a tuple's fields in order, a `String` as its `str`).
#[derive(Hash)]
pub(super) struct TopicPartitionRef<'a>(pub(super) &'a str, pub(super) u32);

impl hashbrown::Equivalent<TopicPartition> for TopicPartitionRef<'_> {
    fn equivalent(&self, key: &TopicPartition) -> bool {
        self.1 == key.1 && self.0 == key.0
    }
}

/// The hosted replicas.
#[derive(Debug)]
pub(super) struct Replicas {
    /// Open partitions by topic and index.
    pub(super) partitions: RwLock<PartitionMap>,
    /// The assigned partitions that failed to open (out of descriptors, a failed disk,
    /// damaged metadata), with why: answered to clients instead of "being opened".
    pub(super) open_failures: Mutex<HashMap<TopicPartition, OpenFailure>>,
    /// Follower fetchers by partition, with the leader epoch they follow.
    pub(super) fetchers: Mutex<HashMap<TopicPartition, follower::Running>>,
    /// Channels to other brokers (replication, forwarding), with the TLS generation they
    /// were made under.
    pub(super) peers: Mutex<HashMap<String, (u64, tonic::transport::Channel)>>,
    /// This broker's TLS material, when it serves TLS: peers are reached over TLS too,
    /// presenting this broker's certificate.
    pub(super) tls: Option<Arc<crate::tls::ServerTls>>,
    /// File-descriptor and index caches shared by every partition log.
    pub(super) resources: Arc<LogResources>,
    /// (when, bytes) of the last sum of local log sizes, for the disk budget.
    pub(super) disk_usage: Mutex<(i64, u64)>,
    /// What replicas joining in a reassignment may copy, per second, all together
    /// (`replication.move_throttle_bytes_per_sec`); `None` when unthrottled.
    pub(super) move_throttle: Option<Mutex<shale_core::rate::TokenBucket>>,
    /// Batch bytes copied by joining replicas, for `/metrics`.
    pub(super) move_copied_bytes: std::sync::atomic::AtomicU64,
    /// Time joining replicas waited on the throttle (ms), for `/metrics`.
    pub(super) move_throttled_ms: std::sync::atomic::AtomicU64,
}

impl Replicas {
    pub(super) fn new(
        resources: Arc<LogResources>,
        tls: Option<Arc<crate::tls::ServerTls>>,
        move_throttle: u64,
    ) -> Replicas {
        // A tenth of a second of burst: the copy runs smoothly at the rate, not in bursts.
        let throttle = (move_throttle > 0).then(|| {
            let now = shale_core::clock::monotonic_now();
            Mutex::new(shale_core::rate::TokenBucket::new(
                move_throttle,
                move_throttle / 10,
                0,
                now,
            ))
        });
        Replicas {
            partitions: RwLock::new(PartitionMap::default()),
            open_failures: Mutex::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            tls,
            resources,
            disk_usage: Mutex::new((i64::MIN / 2, 0)),
            move_throttle: throttle,
            move_copied_bytes: Default::default(),
            move_throttled_ms: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `TopicPartitionRef` finds the entry of its topic and index, and only that one:
    /// it hashes as the owned key does (else lookups would miss at random).
    #[test]
    fn a_borrowed_key_finds_what_the_owned_key_stored() {
        let mut map = hashbrown::HashMap::<TopicPartition, u32>::default();
        for (i, topic) in ["events", "event", "s", ""].into_iter().enumerate() {
            for index in [0, 1, 7, u32::MAX] {
                map.insert((topic.to_string(), index), i as u32 * 10 + index.min(9));
            }
        }
        for (i, topic) in ["events", "event", "s", ""].into_iter().enumerate() {
            for index in [0, 1, 7, u32::MAX] {
                let found = map.get(&TopicPartitionRef(topic, index)).copied();
                assert_eq!(found, Some(i as u32 * 10 + index.min(9)), "{topic:?}-{index}");
            }
            assert_eq!(map.get(&TopicPartitionRef(topic, 2)), None, "{topic:?}-2");
        }
        assert_eq!(map.get(&TopicPartitionRef("eventss", 0)), None);
    }
}
