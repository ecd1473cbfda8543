//! Kafka's online upgrade of a group (KIP-848): a classic group whose members restart one
//! by one with `group.protocol=consumer` keeps consuming. The first consumer-protocol
//! member to join converts the (stable) classic group into a consumer group: each classic
//! member becomes a member of it with its partitions and generation, and the classic
//! record goes in the same store transaction. Classic members then go on with JoinGroup,
//! SyncGroup and Heartbeat, now answered by the broker's assignor:
//!
//! - a JoinGroup is answered at once, with no leader (so the member assigns nothing) and
//!   its member epoch as the generation; what it says it owns is what it still holds,
//!   so an eager member that revoked everything releases everything;
//! - a SyncGroup answers its partitions, which the front end encodes;
//! - a Heartbeat answers REBALANCE_IN_PROGRESS when the member must give a partition up
//!   or can take one, so it rejoins.
//!
//! Committed offsets stay where they were: every kind of group commits to the same keys.
//!
//! And back (Kafka 4's downgrade): when the last consumer-protocol member of a converted
//! group leaves or times out and classic members remain, the group becomes a classic
//! group again (`Group::downgrade`). Its classic members are dropped from the consumer
//! group; their next request is UNKNOWN_MEMBER_ID, and they rejoin through the classic
//! protocol (a client-side assignor again), their committed offsets where they were.

use std::collections::BTreeSet;

use super::assignor::{Assignor, Tp};
use super::classic::{JoinRequest, Joined, State, SyncRequest, Synced};
use super::records::{self, MemberRecord};
use super::unknown_member;
use super::{Coordinator, Dirty, Group, GroupHost, GroupProtocol, Locked, Member, consumer};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::{Compare, TxnOp};

/// The protocol type a classic group must have to convert (Kafka's consumers').
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

fn rebalance(group: &str, member: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::RebalanceInProgress,
        format!("group {group:?} moves partitions of member {member:?}: join again"),
    )
    .with("group", group)
    .with("member_id", member)
}

fn illegal_generation(group: &str, member: &str, generation: i32, epoch: i32) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::IllegalGeneration,
        format!(
            "member {member:?} of group {group:?} is at generation {epoch}, not {generation}; \
             join again"
        ),
    )
    .with("group", group)
    .with("member_id", member)
}

