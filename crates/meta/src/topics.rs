//! Topic, partition and broker records, written once on top of [`MetaStore`] for every
//! backend.
//!
//! `topics/{name}` holds a [`TopicRecord`]; `partitions/{topic}/{p}` a [`PartitionState`]
//! (replicas, leader, leader epoch, ISR); `brokers/{id}` a lease-bound [`BrokerRecord`].
//! Values are JSON so operators can read them with `etcdctl`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::json::encode;
use super::{Compare, KeyValue, Keys, LeaseId, MetaStore, Revision, Txn, TxnOp, Versioned};
use shale_core::error::{Error, ErrorKind, Reason};

/// What `topics/{name}` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Unique id; a re-created topic gets a new one.
    pub id: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Configs set on the topic (overrides of the broker defaults).
    pub configs: BTreeMap<String, String>,
    /// Creation time (ms since epoch).
    pub created_ms: i64,
}

/// What `partitions/{topic}/{p}` holds.
///
/// A reassignment (Kafka's KIP-455) goes through two phases in this one record. Requested,
/// it is `target`, pending until the controller has room for another move. Started,
/// `replicas` is the target followed by the replicas leaving, `adding` the replicas new to
/// the partition and `removing` those leaving it; the new replicas copy what is not in the
/// bucket, and once every replica of the target is in the ISR the controller writes the
/// target as `replicas` (with a new leader if the old one is leaving) and clears both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Broker ids holding a replica, preferred leader first.
    pub replicas: Vec<i32>,
    /// Current leader, or -1 when none.
    pub leader: i32,
    /// Bumped on every leadership change; fences writes of older leaders.
    pub leader_epoch: i32,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The incarnation (see [`BrokerRecord::incarnation`]) of ISR members as they were when
    /// last known in sync. A member whose broker has since restarted may have lost what it
    /// had not fsynced, or its whole disk: it is not trusted as in sync (nor to lead at this
    /// epoch) until confirmed again. A member without an entry is unrecorded (state written
    /// before incarnations existed) and is recorded on the controller's next pass.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incarnations: BTreeMap<i32, u64>,
    /// A requested replica set, preferred leader first, that the controller has not started
    /// moving to yet; empty when none is pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<i32>,
    /// Replicas a started reassignment adds (in `replicas`, catching up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas a started reassignment removes (still in `replicas` until it completes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// A state without recorded incarnations or a reassignment.
    pub fn new(replicas: Vec<i32>, leader: i32, leader_epoch: i32, isr: Vec<i32>) -> Self {
        PartitionState { replicas, leader, leader_epoch, isr, ..PartitionState::default() }
    }

    /// Whether a reassignment has started and not completed.
    pub fn is_moving(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replica set the partition is moving to (its replicas when not moving).
    pub fn staying(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }

    /// The replica set before the started reassignment (its replicas when not moving).
    pub fn original(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.adding.contains(r)).collect()
    }

    /// This state with a reassignment to `target` started: the target first, then every
    /// current replica leaving, so nothing stops serving before the target is in sync. A
    /// target equal to the original replica set cancels a started move: the replicas it
    /// added are removed. Leader, epoch and ISR are unchanged.
    pub fn started(&self, target: &[i32]) -> PartitionState {
        let original = self.original();
        let mut replicas = target.to_vec();
        replicas.extend(self.replicas.iter().filter(|r| !target.contains(r)));
        PartitionState {
            adding: target.iter().copied().filter(|r| !original.contains(r)).collect(),
            removing: replicas.iter().copied().filter(|r| !target.contains(r)).collect(),
            replicas,
            target: vec![],
            ..self.clone()
        }
    }

    /// Whether `broker` at `incarnation` is the incarnation recorded for it (or none is).
    pub fn confirms(&self, broker: i32, incarnation: u64) -> bool {
        self.incarnations.get(&broker).is_none_or(|i| *i == incarnation)
    }
}

