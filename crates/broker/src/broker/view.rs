//! What a broker knows of the cluster: the cached view of topics, partition states and
//! brokers, the membership it acts under, and the bookkeeping of following the store
//! (`follow.rs` fills it; everything else reads it).

use std::sync::RwLock;
use std::sync::atomic::{AtomicI32, AtomicU64};

use shale_meta::controller::Obituaries;
use shale_meta::membership::Membership;
use shale_meta::topics::TopicStore;

use super::ClusterCache;

/// The broker's view of the cluster.
#[derive(Debug)]
pub(super) struct ClusterView {
    /// Topic, partition and broker records in the store.
    pub(super) topics: TopicStore,
    /// This broker's registration and lease.
    pub(super) membership: Membership,
    /// The last view read from the store.
    pub(super) cache: RwLock<ClusterCache>,
    /// Membership session whose metadata the cache reflects (0 = not in sync).
    pub(super) synced_session: AtomicU64,
    /// Bumped after every resync, so callers can wait for metadata to arrive.
    pub(super) synced_tx: tokio::sync::watch::Sender<u64>,
    /// The controller's id as last read (-1 = none).
    pub(super) controller_id: AtomicI32,
    /// Peers known to be gone before their lease expired (see `liveness`).
    pub(super) obituaries: Obituaries,
    /// Metadata re-reads (resyncs) since start, for `/metrics`.
    pub(super) resyncs: AtomicU64,
    /// Serializes resyncs (opening and closing partitions).
    pub(super) sync_lock: tokio::sync::Mutex<()>,
}

impl ClusterView {
    pub(super) fn new(topics: TopicStore, membership: Membership) -> ClusterView {
        ClusterView {
            topics,
            membership,
            cache: RwLock::new(ClusterCache::default()),
            synced_session: AtomicU64::new(0),
            synced_tx: tokio::sync::watch::channel(0).0,
            controller_id: AtomicI32::new(-1),
            obituaries: Obituaries::default(),
            resyncs: AtomicU64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
        }
    }
}
