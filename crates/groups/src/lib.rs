//! Consumer groups, coordinated on the brokers (KIP-848 style).
//!
//! Each group has one coordinator: the live broker that wins a rendezvous hash of the group
//! name over the live broker ids, so every broker computes the same one from the membership
//! it sees. Heartbeats reach it (any broker forwards them); it keeps members' liveness in
//! memory, computes the target assignment with the group's assignor, and moves each member
//! towards it: a partition is given to its new owner only after its previous owner has
//! released it (said so in a heartbeat sent after it learnt of the revocation) or was
//! removed, so no partition is owned by two members at once.
//!
//! Etcd holds the group's state and one record per member ([`records`]); it is written only
//! when something changes, in transactions that compare the revision of the state key, so
//! two brokers that both believe they coordinate a group (while their views of the live
//! brokers differ) cannot both change it: the loser reloads. A new coordinator loads the
//! group from etcd and gives every member a fresh session timeout.
//!
//! Offsets (`offsets.rs`) are committed by whichever broker receives the call, in one etcd
//! transaction fenced by the member's record: a member that was removed, or that commits a
//! partition it does not own, is refused with `FENCED_MEMBER`.
//!
//! Groups of Kafka's classic protocol (`classic/`) are coordinated by the same broker for
//! the same group id, and commit to the same offset keys; a group id serves one kind at
//! a time, except that a Kafka consumer-protocol member converts a classic group
//! (`mixed.rs`).
//!
//! Layout: `heartbeat` (the broker-assigned kind: join, beat, leave, reconcile), with the
//! rules of Kafka's consumer protocol in `consumer` (KIP-848) and its classic members after
//! an online upgrade in `mixed`; `share` (KIP-932's share partitions, on their leaders);
//! `assignor` (cooperative-sticky alias uniform, range, simple),
//! `classic` (Kafka's JoinGroup/SyncGroup groups), `configs` (per-group overrides, Kafka's
//! GROUP resource), `offsets` (commits, fetches, resets; every kind's), `describe`,
//! `adopt`, `records` (what etcd holds), `settings` (`[groups]`), the domain's own types
//! (`types.rs`, re-exported here), and the host trait ([`GroupHost`]) through which a
//! broker lends partitions' offsets and topics.

mod adopt;
pub mod assignor;
pub mod classic;
pub mod configs;
mod consumer;
mod describe;
mod heartbeat;
mod host;
mod mixed;
pub mod offsets;
pub mod records;
pub mod settings;
pub mod share;
#[cfg(test)]
mod share_tests;
#[cfg(test)]
mod test_host;
mod types;

pub use host::GroupHost;
pub use types::{
    CommitOffsets, CommittedOffset, GroupDescription, GroupListing, GroupProtocol, Heartbeat,
    HeartbeatAnswer, KafkaMember, ListedState, MemberDescription, PartitionLag, ResetOffsets,
    ResetTo, ShareInFlight,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use assignor::Tp;
use records::{GroupRecord, MemberRecord};

use crate::settings::GroupSettings;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Revision, Txn, TxnOp};

/// `UNKNOWN_MEMBER_ID`: the member was removed (timed out, left or fenced); it must rejoin.
pub fn unknown_member(group: &str, member: &str) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::UnknownMemberId,
        format!(
            "member {member:?} is not in group {group:?} (its session timed out, it left or \
             it was removed); rejoin with member epoch 0"
        ),
    )
    .with("group", group)
    .with("member_id", member)
}

/// `NOT_COORDINATOR`: broker `id` does not coordinate `group`; the client finds the
/// coordinator again.
pub fn not_coordinator(group: &str, id: i32) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        Reason::NotCoordinator,
        format!("broker {id} does not coordinate group {group:?} (any more); find its coordinator"),
    )
    .with("group", group)
}

/// The coordinator of `group` among `brokers` (id, address): rendezvous hashing.
pub fn coordinator_of(group: &str, brokers: &[(i32, String)]) -> Option<(i32, String)> {
    brokers
        .iter()
        .max_by_key(|(id, _)| {
            let mut key = group.as_bytes().to_vec();
            key.extend_from_slice(&id.to_be_bytes());
            (crc32c::crc32c(&key), *id)
        })
        .cloned()
}

