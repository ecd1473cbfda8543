//! A store for unit tests that passes everything to an inner store, but lets a test delay
//! or fail chosen transactions: a slow or failing etcd at exactly the step under test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    KeyValue, LeaseId, MetaError, MetaStore, RangeResult, Revision, Txn, TxnOutcome, WatchStream,
};

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