impl Group {
    /// Converts the group back to a classic group if only classic members are left (the
    /// last consumer-protocol member left or timed out): they are removed, to rejoin
    /// through the classic protocol. True when it did.
    pub(crate) fn downgrade(&mut self, group: &str, dirty: &mut Dirty) -> bool {
        let only_classic =
            !self.members.is_empty() && self.members.values().all(|m| m.record.classic.is_some());
        if !self.record.kafka || self.record.share || !only_classic {
            return false;
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        tracing::info!(
            group,
            members = ids.len(),
            "the last consumer-protocol member left: the \
            group is a classic group again, and its classic members rejoin through the classic \
            protocol"
        );
        for id in ids {
            self.members.remove(&id);
            dirty.removed.insert(id);
        }
        self.record.epoch += 1;
        dirty.state = true;
        true
    }
}

impl Coordinator {
    /// Converts `group`'s classic group, if it has members, into a consumer group (a
    /// consumer-protocol member is joining). A classic group in the middle of a
    /// rebalance is converted once it is stable: COORDINATOR_NOT_AVAILABLE until then,
    /// which the client retries.
    pub(crate) async fn upgrade_classic(
        &self,
        b: &dyn GroupHost,
        group: &str,
    ) -> Result<(), Error> {
        let mut classic = self.classic().locked(b, group).await?;
        let Some(cg) = classic.as_ref().filter(|cg| !cg.members.is_empty()) else { return Ok(()) };
        if cg.state != State::Stable {
            return Err(Error::unavailable(format!(
                "group {group:?} is rebalancing under the classic protocol; it converts to the \
                 consumer protocol once stable: retry"
            )));
        }
        if cg.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InconsistentGroupProtocol,
                format!(
                    "group {group:?} is a classic group of protocol type {:?}, which cannot \
                     convert to the consumer protocol",
                    cg.protocol_type.clone().unwrap_or_default()
                ),
            ));
        }
        let mut guard = self.locked(b, group).await?;
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let (now, mut dirty) = (b.now_ms(), Dirty::default());
        let protocol = cg.protocol.clone().unwrap_or_default();
        for (id, m) in &cg.members {
            let topics = match m.topics.is_empty() {
                true => m.assigned.keys().cloned().collect(),
                false => consumer::sorted(&m.topics),
            };
            let record = MemberRecord {
                client_id: m.client_id.clone(),
                principal: m.principal.clone(),
                topics,
                session_timeout_ms: u32::try_from(m.session_timeout_ms).unwrap_or(1).max(1),
                epoch: cg.generation,
                kafka: true,
                instance_id: m.instance_id.clone(),
                client_host: m.client_host.clone(),
                classic: Some(protocol.clone()),
                rebalance_timeout_ms: u32::try_from(m.rebalance_timeout_ms).unwrap_or(0),
                ..MemberRecord::default()
            };
            let assigned = records::to_set(&m.assigned);
            let member = Member {
                record,
                assigned,
                revoking: BTreeSet::new(),
                last_seen_ms: now,
                regex: None,
            };
            g.members.insert(id.clone(), member);
            dirty.members.insert(id.clone());
        }
        g.record.epoch = g.record.epoch.max(cg.generation) + 1;
        g.record.assignor = Assignor::Uniform;
        g.record.kafka = true;
        dirty.state = true;
        let key = self.keys().group_classic(group);
        let fence = vec![Compare::mod_revision(key.clone(), cg.stored_rev)];
        let converted = self.persist_with(group, g, &dirty, fence, vec![TxnOp::delete(key)]).await;
        if converted.is_err() {
            *guard = None;
            return converted;
        }
        tracing::info!(
            group,
            members = cg.members.len(),
            "converted a classic group to the consumer protocol"
        );
        // The classic side reloads an empty group: its requests now come here.
        *classic = None;
        Ok(())
    }

    /// `group`, locked, if it is now a consumer group with members (its classic members'
    /// requests are served here); None for the classic side to serve.
    async fn converted(&self, b: &dyn GroupHost, group: &str) -> Result<Option<Locked>, Error> {
        let guard = self.locked(b, group).await?;
        Ok(guard.as_ref().is_some_and(|g| !g.members.is_empty()).then_some(guard))
    }

    /// The protocol of `member` if it is a member of `group`'s broker-assigned kind, as
    /// this broker holds the group (commits ask, on the coordinator, without a store read).
    pub async fn member_protocol(
        &self,
        b: &dyn GroupHost,
        group: &str,
        member: &str,
    ) -> Result<Option<GroupProtocol>, Error> {
        shale_core::names::validate_group(group)?;
        let guard = self.locked(b, group).await?;
        let m = guard.as_ref().and_then(|g| g.members.get(member));
        Ok(m.map(|m| m.record.protocol()))
    }

    /// OffsetFetch v9 by `member` at `epoch` (KIP-848): in a group of broker-assigned
    /// members the member must be one (UNKNOWN_MEMBER_ID) at its current epoch
    /// (STALE_MEMBER_EPOCH); no member id, or a negative epoch (an administrator), checks
    /// nothing, nor does a group without such members (a classic group's fetches carry no
    /// epoch to check).
    pub async fn check_offset_fetch(
        &self,
        b: &dyn GroupHost,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<(), Error> {
        if member.is_empty() || epoch < 0 {
            return Ok(());
        }
        shale_core::names::validate_group(group)?;
        let guard = self.locked(b, group).await?;
        let Some(g) = guard.as_ref().filter(|g| !g.members.is_empty()) else { return Ok(()) };
        let Some(m) = g.members.get(member) else { return Err(unknown_member(group, member)) };
        if m.record.epoch != epoch {
            return Err(Error::new(
                ErrorKind::Fenced,
                Reason::StaleMemberEpoch,
                format!(
                    "offset fetch of group {group:?} refused: member {member:?} is at epoch {}, \
                     not {epoch}",
                    m.record.epoch
                ),
            )
            .with("group", group)
            .with("member_id", member));
        }
        Ok(())
    }

    /// A classic member's JoinGroup: to its classic group, or, once the group converted
    /// to the consumer protocol, answered at once by the broker's assignment.
    pub async fn classic_join(
        &self,
        b: &dyn GroupHost,
        group: &str,
        req: JoinRequest,
    ) -> Result<Joined, Error> {
        let Some(mut guard) = self.converted(b, group).await? else {
            return self.classic().join(b, group, req).await;
        };
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let mut dirty = Dirty::default();
        let joined = self.join_as_classic(b, g, group, req, &mut dirty);
        let saved = self.save(group, &mut guard, &dirty).await;
        let joined = joined?;
        saved?;
        Ok(joined)
    }

    fn join_as_classic(
        &self,
        b: &dyn GroupHost,
        g: &mut Group,
        group: &str,
        req: JoinRequest,
        dirty: &mut Dirty,
    ) -> Result<Joined, Error> {
        if req.protocol_type != CONSUMER_PROTOCOL_TYPE {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InconsistentGroupProtocol,
                format!(
                    "group {group:?} is a consumer group; protocol type {:?} cannot join it",
                    req.protocol_type
                ),
            ));
        }
        let protocol = req.protocols.first().map(|(name, _)| name.clone()).unwrap_or_default();
        let now = b.now_ms();
        if req.member_id.is_empty() {
            let id = uuid::Uuid::new_v4().to_string();
            if req.require_known_member_id {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::MemberIdRequired,
                    format!("join group {group:?} again with member id {id:?}"),
                )
                .with("member_id", &id));
            }
            return self.join_as_classic(b, g, group, JoinRequest { member_id: id, ..req }, dirty);
        }
        let id = req.member_id.clone();
        let topics = consumer::sorted(&req.topics);
        match g.members.get_mut(&id) {
            Some(m) if m.record.classic.is_some() => {
                m.last_seen_ms = now;
                // What it no longer holds is released (an eager member revoked it all).
                m.assigned.retain(|tp| req.owned.contains(tp));
                m.revoking.retain(|tp| req.owned.contains(tp));
                if m.revoking.is_empty() {
                    m.record.revoking_since_ms = 0;
                }
                m.record.classic = Some(protocol.clone());
                let changed = topics != m.record.topics;
                m.record.topics = topics;
                dirty.members.insert(id.clone());
                if changed {
                    g.record.epoch += 1;
                    dirty.state = true;
                }
            }
            Some(_) => return Err(unknown_member(group, &id)),
            None => {
                let record = MemberRecord {
                    client_id: req.client_id.clone(),
                    principal: req.principal.clone(),
                    topics,
                    session_timeout_ms: u32::try_from(req.session_timeout_ms).unwrap_or(1).max(1),
                    epoch: 1,
                    kafka: true,
                    instance_id: req.instance_id.clone(),
                    client_host: req.client_host.clone(),
                    classic: Some(protocol.clone()),
                    rebalance_timeout_ms: u32::try_from(req.rebalance_timeout_ms).unwrap_or(0),
                    ..MemberRecord::default()
                };
                let member = Member {
                    record,
                    assigned: BTreeSet::new(),
                    revoking: BTreeSet::new(),
                    last_seen_ms: now,
                    regex: None,
                };
                g.members.insert(id.clone(), member);
                g.record.epoch += 1;
                dirty.state = true;
                dirty.members.insert(id.clone());
            }
        }
        self.refresh_target(b, g, dirty);
        self.reconcile(g, &id, now, dirty);
        let m = &g.members[&id];
        Ok(Joined {
            generation: m.record.epoch,
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocol,
            leader: String::new(),
            member_id: id,
            members: Vec::new(),
        })
    }

    /// A classic member's SyncGroup: its partitions, in a consumer group.
    pub async fn classic_sync(
        &self,
        b: &dyn GroupHost,
        group: &str,
        req: SyncRequest,
    ) -> Result<Synced, Error> {
        let Some(guard) = self.converted(b, group).await? else {
            return self.classic().sync(b, group, req).await;
        };
        let Some(g) = guard.as_ref() else { return Err(Error::internal("group slot empty")) };
        let m = classic_member(g, group, &req.member_id)?;
        if req.generation != m.record.epoch {
            return Err(illegal_generation(group, &req.member_id, req.generation, m.record.epoch));
        }
        Ok(Synced {
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocol: m.record.classic.clone().unwrap_or_default(),
            assignment: bytes::Bytes::new(),
            partitions: Some(m.assigned.clone()),
        })
    }

    /// A classic member's Heartbeat, in a consumer group: REBALANCE_IN_PROGRESS when it
    /// must give a partition up or can take one.
    pub async fn classic_heartbeat(
        &self,
        b: &dyn GroupHost,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), Error> {
        let Some(mut guard) = self.converted(b, group).await? else {
            return self.classic().heartbeat(b, group, member, instance, generation).await;
        };
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let epoch = classic_member(g, group, member)?.record.epoch;
        if generation != epoch {
            return Err(illegal_generation(group, member, generation, epoch));
        }
        let mut dirty = Dirty::default();
        self.refresh_target(b, g, &mut dirty);
        let moves = must_rejoin(g, member);
        if let Some(m) = g.members.get_mut(member) {
            m.last_seen_ms = b.now_ms();
        }
        self.save(group, &mut guard, &dirty).await?;
        match moves {
            true => Err(rebalance(group, member)),
            false => Ok(()),
        }
    }

    /// A classic LeaveGroup: each member's outcome, in a consumer group.
    pub async fn classic_leave(
        &self,
        b: &dyn GroupHost,
        group: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let Some(mut guard) = self.converted(b, group).await? else {
            return self.classic().leave(b, group, leaving).await;
        };
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let mut dirty = Dirty::default();
        let mut out = Vec::with_capacity(leaving.len());
        for (member, instance) in leaving {
            let id = match (member.is_empty(), instance) {
                (true, Some(i)) => g
                    .members
                    .iter()
                    .find(|(_, m)| m.record.instance_id.as_deref() == Some(i.as_str()))
                    .map(|(id, _)| id.clone()),
                _ => Some(member.clone()).filter(|id| g.members.contains_key(id)),
            };
            match id {
                Some(id) => {
                    g.members.remove(&id);
                    dirty.removed.insert(id);
                    out.push(Ok(()));
                }
                None => out.push(Err(unknown_member(group, member))),
            }
        }
        if !dirty.removed.is_empty() {
            g.record.epoch += 1;
            dirty.state = true;
        }
        self.save(group, &mut guard, &dirty).await?;
        Ok(out)
    }
}

/// `member` as a classic member of `g`; UNKNOWN_MEMBER_ID otherwise.
fn classic_member<'a>(g: &'a Group, group: &str, member: &str) -> Result<&'a Member, Error> {
    g.members
        .get(member)
        .filter(|m| m.record.classic.is_some())
        .ok_or_else(|| unknown_member(group, member))
}

/// Whether a classic member must rejoin: it holds a partition its target no longer has,
/// or its target has one nobody holds any more.
fn must_rejoin(g: &Group, member: &str) -> bool {
    let Some(m) = g.members.get(member) else { return false };
    let target = g.target.get(member).cloned().unwrap_or_default();
    if !m.revoking.is_empty() || m.assigned.iter().any(|tp| !target.contains(tp)) {
        return true;
    }
    let held: BTreeSet<&Tp> = g
        .members
        .iter()
        .filter(|(id, _)| id.as_str() != member)
        .flat_map(|(_, o)| o.assigned.iter().chain(o.revoking.iter()))
        .collect();
    target.iter().any(|tp| !m.assigned.contains(tp) && !held.contains(tp))
}

#[cfg(test)]
#[path = "mixed_tests.rs"]
mod tests;