#[derive(Debug)]
struct Member {
    record: MemberRecord,
    assigned: BTreeSet<Tp>,
    revoking: BTreeSet<Tp>,
    last_seen_ms: i64,
    /// `record.regex` compiled.
    regex: Option<regex::Regex>,
}

#[derive(Debug)]
struct Group {
    /// The broker set (ids) the group was loaded under; another one means reload.
    view: Vec<i32>,
    /// Mod revision of the state key (0: absent).
    state_rev: Revision,
    record: GroupRecord,
    members: BTreeMap<String, Member>,
    /// Target assignment, computed at `target_epoch` from `target_topics`.
    target: BTreeMap<String, BTreeSet<Tp>>,
    target_epoch: i32,
    target_topics: BTreeMap<String, u32>,
    /// The group's config overrides (`configs.rs`).
    configs: configs::Overrides,
}

/// A group's slot, locked.
type Locked = tokio::sync::OwnedMutexGuard<Option<Group>>;

impl Group {
    /// How long `m` may go without a heartbeat: a consumer-protocol member's is the
    /// group's override when it has one (`configs.rs`), else what it joined with.
    fn session_timeout_ms(&self, m: &MemberRecord) -> u32 {
        let own = match (m.share, m.kafka && m.classic.is_none()) {
            (true, _) => self.configs.share_session_timeout_ms,
            (false, true) => self.configs.session_timeout_ms,
            (false, false) => None,
        };
        own.unwrap_or(m.session_timeout_ms)
    }
}

/// What changed in a group under its lock, to persist.
#[derive(Debug, Default)]
struct Dirty {
    state: bool,
    members: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl Dirty {
    fn any(&self) -> bool {
        self.state || !self.members.is_empty() || !self.removed.is_empty()
    }
}

/// The groups this broker coordinates.
#[derive(Debug)]
pub struct Coordinator {
    meta: Arc<dyn MetaStore>,
    keys: Keys,
    settings: GroupSettings,
    groups: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Group>>>>>,
    /// Per-partition lag of the groups this broker coordinates, for `/metrics`.
    lag: std::sync::Mutex<Vec<PartitionLagSample>>,
    /// The groups of Kafka's classic protocol this broker coordinates.
    classic: classic::ClassicGroups,
    /// When this broker last looked for stored groups to coordinate (`adopt.rs`).
    adopted: adopt::Adopted,
    /// When this broker last read the groups' config overrides (ms, `configs.rs`).
    configs_read_ms: std::sync::Mutex<i64>,
    /// Share groups' overrides as their partitions' leader last read them, and when (ms).
    share_configs: std::sync::Mutex<HashMap<String, (configs::Overrides, i64)>>,
    /// The share partitions this broker leads.
    shares: share::SharePartitions,
    /// Share partitions (group, topic, partition, topic id) known to have state: the
    /// coordinator initializes each once.
    share_initialized: std::sync::Mutex<std::collections::HashSet<(String, String, u32, String)>>,
}

/// One partition's committed offset and lag in a group (see [`Coordinator::lag_samples`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLagSample {
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset (-1: none).
    pub committed: i64,
    /// High watermark minus the committed offset.
    pub lag: i64,
}

impl Coordinator {
    /// A coordinator over `meta`.
    pub fn new(meta: Arc<dyn MetaStore>, keys: Keys, settings: GroupSettings) -> Coordinator {
        Coordinator {
            classic: classic::ClassicGroups::new(meta.clone(), keys.clone(), settings.clone()),
            shares: share::SharePartitions::new(meta.clone(), keys.clone()),
            meta,
            keys,
            settings,
            groups: std::sync::Mutex::new(HashMap::new()),
            lag: std::sync::Mutex::new(Vec::new()),
            adopted: Default::default(),
            configs_read_ms: std::sync::Mutex::new(i64::MIN / 2),
            share_configs: std::sync::Mutex::new(HashMap::new()),
            share_initialized: Default::default(),
        }
    }

    /// The share partitions this broker leads.
    pub fn shares(&self) -> &share::SharePartitions {
        &self.shares
    }

    pub(crate) fn share_initialized(&self, p: &(String, String, u32, String)) -> bool {
        let known =
            self.share_initialized.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.contains(p)
    }

