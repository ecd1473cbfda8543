//! The broker: hosts partition replicas as the metadata assigns them, serves produce, fetch
//! and admin requests on top of `log` and `meta`, and takes part in membership and
//! controller election. `Broker` (here) composes the named parts below and answers the
//! lookups every service needs.
//!
//! - `view`, `replicas`, `tiering`, `lifecycle`: the parts `Broker` is made of.
//! - `partition`: one hosted partition (log + leader + epoch + config) and its durability rules.
//! - `produce`: the broker's side of a produce (leadership, disk budget, fencing).
//! - `fetch`: the long-polling fetch loop behind the `Fetch` stream.
//! - `topics`: create, delete, alter and describe topics.
//! - `follow`: keeps hosted partitions in line with the partition states in the store
//!   (`reconcile`: the pure plan).
//! - `identity`: the broker id of a data directory.
//! - `markers`: transaction markers a coordinator asks this broker to write as leader.
//! - `txn_host`: what the transaction coordinator needs of its broker; its periodic sweep.
//! - `producers`: producer ids and per-partition producer state (dedup by sequence, open
//!   transactions and the last stable offset).
//! - `replication`: leader, follower and ISR sides of replication, and the high watermark.
//! - `peers`: channels to the other brokers.
//! - `group_host`: what the group coordinator needs of its broker.
//! - `share`: share groups' partitions on their leader (acquire from the log, acknowledge,
//!   release); `share_dlq`: copies of the records they archive to a dead-letter topic.
//! - `registry_host`: what the schema registry needs of its broker (its log, the writer's
//!   leadership and appends at an expected offset, the ID watermark).
//! - `list_offsets`: where a partition starts and ends, and which offset a time falls at.
//! - `delete_records`: DeleteRecords, the log start moved up on every in-sync replica.
//! - `metadata`: the cluster as cached here, for clients to route by.
//! - `tasks`: background work (retention, interval flush, ISR ticks, group sweeps).
//! - `tiering`: tasks for the tier layer's uploader and scrubber over the partitions this
//!   broker leads, and the tier pointers hosted replicas learn.
//! - `remote`: a hosted partition's view of its remote log (pointer, cold reads).
//! - `drain`: controlled shutdown.
//! - `elect`: preferred-leader election on request.
//! - `liveness`: watches the other brokers and records those whose process is gone, so
//!   the controller moves their leaderships without waiting out their lease.

mod cleaner;
mod delete_records;
mod drain;
mod elect;
pub mod fetch;
mod follow;
mod group_host;
pub mod identity;
mod lifecycle;
mod list_offsets;
mod liveness;
mod markers;
mod metadata;
pub mod moves;
pub mod partition;
mod peers;
mod produce;
pub mod producers;
mod readiness;
mod reconcile;
mod registry_host;
pub mod remote;
mod replicas;
pub mod replication;
pub mod share;
mod share_dlq;
mod start;
mod tasks;
mod view;
pub use drain::DrainReport;
pub use elect::Elected;
pub use list_offsets::{ListedOffset, OffsetSpec, check_leader_epoch, list_offsets_on};
pub use metadata::TopicWithStates;
pub use txn_host::TxnProduce;
mod tiering;
pub mod topics;
mod txn_host;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::settings::Settings;
use shale_core::clock::SharedClock;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::topic_config::TopicConfig;
use shale_meta::membership::Membership;
use shale_meta::topics::{BrokerRecord, PartitionState, TopicStore};
use shale_storage::log::LogResources;

pub use partition::{Cleaning, Partition, PendingAck, Produced, append_all};
pub use produce::Payload;
pub use shale_storage::tier::scrubber::ScrubStats;

/// A (topic, partition) pair.
pub type TopicPartition = (String, u32);

/// Topic facts cached by the broker.
#[derive(Debug, Clone)]
pub struct TopicEntry {
    /// Stored record.
    pub record: shale_meta::topics::TopicRecord,
    /// Defaults overlaid with the topic's overrides.
    pub config: Arc<TopicConfig>,
}

