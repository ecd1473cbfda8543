//! The in-memory model of the embedded store: keys, leases, revisions, and the evaluation
//! of writes into `Prepared` changes that are persisted first and applied after.
//!
//! A batch of writes is evaluated against the state plus an `Overlay` of the batch's
//! earlier changes, so one fsync can cover many transactions while readers only ever see
//! durable state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use bytes::Bytes;

use super::super::{
    Compare, KeyValue, LeaseId, MetaError, RangeResult, Revision, Txn, TxnOp, WatchEvent,
};
use super::wal::{OpRef, Record, RecordOp, Snapshot};
use super::watch::WatchHub;

/// A stored value and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    pub lease: Option<LeaseId>,
}

/// A live lease.
#[derive(Debug)]
pub(super) struct Lease {
    ttl_secs: u64,
    deadline_ms: i64,
    keys: BTreeSet<String>,
}

/// A change to one key, decided but not yet applied.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Put(String, Entry),
    Delete(String),
}

impl Change {
    /// How the change is persisted: lease-bound keys do not survive a restart, so a put
    /// to one is logged as a delete of whatever durable value the key had.
    pub(super) fn as_record_op(&self) -> OpRef<'_> {
        match self {
            Change::Put(key, e) if e.lease.is_none() => OpRef::Put {
                key,
                value: &e.value,
                create_revision: e.create_revision,
                version: e.version,
            },
            Change::Put(key, _) | Change::Delete(key) => OpRef::Delete { key },
        }
    }
}

/// The evaluated effect of one write.
#[derive(Debug)]
pub(super) struct Prepared {
    /// Store revision after this write (unchanged if it changed nothing).
    pub revision: Revision,
    pub changes: Vec<Change>,
    pub drop_lease: Option<LeaseId>,
    pub succeeded: bool,
    pub deleted: u64,
}

/// Changes of the batch being evaluated, not yet durable.
#[derive(Debug)]
pub(super) struct Overlay {
    kvs: BTreeMap<String, Option<Entry>>,
    revision: Revision,
    dropped_leases: HashSet<LeaseId>,
}

/// Keys, leases, revision and watchers.
pub(super) struct State {
    kvs: BTreeMap<String, Entry>,
    pub revision: Revision,
    leases: HashMap<LeaseId, Lease>,
    /// Persisted; lease ids of this run are `generation << 32 | counter`, so they never
    /// repeat across restarts.
    pub generation: i64,
    lease_counter: i64,
    pub hub: WatchHub,
}

fn prefix_range<'a, V>(
    map: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

fn key_value(key: &str, e: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: e.value.clone(),
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        version: e.version,
        lease: e.lease,
    }
}

impl State {
    /// An empty store at revision 1 (etcd's first write gets revision 2).
    pub(super) fn new(hub: WatchHub) -> Self {
        State {
            kvs: BTreeMap::new(),
            revision: 1,
            leases: HashMap::new(),
            generation: 0,
            lease_counter: 0,
            hub,
        }
    }

    /// Loads a snapshot into an empty state.
    pub(super) fn load_snapshot(&mut self, snap: Snapshot) {
        self.revision = snap.revision;
        self.generation = snap.generation;
        for e in snap.entries {
            let entry = Entry {
                value: e.value,
                create_revision: e.create_revision,
                mod_revision: e.mod_revision,
                version: e.version,
                lease: None,
            };
            self.kvs.insert(e.key, entry);
        }
    }

    /// Replays one WAL record; records the snapshot already covers are skipped.
    pub(super) fn replay(&mut self, record: Record) {
        match record {
            Record::Open { generation } => self.generation = self.generation.max(generation),
            Record::Txn { revision, ops } if revision > self.revision => {
                for op in ops {
                    match op {
                        RecordOp::Put { key, value, create_revision, version } => {
                            let mod_revision = revision;
                            let e = Entry {
                                value,
                                create_revision,
                                mod_revision,
                                version,
                                lease: None,
                            };
                            self.kvs.insert(key, e);
                        }
                        RecordOp::Delete { key } => {
                            self.kvs.remove(&key);
                        }
                    }
                }
                self.revision = revision;
            }
            Record::Txn { .. } => {}
        }
    }

