//! Consumer groups of Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), coordinated on the broker that coordinates the group id (the same
//! rendezvous choice as Shale's own groups): membership and rebalances in memory
//! (`group`), the group persisted to `groups/{g}/classic` whenever a rebalance completes
//! or the group empties, so that a coordinator taking over after a failover loads it
//! stable and its members go on heartbeating without a rebalance. Offsets are committed to
//! the same `offsets/{g}/{topic}/{p}` keys Shale's own groups use, so `shale group
//! describe` shows Kafka groups with their lag.
//!
//! A group id is used by one protocol at a time: joining a classic group that has members
//! of Shale's own protocol (or the other way round) is INCONSISTENT_GROUP_PROTOCOL.
//!
//! Assignments are opaque bytes to the coordinator (the leader computes them); the front
//! end that knows the consumer protocol hands them over decoded too, for describing.

pub mod group;
mod stored;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use group::{Bounds, JoinStep, SyncStep};
pub use group::{ClassicGroup, JoinRequest, Joined, State, SyncRequest, Synced};
pub use stored::ClassicRecord;

use super::records::OffsetRecord;
use super::{GroupHost, coordinator_of, not_coordinator, offsets};
use crate::settings::GroupSettings;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore};

/// A group slot: the group once loaded.
type Slot = Arc<tokio::sync::Mutex<Option<ClassicGroup>>>;

/// The classic groups this broker coordinates.
#[derive(Debug)]
pub struct ClassicGroups {
    meta: Arc<dyn MetaStore>,
    keys: Keys,
    settings: GroupSettings,
    groups: std::sync::Mutex<HashMap<String, Slot>>,
}

/// A group as its coordinator holds it now.
#[derive(Debug, Clone)]
pub struct Live {
    /// Where it is in its rebalance cycle.
    pub state: State,
    /// The members' protocol type.
    pub protocol_type: String,
    /// The protocol chosen.
    pub protocol: String,
    /// The members.
    pub members: Vec<LiveMember>,
}

/// A member of a [`Live`] group.
#[derive(Debug, Clone)]
pub struct LiveMember {
    /// Its id.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Its metadata for the chosen protocol (its subscription).
    pub metadata: bytes::Bytes,
    /// Its assignment.
    pub assignment: bytes::Bytes,
}

pub use super::types::OffsetToCommit;

impl ClassicGroups {
    /// The classic groups kept in `meta`.
    pub fn new(meta: Arc<dyn MetaStore>, keys: Keys, settings: GroupSettings) -> ClassicGroups {
        ClassicGroups { meta, keys, settings, groups: std::sync::Mutex::new(HashMap::new()) }
    }

    fn bounds(&self) -> Bounds {
        let s = &self.settings;
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Bounds {
            min_session_timeout_ms: clamp(s.min_session_timeout_ms),
            max_session_timeout_ms: clamp(s.max_session_timeout_ms),
            initial_delay_ms: clamp(s.initial_rebalance_delay_ms),
        }
    }

    fn slot(&self, group: &str) -> Slot {
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        groups.entry(group.to_string()).or_default().clone()
    }