/// What the broker knows of the cluster, refreshed from the store by `follow`.
#[derive(Debug, Default)]
struct ClusterCache {
    topics: HashMap<String, TopicEntry>,
    states: HashMap<TopicPartition, (PartitionState, shale_meta::Revision)>,
    brokers: HashMap<i32, BrokerRecord>,
}

/// One Shale broker.
#[derive(Debug)]
pub struct Broker {
    id: i32,
    settings: Settings,
    defaults: TopicConfig,
    clock: SharedClock,
    /// What this broker knows of the cluster, and the bookkeeping of following the store.
    view: view::ClusterView,
    /// The partition replicas hosted here and what serves them.
    replicas: replicas::Replicas,
    /// Tiered storage, when the broker has an object store.
    tier: tiering::Tiering,
    /// Serving, draining, closing, and every background task.
    life: lifecycle::Lifecycle,
    /// Consumer groups this broker coordinates.
    groups: crate::groups::Coordinator,
    /// Producer ids for idempotent producers.
    producer_ids: producers::ProducerIds,
    /// The transaction coordinator of the transactional ids this broker wins.
    txn: std::sync::OnceLock<Arc<crate::txn::coordinator::TxnCoordinator>>,
    /// The schema registry's state and writer (`registry_host`).
    registry: std::sync::OnceLock<Arc<crate::registry::Registry>>,
    /// The cluster's ACLs, and the check every request passes.
    acl: Arc<crate::acl::Authorizer>,
    /// Per-principal quotas.
    quotas: Arc<crate::quota::Quotas>,
    /// Serializes topic create/delete/alter on this broker.
    admin_lock: tokio::sync::Mutex<()>,
    /// Produce/fetch traffic by topic and request latencies.
    requests: Arc<crate::metrics::RequestMetrics>,
    /// The broker itself, for tasks it spawns.
    self_ref: std::sync::OnceLock<std::sync::Weak<Broker>>,
}

/// How long `close` waits for cancelled background tasks to end.
const TASKS_END_WITHIN: Duration = Duration::from_secs(10);

