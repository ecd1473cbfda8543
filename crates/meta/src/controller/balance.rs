//! The balancer: plans reassignments that move every replica off decommissioned brokers
//! and spread replicas and preferred leaders over the brokers that stay, within one of
//! perfectly even, racks kept apart. A pure function of a [`View`], like the controller's
//! plan: the controller runs the evacuation of decommissioned brokers on every pass (and
//! the whole balance when `auto_balance` is on); `Rebalance` runs it on request.
//!
//! Guardrails: a partition that is moving, has a move pending, or has a replica out of the
//! ISR is left alone (a move must never take it below `min.insync.replicas` on the way),
//! and a plan holds at most `max_moves` replica moves. Reordering replicas so that another
//! in-sync one leads copies nothing and is not counted.

use std::collections::{BTreeMap, BTreeSet};

use super::view::View;
use crate::topics::PartitionState;

/// One planned reassignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The replica set now (what it will be, for a partition already moving).
    pub from: Vec<i32>,
    /// The replica set planned, preferred leader first.
    pub to: Vec<i32>,
}

impl Move {
    /// Replicas the move adds (each copies the partition's untiered tail).
    pub fn added(&self) -> Vec<i32> {
        self.to.iter().copied().filter(|r| !self.from.contains(r)).collect()
    }
}

/// The replica set a partition is headed for: a pending target, the replicas that stay in a
/// started move, or its replicas.
pub fn future(state: &PartitionState) -> Vec<i32> {
    match state.target.is_empty() {
        false => state.target.clone(),
        true => state.staying(),
    }
}

/// Brokers that can take replicas: live, not draining, not decommissioned.
fn eligible(view: &View) -> BTreeSet<i32> {
    view.brokers
        .values()
        .filter(|b| !b.draining && !view.decommissioned.contains(&b.id))
        .map(|b| b.id)
        .collect()
}

/// Replicas each eligible broker will hold once every move under way is done.
fn replica_loads(view: &View, eligible: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = eligible.iter().map(|b| (*b, 0)).collect();
    for (state, _) in view.partitions.values() {
        for r in future(state) {
            if let Some(n) = load.get_mut(&r) {
                *n += 1;
            }
        }
    }
    load
}

/// How many distinct racks `replicas` span.
fn racks(view: &View, replicas: &[i32]) -> usize {
    replicas
        .iter()
        .map(|r| view.brokers.get(r).map_or("", |b| b.rack.as_str()))
        .collect::<BTreeSet<_>>()
        .len()
}

/// Moves that take every replica off decommissioned brokers, each replaced by the eligible
/// broker with the fewest replicas (a rack the partition does not use yet first). A
/// partition with a move pending is left until it has started; one whose replicas cannot
/// all be replaced (too few brokers stay) is left where it is.
pub fn evacuate(view: &View) -> Vec<Move> {
    if view.decommissioned.is_empty() {
        return vec![];
    }
    let eligible = eligible(view);
    let mut load = replica_loads(view, &eligible);
    let mut moves = Vec::new();
    for ((topic, partition), (state, _)) in &view.partitions {
        let from = future(state);
        if !state.target.is_empty() || !from.iter().any(|r| view.decommissioned.contains(r)) {
            continue;
        }
        let mut to = from.clone();
        let mut complete = true;
        for slot in 0..to.len() {
            if !view.decommissioned.contains(&to[slot]) {
                continue;
            }
            let used: BTreeSet<&str> = to
                .iter()
                .filter(|r| !view.decommissioned.contains(r))
                .map(|r| view.brokers.get(r).map_or("", |b| b.rack.as_str()))
                .collect();
            let best = load
                .iter()
                .filter(|(b, _)| !to.contains(b))
                .min_by_key(|(b, n)| (used.contains(view.brokers[b].rack.as_str()), **n, **b))
                .map(|(b, _)| *b);
            match best {
                Some(b) => {
                    to[slot] = b;
                    *load.entry(b).or_default() += 1;
                }
                None => complete = false,
            }
        }
        if complete {
            moves.push(Move { topic: topic.clone(), partition: *partition, from, to });
        }
    }
    moves
}

