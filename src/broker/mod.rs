//! The broker: hosts partition replicas, applies topic metadata, and serves produce, fetch
//! and admin requests on top of `log` and `meta`.
//!
//! - `partition`: one hosted partition (log + epoch + config) and its durability rules.
//! - `fetch`: the long-polling fetch loop behind the `Fetch` stream.
//! - `topics`: create, delete, alter and describe topics.
//! - `tasks`: background work (retention, interval flush, lease keepalive).

pub mod fetch;
pub mod partition;
mod tasks;
pub mod topics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::error::{Error, ErrorKind};
use crate::log::LogResources;
use crate::meta::topics::{BrokerRecord, TopicStore};
use crate::meta::{Keys, LeaseId, MetaStore};
use crate::record::{BatchBuilder, Compression, Record};
use crate::settings::Settings;
use crate::topic_config::TopicConfig;

pub use partition::{Acks, Partition, PendingAck, Produced};

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
    pub record: crate::meta::topics::TopicRecord,
    /// Defaults overlaid with the topic's overrides.
    pub config: Arc<TopicConfig>,
}

/// Lease TTL of the broker's registration in the metadata store.
const LEASE_TTL: Duration = Duration::from_secs(10);

/// One Shale broker.
#[derive(Debug)]
pub struct Broker {
    id: i32,
    settings: Settings,
    defaults: TopicConfig,
    clock: SharedClock,
    topics: TopicStore,
    resources: Arc<LogResources>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    topic_cache: RwLock<HashMap<String, TopicEntry>>,
    /// Serializes topic create/delete/alter on this broker.
    admin_lock: tokio::sync::Mutex<()>,
    lease: std::sync::atomic::AtomicI64,
    closing: AtomicBool,
    /// Flips to true when the broker closes; ends long-polls.
    closed_tx: tokio::sync::watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Broker {
    /// Opens the broker: registers it, recovers every hosted partition, starts background
    /// tasks. `meta` and `clock` are the injected parts.
    pub async fn open(
        settings: Settings,
        meta: Arc<dyn MetaStore>,
        clock: SharedClock,
    ) -> Result<Arc<Broker>, Error> {
        settings.validate()?;
        let defaults = settings.topic_defaults()?;
        let data_dir = settings.broker.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::internal(format!("cannot create data dir {}: {e}", data_dir.display()))
        })?;
        let keys = Keys::new(&settings.cluster.name)?;
        let topics = TopicStore::new(meta, keys);
        let resources = Arc::new(LogResources::new(
            settings.log.fd_cache_capacity,
            settings.log.index_cache_bytes,
        ));
        let broker = Arc::new(Broker {
            id: settings.broker.id,
            defaults,
            clock: clock.clone(),
            topics,
            resources,
            partitions: RwLock::new(HashMap::new()),
            topic_cache: RwLock::new(HashMap::new()),
            admin_lock: tokio::sync::Mutex::new(()),
            lease: std::sync::atomic::AtomicI64::new(0),
            closing: AtomicBool::new(false),
            closed_tx: tokio::sync::watch::channel(false).0,
            tasks: std::sync::Mutex::new(Vec::new()),
            settings,
        });
        broker.register().await?;
        broker.load_all_topics().await?;
        tasks::start(&broker);
        Ok(broker)
    }

    /// Registers this broker under a fresh lease (and, standalone, as controller).
    pub(crate) async fn register(&self) -> Result<(), Error> {
        let store = self.topics.store();
        let lease = store.grant_lease(LEASE_TTL).await?;
        let record = BrokerRecord {
            id: self.id,
            address: self.settings.broker.advertised_address(),
            rack: self.settings.broker.rack.clone(),
            started_ms: self.clock.now_ms(),
        };
        self.topics.register_broker(&record, lease).await?;
        // A single broker with an embedded store is its own controller.
        let controller = serde_json::json!({ "id": self.id }).to_string();
        store.put(&self.topics.keys().controller(), Bytes::from(controller), Some(lease)).await?;
        self.lease.store(lease, Ordering::Release);
        Ok(())
    }

    pub(crate) fn lease(&self) -> LeaseId {
        self.lease.load(Ordering::Acquire)
    }

    /// Resolves to true once the broker is closing.
    pub fn closed_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed_tx.subscribe()
    }

    /// This broker's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The settings the broker runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The metadata registry.
    pub fn topic_store(&self) -> &TopicStore {
        &self.topics
    }

    /// The injected clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn data_dir(&self) -> PathBuf {
        self.settings.broker.data_dir.clone()
    }

    /// Every hosted partition.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// The cached entry of a topic, or NotFound.
    pub fn topic(&self, name: &str) -> Result<TopicEntry, Error> {
        let cache = self.topic_cache.read().map_err(|_| Error::internal("topic cache poisoned"))?;
        cache.get(name).cloned().ok_or_else(|| unknown_topic(name))
    }

    /// A hosted partition, or a precise NotFound (unknown topic / partition out of range).
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, Error> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::unavailable("broker is shutting down; retry on another broker"));
        }
        let found = self
            .partitions
            .read()
            .map_err(|_| Error::internal("partition map poisoned"))?
            .get(&(topic.to_string(), partition))
            .cloned();
        match found {
            Some(p) => Ok(p),
            None => {
                let entry = self.topic(topic)?;
                if partition >= entry.record.partitions {
                    Err(partition::partition_out_of_range(
                        topic,
                        partition,
                        entry.record.partitions,
                    ))
                } else {
                    Err(Error::unavailable(format!(
                        "partition {topic}-{partition} is not open on broker {} yet; retry",
                        self.id
                    )))
                }
            }
        }
    }

    /// Appends to a partition and waits as `acks` asks.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<Produced, Error> {
        self.append(topic, partition, payload, acks).await?.await
    }

    /// Appends to a partition; the returned future resolves once `acks` is satisfied.
    pub async fn append(
        &self,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<PendingAck, Error> {
        let p = self.partition(topic, partition)?;
        let batches = match payload {
            Payload::Batches(b) => b,
            Payload::Records(records) => self.build_batch(records)?,
        };
        if batches.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "INVALID_BATCH",
                "produce request has no records",
            ));
        }
        p.append(batches, acks).await
    }

    fn build_batch(&self, records: Vec<Record>) -> Result<Bytes, Error> {
        if records.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "INVALID_BATCH",
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
        if self.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.closed_tx.send_replace(true);
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        let parts: Vec<Arc<Partition>> = self
            .partitions
            .write()
            .map(|mut m| m.drain().map(|(_, p)| p).collect())
            .unwrap_or_default();
        let mut first_error = None;
        for p in parts {
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
        let lease = self.lease.load(Ordering::Acquire);
        if let Err(e) = self.topics.store().revoke_lease(lease).await {
            tracing::warn!(error = %e, "could not revoke broker lease");
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The error for a topic that does not exist.
pub fn unknown_topic(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, "UNKNOWN_TOPIC", format!("unknown topic {name:?}"))
        .with("topic", name)
}