/// What `brokers/{id}` holds (bound to the broker's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    /// Broker id.
    pub id: i32,
    /// Address clients dial (host:port).
    pub address: String,
    /// Address Kafka clients dial (host:port); empty when the broker has no Kafka listener.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kafka_address: String,
    /// Address of the broker's schema registry listener (host:port); empty when it has
    /// none. Other brokers forward registry writes there when this broker is the writer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry_address: String,
    /// Rack or zone; empty when unset.
    pub rack: String,
    /// Start time of the broker process (ms since epoch).
    pub started_ms: i64,
    /// Random, fixed for the life of one broker process and new at each start. A broker
    /// that comes back under a new incarnation may have lost what it had not fsynced (power
    /// loss) or its whole disk, so it must earn its place in ISRs and leaderships again.
    /// 0 for records written before incarnations existed.
    #[serde(default)]
    pub incarnation: u64,
    /// The broker is shutting down: the controller moves its leaderships to other in-sync
    /// replicas and places nothing new on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

/// What `loads/{id}` holds: the local bytes of each partition broker `id` leads, as it last
/// published them (every 30 s, bound to its lease). The balancer weighs partitions by them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRecord {
    /// The broker publishing.
    pub broker: i32,
    /// (topic, partition, local bytes) of each partition it leads.
    pub partitions: Vec<(String, u32, u64)>,
}

fn decode<T: serde::de::DeserializeOwned>(kv: KeyValue) -> Result<T, Error> {
    Ok(Versioned::decode(kv)?.value)
}

/// Reads and writes topic, partition and broker records.
#[derive(Debug, Clone)]
pub struct TopicStore {
    store: Arc<dyn MetaStore>,
    keys: Keys,
}