    pub(crate) fn forget_share_initialized(&self, group: &str) {
        let mut known =
            self.share_initialized.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|(g, ..)| g != group);
    }

    pub(crate) fn mark_share_initialized(&self, p: (String, String, u32, String)) {
        let mut known =
            self.share_initialized.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.insert(p);
    }

    /// The groups of Kafka's classic protocol.
    pub fn classic(&self) -> &classic::ClassicGroups {
        &self.classic
    }

    /// The lag of every group this broker coordinates, as last refreshed.
    pub fn lag_samples(&self) -> Vec<PartitionLagSample> {
        self.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Recomputes [`Coordinator::lag_samples`]: every stored group whose coordinator is
    /// this broker, described (committed offsets against the high watermarks).
    pub async fn refresh_lag(&self, b: &dyn GroupHost) -> Result<(), Error> {
        let brokers = b.coordinator_candidates();
        let mut samples = Vec::new();
        for g in self.list_groups().await? {
            if coordinator_of(&g.group, &brokers).is_none_or(|(id, _)| id != b.broker_id()) {
                continue;
            }
            let d = match self.describe_group(b, &g.group).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(group = g.group, error = %e, "group lag not refreshed");
                    continue;
                }
            };
            samples.extend(d.partitions.into_iter().map(|p| PartitionLagSample {
                group: g.group.clone(),
                topic: p.topic,
                partition: p.partition,
                committed: p.committed,
                lag: p.lag,
            }));
        }
        *self.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = samples;
        Ok(())
    }

    pub(crate) fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    fn slot(&self, group: &str) -> Arc<tokio::sync::Mutex<Option<Group>>> {
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        groups.entry(group.to_string()).or_default().clone()
    }

    /// Removes members whose session timed out, or that held on to revoked partitions past
    /// the rebalance timeout, from the groups this broker coordinates, having first loaded
    /// those with stored members that nobody asked about yet (`adopt.rs`).
    pub async fn sweep(&self, b: &dyn GroupHost) {
        self.adopt(b).await;
        self.classic.sweep(b).await;
        let slots: Vec<(String, Arc<tokio::sync::Mutex<Option<Group>>>)> = {
            let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            groups.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let brokers = b.coordinator_candidates();
        let view = view(b);
        let overrides = self.due_overrides(b.now_ms()).await;
        for (name, slot) in slots {
            let mut guard = slot.lock().await;
            let Some(g) = guard.as_mut() else { continue };
            if let Some(all) = &overrides {
                g.configs = all.get(&name).cloned().unwrap_or_default();
            }
            let ours = coordinator_of(&name, &brokers).is_some_and(|(id, _)| id == b.broker_id());
            if !ours || g.view != view {
                // No longer ours (or the cluster changed): forget it; a heartbeat reloads.
                *guard = None;
                continue;
            }
            let now = b.now_ms();
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    let rebalance = match m.record.rebalance_timeout_ms {
                        0 => self.settings.rebalance_timeout_ms,
                        ms => ms,
                    };
                    now - m.last_seen_ms > i64::from(g.session_timeout_ms(&m.record))
                        || (m.record.revoking_since_ms > 0
                            && now - m.record.revoking_since_ms > i64::from(rebalance))
                })
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let mut dirty = Dirty::default();
            for id in expired {
                tracing::info!(group = %name, member = %id, "removing a member that stopped heartbeating or did not release its partitions");
                g.members.remove(&id);
                dirty.removed.insert(id);
            }
            g.record.epoch += 1;
            dirty.state = true;
            g.downgrade(&name, &mut dirty);
            if let Err(e) = self.persist(&name, g, &dirty).await {
                tracing::warn!(group = %name, error = %e, "could not persist member removal; reloading");
                *guard = None;
            }
        }
    }

    async fn load(&self, group: &str, view: Vec<i32>, now: i64) -> Result<Group, Error> {
        let state_key = self.keys.group_state(group);
        let prefix = self.keys.group_members(group);
        let range = self.meta.range(&self.keys.group(group)).await?;
        let mut g = Group {
            view,
            state_rev: 0,
            record: GroupRecord::default(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            target_epoch: -1,
            target_topics: BTreeMap::new(),
            configs: self.load_overrides(group).await?,
        };
        for kv in range.kvs {
            if kv.key == state_key {
                g.record = records::decode(&kv.value, &format!("group {group:?} state"))?;
                g.state_rev = kv.mod_revision;
            } else if let Some(id) =
                self.keys.components(&prefix, &kv.key).and_then(|c| c.into_iter().next())
            {
                let record: MemberRecord =
                    records::decode(&kv.value, &format!("member {id:?} of group {group:?}"))?;
                // A stored expression compiled when it was taken; one that no longer does
                // (another regex version) subscribes to nothing rather than failing the group.
                let regex = consumer::compile(&record.regex).ok().flatten();
                g.members.insert(
                    id,
                    Member {
                        assigned: records::to_set(&record.assigned),
                        revoking: records::to_set(&record.revoking),
                        record,
                        last_seen_ms: now,
                        regex,
                    },
                );
            }
        }
        Ok(g)
    }

    /// `group`'s slot, locked, with the group loaded (from the store unless this broker
    /// holds it under the current view of the brokers).
    async fn locked(&self, b: &dyn GroupHost, group: &str) -> Result<Locked, Error> {
        let mut guard = self.slot(group).lock_owned().await;
        let view = view(b);
        if guard.as_ref().is_none_or(|g| g.view != view) {
            *guard = Some(self.load(group, view, b.now_ms()).await?);
        }
        Ok(guard)
    }

    /// Persists what `dirty` names of the group under `guard`; when another coordinator
    /// changed it meanwhile, forgets it (the client retries and it is loaded again).
    async fn save(
        &self,
        group: &str,
        guard: &mut Option<Group>,
        dirty: &Dirty,
    ) -> Result<(), Error> {
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        if !dirty.any() {
            return Ok(());
        }
        let saved = self.persist(group, g, dirty).await;
        if saved.is_err() {
            *guard = None;
        }
        saved
    }

    async fn persist(&self, group: &str, g: &mut Group, dirty: &Dirty) -> Result<(), Error> {
        self.persist_with(group, g, dirty, Vec::new(), Vec::new()).await
    }

    /// [`persist`](Self::persist) in one transaction with `compares` and `ops` besides.
    async fn persist_with(
        &self,
        group: &str,
        g: &mut Group,
        dirty: &Dirty,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<(), Error> {
        let state_key = self.keys.group_state(group);
        let mut txn = Txn::new().when(Compare::mod_revision(state_key.clone(), g.state_rev));
        for c in compares {
            txn = txn.when(c);
        }
        for op in ops {
            txn = txn.and_then(op);
        }
        let mut txn = txn.and_then(TxnOp::put(state_key, records::encode(&g.record)));
        for id in &dirty.members {
            if let Some(m) = g.members.get_mut(id) {
                m.record.assigned = records::to_map(&m.assigned);
                m.record.revoking = records::to_map(&m.revoking);
                txn = txn.and_then(TxnOp::put(
                    self.keys.group_member(group, id),
                    records::encode(&m.record),
                ));
            }
        }
        for id in &dirty.removed {
            if !g.members.contains_key(id) {
                txn = txn.and_then(TxnOp::delete(self.keys.group_member(group, id)));
            }
        }
        let outcome = self.meta.txn(txn).await?;
        if !outcome.succeeded {
            return Err(Error::unavailable(format!(
                "group {group:?} was changed by another coordinator; retry"
            )));
        }
        g.state_rev = outcome.revision;
        Ok(())
    }
}

fn view(b: &dyn GroupHost) -> Vec<i32> {
    b.coordinator_candidates().into_iter().map(|(id, _)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coordinator_is_stable_and_spread() {
        let brokers: Vec<(i32, String)> = (1..=3).map(|i| (i, format!("b{i}"))).collect();
        let mut counts = HashMap::new();
        for g in 0..300 {
            let name = format!("group-{g}");
            let (id, _) = coordinator_of(&name, &brokers).unwrap();
            assert_eq!(coordinator_of(&name, &brokers).unwrap().0, id);
            *counts.entry(id).or_insert(0) += 1;
            // Removing another broker does not move the group.
            let others: Vec<_> =
                brokers.iter().filter(|(b, _)| *b != id && *b != (id % 3) + 1).cloned().collect();
            let mut fewer = others.clone();
            fewer.push((id, format!("b{id}")));
            assert_eq!(coordinator_of(&name, &fewer).unwrap().0, id);
        }
        assert!(counts.values().all(|c| *c > 50), "{counts:?}");
        assert!(coordinator_of("g", &[]).is_none());
    }
}
