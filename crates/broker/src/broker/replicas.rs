//! The partition replicas a broker hosts and what serves them: the registry of open
//! partitions, the follower fetchers, channels to the other brokers, the log resources
//! shared by every partition, and the local-disk usage behind the produce budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use shale_storage::log::LogResources;

use super::replication::follower;
use super::{Partition, TopicPartition};

/// The hosted replicas.
#[derive(Debug)]
pub(super) struct Replicas {
    /// Open partitions by topic and index.
    pub(super) partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
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
}

impl Replicas {
    pub(super) fn new(
        resources: Arc<LogResources>,
        tls: Option<Arc<crate::tls::ServerTls>>,
    ) -> Replicas {
        Replicas {
            partitions: RwLock::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            tls,
            resources,
            disk_usage: Mutex::new((i64::MIN / 2, 0)),
        }
    }
}