impl TopicStore {
    /// A registry over `store` for the cluster named in `keys`.
    pub fn new(store: Arc<dyn MetaStore>, keys: Keys) -> Self {
        TopicStore { store, keys }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Creates a topic record. Fails with `AlreadyExists` if the name is taken. The
    /// controller writes the partition states.
    pub async fn create(&self, topic: &TopicRecord) -> Result<(), Error> {
        let key = self.keys.topic(&topic.name);
        let txn = Txn::new()
            .when(Compare::absent(key.clone()))
            .and_then(TxnOp::put(key.clone(), encode(&key, topic)?));
        if !self.store.txn(txn).await?.succeeded {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                Reason::TopicExists,
                format!("topic {:?} already exists", topic.name),
            )
            .with("topic", &topic.name));
        }
        Ok(())
    }

    /// One topic with the mod revision of its key.
    pub async fn get(&self, name: &str) -> Result<Option<(TopicRecord, Revision)>, Error> {
        let key = self.keys.topic(name);
        match self.store.get(&key).await? {
            Some(kv) => {
                let v = Versioned::<TopicRecord>::decode(kv)?;
                Ok(Some((v.value, v.mod_revision)))
            }
            None => Ok(None),
        }
    }

    /// Every topic, sorted by name.
    pub async fn list(&self) -> Result<Vec<TopicRecord>, Error> {
        let range = self.store.range(&self.keys.topics()).await?;
        range.kvs.into_iter().map(decode).collect()
    }

    /// Partition states of a topic by partition index (missing while being created).
    pub async fn partitions(&self, topic: &str) -> Result<BTreeMap<u32, PartitionState>, Error> {
        let prefix = self.keys.partitions(topic);
        let range = self.store.range(&prefix).await?;
        let mut out = BTreeMap::new();
        for kv in range.kvs {
            let Some(p) = kv.key.strip_prefix(&prefix).and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            out.insert(p, decode(kv)?);
        }
        Ok(out)
    }

    /// Deletes a topic and its partition states; false when it did not exist.
    pub async fn delete(&self, name: &str) -> Result<bool, Error> {
        let key = self.keys.topic(name);
        let Some(kv) = self.store.get(&key).await? else { return Ok(false) };
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision: kv.mod_revision }],
            success: vec![
                TxnOp::Delete { key },
                TxnOp::DeletePrefix { prefix: self.keys.partitions(name) },
                // Its remote objects are left to the scrubber (by topic id).
                TxnOp::DeletePrefix { prefix: self.keys.tiers(name) },
            ],
            failure: vec![],
        };
        Ok(self.store.txn(txn).await?.succeeded)
    }

    /// Replaces a topic record if its key still has `revision`; false if it changed.
    pub async fn update(&self, topic: &TopicRecord, revision: Revision) -> Result<bool, Error> {
        let key = self.keys.topic(&topic.name);
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision }],
            success: vec![TxnOp::Put { value: encode(&key, topic)?, key, lease: None }],
            failure: vec![],
        };
        Ok(self.store.txn(txn).await?.succeeded)
    }

    /// Replaces a partition state if its key still has `revision`; false if it changed.
    pub async fn update_partition(
        &self,
        topic: &str,
        partition: u32,
        state: &PartitionState,
        revision: Revision,
    ) -> Result<bool, Error> {
        Ok(self.replace_partition(topic, partition, state, revision).await?.is_some())
    }

    /// [`update_partition`](Self::update_partition), returning the revision the state was
    /// stored at (`None` if the key no longer had `revision`).
    pub async fn replace_partition(
        &self,
        topic: &str,
        partition: u32,
        state: &PartitionState,
        revision: Revision,
    ) -> Result<Option<Revision>, Error> {
        let key = self.keys.partition(topic, partition);
        let txn = Txn::new()
            .when(Compare::mod_revision(key.clone(), revision))
            .and_then(TxnOp::put(key.clone(), encode(&key, state)?));
        let outcome = self.store.txn(txn).await?;
        Ok(outcome.succeeded.then_some(outcome.revision))
    }

    /// One partition state with the mod revision of its key.
    pub async fn partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Option<(PartitionState, Revision)>, Error> {
        match self.store.get(&self.keys.partition(topic, partition)).await? {
            Some(kv) => {
                let v = Versioned::<PartitionState>::decode(kv)?;
                Ok(Some((v.value, v.mod_revision)))
            }
            None => Ok(None),
        }
    }

    /// Changes a partition state by compare-and-swap: `change` maps the current state to
    /// the next (`None`: nothing to write) and runs again on a fresh read whenever the state
    /// changed meanwhile. Returns what was written, or `None` when the state is absent or
    /// `change` asked for nothing.
    pub async fn modify_partition(
        &self,
        topic: &str,
        partition: u32,
        mut change: impl FnMut(&PartitionState) -> Result<Option<PartitionState>, Error>,
    ) -> Result<Option<PartitionState>, Error> {
        loop {
            let Some((state, revision)) = self.partition(topic, partition).await? else {
                return Ok(None);
            };
            let Some(next) = change(&state)? else { return Ok(None) };
            if self.update_partition(topic, partition, &next, revision).await? {
                return Ok(Some(next));
            }
        }
    }

    /// Marks broker `id` as leaving the cluster for good (`decommissioned/{id}`), or, with
    /// `leaving` false, as staying again.
    pub async fn set_decommissioned(&self, id: i32, leaving: bool) -> Result<(), Error> {
        let key = self.keys.decommissioned(id);
        if leaving {
            self.store.put(&key, bytes::Bytes::from(format!("{{\"id\":{id}}}")), None).await?;
        } else {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// Publishes a broker's load under its lease.
    pub async fn publish_load(&self, load: &LoadRecord, lease: LeaseId) -> Result<(), Error> {
        let key = self.keys.load(load.broker);
        self.store.put(&key, encode(&key, load)?, Some(lease)).await?;
        Ok(())
    }

    /// Registers a broker under its lease.
    pub async fn register_broker(
        &self,
        broker: &BrokerRecord,
        lease: LeaseId,
    ) -> Result<(), Error> {
        let key = self.keys.broker(broker.id as u32);
        self.store.put(&key, encode(&key, broker)?, Some(lease)).await?;
        Ok(())
    }

    /// Live brokers, by id.
    pub async fn brokers(&self) -> Result<Vec<BrokerRecord>, Error> {
        let range = self.store.range(&self.keys.brokers()).await?;
        let mut out: Vec<BrokerRecord> =
            range.kvs.into_iter().map(decode).collect::<Result<_, _>>()?;
        out.sort_by_key(|b| b.id);
        Ok(out)
    }
}
