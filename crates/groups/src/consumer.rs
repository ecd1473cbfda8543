//! The rules Kafka's consumer protocol (KIP-848, `ConsumerGroupHeartbeat`) adds to a
//! heartbeat, beside Shale's own (`heartbeat.rs`), as Kafka's `GroupMetadataManager`
//! applies them:
//!
//! - **Fencing.** A heartbeat at the member's current epoch is served. One at the epoch
//!   before is served only when it says which partitions it owns and they are still its
//!   own (its answer was lost); any other epoch is `FENCED_MEMBER_EPOCH`, and the member
//!   rejoins at epoch 0 having dropped its partitions.
//! - **Fields left out keep their value.** A Kafka client sends its subscription, its
//!   owned partitions, its rack and its rebalance timeout only when they changed.
//! - **Subscriptions** are topic names, a regular expression (RE2 syntax, matched against
//!   the whole name, as Kafka's RE2/J `matches`), or both.
//! - **Static members** (`group.instance.id`): epoch -2 leaves for a while, keeping the
//!   partitions for the session timeout; a member joining with the same instance id takes
//!   them over with no rebalance. Joining with an instance id another member still holds
//!   is `UNRELEASED_INSTANCE_ID`.

use std::collections::BTreeSet;

use super::assignor::Tp;
use super::records::MemberRecord;
use super::types::{Heartbeat, HeartbeatAnswer, KafkaMember};
use super::{Dirty, Group, Member};
use shale_core::error::{Error, ErrorKind, Reason};

/// Compiles a subscription's regular expression, anchored at both ends as Kafka matches
/// it; `INVALID_REGULAR_EXPRESSION` naming it when it does not compile.
pub(crate) fn compile(regex: &str) -> Result<Option<regex::Regex>, Error> {
    if regex.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{regex})$")).map(Some).map_err(|e| {
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
        Error::new(
            ErrorKind::Invalid,
            Reason::InvalidRegularExpression,
            format!("subscription regular expression {regex:?} is invalid: {first}"),
        )
        .with("regex", regex)
    })
}

/// `FENCED_MEMBER_EPOCH` for a heartbeat of `member` at `epoch`.
pub(crate) fn fenced(group: &str, member: &str, epoch: i32, current: i32) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::FencedMemberEpoch,
        format!(
            "member {member:?} of group {group:?} sent epoch {epoch}, but its epoch is \
             {current}; rejoin with member epoch 0"
        ),
    )
    .with("group", group)
    .with("member_id", member)
}

/// Whether a consumer-protocol member at `current` may heartbeat at `epoch` having said
/// it owns `owned`.
pub(crate) fn epoch_accepted(m: &Member, epoch: i32, owned: Option<&BTreeSet<Tp>>) -> bool {
    let current = m.record.epoch;
    if epoch == current {
        return true;
    }
    // Its last answer was lost: it may still hold only what is its own.
    epoch == current - 1
        && owned
            .is_some_and(|o| o.iter().all(|tp| m.assigned.contains(tp) || m.revoking.contains(tp)))
}

/// Takes what a consumer-protocol heartbeat of a current member says into its record:
/// subscription, rack, rebalance timeout, each only when sent. True when the
/// subscription or the rack changed (the group epoch then moves).
pub(crate) fn update(m: &mut Member, k: &KafkaMember) -> Result<bool, Error> {
    let mut changed = false;
    if let Some(names) = &k.topic_names {
        let names = sorted(names);
        if names != m.record.topics {
            m.record.topics = names;
            changed = true;
        }
    }
    if let Some(regex) = &k.topic_regex
        && *regex != m.record.regex
    {
        m.regex = compile(regex)?;
        m.record.regex = regex.clone();
        changed = true;
    }
    if let Some(rack) = &k.rack {
        let rack = Some(rack.clone()).filter(|r| !r.is_empty());
        // Where a member is decides where its partitions should be (rack-aware).
        changed |= rack != m.record.rack;
        m.record.rack = rack;
    }
    if let Some(ms) = k.rebalance_timeout_ms {
        m.record.rebalance_timeout_ms = ms;
    }
    Ok(changed)
}

