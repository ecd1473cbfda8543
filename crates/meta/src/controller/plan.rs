//! The controller's plan, a pure function of a snapshot of the cluster: where a new
//! topic's partitions go (rack-alternated), and which partition states move (leader
//! elections, controlled shutdown, preferred-replica return). Unit-tested without a store.

use std::collections::{BTreeMap, BTreeSet};

use super::view::View;
use crate::Revision;
use crate::topics::{BrokerRecord, PartitionState, TopicRecord};

/// Limits the controller keeps to while it plans.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Reassignments in progress at once, cluster-wide; requested ones wait their turn.
    pub max_moves: usize,
    /// Whether the controller balances replicas and leaders by itself whenever no
    /// reassignment is moving or pending (`balance::balance`).
    pub auto_balance: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_moves: DEFAULT_MAX_MOVES, auto_balance: false }
    }
}

/// Reassignments in progress at once unless configured otherwise.
pub const DEFAULT_MAX_MOVES: usize = 8;

/// One partition-state write the controller wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// New state.
    pub state: PartitionState,
    /// Mod revision the key must still have (0 = must be absent).
    pub expected: Revision,
}

/// Brokers ordered so that consecutive entries sit on different racks when possible
/// (Kafka's rack-alternated list): replicas taken from consecutive slots spread over racks.
pub fn rack_alternated(brokers: &BTreeMap<i32, BrokerRecord>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in brokers.values() {
        by_rack.entry(b.rack.as_str()).or_default().push(b.id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(i) {
                out.push(*id);
            }
        }
    }
    out
}

