//! Unit-test support: brokers that join a store, bounded waits, and a store that passes
//! everything to an inner one but lets a test delay or fail chosen transactions (a slow or
//! failing etcd at exactly the step under test).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::heartbeat::HeartbeatSettings;
use super::membership::Membership;
use super::topics::BrokerRecord;
use super::{
    KeyValue, Keys, LeaseId, MetaError, MetaStore, RangeResult, Revision, Txn, TxnOp, TxnOutcome,
    WatchStream,
};

/// Quick heartbeats, so that tests of silence and fencing take a fraction of a second.
pub(crate) const BEATS: HeartbeatSettings =
    HeartbeatSettings { interval: Duration::from_millis(40), timeout: Duration::from_millis(200) };

/// Whether `txn` writes a heartbeat (a key under `keys.heartbeats()`).
pub(crate) fn writes_a_beat(txn: &Txn, keys: &Keys) -> bool {
    let beats = keys.heartbeats();
    txn.success.iter().any(|op| matches!(op, TxnOp::Put { key, .. } if key.starts_with(&beats)))
}

/// Broker `id` (incarnation `id`, a 10 s lease) joined to `store`.
pub(crate) async fn join(store: &Arc<dyn MetaStore>, keys: &Keys, id: i32) -> Membership {
    let record = BrokerRecord {
        id,
        address: format!("b{id}:9292"),
        kafka_address: String::new(),
        registry_address: String::new(),
        rack: String::new(),
        started_ms: 0,
        incarnation: id as u64,
        draining: false,
    };
    let clock = shale_core::clock::system();
    Membership::join(store.clone(), keys.clone(), record, Duration::from_secs(10), clock)
        .await
        .unwrap()
}

/// Waits (bounded: 5 s) for `cond`, naming `what`.
pub(crate) async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if cond().await {
            return;
        }
        shale_core::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after 5 s waiting for {what}");
}

/// What becomes of one transaction.
pub(crate) enum TxnHook {
    /// Runs as usual.
    Pass,
    /// Runs after this pause.
    Delay(Duration),
    /// Fails unrun, as if the store were unreachable.
    Fail,
}

type Hook = Box<dyn Fn(&Txn) -> TxnHook + Send + Sync>;

/// A store whose transactions go through a hook the test sets.
pub(crate) struct Hooked {
    inner: Arc<dyn MetaStore>,
    hook: Mutex<Hook>,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Hooked {
    /// `inner`, with every transaction passing until [`set`](Self::set) says otherwise.
    pub(crate) fn new(inner: Arc<dyn MetaStore>) -> Arc<Hooked> {
        Arc::new(Hooked { inner, hook: Mutex::new(Box::new(|_| TxnHook::Pass)) })
    }

    /// Decides each transaction from now on.
    pub(crate) fn set(&self, hook: impl Fn(&Txn) -> TxnHook + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Box::new(hook);
    }
}

#[async_trait]
impl MetaStore for Hooked {
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
        let fate = (self.hook.lock().unwrap())(&txn);
        match fate {
            TxnHook::Pass => {}
            TxnHook::Delay(pause) => shale_core::clock::sleep(pause).await,
            TxnHook::Fail => return Err(MetaError::Unavailable("failed by the test".into())),
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
