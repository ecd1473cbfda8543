//! The broker: hosts partition replicas as the metadata assigns them, serves produce, fetch
//! and admin requests on top of `log` and `meta`, and takes part in membership and
//! controller election.
//!
//! - `partition`: one hosted partition (log + leader + epoch + config) and its durability rules.
//! - `fetch`: the long-polling fetch loop behind the `Fetch` stream.
//! - `topics`: create, delete, alter and describe topics.
//! - `follow`: keeps hosted partitions in line with the partition states in the store.
//! - `identity`: the broker id of a data directory.
//! - `idempotence`: producer ids and per-partition producer state (dedup by sequence).
//! - `replication`: ISR, follower progress and the high watermark of a partition.
//! - `fetcher`: the follower side of replication (truncate, then pull from the leader).
//! - `tasks`: background work (retention, interval flush).
//! - `tiering`: tasks for the tier layer's uploader and scrubber over the partitions this
//!   broker leads, and the tier pointers hosted replicas learn.
//! - `remote`: a hosted partition's view of its remote log (pointer, cold reads).
//! - `liveness`: watches the other brokers and records those whose process is gone, so
//!   the controller moves their leaderships without waiting out their lease.

mod drain;
pub mod fetch;
mod follow;
pub mod idempotence;
pub mod identity;
mod lifecycle;
mod liveness;
pub mod partition;
mod reconcile;
pub mod remote;
mod replicas;
pub mod replication;
mod tasks;
mod view;
pub use drain::DrainReport;
mod tiering;
pub mod topics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::settings::Settings;
use shale_core::acks::Acks;
use shale_core::clock::SharedClock;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::{BatchBuilder, Compression, Record};
use shale_core::topic_config::TopicConfig;
use shale_meta::membership::Membership;
use shale_meta::topics::{BrokerRecord, PartitionState, TopicStore};
use shale_meta::{Keys, MetaStore};
use shale_storage::log::LogResources;

pub use partition::{Partition, PendingAck, Produced};
pub use shale_storage::tier::scrubber::ScrubStats;

/// A (topic, partition) pair.
pub type TopicPartition = (String, u32);

/// What a producer sends: ready batches or plain records the broker batches.
#[derive(Debug, Clone)]
pub enum Payload {
    /// One or more Kafka RecordBatch v2 batches, back to back.
    Batches(Bytes),
    /// Plain records; the broker builds one uncompressed batch.
    Records(Vec<Record>),
}

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
    producer_ids: idempotence::ProducerIds,
    /// Serializes topic create/delete/alter on this broker.
    admin_lock: tokio::sync::Mutex<()>,
    /// Produce/fetch traffic by topic and request latencies.
    requests: Arc<crate::metrics::RequestMetrics>,
    /// The broker itself, for tasks it spawns.
    self_ref: std::sync::OnceLock<std::sync::Weak<Broker>>,
}

/// How long `close` waits for cancelled background tasks to end.
const TASKS_END_WITHIN: Duration = Duration::from_secs(10);

/// How stale the local disk usage behind the budget check may be.
const DISK_USAGE_REFRESH_MS: i64 = 100;

