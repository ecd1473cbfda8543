//! Keeps the broker in line with the store: topics and their configs, broker addresses,
//! the controller, and the partition states that say which partitions this broker hosts,
//! who leads them and at which epoch.
//!
//! Every change is handled the same way: re-read the metadata, plan (`reconcile::plan`, a
//! pure function of the view and what is hosted) and apply the plan (close and delete
//! partitions no longer assigned, apply leadership and configs, open newly assigned ones). One path for start-up, watch events, a broken watch and a new lease session
//! keeps the state machine small; metadata changes are rare next to data traffic.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;

use super::partition::{METADATA_FILE, PartitionSpec};
use super::replicas::OpenFailure;
use super::{Broker, Partition, TopicPartition, reconcile};
use shale_core::error::Error;
use shale_meta::controller::{ControllerRecord, read_view};
use shale_meta::{Revision, WatchEvent, watch_prefixes};

/// Pause after a failed read or watch before trying again.
const RETRY: Duration = Duration::from_millis(200);
/// Partitions opened (or closed, at shutdown) at once.
pub(super) const OPEN_CONCURRENCY: usize = 8;
/// How often partitions that failed to open are tried again.
pub(super) const OPEN_RETRY: Duration = Duration::from_secs(2);
/// When a partition that failed to open with `error` is tried again.
pub(super) fn when_tried_again(error: &Error) -> String {
    if error.kind.is_retriable() {
        format!("it is tried again every {} s", OPEN_RETRY.as_secs())
    } else {
        "it is tried again at the next metadata change or restart".to_string()
    }
}

/// Let bursts of events (a topic's partitions are written in chunks) settle.
const DEBOUNCE: Duration = Duration::from_millis(10);

impl Broker {
    /// Re-reads the cluster metadata and reconciles hosted partitions with it. Returns the
    /// revision to watch from (exclusive).
    pub(super) async fn resync(&self) -> Result<Revision, Error> {
        let _guard = self.view.sync_lock.lock().await;
        self.view.resyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.life.is_closing() {
            return Err(Error::unavailable("broker is closing"));
        }
        let session = self.view.membership.session();
        let store = self.view.topics.store();
        let keys = self.view.topics.keys();
        let (view, revision) = read_view(store, keys).await?;
        let controller = match store.get(&keys.controller()).await? {
            Some(kv) => {
                shale_meta::Versioned::<ControllerRecord>::decode(kv).map_or(-1, |v| v.value.id)
            }
            None => -1,
        };

        let cache = reconcile::cache_of(view, &self.defaults);
        let hosted: HashMap<TopicPartition, String> = self
            .replicas
            .partitions
            .read()
            .map_err(|_| Error::internal("partition map poisoned"))?
            .iter()
            .map(|(k, p)| (k.clone(), p.topic_id().to_string()))
            .collect();
        let plan = reconcile::plan(&cache, &hosted, self.me());
        self.apply(plan, cache).await?;
        self.load_tier_pointers().await?;

        self.view.controller_id.store(controller, std::sync::atomic::Ordering::Release);
        self.view.synced_session.store(session, std::sync::atomic::Ordering::Release);
        self.view.synced_tx.send_modify(|n| *n += 1);
        Ok(revision)
    }

    /// Applies a plan: closes (and deletes) what is no longer assigned, installs the new
    /// view, updates the partitions kept, opens the new ones, and removes directories no
    /// assignment owns.
    async fn apply(&self, plan: reconcile::Plan, cache: super::ClusterCache) -> Result<(), Error> {
        // Close partitions no longer assigned (topic deleted or replica moved away) first,
        // so a re-created topic of the same name opens fresh directories.
        for key in &plan.close {
            let removed = self
                .replicas
                .partitions
                .write()
                .map_err(|_| Error::internal("partition map poisoned"))?
                .remove(key);
            if let Some(p) = removed {
                self.stop_fetcher(key);
                drop_partition(p).await?;
            }
        }

        // Addresses and states first: fetchers started below look leaders up in the cache.
        *self.view.cache.write().map_err(|_| Error::internal("metadata cache poisoned"))? = cache;
        for a in &plan.keep {
            if let Some(p) = self.hosted_partition(&a.key.0, a.key.1) {
                p.set_state(&a.state, a.revision);
                if p.config() != a.config {
                    p.set_config(a.config.clone());
                }
                self.ensure_fetcher(&p, &a.state);
            }
        }
        let to_open: Vec<PartitionSpec> = plan
            .open
            .into_iter()
            .map(|a| PartitionSpec {
                topic: a.key.0,
                topic_id: a.topic_id,
                index: a.key.1,
                broker_id: self.id,
                state: a.state,
                revision: a.revision,
                config: a.config,
                remote: self.tier.remote.clone(),
                stages: self.request_metrics().produce_stages.clone(),
            })
            .collect();
        // Every assigned partition not open is in this plan: failures of partitions no
        // longer assigned here are forgotten.
        let keys: HashSet<TopicPartition> =
            to_open.iter().map(|s| (s.topic.clone(), s.index)).collect();
        self.open_failures().retain(|k, _| keys.contains(k));
        self.open_all(to_open).await?;
        self.remove_orphan_dirs(&plan.dirs).await;
        Ok(())
    }