impl Broker {
    /// Runs `task` in the background, tracked by the broker's lifecycle: cancelled when the
    /// broker closes, and waited for before its partitions close.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.life.spawn(task)
    }

    /// Resolves to true once the broker is closing.
    pub fn closed_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.life.closed_signal()
    }

    /// This broker's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The tiered-storage catalog, when the broker has an object store.
    pub fn catalog(&self) -> Option<&Arc<shale_storage::tier::Catalog>> {
        self.tier.remote.as_ref().map(|r| r.catalog())
    }

    /// The remote reader (cold reads), when the broker has an object store.
    pub fn remote_reader(&self) -> Option<&shale_storage::tier::reader::RemoteReader> {
        self.tier.remote.as_ref()
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &crate::groups::Coordinator {
        &self.groups
    }

    /// Live brokers (id, address), by id.
    pub fn live_brokers(&self) -> Vec<(i32, String)> {
        let Ok(cache) = self.view.cache.read() else { return Vec::new() };
        let mut out: Vec<(i32, String)> =
            cache.brokers.values().map(|b| (b.id, b.address.clone())).collect();
        out.sort();
        out
    }

    /// The brokers that coordinate consumer groups: the live ones that are not draining (a
    /// draining broker hands its groups over before it leaves), or every live one when all
    /// of them drain.
    pub fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        let Ok(cache) = self.view.cache.read() else { return Vec::new() };
        let mut out: Vec<(i32, String)> = cache
            .brokers
            .values()
            .filter(|b| !b.draining)
            .map(|b| (b.id, b.address.clone()))
            .collect();
        if out.is_empty() {
            out = cache.brokers.values().map(|b| (b.id, b.address.clone())).collect();
        }
        out.sort();
        out
    }

    /// Names of every topic, sorted.
    pub fn topic_names(&self) -> Vec<String> {
        let Ok(cache) = self.view.cache.read() else { return Vec::new() };
        let mut out: Vec<String> = cache.topics.keys().cloned().collect();
        out.sort();
        out
    }

    /// Metadata re-reads (resyncs) since start.
    pub fn resyncs(&self) -> u64 {
        self.view.resyncs.load(Ordering::Relaxed)
    }

    /// What the bucket scrubber found and removed.
    pub fn scrub_stats(&self) -> &ScrubStats {
        &self.tier.scrub_stats
    }

    /// What remote compaction did.
    pub fn compaction_stats(&self) -> &shale_storage::tier::compactor::CompactionStats {
        &self.tier.compaction_stats
    }

    /// The settings the broker runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The metadata registry.
    pub fn topic_store(&self) -> &TopicStore {
        &self.view.topics
    }

    /// Request counters and latency histograms.
    pub fn request_metrics(&self) -> &Arc<crate::metrics::RequestMetrics> {
        &self.requests
    }

    /// The broker's registration and lease.
    pub fn membership(&self) -> &Membership {
        &self.view.membership
    }

    /// The injected clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The controller as last seen (-1 when none).
    pub fn controller_id(&self) -> i32 {
        self.view.controller_id.load(Ordering::Acquire)
    }

    fn data_dir(&self) -> PathBuf {
        self.settings.broker.data_dir.clone()
    }

    /// The caches and file bound shared by this broker's partition logs.
    pub fn log_resources(&self) -> &Arc<LogResources> {
        &self.replicas.resources
    }

    /// Every hosted partition.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.replicas.partitions.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    fn hosted_partition(&self, topic: &str, partition: u32) -> Option<Arc<Partition>> {
        let key = replicas::TopicPartitionRef(topic, partition);
        self.replicas.partitions.read().ok()?.get(&key).cloned()
    }

    /// The assigned partitions that failed to open here.
    fn open_failures(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TopicPartition, replicas::OpenFailure>> {
        self.replicas.open_failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an assigned partition failed to open here for a reason that may pass (out
    /// of descriptors): one to try again every [`follow::OPEN_RETRY`].
    pub(super) fn has_open_failures_to_retry(&self) -> bool {
        self.open_failures().values().any(|f| f.error.kind.is_retriable())
    }

    /// Why `topic`-`partition`, assigned here, could not be opened, if it could not: the
    /// open's own error (its kind and reason, `TOO_MANY_OPEN_FILES` say), naming the
    /// partition and this broker.
    fn open_failure(&self, topic: &str, partition: u32) -> Option<Error> {
        let e = self.open_failures().get(&(topic.to_string(), partition))?.error.clone();
        let message = format!(
            "partition {topic}-{partition} cannot be opened on broker {}: {}; {}",
            self.id,
            e.message,
            follow::when_tried_again(&e)
        );
        Some(Error { message, ..e }.with("topic", topic).with("partition", partition))
    }

    /// The cached entry of a topic, or NotFound.
    pub fn topic(&self, name: &str) -> Result<TopicEntry, Error> {
        let cache =
            self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
        cache.topics.get(name).cloned().ok_or_else(|| self.not_in_cache(name))
    }

    /// Whether `name` is a topic this broker knows (no copy of its entry).
    pub fn has_topic(&self, name: &str) -> bool {
        self.view.cache.read().is_ok_and(|cache| cache.topics.contains_key(name))
    }

    /// Why `name` is not in this broker's metadata cache: the cache is not loaded yet (a
    /// restart, a lost session; retriable), or the topic does not exist as far as this
    /// broker knows.
    fn not_in_cache(&self, name: &str) -> Error {
        missing_topic(self.id, self.check_serving(), name)
    }

    /// The partition this broker leads, or the precise reason it cannot serve it here:
    /// unknown topic, partition out of range, not the leader (with the leader's address),
    /// offline, or this broker not live.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, Error> {
        if self.life.is_closing() {
            return Err(Error::unavailable("broker is shutting down; retry on another broker"));
        }
        if let Some(p) = self.hosted_partition(topic, partition).filter(|p| p.is_leader()) {
            self.check_serving()?;
            return Ok(p);
        }
        let (entry, state, leader) = {
            let cache =
                self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
            let entry = cache.topics.get(topic).cloned().ok_or_else(|| self.not_in_cache(topic))?;
            let state = cache.states.get(&(topic.to_string(), partition)).map(|(s, _)| s.clone());
            let leader = state.as_ref().and_then(|s| cache.brokers.get(&s.leader).cloned());
            (entry, state, leader)
        };
        if partition >= entry.record.partitions {
            return Err(shale_core::error::partition_out_of_range(
                topic,
                partition,
                entry.record.partitions,
            ));
        }
        match (state, leader) {
            (None, _) => Err(Error::unavailable(format!(
                "partition {topic}-{partition} is being created; retry"
            ))),
            (Some(s), _) if s.leader < 0 => Err(Error::new(
                ErrorKind::Unavailable,
                Reason::PartitionOffline,
                format!(
                    "partition {topic}-{partition} is offline: no live in-sync replica \
                     (replicas {:?}, in sync {:?}); it serves again when one returns",
                    s.replicas, s.isr
                ),
            )
            .with("topic", topic)
            .with("partition", partition)
            .with("leader_epoch", s.leader_epoch)),
            (Some(s), _) if s.leader == self.id && !s.confirms(self.id, self.incarnation()) => {
                Err(Error::unavailable(format!(
                    "broker {} restarted and leads partition {topic}-{partition} only once the \
                     controller confirms it under a new leader epoch (now {}); retry",
                    self.id, s.leader_epoch
                )))
            }
            (Some(s), _) if s.leader == self.id => {
                Err(self.open_failure(topic, partition).unwrap_or_else(|| {
                    Error::unavailable(format!(
                        "partition {topic}-{partition} is being opened on broker {}; retry",
                        self.id
                    ))
                }))
            }
            (Some(s), leader) => Err(shale_core::error::not_leader(
                topic,
                partition,
                (s.leader, s.leader_epoch),
                leader.as_ref().map_or("", |b| b.address.as_str()),
                format!(
                    "broker {} does not lead partition {topic}-{partition}; broker {} at {} does \
                     (epoch {})",
                    self.id,
                    s.leader,
                    leader.as_ref().map_or("an unknown address", |b| b.address.as_str()),
                    s.leader_epoch
                ),
            )),
        }
    }

    /// This broker process's incarnation (see [`BrokerRecord::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.view.membership.incarnation()
    }

    /// This broker as the reconcile plan sees it.
    fn me(&self) -> reconcile::Me {
        reconcile::Me { id: self.id, incarnation: self.incarnation() }
    }

    /// The partition, if this broker leads it at exactly `epoch` (replica requests).
    pub fn leader_at_epoch(
        &self,
        topic: &str,
        partition: u32,
        epoch: i32,
    ) -> Result<Arc<Partition>, Error> {
        let p = self.partition(topic, partition)?;
        if p.leader_epoch() != epoch {
            return Err(replication::leader::fenced(&p, epoch));
        }
        Ok(p)
    }

    /// A new id for an idempotent producer.
    /// The id is tagged for `who` (see `acl`), so no one else can write under it.
    pub async fn init_producer_id(&self, who: &crate::auth::Identity) -> Result<(i64, i16), Error> {
        let counter = self.producer_ids.next().await?;
        Ok((self.acl.producer_id(counter, who)?, 0))
    }

    /// Per-principal quotas.
    pub fn quotas(&self) -> &Arc<crate::quota::Quotas> {
        &self.quotas
    }

    /// The authorizer: ACLs and the per-request check.
    pub fn acl(&self) -> &crate::acl::Authorizer {
        &self.acl
    }

    /// Whether this broker may act as leader now: its lease is provably alive and the
    /// metadata it acts on was read in the current lease session.
    /// Whether the broker closes (or has closed).
    pub fn is_closing(&self) -> bool {
        self.life.is_closing()
    }

    /// Ready to serve: holding the membership lease and caught up with the metadata of the
    /// current session.
    pub fn check_serving(&self) -> Result<(), Error> {
        if !self.view.membership.is_live() {
            return Err(self.view.membership.not_live_error());
        }
        if self.view.synced_session.load(Ordering::Acquire) != self.view.membership.session() {
            return Err(Error::unavailable(format!(
                "broker {} is catching up with cluster metadata; retry",
                self.id
            )));
        }
        Ok(())
    }

    /// Closes every partition cleanly (flush, recovery point) and deregisters.
    pub async fn close(&self) -> Result<(), Error> {
        if !self.life.begin_close() {
            return Ok(());
        }
        // Every background task (fetchers included) was cancelled; let them reach their
        // next await point and end before the partitions close under them.
        if !self.life.wait_for_tasks(TASKS_END_WITHIN).await {
            tracing::warn!(
                running = self.life.running(),
                "background tasks did not end within {TASKS_END_WITHIN:?}; closing anyway"
            );
        }
        if let Ok(mut fetchers) = self.replicas.fetchers.lock() {
            fetchers.clear();
        }
        let _sync = self.view.sync_lock.lock().await;
        let parts: Vec<Arc<Partition>> = self
            .replicas
            .partitions
            .write()
            .map(|mut m| m.drain().map(|(_, p)| p).collect())
            .unwrap_or_default();
        let mut first_error = None;
        // A few at a time, as they open: closing is mostly fsyncs.
        use futures::StreamExt as _;
        let mut closing = futures::stream::iter(parts.into_iter().map(|p| async move {
            p.mark_closed();
            let log = p.log().clone();
            let res = tokio::task::spawn_blocking(move || log.close())
                .await
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(|r| r.map_err(Error::from));
            (p, res)
        }))
        .buffer_unordered(follow::OPEN_CONCURRENCY);
        while let Some((p, res)) = closing.next().await {
            if let Err(e) = res {
                tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "close failed");
                first_error.get_or_insert(e);
            }
        }
        // Every log is closed (its segment fsynced): a last checkpoint, so the next start
        // replays nothing.
        let resources = self.replicas.resources.clone();
        match tokio::task::spawn_blocking(move || resources.close_journals()).await {
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the journal's last checkpoint failed");
                first_error.get_or_insert(e.into());
            }
            Err(e) => tracing::error!(error = %e, "the journal's last checkpoint did not run"),
            Ok(Ok(())) => {}
        }
        self.view.membership.leave().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// A topic missing from broker `id`'s cache: while the broker is not serving (metadata not
