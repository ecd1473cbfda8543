//! One group of Kafka's classic protocol as its coordinator holds it, and the rules that
//! move it: Empty → PreparingRebalance (members join; the join answers wait until every
//! known member rejoined or the rebalance timeout ran out) → CompletingRebalance (a new
//! generation; the leader got the members and their subscriptions) → Stable (the leader
//! synced the assignment, which every member then gets). A member that stops
//! heartbeating for its session timeout is removed, and so is one that does not rejoin a
//! rebalance in time; either starts a new rebalance.
//!
//! Everything here is synchronous on the locked group; the waits (a join waiting for the
//! others, a sync waiting for the leader) are channels the caller awaits outside the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::Revision;

mod join;
mod members;

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members.
    Empty,
    /// Members are (re)joining; join answers are held.
    PreparingRebalance,
    /// Joins answered; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// A member of a classic group.
#[derive(Debug, Clone)]
pub struct ClassicMember {
    /// Static membership id (KIP-345), if any.
    pub instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The principal that joined (empty without authorization).
    pub principal: String,
    /// Removed after this long without a heartbeat (ms).
    pub session_timeout_ms: i32,
    /// How long a rebalance waits for it to rejoin (ms).
    pub rebalance_timeout_ms: i32,
    /// The protocols it supports, by preference, with their metadata (subscriptions).
    pub protocols: Vec<(String, Bytes)>,
    /// The topics it subscribes to, as the front end decoded them from its first
    /// protocol's metadata (Kafka's consumer protocol); empty for other protocol types.
    pub topics: Vec<String>,
    /// Its assignment in the current generation, as the leader encoded it.
    pub assignment: Bytes,
    /// The same, as topic partitions (what `shale group describe` shows).
    pub assigned: BTreeMap<String, Vec<u32>>,
    /// When it was last heard from (ms, the broker's clock).
    pub last_seen_ms: i64,
    /// Whether it joined the rebalance under way.
    pub joined: bool,
}

/// What a member is told when its join completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The new generation.
    pub generation: i32,
    /// The protocol type every member shares (`consumer` for consumers).
    pub protocol_type: String,
    /// The protocol chosen (the assignor).
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member with its instance id and metadata for the protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// What a member is told when its sync completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The protocol type.
    pub protocol_type: String,
    /// The protocol chosen.
    pub protocol: String,
    /// This member's assignment, as the leader encoded it.
    pub assignment: Bytes,
    /// For a classic member of a consumer group, whose broker assigns: its partitions,
    /// for the front end to encode (then `assignment` is empty).
    pub partitions: Option<std::collections::BTreeSet<(String, u32)>>,
}

/// A join to apply.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The member's id, empty for a new member.
    pub member_id: String,
    /// Static membership id (KIP-345).
    pub instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The principal joining (empty without authorization).
    pub principal: String,
    /// Session timeout asked for (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout asked for (ms).
    pub rebalance_timeout_ms: i32,
    /// The protocol type (`consumer`).
    pub protocol_type: String,
    /// Supported protocols by preference, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// A new member must first be given an id and join again with it (KIP-394, v4+).
    pub require_known_member_id: bool,
    /// The subscribed topics, decoded from the first protocol's metadata by the front end
    /// (Kafka's `ConsumerProtocolSubscription`); empty for other protocol types.
    pub topics: Vec<String>,
    /// The partitions the member says it owns (the same subscription's, v1+).
    pub owned: std::collections::BTreeSet<(String, u32)>,
}

/// What a join does.
#[derive(Debug)]
pub enum JoinStep {
    /// Wait for the rebalance to complete.
    Wait(oneshot::Receiver<Result<Joined, Error>>),
    /// Answered at once.
    Now(Joined),
}

/// A sync to apply: the leader sends every member's assignment.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The member's id.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The generation it syncs.
    pub generation: i32,
    /// The leader's assignments: member id, encoded, and as topic partitions.
    pub assignments: Vec<(String, Bytes, BTreeMap<String, Vec<u32>>)>,
}

/// What a sync does.
#[derive(Debug)]
pub enum SyncStep {
    /// Wait for the leader's assignment.
    Wait(oneshot::Receiver<Result<Synced, Error>>),
    /// Answered at once.
    Now(Synced),
    /// The leader's assignment is applied: persist the group, then [`ClassicGroup::synced_outcome`].
    Persist(oneshot::Receiver<Result<Synced, Error>>),
}

