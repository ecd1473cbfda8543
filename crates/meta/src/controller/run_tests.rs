//! The controller's election loop on a real (embedded) store: a broker that leaves its
//! duties for a moment keeps — or gives up — its term, never strands it.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::embedded::EmbeddedStore;
use crate::heartbeat::HeartbeatSettings;
use crate::topics::TopicStore;
use crate::{LeaseId, RangeResult, TxnOutcome, WatchStream};

const BEATS: HeartbeatSettings =
    HeartbeatSettings { interval: Duration::from_millis(40), timeout: Duration::from_millis(200) };

/// An embedded store whose heartbeat writes can be made slower than a beat stays valid: an
/// overloaded moment (two cores, a slow etcd) in which the broker doubts its own liveness
/// while nobody else doubts it or takes anything from it.
#[derive(Debug)]
struct SlowBeats {
    inner: Arc<dyn MetaStore>,
    prefix: String,
    slow: AtomicBool,
}

#[async_trait]
impl MetaStore for SlowBeats {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetaError> {
        self.inner.get(key).await
    }
    async fn range(&self, prefix: &str) -> Result<RangeResult, MetaError> {
        self.inner.range(prefix).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError> {
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> Result<bool, MetaError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetaError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let beat = txn.success.iter().any(
            |op| matches!(op, TxnOp::Put { key, .. } if key.starts_with(self.prefix.as_str())),
        );
        if beat && self.slow.load(Ordering::Relaxed) {
            shale_core::clock::sleep(BEATS.timeout * 2).await;
        }
        self.inner.txn(txn).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, MetaError> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.inner.revoke_lease(lease).await
    }
    async fn watch_prefix(&self, prefix: &str, start: Revision) -> Result<WatchStream, MetaError> {
        self.inner.watch_prefix(prefix, start).await
    }
}

/// Waits (bounded) for `cond`, naming `what`.
async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if cond().await {
            return;
        }
        shale_core::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after 5 s waiting for {what}");
}

fn topic(name: &str) -> TopicRecord {
    TopicRecord {
        name: name.into(),
        id: format!("{name}-id"),
        partitions: 2,
        replication_factor: 1,
        configs: Default::default(),
        created_ms: 0,
    }
}

/// The one broker of a cluster is controller; its beats stall past their validity, so it
/// takes itself for not live and leaves its duties, while its lease (and with it the
/// controller key) lives on and nobody fences it. Once it beats again it must lead again:
/// topics created afterwards are placed. (Before, it waited for its own key to go away,
/// which only its death could do, and nothing was placed again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_doubted_its_liveness_for_a_moment_leads_again() {
    let keys = Keys::new("resume").unwrap();
    let store = Arc::new(SlowBeats {
        inner: EmbeddedStore::in_memory(shale_core::clock::system()),
        prefix: keys.heartbeats(),
        slow: AtomicBool::new(false),
    });
    let dyn_store: Arc<dyn MetaStore> = store.clone();
    let record = BrokerRecord {
        id: 1,
        address: "b1:9292".into(),
        kafka_address: String::new(),
        rack: String::new(),
        started_ms: 0,
        incarnation: 1,
        draining: false,
    };
    let clock = shale_core::clock::system();
    let ttl = Duration::from_secs(10);
    let one = Membership::join(dyn_store.clone(), keys.clone(), record, ttl, clock).await.unwrap();
    let _lease = shale_core::task::spawn_owned(one.clone().run());
    let _beats = shale_core::task::spawn_owned(one.clone().beat(BEATS));
    let _controller = shale_core::task::spawn_owned(run(
        dyn_store.clone(),
        keys.clone(),
        one.clone(),
        Obituaries::default(),
        Policy::default(),
    ));
    let topics = TopicStore::new(dyn_store.clone(), keys.clone());
    let placed = async |name: &str| {
        let states = dyn_store.range(&keys.partitions(name)).await.unwrap();
        states.kvs.len() == 2
    };
    topics.create(&topic("before")).await.unwrap();
    wait_for("the controller to place topic \"before\"", async || placed("before").await).await;

    store.slow.store(true, Ordering::Relaxed);
    let mut live = one.subscribe();
    tokio::time::timeout(Duration::from_secs(5), live.wait_for(|l| !*l))
        .await
        .expect("the broker to doubt its liveness while its beats are slow")
        .unwrap();
    store.slow.store(false, Ordering::Relaxed);
    wait_for("the broker to beat again", async || one.is_live()).await;

    topics.create(&topic("after")).await.unwrap();
    wait_for("the controller to place topic \"after\"", async || placed("after").await).await;
    let kv = dyn_store.get(&keys.controller()).await.unwrap().expect("a controller key");
    assert_eq!(Versioned::<ControllerRecord>::decode(kv).unwrap().value.id, 1);
}