    /// Opens newly assigned partitions, a few at a time, and starts serving them.
    async fn open_all(&self, to_open: Vec<PartitionSpec>) -> Result<(), Error> {
        // Opening is mostly fsyncs; overlap a few so thousands of partitions open quickly.
        let mut opening = futures::stream::iter(to_open.into_iter().map(|spec| {
            let data_dir = self.data_dir();
            let clock = self.clock.clone();
            let resources = self.replicas.resources.clone();
            let again = spec.clone();
            async move {
                let part = tokio::task::spawn_blocking(move || {
                    Partition::open(&data_dir, spec, clock, resources)
                })
                .await
                .map_err(|e| Error::internal(format!("open task failed: {e}")))
                .and_then(|r| r);
                (again, part.map(Arc::new))
            }
        }))
        .buffer_unordered(OPEN_CONCURRENCY);
        while let Some((spec, opened)) = opening.next().await {
            // One partition that cannot open (out of descriptors, damaged metadata, a failed
            // disk) stays closed, loudly, answers clients with why, and is tried again; the
            // others serve.
            let key = (spec.topic.clone(), spec.index);
            let part = match opened {
                Ok(part) => {
                    self.open_failures().remove(&key);
                    part
                }
                Err(error) => {
                    let when = when_tried_again(&error);
                    let failure = OpenFailure { error: error.clone(), spec };
                    if self.open_failures().insert(key.clone(), failure).is_some() {
                        tracing::debug!(topic = %key.0, partition = key.1, error = %error,
                            "cannot open partition yet");
                    } else {
                        tracing::error!(topic = %key.0, partition = key.1, error = %error,
                            "cannot open partition; it stays offline on this broker; {when}");
                    }
                    continue;
                }
            };
            let state = spec.state;
            self.replicas
                .partitions
                .write()
                .map_err(|_| Error::internal("partition map poisoned"))?
                .insert((part.topic().to_string(), part.index()), part.clone());
            self.ensure_fetcher(&part, &state);
        }
        Ok(())
    }

    /// Tries again to open the partitions that failed to for a reason that may pass (out
    /// of descriptors), without a resync: between resyncs, under the same lock.
    async fn retry_failed_opens(&self) {
        let _guard = self.view.sync_lock.lock().await;
        let specs: Vec<PartitionSpec> = self
            .open_failures()
            .values()
            .filter(|f| f.error.kind.is_retriable())
            .map(|f| f.spec.clone())
            .collect();
        if let Err(e) = self.open_all(specs).await {
            tracing::debug!(error = %e, "opening partitions again failed");
        }
    }

    /// Removes partition directories no assignment owns (left by a deletion cut short).
    async fn remove_orphan_dirs(&self, expected: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(self.data_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            // Only a directory no assignment owns is looked into: a stat per hosted
            // partition on every resync would cost thousands of them per change.
            if expected.contains(&name) {
                continue;
            }
            if entry.path().join(METADATA_FILE).exists() {
                tracing::warn!(dir = %name, "removing a partition directory no longer assigned here");
                let path = entry.path();
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
            }
        }
    }