/// Moves that give every partition of `topic` `rf` replicas: each partition short of
/// replicas gains the eligible brokers with the fewest replicas (racks it does not use yet
/// first); one with too many drops its last replicas, never its leader. A partition whose
/// replicas are already `rf` (as moving or requested) is left as it is.
pub fn resize(view: &View, topic: &str, rf: usize) -> Vec<Move> {
    let eligible = eligible(view);
    let mut load = replica_loads(view, &eligible);
    let mut moves = Vec::new();
    for ((t, partition), (state, _)) in &view.partitions {
        if t != topic {
            continue;
        }
        let from = future(state);
        let mut to = from.clone();
        if to.len() > rf {
            // Keep the leader and, in order, the first others, up to `rf`.
            let leader = state.leader;
            let mut room = rf.saturating_sub(usize::from(from.contains(&leader)));
            to = from
                .iter()
                .copied()
                .filter(|r| match *r == leader || room == 0 {
                    true => *r == leader,
                    false => {
                        room -= 1;
                        true
                    }
                })
                .collect();
        }
        while to.len() < rf {
            let used: BTreeSet<&str> =
                to.iter().map(|r| view.brokers.get(r).map_or("", |b| b.rack.as_str())).collect();
            let best = load
                .iter()
                .filter(|(b, _)| !to.contains(b))
                .min_by_key(|(b, n)| (used.contains(view.brokers[b].rack.as_str()), **n, **b))
                .map(|(b, _)| *b);
            let Some(b) = best else { break };
            to.push(b);
            *load.entry(b).or_default() += 1;
        }
        if to != from {
            moves.push(Move { topic: t.clone(), partition: *partition, from, to });
        }
    }
    moves
}

/// A plan that evens out replicas, then preferred leaders, over the eligible brokers: at
/// most `max_moves` replica moves (evacuations of decommissioned brokers first), each from
/// the most loaded broker to the least loaded one that does not reduce the partition's
/// rack spread; then reorders that make a less loaded in-sync replica the preferred leader.
/// Applied in full, replica and leader counts end within one of each other.
pub fn balance(view: &View, max_moves: usize) -> Vec<Move> {
    let mut planned: BTreeMap<(String, u32), Move> = evacuate(view)
        .into_iter()
        .take(max_moves)
        .map(|m| ((m.topic.clone(), m.partition), m))
        .collect();
    let eligible = eligible(view);
    if eligible.len() < 2 {
        return planned.into_values().collect();
    }
    // Loads as if the evacuations were done.
    let mut load = replica_loads(view, &eligible);
    for m in planned.values() {
        for r in m.added() {
            *load.entry(r).or_default() += 1;
        }
    }
    // Partitions the balancer may touch: fully in sync, nothing moving or pending.
    let movable = |state: &PartitionState| {
        !state.is_moving()
            && state.target.is_empty()
            && state.replicas.iter().all(|r| state.isr.contains(r) && eligible.contains(r))
    };
    let mut replica_moves = planned.len();
    'moves: while replica_moves < max_moves {
        let mut by_load: Vec<(usize, i32)> = load.iter().map(|(b, n)| (*n, *b)).collect();
        by_load.sort();
        for &(high_n, high) in by_load.iter().rev() {
            for &(low_n, low) in &by_load {
                if high_n <= low_n + 1 {
                    break;
                }
                let found = view.partitions.iter().find(|(key, (state, _))| {
                    !planned.contains_key(*key)
                        && movable(state)
                        && state.replicas.contains(&high)
                        && !state.replicas.contains(&low)
                        && {
                            let to = replaced(&state.replicas, high, low);
                            racks(view, &to) >= racks(view, &state.replicas)
                        }
                });
                if let Some(((topic, partition), (state, _))) = found {
                    let to = replaced(&state.replicas, high, low);
                    let key = (topic.clone(), *partition);
                    let m = Move {
                        topic: topic.clone(),
                        partition: *partition,
                        from: state.replicas.clone(),
                        to,
                    };
                    planned.insert(key, m);
                    *load.get_mut(&high).expect("eligible") -= 1;
                    *load.get_mut(&low).expect("eligible") += 1;
                    replica_moves += 1;
                    continue 'moves;
                }
            }
        }
        break;
    }
    balance_bytes(view, &eligible, &movable, &mut planned, &mut replica_moves, max_moves);
    balance_leaders(view, &eligible, &mut planned);
    planned.into_values().collect()
}

/// Brokers' local bytes may differ by this share of their mean before the balancer swaps
/// partitions between them...
const BYTE_TOLERANCE: f64 = 0.10;
/// ...and by at least this much (small partitions are not worth a copy).
const MIN_BYTE_GAP: u64 = 64 << 20;