/// Places a new topic's partitions: leaders round-robin over the rack-alternated brokers,
/// starting at the broker that leads the fewest partitions, followers on the next slots.
/// Every replica starts in the ISR: all are empty, so all are in sync.
pub fn place(topic: &TopicRecord, view: &View) -> Vec<PartitionState> {
    // Draining and decommissioned brokers get nothing new, unless they are all there is.
    let staying: BTreeMap<i32, BrokerRecord> = view
        .brokers
        .iter()
        .filter(|(i, b)| !b.draining && !view.decommissioned.contains(i))
        .map(|(i, b)| (*i, b.clone()))
        .collect();
    let order = rack_alternated(if staying.is_empty() { &view.brokers } else { &staying });
    if order.is_empty() {
        return vec![];
    }
    let mut leads: BTreeMap<i32, usize> = order.iter().map(|id| (*id, 0)).collect();
    for (state, _) in view.partitions.values() {
        if let Some(n) = leads.get_mut(&state.leader) {
            *n += 1;
        }
    }
    let start = order
        .iter()
        .enumerate()
        .min_by_key(|(i, id)| (leads.get(id).copied().unwrap_or(0), *i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let n = order.len();
    let rf = (topic.replication_factor as usize).clamp(1, n);
    (0..topic.partitions as usize)
        .map(|p| {
            let replicas: Vec<i32> = (0..rf).map(|r| order[(start + p + r) % n]).collect();
            let incarnations = replicas
                .iter()
                .filter_map(|r| view.brokers.get(r).map(|b| (*r, b.incarnation)))
                .filter(|(_, i)| *i != 0)
                .collect();
            PartitionState {
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas.clone(),
                replicas,
                incarnations,
                ..PartitionState::default()
            }
        })
        .collect()
}

/// Everything the controller should write for `view`: placements for partitions that have
/// no state yet, leadership moves for partitions whose leader is not live, reassignments
/// completed, and requested ones started while fewer than `policy.max_moves` are under way.
pub fn plan(view: &View, policy: &Policy) -> Vec<Change> {
    let mut changes = Vec::new();
    for topic in &view.topics {
        let missing: Vec<u32> = (0..topic.partitions)
            .filter(|p| !view.partitions.contains_key(&(topic.name.clone(), *p)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let placed = place(topic, view);
        for p in missing {
            if let Some(state) = placed.get(p as usize) {
                changes.push(Change {
                    topic: topic.name.clone(),
                    partition: p,
                    state: state.clone(),
                    expected: 0,
                });
            }
        }
    }
    let live: BTreeMap<i32, u64> = view.brokers.values().map(|b| (b.id, b.incarnation)).collect();
    let draining: BTreeSet<i32> =
        view.brokers.values().filter(|b| b.draining).map(|b| b.id).collect();
    // Looked up per partition: a scan of the topics for each would make a pass quadratic.
    let unclean_topics: BTreeSet<&str> = view
        .topics
        .iter()
        .filter(|t| t.configs.get(UNCLEAN_KEY).is_some_and(|v| v.trim() == "true"))
        .map(|t| t.name.as_str())
        .collect();
    for ((topic, partition), (state, revision)) in &view.partitions {
        let unclean = unclean_topics.contains(topic.as_str());
        let Some(next) = next_state(state, &live, &draining, unclean) else { continue };
        changes.push(Change {
            topic: topic.clone(),
            partition: *partition,
            state: next,
            expected: *revision,
        });
    }
    request_moves(view, policy, &mut changes);
    start_moves(view, policy, &mut changes);
    changes
}

/// Requests reassignments off decommissioned brokers, and, with `auto_balance`, the
/// balancer's plan once nothing else is placed, moving or pending.
fn request_moves(view: &View, policy: &Policy, changes: &mut Vec<Change>) {
    let quiet = changes.is_empty()
        && view.partitions.values().all(|(s, _)| !s.is_moving() && s.target.is_empty());
    let moves = match policy.auto_balance && quiet {
        true => super::balance::balance(view, policy.max_moves),
        false => super::balance::evacuate(view),
    };
    let changed: BTreeSet<(String, u32)> =
        changes.iter().map(|c| (c.topic.clone(), c.partition)).collect();
    for m in moves {
        let key = (m.topic, m.partition);
        let Some((state, revision)) = view.partitions.get(&key) else { continue };
        if changed.contains(&key) {
            continue;
        }
        tracing::info!(topic = %key.0, partition = key.1, from = ?m.from, to = ?m.to,
            "reassignment requested by the controller");
        changes.push(Change {
            topic: key.0,
            partition: key.1,
            state: PartitionState { target: m.to, ..state.clone() },
            expected: *revision,
        });
    }
}

/// Starts requested reassignments, in partition order, while fewer than `policy.max_moves`
/// are in progress. A partition with another change in this pass waits for the next.
fn start_moves(view: &View, policy: &Policy, changes: &mut Vec<Change>) {
    let changed: BTreeMap<(&str, u32), &PartitionState> =
        changes.iter().map(|c| ((c.topic.as_str(), c.partition), &c.state)).collect();
    let mut moving = view
        .partitions
        .iter()
        .filter(|((t, p), (s, _))| changed.get(&(t.as_str(), *p)).copied().unwrap_or(s).is_moving())
        .count();
    let mut starts = Vec::new();
    for ((topic, partition), (state, revision)) in &view.partitions {
        if state.target.is_empty() || state.is_moving() {
            continue;
        }
        if changed.contains_key(&(topic.as_str(), *partition)) {
            continue;
        }
        let next = state.started(&state.target);
        if next.is_moving() {
            if moving >= policy.max_moves {
                continue;
            }
            moving += 1;
        }
        starts.push(Change {
            topic: topic.clone(),
            partition: *partition,
            state: next,
            expected: *revision,
        });
    }
    changes.extend(starts);
}

/// A started reassignment completes once every replica that stays is live, clean and in the
/// ISR: each has every acknowledged record (acks=all waited for the whole ISR), so the
/// leaving replicas go, and leadership moves (under a new epoch) if the leader is leaving or
/// draining. Until then, nothing: the partition keeps serving from its current replicas.
fn complete_move(
    state: &PartitionState,
    clean: &dyn Fn(&i32) -> bool,
    draining: &BTreeSet<i32>,
) -> Option<PartitionState> {
    if !state.is_moving() {
        return None;
    }
    let staying = state.staying();
    if staying.is_empty() || !staying.iter().all(|r| state.isr.contains(r) && clean(r)) {
        return None;
    }
    let leader = match staying.contains(&state.leader) && !draining.contains(&state.leader) {
        true => state.leader,
        false => *staying.iter().find(|r| !draining.contains(r)).unwrap_or(&staying[0]),
    };
    let isr: Vec<i32> = state.isr.iter().copied().filter(|r| staying.contains(r)).collect();
    Some(PartitionState {
        leader,
        leader_epoch: state.leader_epoch + i32::from(leader != state.leader),
        incarnations: state
            .incarnations
            .iter()
            .filter(|(r, _)| isr.contains(r))
            .map(|(r, i)| (*r, *i))
            .collect(),
        isr,
        replicas: staying,
        adding: vec![],
        removing: vec![],
        target: state.target.clone(),
    })
}

/// Topic config that lets an out-of-sync replica lead when no in-sync one is live.
pub(super) const UNCLEAN_KEY: &str = "unclean.leader.election.enable";

/// The state a partition should move to, if any: a live in-sync leader when the leader is
/// gone (offline when there is none, unless unclean election is enabled), away from a
/// draining leader to another live in-sync replica (controlled shutdown), or back to the
/// preferred replica (the first) once it is live and in sync again.
///
/// `live` maps each live broker to its incarnation. An ISR member that came back under a new
/// incarnation (it restarted, maybe losing what it had not fsynced, or its disk) leaves the
/// ISR while a member that never restarted is live, and a restarted leader is replaced, or,
/// when it is the only one left, confirmed under a new epoch: either way nobody leads at an
/// epoch a previous incarnation of it led (KIP-903 and KIP-966 in Kafka).
fn next_state(
    state: &PartitionState,
    live: &BTreeMap<i32, u64>,
    draining: &BTreeSet<i32>,
    unclean: bool,
) -> Option<PartitionState> {
    let is_live = |r: &i32| live.contains_key(r);
    // Live under the incarnation the state recorded (or unknown: 0, or none recorded).
    let clean = |r: &i32| live.get(r).is_some_and(|i| *i == 0 || state.confirms(*r, *i));
    let restarted = |r: &i32| is_live(r) && !clean(r);
    let isr: Vec<i32> = match state.isr.iter().any(clean) {
        true => state.isr.iter().copied().filter(|r| !restarted(r)).collect(),
        // Every live member restarted: they are all there is, so they stay.
        false => state.isr.clone(),
    };
    // Record what the ISR members are now: live ones as they run, others as last known.
    let incarnations = |isr: &[i32]| -> BTreeMap<i32, u64> {
        isr.iter()
            .filter_map(|r| match live.get(r) {
                Some(0) | None => state.incarnations.get(r).map(|i| (*r, *i)),
                Some(i) => Some((*r, *i)),
            })
            .collect()
    };
    let bump = |leader: i32, isr: Vec<i32>| PartitionState {
        leader,
        leader_epoch: state.leader_epoch + 1,
        incarnations: incarnations(&isr),
        isr,
        ..state.clone()
    };
    let eligible = |r: &i32| isr.contains(r) && clean(r) && !draining.contains(r);
    if let Some(done) = complete_move(state, &clean, draining) {
        return Some(done);
    }
    if state.leader >= 0 && clean(&state.leader) {
        if draining.contains(&state.leader) {
            // Controlled shutdown: hand over to an in-sync replica that stays. It has every
            // acknowledged record (acks=all waits for the whole ISR), so nothing is lost.
            if let Some(c) = state.replicas.iter().find(|r| eligible(r)) {
                return Some(bump(*c, isr));
            }
        } else if !state.is_moving() {
            // Preferred-leader rebalancing: leadership returns to the first replica once it
            // is back in the ISR, so leaders stay spread as placed. Not during a
            // reassignment: leadership moves once, when it completes, if at all.
            let preferred = *state.replicas.first()?;
            if preferred != state.leader && eligible(&preferred) {
                return Some(bump(preferred, isr));
            }
        }
        // The same leader, without the followers that are not live (gone, fenced, or their
        // lease expired): acks=all waits for every ISR member, and one that cannot fetch
        // would hold every acknowledgement for `replication.lag_time_max_ms` (KRaft's
        // controller drops a fenced broker from every ISR too). It rejoins once it caught
        // up. Write only a changed ISR or newly recorded incarnations.
        let isr: Vec<i32> = isr.into_iter().filter(|r| *r == state.leader || is_live(r)).collect();
        let next = PartitionState { incarnations: incarnations(&isr), isr, ..state.clone() };
        return (next != *state).then_some(next);
    }
    // A staying replica first; a draining or restarted one is still better than going
    // offline.
    let candidate = state
        .replicas
        .iter()
        .find(|r| eligible(r))
        .or_else(|| state.replicas.iter().find(|r| isr.contains(r) && is_live(r)))
        .copied();
    match candidate {
        // The ISR keeps only live members: a dead one would hold the high watermark back
        // until the new leader noticed it lagging.
        Some(c) => Some(bump(c, isr.into_iter().filter(|r| is_live(r)).collect())),
        None => {
            // Unclean election (opt-in per topic) accepts losing what the new leader lacks.
            let any = state.replicas.iter().find(|r| is_live(r)).copied();
            match any {
                Some(r) if unclean => {
                    tracing::warn!(
                        leader = r,
                        "unclean leader election: an out-of-sync replica leads"
                    );
                    Some(bump(r, vec![r]))
                }
                _ if state.leader != -1 => Some(bump(-1, state.isr.clone())),
                _ => None,
            }
        }
    }
}