    /// Waits (bounded) until a resync newer than now has happened and `done` holds.
    pub(super) async fn wait_for_metadata(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Broker) -> bool,
    ) -> bool {
        let mut synced = self.view.synced_tx.subscribe();
        let wait = async {
            loop {
                synced.borrow_and_update();
                if done(self) {
                    return;
                }
                if synced.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && done(self)
    }
}

/// Closes a partition and deletes its data.
pub(super) async fn drop_partition(p: Arc<Partition>) -> Result<(), Error> {
    tracing::info!(topic = p.topic(), partition = p.index(), "closing and deleting partition");
    p.mark_closed();
    let log = p.log().clone();
    let dir = p.dir().to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        log.close()?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot remove {}: {e}", dir.display())))
    })
    .await
    .map_err(|e| Error::internal(format!("delete task failed: {e}")))?
}

/// Follows metadata changes until the broker is gone.
///
/// One function on purpose: a single `select!` loop over the watch stream, membership and
/// the periodic resync, whose state (the revision read, the debounce) lives in its
/// locals; the work itself is in `resync`.
pub(super) async fn run(broker: Weak<Broker>, mut from: Revision) {
    let mut live = match broker.upgrade() {
        Some(b) => b.view.membership.subscribe(),
        None => return,
    };
    loop {
        let Some(b) = broker.upgrade() else { return };
        let store = b.view.topics.store().clone();
        let mut prefixes = b.view.topics.keys().placement_prefixes();
        prefixes.push(b.view.topics.keys().all_tiers());
        drop(b);
        let mut watch = match watch_prefixes(&*store, &prefixes, from + 1).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(error = %e, "metadata watch failed; retrying");
                None
            }
        };
        // Resync on every change of brokers, topics, partition states or the controller,
        // after a broken watch (store restarted, compaction, slow reader) and on liveness
        // changes. Tier pointers (one per tiered partition, moved by every upload) are
        // applied as they come, without a resync. Offsets, groups, upload claims and id
        // counters plan nothing here and are not watched at all. An event at or below the
        // revision the last resync read is in that view already: it needs no other resync
        // (with one stream per prefix, it often arrives after the resync it caused).
        let mut synced = from;
        while let Some(w) = watch.as_mut() {
            // A partition that failed to open (out of descriptors, say) is tried again by a
            // resync every OPEN_RETRY, with no metadata change needed.
            let retry_opens = broker.upgrade().is_some_and(|b| b.has_open_failures_to_retry());
            let event = tokio::select! {
                event = w.next() => Some(event),
                changed = live.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    None
                }
                () = shale_core::clock::sleep(OPEN_RETRY), if retry_opens => {
                    let Some(b) = broker.upgrade() else { return };
                    b.retry_failed_opens().await;
                    continue;
                }
            };
            let healthy = match event {
                None => {
                    tracing::debug!("resync: liveness changed");
                    true
                }
                Some(Some(Ok(WatchEvent::Put(kv)))) => {
                    let Some(b) = broker.upgrade() else { return };
                    if b.is_tier_key(&kv.key) {
                        b.apply_tier_pointer(kv);
                        continue;
                    }
                    if kv.mod_revision <= synced {
                        continue;
                    }
                    tracing::debug!(key = %kv.key, "resync: metadata changed");
                    true
                }
                Some(Some(Ok(WatchEvent::Delete { key, mod_revision }))) => {
                    let Some(b) = broker.upgrade() else { return };
                    if b.is_tier_key(&key) || mod_revision <= synced {
                        continue;
                    }
                    tracing::debug!(key = %key, "resync: metadata deleted");
                    true
                }
                other => {
                    tracing::debug!(event = ?other, "resync: the metadata watch broke");
                    false
                }
            };
            if !healthy {
                // Keep serving on what we know: leadership cannot move while our lease is
                // provably alive, and a new lease (session) forces a re-read before leading.
                break;
            }
            shale_core::clock::sleep(DEBOUNCE).await;
            match resync(&broker).await {
                Some(r) => synced = r,
                None => return,
            }
        }
        shale_core::clock::sleep(RETRY).await;
        from = match resync(&broker).await {
            Some(r) => r,
            None => return,
        };
    }
}

/// Resyncs until it succeeds; `None` once the broker is gone or closing.
async fn resync(broker: &Weak<Broker>) -> Option<Revision> {
    loop {
        let b = broker.upgrade()?;
        if b.life.is_closing() {
            return None;
        }
        match b.resync().await {
            Ok(r) => return Some(r),
            Err(e) => {
                tracing::debug!(error = %e, "metadata resync failed; retrying");
                drop(b);
                shale_core::clock::sleep(RETRY).await;
            }
        }
    }
}