/// Evens out bytes once replica counts are even: while the broker with the most bytes (its
/// replicas' local sizes as their leaders published them, moves under way and planned
/// counted as done: bytes in flight count where they go) and the one with the fewest differ
/// by more than the tolerance, swaps a larger partition of the first for a smaller one of
/// the second (two moves, counts unchanged), the swap that brings them closest, racks kept
/// apart. Partitions without a published size weigh nothing.
fn balance_bytes(
    view: &View,
    eligible: &BTreeSet<i32>,
    movable: &dyn Fn(&PartitionState) -> bool,
    planned: &mut BTreeMap<(String, u32), Move>,
    replica_moves: &mut usize,
    max_moves: usize,
) {
    if view.sizes.is_empty() {
        return;
    }
    let size = |key: &(String, u32)| view.sizes.get(key).copied().unwrap_or(0);
    let mut bytes: BTreeMap<i32, u64> = eligible.iter().map(|b| (*b, 0)).collect();
    for (key, (state, _)) in &view.partitions {
        let set = planned.get(key).map_or_else(|| future(state), |m| m.to.clone());
        for r in set {
            if let Some(n) = bytes.get_mut(&r) {
                *n += size(key);
            }
        }
    }
    let mean = bytes.values().sum::<u64>() / bytes.len().max(1) as u64;
    let tolerance = ((mean as f64 * BYTE_TOLERANCE) as u64).max(MIN_BYTE_GAP);
    while *replica_moves + 2 <= max_moves {
        let Some((&high, &most)) = bytes.iter().max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
        else {
            return;
        };
        let Some((&low, &fewest)) = bytes.iter().min_by_key(|(b, n)| (**n, **b)) else { return };
        let gap = most - fewest;
        if gap <= tolerance {
            return;
        }
        // Partitions on `from` and not on `to` that may move from one to the other.
        let candidates = |from: i32, to: i32| -> Vec<(u64, (String, u32))> {
            let mut out: Vec<(u64, (String, u32))> = view
                .partitions
                .iter()
                .filter(|(key, (state, _))| {
                    !planned.contains_key(*key)
                        && movable(state)
                        && state.replicas.contains(&from)
                        && !state.replicas.contains(&to)
                        && racks(view, &replaced(&state.replicas, from, to))
                            >= racks(view, &state.replicas)
                })
                .map(|(key, _)| (size(key), key.clone()))
                .collect();
            out.sort();
            out
        };
        let (larger, smaller) = (candidates(high, low), candidates(low, high));
        // The swap whose difference is closest to half the gap, strictly inside (0, gap).
        let mut best: Option<(u64, usize, usize)> = None;
        for (i, (x, _)) in larger.iter().enumerate() {
            let around = smaller.partition_point(|(y, _)| *y < x.saturating_sub(gap / 2));
            for j in [around.saturating_sub(1), around] {
                let Some((y, _)) = smaller.get(j) else { continue };
                if y >= x || x - y >= gap {
                    continue;
                }
                let miss = (x - y).abs_diff(gap / 2);
                if best.is_none_or(|(m, _, _)| miss < m) {
                    best = Some((miss, i, j));
                }
            }
        }
        let Some((_, i, j)) = best else { return };
        let (x, x_key) = &larger[i];
        let (y, y_key) = &smaller[j];
        for (key, from, to) in [(x_key, high, low), (y_key, low, high)] {
            let state = &view.partitions[key].0;
            planned.insert(
                key.clone(),
                Move {
                    topic: key.0.clone(),
                    partition: key.1,
                    from: state.replicas.clone(),
                    to: replaced(&state.replicas, from, to),
                },
            );
        }
        *bytes.get_mut(&high).expect("eligible") -= x - y;
        *bytes.get_mut(&low).expect("eligible") += x - y;
        *replica_moves += 2;
    }
}

/// `replicas` with `from` replaced by `to` in its slot.
fn replaced(replicas: &[i32], from: i32, to: i32) -> Vec<i32> {
    replicas.iter().map(|r| if *r == from { to } else { *r }).collect()
}

