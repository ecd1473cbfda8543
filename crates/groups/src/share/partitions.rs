//! The share partitions a broker leads: each one's [`InFlight`] state, held in memory under
//! a lock and stored at `share/{g}/{topic}/{p}` in the metadata store.
//!
//! Durability: nothing a member is told changes unless it is stored first. An
//! acknowledgement (accept, release, reject), an archive, a redelivery and a reset are
//! written before the answer goes out, in a transaction that compares the key's revision,
//! so the store holds every acknowledgement ever answered. What is not written is the
//! first delivery of a record and its lock: after a failover or a power loss those records
//! are available again, never lost, and an accepted record is never delivered again.
//!
//! Fencing: a leader that loads a share partition claims it, writing its leader epoch into
//! the record. A deposed leader's next write then fails its compare; it reloads, sees a
//! newer epoch, and answers NOT_LEADER_OR_FOLLOWER instead of confirming anything. A write
//! that lost to another writer of the same or an older epoch reloads and is refused for
//! the client to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::state::{InFlight, Run};
use crate::records;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Revision, Txn, TxnOp};

/// `share/{g}/{topic}/{p}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateRecord {
    /// Id of the topic incarnation the state is for: a re-created topic starts over.
    pub topic_id: String,
    /// The leader epoch of the partition leader that last claimed it.
    pub leader_epoch: i32,
    /// The share partition start offset.
    pub start: i64,
    /// The records in flight from `start`, as runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

/// A share partition: its group, topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharePartitionKey {
    pub group: String,
    pub topic: String,
    pub partition: u32,
}

/// A share partition's state as its leader holds it.
#[derive(Debug)]
pub struct Held {
    /// The records in flight.
    pub flight: InFlight,
    leader_epoch: i32,
    topic_id: String,
    /// Mod revision of the stored record.
    rev: Revision,
}

/// One share partition's slot: its state when loaded, and a wake-up for readers waiting
/// for records to become available.
#[derive(Debug, Default)]
pub struct Slot {
    held: Arc<tokio::sync::Mutex<Option<Held>>>,
    available: Notify,
}

impl Slot {
    /// Wakes every reader waiting on this partition (records became available).
    pub fn wake(&self) {
        self.available.notify_waiters();
    }

    /// `f` of the state, if it is loaded and not locked right now.
    pub fn try_peek<T>(&self, f: impl FnOnce(&Held) -> T) -> Option<T> {
        self.held.try_lock().ok()?.as_ref().map(f)
    }

    /// Resolves when [`wake`](Self::wake) is next called.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.available.notified()
    }
}

/// A share partition's state, locked for one change.
pub type Locked = tokio::sync::OwnedMutexGuard<Option<Held>>;

/// How a leader found a share partition it loads for the first time: where the log starts
/// and ends, and which end a new group starts from.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    pub leader_epoch: i32,
    /// Where a share partition without stored state starts (`share.auto.offset.reset`).
    pub initial: i64,
}

/// Every share partition this broker has loaded.
#[derive(Debug)]
pub struct SharePartitions {
    meta: Arc<dyn MetaStore>,
    keys: Keys,
    slots: Mutex<HashMap<SharePartitionKey, Arc<Slot>>>,
}

impl SharePartitions {
    /// None loaded yet.
    pub fn new(meta: Arc<dyn MetaStore>, keys: Keys) -> SharePartitions {
        SharePartitions { meta, keys, slots: Mutex::new(HashMap::new()) }
    }

    /// `key`'s slot.
    pub fn slot(&self, key: &SharePartitionKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(key.clone()).or_default().clone()
    }

    /// `key`'s state, locked, loaded for the partition's leader at `start.leader_epoch`
    /// unless already held at it. Loading claims the stored record for that epoch; a newer
    /// epoch stored is NOT_LEADER_OR_FOLLOWER.
    pub async fn lock(
        &self,
        slot: &Slot,
        key: &SharePartitionKey,
        topic_id: &str,
        start: Start,
    ) -> Result<Locked, Error> {
        let mut guard = slot.held.clone().lock_owned().await;
        let current = guard
            .as_ref()
            .is_some_and(|h| h.leader_epoch == start.leader_epoch && h.topic_id == topic_id);
        if !current {
            *guard = None;
            *guard = Some(self.claim(key, topic_id, start).await?);
        }
        Ok(guard)
    }

    /// Reads the stored record and writes it back under `start.leader_epoch`.
    async fn claim(
        &self,
        key: &SharePartitionKey,
        topic_id: &str,
        start: Start,
    ) -> Result<Held, Error> {
        let k = self.keys.share_state(&key.group, &key.topic, key.partition);
        let stored = self.meta.get(&k).await?;
        let (record, rev) = match &stored {
            Some(kv) => {
                let r: ShareStateRecord = records::decode(&kv.value, &describe(key))?;
                (r, kv.mod_revision)
            }
            None => (ShareStateRecord::default(), 0),
        };
        if record.leader_epoch > start.leader_epoch && record.topic_id == topic_id {
            return Err(deposed(key, start.leader_epoch, record.leader_epoch));
        }
        let flight = match record.topic_id == topic_id {
            true => InFlight::from_runs(record.start, &record.runs)?,
            false => InFlight::new(start.initial),
        };
        let mut held =
            Held { flight, leader_epoch: start.leader_epoch, topic_id: topic_id.to_string(), rev };
        self.write(key, &mut held).await?;
        tracing::debug!(
            group = key.group,
            topic = key.topic,
            partition = key.partition,
            leader_epoch = start.leader_epoch,
            start = held.flight.start(),
            "share partition loaded"
        );
        Ok(held)
    }