impl Broker {
    /// Opens the broker: resolves its id, registers it, opens the partitions assigned to it,
    /// and starts membership, controller election, metadata following and background tasks.
    /// `meta`, `clock` and the object store (`bucket`, optional) are the injected parts.
    pub async fn open(
        settings: Settings,
        meta: Arc<dyn MetaStore>,
        clock: SharedClock,
        bucket: Option<shale_storage::tier::Bucket>,
    ) -> Result<Arc<Broker>, Error> {
        settings.validate()?;
        let defaults = settings.topic_defaults()?;
        let data_dir = settings.broker.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::internal(format!("cannot create data dir {}: {e}", data_dir.display()))
        })?;
        let keys = Keys::new(&settings.cluster.name)?;
        let id =
            identity::resolve(settings.broker.id, &data_dir, &settings.cluster.name, &meta, &keys)
                .await?;
        let record = BrokerRecord {
            id,
            address: settings.broker.advertised_address(),
            rack: settings.broker.rack.clone(),
            started_ms: clock.now_ms(),
            incarnation: new_incarnation(),
            draining: false,
        };
        let ttl = Duration::from_secs(settings.cluster.lease_ttl_secs);
        let membership =
            Membership::join(meta.clone(), keys.clone(), record, ttl, clock.clone()).await?;
        let resources = Arc::new(LogResources::new(
            settings.log.fd_cache_capacity,
            settings.log.index_cache_bytes,
        ));
        let broker = Arc::new(Broker {
            id,
            defaults,
            clock,
            view: view::ClusterView::new(
                TopicStore::new(meta.clone(), keys.clone()),
                membership.clone(),
            ),
            replicas: replicas::Replicas::new(resources),
            tier: tiering::Tiering::new(bucket.map(|b| {
                let catalog = Arc::new(shale_storage::tier::Catalog::new(
                    b,
                    meta.clone(),
                    keys.clone(),
                    &settings.cluster.name,
                ));
                shale_storage::tier::reader::RemoteReader::new(catalog, &settings.tier)
            })),
            life: lifecycle::Lifecycle::default(),
            groups: crate::groups::Coordinator::new(
                meta.clone(),
                keys.clone(),
                settings.groups.clone(),
            ),
            producer_ids: idempotence::ProducerIds::new(meta.clone(), &keys),
            admin_lock: tokio::sync::Mutex::new(()),
            requests: Arc::default(),
            self_ref: std::sync::OnceLock::new(),
            settings,
        });
        let _ = broker.self_ref.set(Arc::downgrade(&broker));
        let revision = broker.resync().await?;
        broker.life.spawn(membership.clone().run());
        broker.life.spawn(shale_meta::controller::run(
            meta,
            keys,
            membership,
            broker.view.obituaries.clone(),
        ));
        broker.life.spawn(follow::run(Arc::downgrade(&broker), revision));
        liveness::start(&broker);
        tasks::start(&broker);
        tiering::start(&broker);
        Ok(broker)
    }

    /// Runs `task` in the background, tracked by the broker's lifecycle: cancelled when the
    /// broker closes, and waited for before its partitions close.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
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

    /// `ListOffsets` for any partition: answered here when this broker leads it, else by
    /// its leader.
    pub async fn list_offsets_anywhere(
        &self,
        topic: &str,
        partition: u32,
        spec: Option<shale_proto::pb::list_offsets_request::Spec>,
    ) -> Result<shale_proto::pb::ListOffsetsResponse, Error> {
        use shale_proto::pb;
        match self.partition(topic, partition) {
            Ok(p) => {
                let log_start = p.log_start_offset();
                let hw = p.high_watermark();
                let (offset, timestamp_ms) = match spec {
                    Some(pb::list_offsets_request::Spec::Earliest(_)) => (log_start, -1),
                    None | Some(pb::list_offsets_request::Spec::Latest(_)) => (hw, -1),
                    Some(pb::list_offsets_request::Spec::TimestampMs(ts)) => {
                        p.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))
                    }
                };
                Ok(pb::ListOffsetsResponse {
                    offset,
                    timestamp_ms,
                    log_start_offset: log_start,
                    high_watermark: hw,
                })
            }
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let addr = e.details.get("leader_address").cloned().unwrap_or_default();
                if addr.is_empty() {
                    return Err(e);
                }
                let mut client = pb::log_client::LogClient::new(self.peer(&addr)?);
                let request = pb::ListOffsetsRequest { topic: topic.to_string(), partition, spec };
                let response = client
                    .list_offsets(request)
                    .await
                    .map_err(|s| shale_proto::status::from_status(&s))?;
                Ok(response.into_inner())
            }
            Err(e) => Err(e),
        }
    }

    /// Metadata re-reads (resyncs) since start.
    pub fn resyncs(&self) -> u64 {
        self.view.resyncs.load(Ordering::Relaxed)
    }

    /// What the bucket scrubber found and removed.
    pub fn scrub_stats(&self) -> &ScrubStats {
        &self.tier.scrub_stats
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

    /// Every hosted partition.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.replicas.partitions.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    fn hosted_partition(&self, topic: &str, partition: u32) -> Option<Arc<Partition>> {
        self.replicas.partitions.read().ok()?.get(&(topic.to_string(), partition)).cloned()
    }

    /// The cached entry of a topic, or NotFound.
    pub fn topic(&self, name: &str) -> Result<TopicEntry, Error> {
        let cache =
            self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
        cache.topics.get(name).cloned().ok_or_else(|| unknown_topic(name))
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
            let entry = cache.topics.get(topic).cloned().ok_or_else(|| unknown_topic(topic))?;
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
            (Some(s), _) if s.leader == self.id => Err(Error::unavailable(format!(
                "partition {topic}-{partition} is being opened on broker {}; retry",
                self.id
            ))),
            (Some(s), leader) => Err(shale_core::error::not_leader(
                topic,
                partition,
                s.leader,
                s.leader_epoch,
                format!(
                    "broker {} does not lead partition {topic}-{partition}; broker {} at {} does \
                     (epoch {})",
                    self.id,
                    s.leader,
                    leader.as_ref().map_or("an unknown address", |b| b.address.as_str()),
                    s.leader_epoch
                ),
            )
            .with("leader_address", leader.map(|b| b.address).unwrap_or_default())),
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
    pub async fn init_producer_id(&self) -> Result<(i64, i16), Error> {
        Ok((self.producer_ids.next().await?, 0))
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

    /// Appends to a partition and waits as `acks` asks.
    pub async fn produce(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<Produced, Error> {
        self.append(topic, partition, payload, acks).await?.await
    }

    /// Appends to a partition; the returned future resolves once `acks` is satisfied and
    /// this broker still leads the partition at the epoch it appended with.
    pub async fn append(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<PendingAck, Error> {
        let p = self.partition(topic, partition)?;
        if self.is_draining() {
            return Err(drain::draining_error(self.id));
        }
        let batches = match payload {
            Payload::Batches(b) => b,
            Payload::Records(records) => self.build_batch(records)?,
        };
        if batches.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidBatch,
                "produce request has no records",
            ));
        }
        self.check_disk_budget(batches.len() as u64)?;
        let pending = p.append(batches, acks).await?;
        if acks == Acks::None {
            return Ok(pending);
        }
        let broker = self.clone();
        let epoch = p.leader_epoch();
        Ok(Box::pin(async move {
            // A leader that stops serving (lease lost, epoch moved) answers at once rather
            // than after the replication timeout: the client can go to the new leader.
            let produced = tokio::select! {
                r = pending => r?,
                _ = broker.stops_leading(&p, epoch) => {
                    broker.check_serving()?;
                    let (leader, now) = p.leadership();
                    return Err(shale_core::error::not_leader(
                        p.topic(),
                        p.index(),
                        leader,
                        now,
                        format!(
                            "leadership of {}-{} moved on from epoch {epoch} before the write \
                             was acknowledged; it was not acknowledged",
                            p.topic(),
                            p.index()
                        ),
                    ));
                }
            };
            // Fencing: acknowledge only if, after the fsync, this broker is still live and
            // still leads at the epoch the batch was written with.
            broker.check_serving()?;
            if !p.is_leader() || p.leader_epoch() != produced.leader_epoch {
                let (leader, now) = p.leadership();
                return Err(shale_core::error::not_leader(
                    p.topic(),
                    p.index(),
                    leader,
                    now,
                    format!(
                        "leadership of {}-{} moved (epoch {} -> {now}) before the write was \
                         acknowledged; it was not acknowledged",
                        p.topic(),
                        p.index(),
                        produced.leader_epoch,
                    ),
                ));
            }
            Ok(produced)
        }))
    }

    /// Refuses produce (retriable) while the local logs hold more than
    /// `tier.local_disk_budget_bytes`: uploads and local retention free space, and until
    /// they do (a bucket that is down) the disk does not fill.
    ///
    /// The logs' sizes are summed at most every `DISK_USAGE_REFRESH_MS` (and on every
    /// request once at the budget); in between, each admitted request adds its `incoming`
    /// bytes to the estimate, so a fast producer overshoots by about one request, not by
    /// what it writes in a refresh interval.
    fn check_disk_budget(&self, incoming: u64) -> Result<(), Error> {
        let budget = self.settings.tier.local_disk_budget_bytes;
        if budget == 0 {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut usage = self.replicas.disk_usage.lock().unwrap_or_else(|p| p.into_inner());
        let (at, cached) = *usage;
        let (at, used) = if now - at >= DISK_USAGE_REFRESH_MS || cached >= budget {
            (now, self.hosted().iter().map(|p| p.log().size_bytes()).sum())
        } else {
            (at, cached)
        };
        if used < budget {
            *usage = (at, used + incoming);
            return Ok(());
        }
        *usage = (at, used);
        drop(usage);
        Err(Error::new(
            ErrorKind::Unavailable,
            Reason::LocalDiskBudgetExceeded,
            format!(
                "broker {} holds {used} bytes of local log, at or above \
                 tier.local_disk_budget_bytes {budget}; writes resume once segments are \
                 uploaded and local retention frees space (retry)",
                self.id
            ),
        )
        .with("used_bytes", used)
        .with("budget_bytes", budget))
    }

    /// Resolves once this broker no longer serves `p` as leader at `epoch`.
    async fn stops_leading(&self, p: &Partition, epoch: i32) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if self.check_serving().is_err() || !p.is_leader() || p.leader_epoch() != epoch {
                return;
            }
        }
    }

    fn build_batch(&self, records: Vec<Record>) -> Result<Bytes, Error> {
        if records.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidBatch,
                "produce request has no records",
            ));
        }
        let now = self.clock.now_ms();
        let mut builder = BatchBuilder::new(Compression::None);
        for mut r in records {
            if r.timestamp_ms == 0 {
                r.timestamp_ms = now;
            }
            builder.push(r);
        }
        Ok(builder.build())
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
        for p in parts {
            p.mark_closed();
            let log = p.log().clone();
            let res = tokio::task::spawn_blocking(move || log.close())
                .await
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(|r| r.map_err(Error::from));
            if let Err(e) = res {
                tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "close failed");
                first_error.get_or_insert(e);
            }
        }
        self.view.membership.leave().await;
        first_error.map_or(Ok(()), Err)
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

#[async_trait::async_trait]
impl crate::groups::GroupHost for Broker {
    fn broker_id(&self) -> i32 {
        self.id
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        Broker::coordinator_candidates(self)
    }

    fn topic_names(&self) -> Vec<String> {
        Broker::topic_names(self)
    }

    fn topic_record(&self, name: &str) -> Result<shale_meta::topics::TopicRecord, Error> {
        self.topic(name).map(|e| e.record)
    }

    async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: Option<shale_proto::pb::list_offsets_request::Spec>,
    ) -> Result<shale_proto::pb::ListOffsetsResponse, Error> {
        self.list_offsets_anywhere(topic, partition, spec).await
    }
}