    /// The group, loaded from the store if this broker does not hold it yet; an error
    /// when this broker does not coordinate it.
    pub(crate) async fn locked(
        &self,
        b: &dyn GroupHost,
        group: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<Option<ClassicGroup>>, Error> {
        shale_core::names::validate_group(group)?;
        let ours = coordinator_of(group, &b.coordinator_candidates());
        if ours.is_none_or(|(id, _)| id != b.broker_id()) {
            return Err(not_coordinator(group, b.broker_id()));
        }
        let mut guard = self.slot(group).lock_owned().await;
        if guard.is_none() {
            *guard = Some(stored::load(&*self.meta, &self.keys, group, b.now_ms()).await?);
        }
        Ok(guard)
    }

    /// Loads `group` from the store unless this broker holds it already, so that the sweep
    /// times its members' sessions though none of them heartbeats here (`groups/adopt.rs`).
    pub(crate) async fn adopt(&self, b: &dyn GroupHost, group: &str) -> Result<(), Error> {
        self.locked(b, group).await.map(drop)
    }

    /// Fails the request if the group id has members of Shale's own protocol.
    async fn check_not_shale_group(&self, group: &str) -> Result<(), Error> {
        let members = self.meta.range(&self.keys.group_members(group)).await?;
        if !members.kvs.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InconsistentGroupProtocol,
                format!(
                    "group {group:?} has {} members of Shale's own group protocol; use another \
                     group id for Kafka's protocol",
                    members.kvs.len()
                ),
            )
            .with("group", group));
        }
        Ok(())
    }

    /// A member joins (or rejoins) `group`; resolves when the rebalance completes.
    pub async fn join(
        &self,
        b: &dyn GroupHost,
        group: &str,
        req: JoinRequest,
    ) -> Result<Joined, Error> {
        let mut guard = self.locked(b, group).await?;
        let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
        if g.state == State::Empty {
            self.check_not_shale_group(group).await?;
        }
        let step = g.join(req, b.now_ms(), self.bounds(), || uuid::Uuid::new_v4().to_string())?;
        let mut rx = match step {
            JoinStep::Now(joined) => return Ok(joined),
            JoinStep::Wait(rx) => rx,
        };
        // Every waiting member drives the rebalance's timers; the sweep does when none is.
        loop {
            let wake = {
                let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
                let now = b.now_ms();
                if g.maybe_complete_join(now) && g.state == State::Empty {
                    self.persist(g).await.ok();
                }
                match g.state {
                    State::PreparingRebalance => {
                        let at = if g.members.values().all(|m| m.joined) {
                            g.delay_until_ms
                        } else {
                            g.deadline_ms
                        };
                        Duration::from_millis(u64::try_from(at - now).unwrap_or(0).max(1))
                    }
                    _ => Duration::from_millis(u64::from(self.settings.rebalance_timeout_ms)),
                }
            };
            drop(guard);
            tokio::select! {
                r = &mut rx => {
                    return r.map_err(|_| Error::unavailable(format!("group {group:?} moved; join again")))?;
                }
                _ = shale_core::clock::sleep(wake) => {}
            }
            guard = self.locked(b, group).await?;
        }
    }

    /// A member syncs: the leader hands over the assignment; every member gets its own.
    pub async fn sync(
        &self,
        b: &dyn GroupHost,
        group: &str,
        req: SyncRequest,
    ) -> Result<Synced, Error> {
        let mut guard = self.locked(b, group).await?;
        let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
        let rx = match g.sync(req, b.now_ms())? {
            SyncStep::Now(synced) => return Ok(synced),
            SyncStep::Wait(rx) => rx,
            SyncStep::Persist(rx) => {
                let persisted = self.persist(g).await;
                g.synced_outcome(persisted, b.now_ms(), self.bounds());
                rx
            }
        };
        drop(guard);
        rx.await.map_err(|_| Error::unavailable(format!("group {group:?} moved; join again")))?
    }

    /// A member's heartbeat.
    pub async fn heartbeat(
        &self,
        b: &dyn GroupHost,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), Error> {
        let mut guard = self.locked(b, group).await?;
        let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
        g.heartbeat(member, instance, generation, b.now_ms())
    }

    /// Members leave; the outcome per member, in order.
    pub async fn leave(
        &self,
        b: &dyn GroupHost,
        group: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut guard = self.locked(b, group).await?;
        let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
        let out = g.leave(leaving, b.now_ms(), self.bounds());
        if g.state == State::Empty {
            self.persist(g).await?;
        }
        Ok(out)
    }

    /// Commits offsets for a member (or, with generation -1 and no member, for a client
    /// outside the group protocol while the group is empty), fenced by the stored group.
    pub async fn commit(
        &self,
        b: &dyn GroupHost,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: &[OffsetToCommit],
    ) -> Result<(), Error> {
        let mut guard = self.locked(b, group).await?;
        let g = guard.as_mut().ok_or_else(|| Error::internal("group slot empty"))?;
        g.check_commit(member, instance, generation)?;
        if g.members.is_empty() {
            // A commit outside any group protocol must not write under members of Shale's.
            self.check_not_shale_group(group).await?;
        }
        let fence = Compare::mod_revision(self.keys.group_classic(group), g.stored_rev);
        let written =
            offsets::put_offsets_fenced(&*self.meta, &self.keys, b, group, fence, offsets).await?;
        if !written {
            // Another broker wrote the group meanwhile: it is theirs now.
            *guard = None;
            return Err(not_coordinator(group, b.broker_id()));
        }
        Ok(())
    }

    /// Checks a transactional producer's offsets of `group` before its transaction takes
    /// them (`TxnOffsetCommit`): this broker coordinates the group, and a producer that
    /// names its consumer's member and generation (KIP-447) names a current one; one that
    /// names none (generation -1, no member: an older client) is not checked, as Kafka
    /// does not. Nothing is written. The records to add, committed at `now_ms`.
    pub async fn check_txn_commit(
        &self,
        b: &dyn GroupHost,
        group: &str,
        (member, instance, generation): (&str, Option<&str>, i32),
        offsets: &[OffsetToCommit],
    ) -> Result<Vec<(String, u32, OffsetRecord)>, Error> {
        let guard = self.locked(b, group).await?;
        let g = guard.as_ref().ok_or_else(|| Error::internal("group slot empty"))?;
        if generation >= 0 || !member.is_empty() || instance.is_some() {
            g.check_commit(member, instance, generation)?;
        }
        let now = b.now_ms();
        offsets
            .iter()
            .map(|o| Ok((o.topic.clone(), o.partition, offsets::offset_record(b, o, now)?)))
            .collect()
    }

    /// Writes the group (compared with the revision this broker last saw).
    async fn persist(&self, g: &mut ClassicGroup) -> Result<(), Error> {
        let outcome = stored::store(&*self.meta, &self.keys, g).await;
        if let Err(e) = &outcome {
            tracing::warn!(group = %g.name, error = %e, "persisting a classic group failed");
        }
        outcome
    }

    /// Expires silent members and drives the timers of rebalances nobody waits in; drops
    /// the groups this broker no longer coordinates.
    pub async fn sweep(&self, b: &dyn GroupHost) {
        let slots: Vec<(String, Slot)> = {
            let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            groups.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let brokers = b.coordinator_candidates();
        for (name, slot) in slots {
            let mut guard = slot.lock().await;
            let ours = coordinator_of(&name, &brokers).is_some_and(|(id, _)| id == b.broker_id());
            let Some(g) = guard.as_mut() else { continue };
            if !ours {
                g.abandon(&not_coordinator(&name, b.broker_id()));
                *guard = None;
                continue;
            }
            let now = b.now_ms();
            let was = g.state;
            let changed = g.expire(now, self.bounds()) | g.maybe_complete_join(now);
            if changed && g.state == State::Empty && was != State::Empty {
                let _ = self.persist(g).await;
            }
        }
    }

    /// How many members the stored group has, and the record's revision; `None` when the
    /// group was never used with the classic protocol.
    pub async fn stored_members(
        &self,
        group: &str,
    ) -> Result<Option<(usize, shale_meta::Revision)>, Error> {
        let read = stored::read(&*self.meta, &self.keys, group).await?;
        Ok(read.map(|(r, rev)| (r.members.len(), rev)))
    }

    /// Drops this broker's copy of a group (deleted from the store).
    pub fn forget(&self, group: &str) {
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(group);
    }

    /// The group as its coordinator holds it now (Kafka's `DescribeGroups`).
    pub async fn live(&self, b: &dyn GroupHost, group: &str) -> Result<Live, Error> {
        let guard = self.locked(b, group).await?;
        let g = guard.as_ref().ok_or_else(|| Error::internal("group slot empty"))?;
        let protocol = g.protocol.clone().unwrap_or_default();
        Ok(Live {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| LiveMember {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// The state, members and assignments of a group as stored (any broker), for
    /// describing: `None` when the group was never used with the classic protocol.
    pub async fn describe(&self, group: &str) -> Result<Option<ClassicRecord>, Error> {
        stored::read(&*self.meta, &self.keys, group).await.map(|r| r.map(|(rec, _)| rec))
    }
}
