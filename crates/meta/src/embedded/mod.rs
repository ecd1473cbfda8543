//! `EmbeddedStore`: the in-process `MetaStore` for `shale standalone` and unit tests, with
//! etcd's semantics and durable writes.
//!
//! - `mod.rs`: the store, its options, and the trait implementation.
//! - `committer.rs`: the single writer thread: batching, group commit, lease reaping, snapshots.
//! - `state.rs`: keys, leases and revisions in memory; evaluation of writes.
//! - `watch.rs`: watchers, bounded channels and the replay history.
//! - `wal.rs`: the WAL and snapshot file formats.
//!
//! Semantics beyond the trait docs: lease-bound keys are not persisted (after a restart
//! they are gone, as after their lease expired) and leases start fresh with ids that do
//! not repeat. Watch history is in memory only, so after a restart a watch must start
//! after the revision the store reopened at, or it gets `Compacted`.

mod committer;
mod state;
mod wal;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use self::committer::{Committed, Committer, Disk, Request};
use self::state::State;
use self::watch::WatchHub;
use super::{
    KeyValue, LeaseId, MetaError, MetaStore, RangeResult, Revision, Txn, TxnOp, TxnOutcome,
    WatchStream, lease_ttl_secs, validate_key, validate_txn,
};
use shale_core::clock::SharedClock;

/// Tuning of the embedded store; the defaults suit production.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How often (real time) expired leases are looked for.
    pub reap_interval: Duration,
    /// Events a watcher may have unread before it is dropped with `Reset`.
    pub watch_buffer: usize,
    /// Most events kept for watches that start in the past.
    pub history_events: usize,
    /// Most bytes of keys and values kept in that history.
    pub history_bytes: usize,
    /// WAL size that triggers a snapshot (once it is also twice the last snapshot).
    pub snapshot_wal_bytes: u64,
    /// The disk the WAL and snapshots live on (a simulated one in power-loss tests).
    pub disk: shale_core::disk::SharedDisk,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            reap_interval: Duration::from_millis(100),
            watch_buffer: 1024,
            history_events: 10_000,
            history_bytes: 64 << 20,
            snapshot_wal_bytes: 8 << 20,
            disk: shale_core::disk::process(),
        }
    }
}

/// The in-process metadata store; see the module docs.
pub struct EmbeddedStore {
    state: Arc<Mutex<State>>,
    clock: SharedClock,
    tx: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
    dir: Option<PathBuf>,
}

