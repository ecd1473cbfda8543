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

pub mod assignor;
mod host;
pub mod offsets;
pub mod records;

pub use host::GroupHost;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use assignor::{Assignor, Tp};
use records::{GroupRecord, MemberRecord};

use crate::settings::GroupSettings;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_group;
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Revision, Txn, TxnOp};
use shale_proto::pb;

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
            meta,
            keys,
            settings,
            groups: std::sync::Mutex::new(HashMap::new()),
            lag: std::sync::Mutex::new(Vec::new()),
        }
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

    /// Handles a heartbeat on the group's coordinator (the caller checked it is this one).
    pub async fn heartbeat(
        &self,
        b: &dyn GroupHost,
        req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, Error> {
        validate_group(&req.group)?;
        let slot = self.slot(&req.group);
        let mut guard = slot.lock().await;
        let view = view(b);
        if guard.as_ref().is_none_or(|g| g.view != view) {
            *guard = Some(self.load(&req.group, view, b.now_ms()).await?);
        }
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let mut dirty = Dirty::default();
        let result = self.apply_heartbeat(b, g, &req, &mut dirty);
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                // Validation errors change nothing; a removal for fencing does.
                if dirty.any() {
                    self.persist(&req.group, g, &dirty).await.ok();
                }
                return Err(e);
            }
        };
        if dirty.any() {
            if let Err(e) = self.persist(&req.group, g, &dirty).await {
                // Someone else changed the group: forget it and let the client retry.
                *guard = None;
                return Err(e);
            }
        }
        Ok(response)
    }

    fn apply_heartbeat(
        &self,
        b: &dyn GroupHost,
        g: &mut Group,
        req: &pb::HeartbeatRequest,
        dirty: &mut Dirty,
    ) -> Result<pb::HeartbeatResponse, Error> {
        let now = b.now_ms();
        let group = req.group.as_str();
        let member_id = match req.member_epoch {
            -1 => {
                if g.members.remove(&req.member_id).is_some() {
                    g.record.epoch += 1;
                    dirty.state = true;
                    dirty.removed.insert(req.member_id.clone());
                }
                return Ok(pb::HeartbeatResponse {
                    member_id: req.member_id.clone(),
                    member_epoch: -1,
                    heartbeat_interval_ms: 0,
                    assignment: vec![],
                    group_epoch: g.record.epoch,
                });
            }
            0 => {
                let session = self.session_timeout(req.session_timeout_ms)?;
                if req.topics.is_empty() && req.topic_pattern.is_empty() {
                    return Err(Error::invalid(format!(
                        "joining group {group:?} needs topics or a topic pattern to subscribe to"
                    )));
                }
                if g.members.is_empty() {
                    let assignor = Assignor::parse(&req.assignor)?;
                    if assignor != g.record.assignor {
                        g.record.assignor = assignor;
                    }
                }
                let id = if req.member_id.is_empty() {
                    uuid::Uuid::new_v4().simple().to_string()
                } else {
                    validate_member_id(&req.member_id)?;
                    req.member_id.clone()
                };
                // A member rejoining under its id starts over (it dropped its partitions).
                g.members.remove(&id);
                g.members.insert(
                    id.clone(),
                    Member {
                        record: MemberRecord {
                            client_id: req.client_id.clone(),
                            topics: sorted(&req.topics),
                            pattern: req.topic_pattern.clone(),
                            session_timeout_ms: session,
                            epoch: 1,
                            ..MemberRecord::default()
                        },
                        assigned: BTreeSet::new(),
                        revoking: BTreeSet::new(),
                        last_seen_ms: now,
                    },
                );
                g.record.epoch += 1;
                dirty.state = true;
                dirty.members.insert(id.clone());
                id
            }
            epoch => {
                let Some(m) = g.members.get_mut(&req.member_id) else {
                    return Err(unknown_member(group, &req.member_id));
                };
                if epoch > m.record.epoch || epoch < -1 {
                    return Err(Error::new(
                        ErrorKind::Fenced,
                        Reason::FencedMemberEpoch,
                        format!(
                            "member {:?} of group {group:?} sent epoch {epoch}, but its epoch is \
                             {}; rejoin with member epoch 0",
                            req.member_id, m.record.epoch
                        ),
                    )
                    .with("group", group)
                    .with("member_id", &req.member_id));
                }
                m.last_seen_ms = now;
                let topics = sorted(&req.topics);
                let changed_subscription = (!topics.is_empty() || !req.topic_pattern.is_empty())
                    && (topics != m.record.topics || req.topic_pattern != m.record.pattern);
                if changed_subscription {
                    m.record.topics = topics;
                    m.record.pattern = req.topic_pattern.clone();
                    g.record.epoch += 1;
                    dirty.state = true;
                    dirty.members.insert(req.member_id.clone());
                }
                // Only a member that has applied its latest assignment says truly what it
                // still holds.
                if epoch == m.record.epoch && !m.revoking.is_empty() {
                    let owned = shale_proto::convert::partition_set(&req.owned);
                    let before = m.revoking.len();
                    m.revoking.retain(|tp| owned.contains(tp));
                    if m.revoking.len() != before {
                        if m.revoking.is_empty() {
                            m.record.revoking_since_ms = 0;
                        }
                        dirty.members.insert(req.member_id.clone());
                    }
                }
                req.member_id.clone()
            }
        };
        self.refresh_target(b, g, dirty);
        // Partitions freed by this member may unblock others; they pick them up on their
        // next heartbeat. This member moves towards its target now.
        self.reconcile(g, &member_id, now, dirty);
        let m = &g.members[&member_id];
        Ok(pb::HeartbeatResponse {
            member_id: member_id.clone(),
            member_epoch: m.record.epoch,
            heartbeat_interval_ms: self.heartbeat_interval(m.record.session_timeout_ms),
            assignment: shale_proto::convert::partition_set_to_proto(&m.assigned),
            group_epoch: g.record.epoch,
        })
    }

    fn session_timeout(&self, asked: u32) -> Result<u32, Error> {
        let s = &self.settings;
        if asked == 0 {
            return Ok(s.session_timeout_ms);
        }
        if !(s.min_session_timeout_ms..=s.max_session_timeout_ms).contains(&asked) {
            return Err(Error::invalid(format!(
                "session_timeout_ms {asked} is outside the broker's range {}..={}",
                s.min_session_timeout_ms, s.max_session_timeout_ms
            ))
            .with("session_timeout_ms", asked));
        }
        Ok(asked)
    }

    fn heartbeat_interval(&self, session_ms: u32) -> u32 {
        self.settings.heartbeat_interval_ms.min(session_ms / 3).max(1)
    }

    /// Recomputes the target when the group epoch moved or a subscribed topic changed its
    /// partition count (which also bumps the epoch).
    fn refresh_target(&self, b: &dyn GroupHost, g: &mut Group, dirty: &mut Dirty) {
        let names = b.topic_names();
        let mut subscriptions: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut topics: BTreeMap<String, u32> = BTreeMap::new();
        for (id, m) in &g.members {
            let subscribed: BTreeSet<String> = if m.record.pattern.is_empty() {
                m.record.topics.iter().cloned().collect()
            } else {
                names
                    .iter()
                    .filter(|t| records::glob_match(&m.record.pattern, t))
                    .cloned()
                    .collect()
            };
            for t in &subscribed {
                if let Ok(entry) = b.topic_record(t) {
                    topics.insert(t.clone(), entry.partitions);
                }
            }
            subscriptions.insert(id.as_str(), subscribed);
        }
        if topics != g.target_topics && g.target_epoch == g.record.epoch && !g.members.is_empty() {
            g.record.epoch += 1;
            dirty.state = true;
        }
        if g.target_epoch == g.record.epoch && topics == g.target_topics {
            return;
        }
        let current: BTreeMap<&str, BTreeSet<Tp>> = g
            .members
            .iter()
            .map(|(id, m)| (id.as_str(), m.assigned.union(&m.revoking).cloned().collect()))
            .collect();
        let input = assignor::Input { topics: topics.clone(), subscriptions, current };
        g.target = assignor::assign(g.record.assignor, &input);
        g.target_epoch = g.record.epoch;
        g.target_topics = topics;
    }

    /// Moves `member_id` towards its target: gives up what it should not own (pending its
    /// release) and takes what no other member owns or is releasing.
    fn reconcile(&self, g: &mut Group, member_id: &str, now: i64, dirty: &mut Dirty) {
        let desired = g.target.get(member_id).cloned().unwrap_or_default();
        let blocked: BTreeSet<Tp> = g
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.assigned.iter().chain(m.revoking.iter()).cloned())
            .collect();
        let Some(m) = g.members.get_mut(member_id) else { return };
        let mut changed = false;
        let revoke: Vec<Tp> = m.assigned.difference(&desired).cloned().collect();
        for tp in revoke {
            m.assigned.remove(&tp);
            m.revoking.insert(tp);
            if m.record.revoking_since_ms == 0 {
                m.record.revoking_since_ms = now;
            }
            changed = true;
        }
        for tp in desired.difference(&m.assigned).cloned().collect::<Vec<_>>() {
            if m.revoking.remove(&tp) || !blocked.contains(&tp) {
                m.assigned.insert(tp);
                changed = true;
            }
        }
        if m.revoking.is_empty() {
            m.record.revoking_since_ms = 0;
        }
        if changed {
            m.record.epoch += 1;
            dirty.members.insert(member_id.to_string());
        }
    }

    /// Removes members whose session timed out, or that held on to revoked partitions past
    /// the rebalance timeout, from the groups this broker coordinates.
    pub async fn sweep(&self, b: &dyn GroupHost) {
        let slots: Vec<(String, Arc<tokio::sync::Mutex<Option<Group>>>)> = {
            let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            groups.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let brokers = b.coordinator_candidates();
        let view = view(b);
        for (name, slot) in slots {
            let mut guard = slot.lock().await;
            let Some(g) = guard.as_mut() else { continue };
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
                    now - m.last_seen_ms > i64::from(m.record.session_timeout_ms)
                        || (m.record.revoking_since_ms > 0
                            && now - m.record.revoking_since_ms
                                > i64::from(self.settings.rebalance_timeout_ms))
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
                g.members.insert(
                    id,
                    Member {
                        assigned: records::to_set(&record.assigned),
                        revoking: records::to_set(&record.revoking),
                        record,
                        last_seen_ms: now,
                    },
                );
            }
        }
        Ok(g)
    }

    async fn persist(&self, group: &str, g: &mut Group, dirty: &Dirty) -> Result<(), Error> {
        let state_key = self.keys.group_state(group);
        let mut txn = Txn::new()
            .when(Compare::mod_revision(state_key.clone(), g.state_rev))
            .and_then(TxnOp::put(state_key, records::encode(&g.record)));
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

fn validate_member_id(id: &str) -> Result<(), Error> {
    if id.len() > 128 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::invalid(format!(
            "member id {id:?} is invalid: at most 128 bytes, no '/' or control characters"
        ))
        .with("member_id", id));
    }
    Ok(())
}

fn sorted(topics: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = topics.iter().collect();
    set.into_iter().cloned().collect()
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