    /// Stores the state under `guard`. When the stored record moved meanwhile (another
    /// leader, or a reset), the state is dropped for the next call to load again, and the
    /// write is refused: nothing it would have confirmed is confirmed.
    pub async fn persist(&self, key: &SharePartitionKey, guard: &mut Locked) -> Result<(), Error> {
        let Some(held) = guard.as_mut() else {
            return Err(Error::internal("share partition slot empty"));
        };
        let written = self.write(key, held).await;
        if written.is_err() {
            **guard = None;
        }
        written
    }

    async fn write(&self, key: &SharePartitionKey, held: &mut Held) -> Result<(), Error> {
        let k = self.keys.share_state(&key.group, &key.topic, key.partition);
        let record = ShareStateRecord {
            topic_id: held.topic_id.clone(),
            leader_epoch: held.leader_epoch,
            start: held.flight.start(),
            runs: held.flight.to_runs(),
        };
        let txn = Txn::new()
            .when(Compare::mod_revision(k.clone(), held.rev))
            .and_then(TxnOp::put(k, records::encode(&record)));
        let done = self.meta.txn(txn).await?;
        if !done.succeeded {
            return Err(Error::new(
                ErrorKind::NotLeader,
                Reason::NotLeader,
                format!(
                    "{} changed under this leader (another leader or an administrator wrote \
                     it); retry",
                    describe(key)
                ),
            ));
        }
        held.rev = done.revision;
        Ok(())
    }

    /// Keeps only the partitions `keep` says (the others moved to another leader, or their
    /// topic went): their state is the store's again, loaded on their next use here.
    pub fn retain(&self, keep: impl Fn(&SharePartitionKey) -> bool) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|k, _| keep(k));
    }

    /// Forgets `group`'s loaded partitions (the group was deleted or its offsets reset).
    pub fn forget(&self, group: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|k, _| k.group != group);
    }
}

fn describe(key: &SharePartitionKey) -> String {
    format!("share group {:?}'s state of {}/{}", key.group, key.topic, key.partition)
}

fn deposed(key: &SharePartitionKey, ours: i32, stored: i32) -> Error {
    Error::new(
        ErrorKind::NotLeader,
        Reason::NotLeader,
        format!(
            "{} was claimed by a leader at epoch {stored}, newer than this one's {ours}",
            describe(key)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::{Ack, AckBatch, Limits, LogBatch};
    use shale_core::clock;
    use shale_meta::embedded::EmbeddedStore;

    const LIMITS: Limits = Limits { lock_ms: 1_000, delivery_limit: 5, max_in_flight: 100 };

    fn key() -> SharePartitionKey {
        SharePartitionKey { group: "g".into(), topic: "t".into(), partition: 0 }
    }

    fn at(leader_epoch: i32) -> Start {
        Start { leader_epoch, initial: 0 }
    }

    #[tokio::test]
    async fn an_acknowledgement_is_stored_and_a_deposed_leader_cannot_confirm_one() {
        let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
        let keys = Keys::new("c").unwrap_or_else(|e| panic!("{e}"));
        // Two brokers: the old leader (epoch 1) and the new one (epoch 2).
        let (old, new) = (
            SharePartitions::new(store.clone(), keys.clone()),
            SharePartitions::new(store.clone(), keys.clone()),
        );
        let member: Arc<str> = Arc::from("m");
        let slot = old.slot(&key());
        let mut g = old.lock(&slot, &key(), "id", at(1)).await.unwrap();
        let held = g.as_mut().unwrap();
        held.flight.acquire(
            &member,
            &[LogBatch { first: 0, last: 9, skip: false }],
            10,
            0,
            &LIMITS,
        );
        let accept = AckBatch { first: 0, last: 4, types: vec![Ack::Accept] };
        held.flight.acknowledge("m", &[accept], &LIMITS).unwrap();
        old.persist(&key(), &mut g).await.unwrap();
        drop(g);

        // The new leader loads what was stored: 0..=4 done, 5..=9 available again.
        let slot2 = new.slot(&key());
        let g2 = new.lock(&slot2, &key(), "id", at(2)).await.unwrap();
        let flight = &g2.as_ref().unwrap().flight;
        assert_eq!((flight.start(), flight.end()), (5, 10));
        drop(g2);

        // The old leader's next acknowledgement is not stored, and it says why.
        let mut g = old.lock(&slot, &key(), "id", at(1)).await.unwrap();
        let accept = AckBatch { first: 5, last: 9, types: vec![Ack::Accept] };
        g.as_mut().unwrap().flight.acknowledge("m", &[accept], &LIMITS).unwrap();
        let e = old.persist(&key(), &mut g).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotLeader, "{e}");
        assert!(g.is_none(), "the refused state is dropped");
        drop(g);
        let e = old.lock(&slot, &key(), "id", at(1)).await.unwrap_err();
        assert!(e.message.contains("epoch 2"), "{e}");
        // A re-created topic (another id) starts over from its initial offset.
        let g3 = new.lock(&slot2, &key(), "id2", Start { leader_epoch: 2, initial: 42 }).await;
        assert_eq!(g3.unwrap().as_ref().unwrap().flight.start(), 42);
    }
}