/// Locks the state. A panic while holding the lock is a bug already reported by the
/// panic itself; the state is still the last consistent one, because changes are
/// computed before they are applied, so carry on rather than wedge every caller.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmbeddedStore {
    /// Opens (or creates) a store persisted under `dir`, e.g. `{data_dir}/meta/`.
    pub fn open(dir: &Path, clock: SharedClock) -> Result<Arc<Self>, MetaError> {
        Self::open_with(dir, clock, EmbeddedOptions::default())
    }

    /// [`open`](Self::open) with explicit options.
    pub fn open_with(
        dir: &Path,
        clock: SharedClock,
        options: EmbeddedOptions,
    ) -> Result<Arc<Self>, MetaError> {
        let fs = options.disk.clone();
        shale_core::disk::create_dir_durable(&*fs, dir)?;
        wal::remove_leftovers(&*fs, dir)?;
        let snapshot = wal::read_snapshot(&*fs, dir)?;
        let (mut log, records) = wal::Wal::open(fs, dir)?;
        let mut state = State::new(hub(0, &options));
        let snapshot_len = match snapshot {
            Some((snap, len)) => {
                state.load_snapshot(snap);
                len
            }
            None => 0,
        };
        for record in records {
            state.replay(record);
        }
        // A new generation per open keeps lease ids unique across restarts; it must be
        // durable before the first lease id of this run is handed out.
        state.generation += 1;
        let mut buf = Vec::new();
        wal::encode_open(&mut buf, state.generation);
        log.append(&buf).map_err(|e| MetaError::io(log.path(), e))?;
        // Watch history does not survive a restart: everything up to now counts as compacted.
        let compacted = if state.revision > 1 { state.revision } else { 0 };
        state.hub = hub(compacted, &options);
        let disk = Disk { dir: dir.to_path_buf(), wal: log, snapshot_len };
        Self::start(state, clock, Some(disk), options).map_err(|e| MetaError::io(dir, e))
    }

    /// A store that keeps everything in memory; for tests.
    pub fn in_memory(clock: SharedClock) -> Arc<Self> {
        Self::in_memory_with(clock, EmbeddedOptions::default())
    }

    /// [`in_memory`](Self::in_memory) with explicit options.
    pub fn in_memory_with(clock: SharedClock, options: EmbeddedOptions) -> Arc<Self> {
        let mut state = State::new(hub(0, &options));
        state.generation = 1;
        Self::start(state, clock, None, options)
            .expect("the OS refused to start the metadata commit thread; nothing can run")
    }

    fn start(
        state: State,
        clock: SharedClock,
        disk: Option<Disk>,
        options: EmbeddedOptions,
    ) -> std::io::Result<Arc<Self>> {
        let dir = disk.as_ref().map(|d| d.dir.clone());
        let state = Arc::new(Mutex::new(state));
        let committer = Committer {
            state: state.clone(),
            clock: clock.clone(),
            disk,
            options,
            failed: None,
            next_snapshot_at: 0,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("shale-meta-commit".into())
            .spawn(move || committer.run(rx))?;
        Ok(Arc::new(EmbeddedStore { state, clock, tx, thread: Some(thread), dir }))
    }

    /// Ends every lease whose TTL passed on the injected clock and deletes its keys now,
    /// rather than on the next background tick; returns how many leases ended.
    pub async fn reap_expired(&self) -> Result<u64, MetaError> {
        Ok(self.submit(|reply| Request::Reap { reply: Some(reply) }).await?.deleted)
    }

    /// Writes a snapshot and restarts the WAL now (normally done when the WAL grows).
    pub async fn snapshot(&self) -> Result<(), MetaError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Snapshot { reply }).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn submit(
        &self,
        request: impl FnOnce(committer::Reply) -> Request,
    ) -> Result<Committed, MetaError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(request(reply)).map_err(|_| closed())?;
        // The commit thread finishes the write even if this future is dropped.
        rx.await.map_err(|_| closed())?
    }

    async fn write(&self, txn: Txn) -> Result<Committed, MetaError> {
        validate_txn(&txn)?;
        self.submit(|reply| Request::Txn { txn, reply }).await
    }

    #[cfg(test)]
    fn watcher_count(&self) -> usize {
        lock(&self.state).hub.watcher_count()
    }

    #[cfg(test)]
    fn lease_count(&self) -> usize {
        lock(&self.state).lease_count()
    }
}

fn hub(compacted: Revision, o: &EmbeddedOptions) -> WatchHub {
    WatchHub::new(compacted, o.watch_buffer, o.history_events, o.history_bytes)
}

fn closed() -> MetaError {
    MetaError::Unavailable("the embedded metadata store is shut down".into())
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Join so a reopen of the same directory never races this store's last write.
        let _ = self.tx.send(Request::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

#[async_trait]
impl MetaStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetaError> {
        validate_key(key)?;
        Ok(lock(&self.state).get(key))
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetaError> {
        Ok(lock(&self.state).range(prefix))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError> {
        let op = TxnOp::Put { key: key.to_string(), value, lease };
        Ok(self.write(Txn::new().and_then(op)).await?.revision)
    }

    async fn delete(&self, key: &str) -> Result<bool, MetaError> {
        Ok(self.write(Txn::new().and_then(TxnOp::delete(key))).await?.deleted > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetaError> {
        Ok(self.write(Txn::new().and_then(TxnOp::delete_prefix(prefix))).await?.deleted)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let done = self.write(txn).await?;
        Ok(TxnOutcome { succeeded: done.succeeded, revision: done.revision })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let secs = lease_ttl_secs(ttl)?;
        let now_ms = self.clock.now_ms();
        lock(&self.state).grant(secs, now_ms)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, MetaError> {
        let now_ms = self.clock.now_ms();
        lock(&self.state).keep_alive(lease, now_ms).map(Duration::from_secs)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.submit(|reply| Request::Revoke { lease, reply }).await.map(|_| ())
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Revision,
    ) -> Result<WatchStream, MetaError> {
        super::validate_watch_start(start_revision)?;
        let mut state = lock(&self.state);
        let current = state.revision;
        Ok(state.hub.watch(prefix, start_revision, current))
    }
}

#[cfg(test)]
mod power_loss_tests;
#[cfg(test)]
mod tests;