/// Evens out preferred leaders (the first replica) by moving a less loaded replica that is
/// in sync to the front, on partitions planned or movable.
fn balance_leaders(
    view: &View,
    eligible: &BTreeSet<i32>,
    planned: &mut BTreeMap<(String, u32), Move>,
) {
    // The replica set each partition ends with, and whether it may be reordered.
    let mut sets: BTreeMap<(String, u32), (Vec<i32>, bool)> = BTreeMap::new();
    for (key, (state, _)) in &view.partitions {
        let set = planned.get(key).map_or_else(|| future(state), |m| m.to.clone());
        let may = planned.contains_key(key)
            || (!state.is_moving() && state.target.is_empty() && eligible.contains(&state.leader));
        sets.insert(key.clone(), (set, may));
    }
    let mut leads: BTreeMap<i32, usize> = eligible.iter().map(|b| (*b, 0)).collect();
    for (set, _) in sets.values() {
        if let Some(n) = set.first().and_then(|l| leads.get_mut(l)) {
            *n += 1;
        }
    }
    for _ in 0..view.partitions.len() {
        let mut by_leads: Vec<(usize, i32)> = leads.iter().map(|(b, n)| (*n, *b)).collect();
        by_leads.sort();
        let mut done = true;
        'pairs: for &(high_n, high) in by_leads.iter().rev() {
            for &(low_n, low) in &by_leads {
                if high_n <= low_n + 1 {
                    break;
                }
                for (key, (set, may)) in sets.iter_mut() {
                    let state = &view.partitions[key].0;
                    // A replica that is being added is not in sync yet; one already in the
                    // partition must be.
                    let in_sync = !state.replicas.contains(&low) || state.isr.contains(&low);
                    if *may && set.first() == Some(&high) && set.contains(&low) && in_sync {
                        set.retain(|r| *r != low);
                        set.insert(0, low);
                        *leads.get_mut(&high).expect("eligible") -= 1;
                        *leads.get_mut(&low).expect("eligible") += 1;
                        let m = planned.entry(key.clone()).or_insert_with(|| Move {
                            topic: key.0.clone(),
                            partition: key.1,
                            from: state.replicas.clone(),
                            to: vec![],
                        });
                        m.to = set.clone();
                        done = false;
                        break 'pairs;
                    }
                }
            }
        }
        if done {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::BrokerRecord;

    fn view(brokers: &[(i32, &str)]) -> View {
        let mut v = View::default();
        for (id, rack) in brokers {
            v.brokers.insert(
                *id,
                BrokerRecord {
                    id: *id,
                    address: format!("b{id}:9292"),
                    kafka_address: String::new(),
                    registry_address: String::new(),
                    rack: rack.to_string(),
                    started_ms: 0,
                    incarnation: 0,
                    draining: false,
                },
            );
        }
        v
    }

    fn add(v: &mut View, topic: &str, partition: u32, replicas: &[i32]) {
        let state = PartitionState::new(replicas.to_vec(), replicas[0], 0, replicas.to_vec());
        v.partitions.insert((topic.into(), partition), (state, 1));
    }

    /// Applies `moves` as if each completed, with leaders on the preferred replica.
    fn apply(v: &mut View, moves: &[Move]) {
        for m in moves {
            let state = PartitionState::new(m.to.clone(), m.to[0], 1, m.to.clone());
            v.partitions.insert((m.topic.clone(), m.partition), (state, 2));
        }
    }

    fn spread(v: &View) -> (usize, usize) {
        let eligible = eligible(v);
        let loads = replica_loads(v, &eligible);
        let mut leads: BTreeMap<i32, usize> = eligible.iter().map(|b| (*b, 0)).collect();
        for (s, _) in v.partitions.values() {
            *leads.entry(s.replicas[0]).or_default() += 1;
        }
        let range = |m: &BTreeMap<i32, usize>| {
            m.values().max().unwrap_or(&0) - m.values().min().unwrap_or(&0)
        };
        (range(&loads), range(&leads))
    }

    /// Twelve partitions of three replicas on brokers 1..=3.
    fn three_brokers_full() -> View {
        let mut v = view(&[(1, ""), (2, ""), (3, ""), (4, "")]);
        for p in 0..12 {
            let r = [1 + (p % 3) as i32, 1 + ((p + 1) % 3) as i32, 1 + ((p + 2) % 3) as i32];
            add(&mut v, "t", p, &r);
        }
        v
    }

    #[test]
    fn a_new_broker_receives_replicas_and_leaders_until_even() {
        let mut v = three_brokers_full();
        assert_eq!(spread(&v), (12, 4));
        let moves = balance(&v, 100);
        assert!(moves.iter().all(|m| m.added().len() <= 1), "one replica per move: {moves:?}");
        assert_eq!(moves.iter().filter(|m| !m.added().is_empty()).count(), 9, "36 / 4 = 9 each");
        apply(&mut v, &moves);
        assert_eq!(spread(&v), (0, 0), "9 replicas and 3 leaders each");
        assert!(balance(&v, 100).is_empty(), "balanced: nothing more to do");
    }

    #[test]
    fn the_move_limit_bounds_a_plan_and_partitions_out_of_sync_are_left_alone() {
        let mut v = three_brokers_full();
        let moves = balance(&v, 2);
        assert_eq!(moves.iter().filter(|m| !m.added().is_empty()).count(), 2);

        for (s, _) in v.partitions.values_mut() {
            s.isr.truncate(2);
        }
        let moves = balance(&v, 100);
        assert!(moves.iter().all(|m| m.added().is_empty()), "{moves:?}");
    }

    #[test]
    fn decommissioned_brokers_are_emptied_onto_the_others_racks_apart() {
        let mut v = view(&[(1, "a"), (2, "b"), (3, "a"), (4, "b")]);
        for p in 0..8 {
            let r = [1 + (p % 4) as i32, 1 + ((p + 1) % 4) as i32];
            add(&mut v, "t", p, &r);
        }
        v.decommissioned.insert(4);
        let moves = evacuate(&v);
        assert_eq!(moves.len(), 4, "{moves:?}");
        for m in &moves {
            assert!(!m.to.contains(&4));
            assert_eq!(racks(&v, &m.to), 2, "racks kept apart: {m:?}");
        }
        apply(&mut v, &moves);
        assert!(evacuate(&v).is_empty());
        assert!(v.partitions.values().all(|(s, _)| !s.replicas.contains(&4)));
        // Broker 2 is the only one left on rack b, so it keeps a replica of every
        // partition: racks come before counts. Leaders still even out.
        let moves = balance(&v, 100);
        apply(&mut v, &moves);
        assert_eq!(spread(&v), (4, 1), "8 on broker 2, 4 on 1 and 3; leaders 3-3-2");
        assert!(v.partitions.values().all(|(s, _)| racks(&v, &s.replicas) == 2));

        // A dead broker can be decommissioned too: nothing waits for it.
        let mut v = three_brokers_full();
        v.brokers.remove(&3);
        v.decommissioned.insert(3);
        let moves = evacuate(&v);
        assert_eq!(moves.len(), 12);
        assert!(moves.iter().all(|m| !m.to.contains(&3) && m.to.contains(&4)));
    }

    #[test]
    fn a_replication_factor_change_adds_to_the_least_loaded_and_drops_followers_first() {
        let mut v = view(&[(1, "a"), (2, "a"), (3, "b")]);
        add(&mut v, "t", 0, &[1]);
        add(&mut v, "t", 1, &[2]);
        add(&mut v, "u", 0, &[3, 1]);
        let moves = resize(&v, "t", 2);
        assert_eq!(moves.len(), 2);
        assert_eq!(moves[0].to, vec![1, 3], "rack b first");
        assert_eq!(moves[1].to, vec![2, 3]);
        apply(&mut v, &moves);
        assert!(resize(&v, "t", 2).is_empty());
        let mut s = v.partitions[&("t".to_string(), 0)].0.clone();
        s.leader = 3;
        v.partitions.insert(("t".into(), 0), (s, 3));
        let moves = resize(&v, "t", 1);
        assert_eq!((moves[0].to.clone(), moves[1].to.clone()), (vec![3], vec![2]), "leaders kept");
    }

    #[test]
    fn bytes_even_out_by_swaps_once_counts_are_even() {
        const MIB: u64 = 1 << 20;
        let mut v = view(&[(1, ""), (2, "")]);
        for (p, broker, mib) in [(0, 1, 600), (1, 1, 500), (2, 2, 100), (3, 2, 100)] {
            add(&mut v, "t", p, &[broker]);
            v.sizes.insert(("t".into(), p), mib * MIB);
        }
        let moves = balance(&v, 100);
        assert_eq!(moves.len(), 2, "one swap: {moves:?}");
        apply(&mut v, &moves);
        let bytes = |b: i32| -> u64 {
            v.partitions
                .iter()
                .filter(|(_, (s, _))| s.replicas.contains(&b))
                .map(|(k, _)| v.sizes[k])
                .sum()
        };
        assert_eq!(bytes(1).abs_diff(bytes(2)), 100 * MIB, "from 900 MiB apart to 100");
        assert_eq!(spread(&v).0, 0, "counts unchanged");
        assert!(balance(&v, 100).is_empty(), "no swap brings them closer");

        // Without room for both halves of a swap, none is planned.
        let mut v = view(&[(1, ""), (2, "")]);
        for (p, broker, mib) in [(0, 1, 600), (1, 1, 500), (2, 2, 100), (3, 2, 100)] {
            add(&mut v, "t", p, &[broker]);
            v.sizes.insert(("t".into(), p), mib * MIB);
        }
        assert!(balance(&v, 1).is_empty());
    }
}