    /// Every durable (not lease-bound) key, for a snapshot.
    pub(super) fn durable_entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.kvs.iter().filter(|(_, e)| e.lease.is_none())
    }

    pub(super) fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).map(|e| key_value(key, e))
    }

    pub(super) fn range(&self, prefix: &str) -> RangeResult {
        let kvs = prefix_range(&self.kvs, prefix).map(|(k, e)| key_value(k, e)).collect();
        RangeResult { kvs, revision: self.revision }
    }

    /// Grants a lease expiring `ttl_secs` after `now_ms`.
    pub(super) fn grant(&mut self, ttl_secs: u64, now_ms: i64) -> Result<LeaseId, MetaError> {
        if self.lease_counter >= i64::from(u32::MAX) {
            return Err(MetaError::Unavailable(
                "this run of the embedded store used up its lease ids; restart it".into(),
            ));
        }
        self.lease_counter += 1;
        let id = (self.generation << 32) | self.lease_counter;
        let deadline_ms = now_ms.saturating_add((ttl_secs as i64).saturating_mul(1000));
        self.leases.insert(id, Lease { ttl_secs, deadline_ms, keys: BTreeSet::new() });
        Ok(id)
    }

    /// Pushes a live lease's deadline to `ttl` after `now_ms`; returns the TTL.
    pub(super) fn keep_alive(&mut self, id: LeaseId, now_ms: i64) -> Result<u64, MetaError> {
        match self.leases.get_mut(&id) {
            Some(l) if now_ms < l.deadline_ms => {
                l.deadline_ms = now_ms.saturating_add((l.ttl_secs as i64).saturating_mul(1000));
                Ok(l.ttl_secs)
            }
            // Expired but not reaped yet: as good as gone; the reaper deletes its keys.
            _ => Err(MetaError::LeaseNotFound(id)),
        }
    }

    /// An empty overlay for a new batch.
    pub(super) fn overlay(&self) -> Overlay {
        Overlay { kvs: BTreeMap::new(), revision: self.revision, dropped_leases: HashSet::new() }
    }

    fn view<'a>(&'a self, ov: &'a Overlay, key: &str) -> Option<&'a Entry> {
        match ov.kvs.get(key) {
            Some(slot) => slot.as_ref(),
            None => self.kvs.get(key),
        }
    }

    fn holds(&self, ov: &Overlay, c: &Compare) -> bool {
        match c {
            Compare::ModRevision { key, revision } => {
                self.view(ov, key).map_or(0, |e| e.mod_revision) == *revision
            }
            // As in etcd, a value compare on an absent key is false.
            Compare::Value { key, value } => self.view(ov, key).is_some_and(|e| e.value == *value),
        }
    }

    fn lease_alive(&self, ov: &Overlay, id: LeaseId, now_ms: i64) -> bool {
        !ov.dropped_leases.contains(&id)
            && self.leases.get(&id).is_some_and(|l| now_ms < l.deadline_ms)
    }

    /// Evaluates a (validated) transaction on top of the batch so far.
    pub(super) fn prepare_txn(
        &self,
        ov: &mut Overlay,
        txn: &Txn,
        now_ms: i64,
    ) -> Result<Prepared, MetaError> {
        let succeeded = txn.compares.iter().all(|c| self.holds(ov, c));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        // Checked before touching the overlay so a failed txn leaves no trace.
        for op in ops {
            if let TxnOp::Put { lease: Some(id), .. } = op
                && !self.lease_alive(ov, *id, now_ms)
            {
                return Err(MetaError::LeaseNotFound(*id));
            }
        }
        let rev = ov.revision + 1;
        let mut changes = Vec::with_capacity(ops.len());
        let mut deleted = 0;
        for op in ops {
            match op {
                TxnOp::Put { key, value, lease } => {
                    let old = self.view(ov, key).map(|o| (o.create_revision, o.version));
                    let entry = Entry {
                        value: value.clone(),
                        create_revision: old.map_or(rev, |o| o.0),
                        mod_revision: rev,
                        version: old.map_or(1, |o| o.1 + 1),
                        lease: *lease,
                    };
                    ov.kvs.insert(key.clone(), Some(entry.clone()));
                    changes.push(Change::Put(key.clone(), entry));
                }
                TxnOp::Delete { key } => {
                    if self.view(ov, key).is_some() {
                        ov.kvs.insert(key.clone(), None);
                        changes.push(Change::Delete(key.clone()));
                        deleted += 1;
                    }
                }
                TxnOp::DeletePrefix { prefix } => {
                    let mut keys: BTreeSet<&String> =
                        prefix_range(&self.kvs, prefix).map(|(k, _)| k).collect();
                    keys.extend(prefix_range(&ov.kvs, prefix).map(|(k, _)| k));
                    let keys: Vec<String> =
                        keys.into_iter().filter(|k| self.view(ov, k).is_some()).cloned().collect();
                    for key in keys {
                        ov.kvs.insert(key.clone(), None);
                        changes.push(Change::Delete(key));
                        deleted += 1;
                    }
                }
            }
        }
        if !changes.is_empty() {
            ov.revision = rev;
        }
        Ok(Prepared { revision: ov.revision, changes, drop_lease: None, succeeded, deleted })
    }

    /// Evaluates ending a lease: its keys are deleted in one revision.
    pub(super) fn prepare_revoke(
        &self,
        ov: &mut Overlay,
        id: LeaseId,
    ) -> Result<Prepared, MetaError> {
        if ov.dropped_leases.contains(&id) {
            return Err(MetaError::LeaseNotFound(id));
        }
        let lease = self.leases.get(&id).ok_or(MetaError::LeaseNotFound(id))?;
        let mut keys: BTreeSet<&String> = lease.keys.iter().collect();
        keys.extend(
            ov.kvs
                .iter()
                .filter(|(_, e)| e.as_ref().is_some_and(|e| e.lease == Some(id)))
                .map(|(k, _)| k),
        );
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| self.view(ov, k).is_some_and(|e| e.lease == Some(id)))
            .cloned()
            .collect();
        ov.dropped_leases.insert(id);
        if !keys.is_empty() {
            ov.revision += 1;
        }
        let deleted = keys.len() as u64;
        for key in &keys {
            ov.kvs.insert(key.clone(), None);
        }
        let changes = keys.into_iter().map(Change::Delete).collect();
        Ok(Prepared {
            revision: ov.revision,
            changes,
            drop_lease: Some(id),
            succeeded: true,
            deleted,
        })
    }

    /// Evaluates ending every lease whose deadline passed, each in its own revision.
    pub(super) fn prepare_reap(&self, ov: &mut Overlay, now_ms: i64) -> Vec<Prepared> {
        let mut expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(id, l)| l.deadline_ms <= now_ms && !ov.dropped_leases.contains(id))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired.into_iter().filter_map(|id| self.prepare_revoke(ov, id).ok()).collect()
    }

    /// Applies a durable write and tells the watchers.
    pub(super) fn apply(&mut self, p: Prepared) {
        let mut events = Vec::with_capacity(p.changes.len());
        for change in p.changes {
            match change {
                Change::Put(key, entry) => {
                    let lease = entry.lease;
                    events.push(WatchEvent::Put(key_value(&key, &entry)));
                    if let Some(old) = self.kvs.insert(key.clone(), entry) {
                        self.unbind(old.lease, &key);
                    }
                    if let Some(l) = lease.and_then(|id| self.leases.get_mut(&id)) {
                        l.keys.insert(key);
                    }
                }
                Change::Delete(key) => {
                    if let Some(old) = self.kvs.remove(&key) {
                        self.unbind(old.lease, &key);
                    }
                    events.push(WatchEvent::Delete { key, mod_revision: p.revision });
                }
            }
        }
        self.revision = self.revision.max(p.revision);
        if let Some(id) = p.drop_lease {
            self.leases.remove(&id);
        }
        self.hub.publish(events);
    }

    fn unbind(&mut self, lease: Option<LeaseId>, key: &str) {
        if let Some(l) = lease.and_then(|id| self.leases.get_mut(&id)) {
            l.keys.remove(key);
        }
    }

    /// Number of live leases (for tests).
    #[cfg(test)]
    pub(super) fn lease_count(&self) -> usize {
        self.leases.len()
    }
}