/// A group of the classic protocol.
#[derive(Debug)]
pub struct ClassicGroup {
    /// Its name.
    pub name: String,
    /// Where it is in its rebalance cycle.
    pub state: State,
    /// Bumped when a rebalance completes.
    pub generation: i32,
    /// The members' protocol type.
    pub protocol_type: Option<String>,
    /// The protocol chosen in the current generation.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, ClassicMember>,
    /// Ids given to new members that have not joined with them yet (KIP-394).
    pub pending: BTreeSet<String>,
    /// No initial rebalance completes before this (ms).
    pub delay_until_ms: i64,
    /// The rebalance under way completes at this time at the latest (ms).
    pub deadline_ms: i64,
    /// Mod revision of the stored group (0: not stored).
    pub stored_rev: Revision,
    join_waiters: HashMap<String, oneshot::Sender<Result<Joined, Error>>>,
    sync_waiters: HashMap<String, oneshot::Sender<Result<Synced, Error>>>,
}

/// Limits a coordinator applies.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Shortest session timeout accepted (ms).
    pub min_session_timeout_ms: i32,
    /// Longest session timeout accepted (ms).
    pub max_session_timeout_ms: i32,
    /// How long an empty group's first rebalance waits for more members (ms).
    pub initial_delay_ms: i32,
}

fn err(reason: Reason, kind: ErrorKind, message: String, group: &str) -> Error {
    Error::new(kind, reason, message).with("group", group)
}

impl ClassicGroup {
    /// An empty group.
    pub fn new(name: &str) -> ClassicGroup {
        ClassicGroup {
            name: name.to_string(),
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeSet::new(),
            delay_until_ms: 0,
            deadline_ms: 0,
            stored_rev: 0,
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
        }
    }

    fn unknown(&self, member: &str) -> Error {
        err(
            Reason::UnknownMemberId,
            ErrorKind::Fenced,
            format!(
                "member {member:?} is not in group {:?}; join again without a member id",
                self.name
            ),
            &self.name,
        )
        .with("member_id", member)
    }

    fn rebalancing(&self) -> Error {
        err(
            Reason::RebalanceInProgress,
            ErrorKind::Fenced,
            format!("group {:?} is rebalancing; join again", self.name),
            &self.name,
        )
    }

    fn illegal_generation(&self, asked: i32) -> Error {
        err(
            Reason::IllegalGeneration,
            ErrorKind::Fenced,
            format!(
                "generation {asked} is not group {:?}'s {}; join again",
                self.name, self.generation
            ),
            &self.name,
        )
    }

    /// Checks that `member` (with `instance`) is a current member; a static member whose
    /// instance id another member took over is FENCED_INSTANCE_ID.
    pub fn check_member(&self, member: &str, instance: Option<&str>) -> Result<(), Error> {
        if let Some(instance) = instance {
            let holder =
                self.members.iter().find(|(_, m)| m.instance_id.as_deref() == Some(instance));
            if let Some((id, _)) = holder.filter(|(id, _)| id.as_str() != member) {
                return Err(err(
                    Reason::FencedInstanceId,
                    ErrorKind::Fenced,
                    format!(
                        "instance id {instance:?} of group {:?} is held by member {id:?} now",
                        self.name
                    ),
                    &self.name,
                ));
            }
        }
        if !self.members.contains_key(member) {
            return Err(self.unknown(member));
        }
        Ok(())
    }

    /// The protocols every member supports.
    fn common_protocols(&self) -> BTreeSet<String> {
        let mut sets = self
            .members
            .values()
            .map(|m| m.protocols.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>());
        let first = sets.next().unwrap_or_default();
        sets.fold(first, |acc, s| acc.intersection(&s).cloned().collect())
    }

    /// Every member with its instance id and its metadata for the chosen protocol.
    fn roster(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|(id, m)| {
                let meta = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone());
                (id.clone(), m.instance_id.clone(), meta.unwrap_or_default())
            })
            .collect()
    }

    /// The protocol most members prefer among those all support (Kafka's vote: each
    /// member votes for its first supported one).
    fn choose_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(n.clone()).or_default() += 1;
            }
        }
        votes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(n, _)| n)
    }

    /// Whether members wait in a join or a sync (the group must stay in memory).
    pub fn busy(&self) -> bool {
        !self.join_waiters.is_empty() || !self.sync_waiters.is_empty()
    }

    /// Fails every waiting join and sync (the group moves to another coordinator).
    pub fn abandon(&mut self, why: &Error) {
        for (_, w) in self.join_waiters.drain() {
            let _ = w.send(Err(why.clone()));
        }
        for (_, w) in self.sync_waiters.drain() {
            let _ = w.send(Err(why.clone()));
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
