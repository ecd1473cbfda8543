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

/// The hosted replicas.
#[derive(Debug)]
pub(super) struct Replicas {
    /// Open partitions by topic and index.
    pub(super) partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
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
            partitions: RwLock::new(HashMap::new()),
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