/// The record of a member joining through Kafka's consumer protocol.
pub(crate) fn joining_record(
    req: &Heartbeat,
    k: &KafkaMember,
    principal: &str,
    session_timeout_ms: u32,
) -> Result<MemberRecord, Error> {
    // Kafka takes an empty subscription (the member is given nothing), not a missing one.
    if k.topic_names.is_none() && k.topic_regex.is_none() {
        return Err(Error::invalid(format!(
            "joining group {:?} needs SubscribedTopicNames or SubscribedTopicRegex",
            req.group
        )));
    }
    let topics = sorted(k.topic_names.as_deref().unwrap_or_default());
    let regex = k.topic_regex.clone().unwrap_or_default();
    compile(&regex)?;
    Ok(MemberRecord {
        client_id: req.client_id.clone(),
        principal: principal.to_string(),
        topics,
        session_timeout_ms,
        epoch: 1,
        kafka: true,
        regex,
        instance_id: k.instance_id.clone(),
        rack: k.rack.clone().filter(|r| !r.is_empty()),
        client_host: k.client_host.clone(),
        rebalance_timeout_ms: k.rebalance_timeout_ms.unwrap_or(0),
        ..MemberRecord::default()
    })
}

/// A static member joining (epoch 0) as `member_id` with `instance`: the member that
/// left with epoch -2 under the same instance id, if any, is replaced by it and its
/// partitions and epoch carried over (no rebalance). `UNRELEASED_INSTANCE_ID` while
/// another member holds the instance id.
pub(crate) fn take_over(
    g: &mut Group,
    group: &str,
    member_id: &str,
    instance: &str,
    record: &MemberRecord,
    now: i64,
    dirty: &mut Dirty,
) -> Result<bool, Error> {
    let holder = g
        .members
        .iter()
        .find(|(id, m)| {
            id.as_str() != member_id && m.record.instance_id.as_deref() == Some(instance)
        })
        .map(|(id, m)| (id.clone(), m.record.away));
    let Some((old_id, away)) = holder else { return Ok(false) };
    if !away {
        return Err(Error::new(
            ErrorKind::Invalid,
            Reason::UnreleasedInstanceId,
            format!(
                "instance id {instance:?} of group {group:?} is held by member {old_id:?}, which \
                 has not left; stop it first (it leaves with member epoch -2) or wait for its \
                 session to time out"
            ),
        )
        .with("group", group)
        .with("instance_id", instance));
    }
    let Some(old) = g.members.remove(&old_id) else { return Ok(false) };
    // The target computed for the group's epoch goes with the partitions: the group epoch
    // does not move, so it is not computed again.
    if let Some(target) = g.target.remove(&old_id) {
        g.target.insert(member_id.to_string(), target);
    }
    let mut record = record.clone();
    record.epoch = old.record.epoch;
    record.revoking_since_ms = old.record.revoking_since_ms;
    let regex = compile(&record.regex)?;
    g.members.insert(
        member_id.to_string(),
        Member { record, assigned: old.assigned, revoking: old.revoking, last_seen_ms: now, regex },
    );
    dirty.removed.insert(old_id);
    dirty.members.insert(member_id.to_string());
    Ok(true)
}

/// A static member leaving for a while (epoch -2): it keeps its partitions and epoch for
/// its session timeout, for a member with its instance id to take over.
pub(crate) fn leave_for_a_while(
    g: &mut Group,
    req: &Heartbeat,
    dirty: &mut Dirty,
) -> Result<HeartbeatAnswer, Error> {
    let group = req.group.as_str();
    let Some(m) = g.members.get_mut(&req.member_id) else {
        return Err(super::unknown_member(group, &req.member_id));
    };
    if m.record.instance_id.is_none() {
        return Err(Error::invalid(format!(
            "member {:?} of group {group:?} left with epoch -2, which only a static member \
             (with an instance id) may",
            req.member_id
        )));
    }
    if !m.record.away {
        m.record.away = true;
        dirty.members.insert(req.member_id.clone());
    }
    Ok(HeartbeatAnswer {
        member_id: req.member_id.clone(),
        member_epoch: -2,
        heartbeat_interval_ms: 0,
        assignment: BTreeSet::new(),
        group_epoch: g.record.epoch,
    })
}

pub(crate) fn sorted(topics: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = topics.iter().collect();
    set.into_iter().cloned().collect()
}

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;