/// caught up), that error, retriable; once serving, UNKNOWN_TOPIC naming the broker.
fn missing_topic(id: i32, serving: Result<(), Error>, name: &str) -> Error {
    match serving {
        Err(e) => e,
        Ok(()) => Error::new(
            ErrorKind::NotFound,
            Reason::UnknownTopic,
            format!("unknown topic {name:?} (broker {id}'s metadata)"),
        )
        .with("topic", name),
    }
}

/// The error for a topic that does not exist.
pub fn unknown_topic(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, Reason::UnknownTopic, format!("unknown topic {name:?}"))
        .with("topic", name)
}

/// A new broker incarnation: random and never 0 (0 marks records that have none).
fn new_incarnation() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_missing_from_a_cache_not_caught_up_is_retriable_not_unknown() {
        // A restarted broker gets requests before its first metadata sync: its empty cache
        // says nothing about which topics exist.
        let starting = Error::unavailable("broker 2 is catching up with cluster metadata; retry");
        let e = missing_topic(2, Err(starting), "orders");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_ne!(e.reason, Reason::UnknownTopic);
        let e = missing_topic(2, Ok(()), "orders");
        assert_eq!(e.reason, Reason::UnknownTopic);
        assert!(e.message.contains("broker 2"), "{}", e.message);
    }
}
