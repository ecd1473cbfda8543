//! Server-side partition assignors: `range` (Kafka's RangeAssignor, per topic) and
//! `cooperative-sticky` (balanced, keeping each member's partitions where it can), which
//! Kafka's consumer protocol (KIP-848) names `uniform`.
//!
//! These map every partition of every subscribed topic to one subscribed member. Share
//! groups (KIP-932) use `simple`, Kafka's share assignor: members share partitions, so
//! with more members than partitions each partition goes to several. All are
//! deterministic: members are taken in id order, so any coordinator computes the
//! same target from the same input.

use std::collections::{BTreeMap, BTreeSet};

use shale_core::error::Error;

/// A topic partition.
pub type Tp = (String, u32);

/// Which assignor a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignor {
    /// Balanced, moving as few partitions as it can (the default).
    #[default]
    CooperativeSticky,
    /// Per topic, contiguous ranges of partitions to members in id order.
    Range,
    /// The cooperative-sticky assignor under the name Kafka's consumer protocol gives its
    /// default server-side assignor (`UniformAssignor`): balanced and sticky.
    Uniform,
    /// A share group's: per topic, partitions dealt to members in id order, and with more
    /// members than partitions, members dealt to partitions (Kafka's `SimpleAssignor`).
    Simple,
}

impl Assignor {
    /// Parses a name; empty means the default.
    pub fn parse(name: &str) -> Result<Assignor, Error> {
        match name {
            "" | "cooperative-sticky" => Ok(Assignor::CooperativeSticky),
            "range" => Ok(Assignor::Range),
            "uniform" => Ok(Assignor::Uniform),
            other => Err(Error::new(
                shale_core::error::ErrorKind::Invalid,
                shale_core::error::Reason::UnsupportedAssignor,
                format!(
                    "unknown assignor {other:?}: use \"cooperative-sticky\" (\"uniform\") or \
                     \"range\""
                ),
            )
            .with("assignor", other)),
        }
    }

    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::CooperativeSticky => "cooperative-sticky",
            Assignor::Range => "range",
            Assignor::Uniform => "uniform",
            Assignor::Simple => "simple",
        }
    }
}

/// What an assignor works from.
#[derive(Debug, Default)]
pub struct Input<'a> {
    /// Partition count of every topic some member subscribes to.
    pub topics: BTreeMap<String, u32>,
    /// Each member's subscribed topics (resolved from patterns).
    pub subscriptions: BTreeMap<&'a str, BTreeSet<String>>,
    /// Each member's current partitions (the sticky assignor keeps them where it can).
    pub current: BTreeMap<&'a str, BTreeSet<Tp>>,
    /// The rack of each member that has one (KIP-848's `RackId`).
    pub member_racks: BTreeMap<&'a str, &'a str>,
    /// The racks of each partition's replicas; filled only when some member has a rack.
    pub partition_racks: BTreeMap<Tp, BTreeSet<String>>,
}

impl Input<'_> {
    /// Whether `member` is in a rack holding a replica of `tp`.
    fn rack_matches(&self, member: &str, tp: &Tp) -> bool {
        let Some(rack) = self.member_racks.get(member) else { return false };
        self.partition_racks.get(tp).is_some_and(|racks| racks.contains(*rack))
    }

    /// Whether rack-awareness decides for `tp`: its replicas have racks and some member
    /// that may take it sits in one of them.
    fn rack_aware(&self, tp: &Tp) -> bool {
        self.partition_racks.get(tp).is_some_and(|r| !r.is_empty())
            && self.subscriptions.iter().any(|(m, t)| t.contains(&tp.0) && self.rack_matches(m, tp))
    }
}

/// Computes the target assignment of every member (members with nothing get an empty set).
pub fn assign(assignor: Assignor, input: &Input<'_>) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> =
        input.subscriptions.keys().map(|m| (m.to_string(), BTreeSet::new())).collect();
    match assignor {
        Assignor::Range => range(input, &mut out),
        Assignor::CooperativeSticky | Assignor::Uniform => sticky(input, &mut out),
        Assignor::Simple => simple(input, &mut out),
    }
    out
}

/// Every partition to at least one subscriber, every subscriber at least one partition.
fn simple(input: &Input<'_>, out: &mut BTreeMap<String, BTreeSet<Tp>>) {
    for (topic, &count) in &input.topics {
        let members = subscribers(input, topic);
        if members.is_empty() || count == 0 {
            continue;
        }
        let n = members.len().max(count as usize);
        for i in 0..n {
            let m = members[i % members.len()];
            let p = (i % count as usize) as u32;
            out.entry(m.to_string()).or_default().insert((topic.clone(), p));
        }
    }
}

fn subscribers<'a>(input: &'a Input<'_>, topic: &str) -> Vec<&'a str> {
    input.subscriptions.iter().filter(|(_, t)| t.contains(topic)).map(|(m, _)| *m).collect()
}

fn range(input: &Input<'_>, out: &mut BTreeMap<String, BTreeSet<Tp>>) {
    for (topic, &count) in &input.topics {
        let members = subscribers(input, topic);
        if members.is_empty() {
            continue;
        }
        let n = members.len() as u32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + u32::from((i as u32) < extra);
            let set = out.entry(m.to_string()).or_default();
            for p in next..next + take {
                set.insert((topic.clone(), p));
            }
            next += take;
        }
    }
}

fn sticky(input: &Input<'_>, out: &mut BTreeMap<String, BTreeSet<Tp>>) {
    let all: Vec<Tp> = input
        .topics
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .filter(|(t, _)| !subscribers(input, t).is_empty())
        .collect();
    let eligible = |m: &str, tp: &Tp| input.subscriptions.get(m).is_some_and(|s| s.contains(&tp.0));
    let members: Vec<&str> = input.subscriptions.keys().copied().collect();
    // Fair share with identical subscriptions; an upper bound otherwise.
    let quota = if members.is_empty() { 0 } else { all.len().div_ceil(members.len()) };
    // 1. Keep current partitions that are still valid, up to the quota (and, where racks
    //    decide, in a rack holding a replica).
    let mut owner: BTreeMap<Tp, String> = BTreeMap::new();
    for m in &members {
        let Some(current) = input.current.get(m) else { continue };
        for tp in current {
            let valid = input.topics.get(&tp.0).is_some_and(|&n| tp.1 < n)
                && eligible(m, tp)
                && (!input.rack_aware(tp) || input.rack_matches(m, tp));
            let set = out.entry(m.to_string()).or_default();
            if valid && !owner.contains_key(tp) && set.len() < quota {
                set.insert(tp.clone());
                owner.insert(tp.clone(), m.to_string());
            }
        }
    }
    // 2. Give each unowned partition to the eligible member with the fewest, preferring,
    //    among those below the quota, one in a rack holding a replica of it.
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        let Some(m) = members.iter().filter(|m| eligible(m, tp)).min_by_key(|m| {
            let load = out.get(**m).map_or(0, BTreeSet::len);
            (load >= quota, !input.rack_matches(m, tp), load, **m)
        }) else {
            continue;
        };
        out.entry(m.to_string()).or_default().insert(tp.clone());
        owner.insert(tp.clone(), m.to_string());
    }
    // 3. Even out: move one partition at a time from the fullest member to one with at
    //    least two fewer that may take it, until none can move.
    loop {
        let mut moved = false;
        let mut by_load: Vec<&str> = members.clone();
        by_load.sort_by_key(|m| (std::cmp::Reverse(out.get(*m).map_or(0, BTreeSet::len)), *m));
        'outer: for from in &by_load {
            let from_len = out.get(*from).map_or(0, BTreeSet::len);
            for to in by_load.iter().rev() {
                let to_len = out.get(*to).map_or(0, BTreeSet::len);
                if to_len + 1 >= from_len {
                    continue;
                }
                // Rather one that goes to its rack, else one away from its rack.
                let candidate = out.get(*from).and_then(|s| {
                    s.iter()
                        .filter(|tp| eligible(to, tp))
                        .max_by_key(|tp| {
                            (input.rack_matches(to, tp), !input.rack_matches(from, tp))
                        })
                        .cloned()
                });
                if let Some(tp) = candidate {
                    out.entry(from.to_string()).or_default().remove(&tp);
                    out.entry(to.to_string()).or_default().insert(tp);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(members: &[&'a str], topics: &[(&str, u32)]) -> Input<'a> {
        let names: BTreeSet<String> = topics.iter().map(|(t, _)| t.to_string()).collect();
        Input {
            topics: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            subscriptions: members.iter().map(|m| (*m, names.clone())).collect(),
            current: BTreeMap::new(),
            member_racks: BTreeMap::new(),
            partition_racks: BTreeMap::new(),
        }
    }

    /// Members get the partitions with a replica in their rack, as far as balance allows,
    /// and give up ones held across racks; without racks nothing changes.
    #[test]
    fn the_sticky_assignor_prefers_the_members_rack_within_balance() {
        let racks = |tps: &[(u32, &str)]| -> BTreeMap<Tp, BTreeSet<String>> {
            tps.iter()
                .map(|(p, r)| (("t".to_string(), *p), BTreeSet::from([r.to_string()])))
                .collect()
        };
        let set =
            |ps: &[u32]| -> BTreeSet<Tp> { ps.iter().map(|p| ("t".to_string(), *p)).collect() };
        let mut inp = input(&["a", "b"], &[("t", 4)]);
        inp.member_racks = BTreeMap::from([("a", "r1"), ("b", "r2")]);
        inp.partition_racks = racks(&[(0, "r1"), (1, "r1"), (2, "r2"), (3, "r2")]);
        let out = assign(Assignor::Uniform, &inp);
        assert_eq!((out["a"].clone(), out["b"].clone()), (set(&[0, 1]), set(&[2, 3])));
        // Held across racks: moved to the rack holding the replica.
        inp.current = BTreeMap::from([("a", set(&[2, 3])), ("b", set(&[0, 1]))]);
        let out = assign(Assignor::Uniform, &inp);
        assert_eq!((out["a"].clone(), out["b"].clone()), (set(&[0, 1]), set(&[2, 3])));
        // Every replica in r1: balance wins over racks.
        inp.current = BTreeMap::new();
        inp.partition_racks = racks(&[(0, "r1"), (1, "r1"), (2, "r1"), (3, "r1")]);
        let out = assign(Assignor::Uniform, &inp);
        assert_eq!(sizes(&out), vec![2, 2]);
        // No racks: the plain assignment, round robin over the least loaded.
        inp.member_racks.clear();
        inp.partition_racks.clear();
        let out = assign(Assignor::Uniform, &inp);
        assert_eq!((out["a"].clone(), out["b"].clone()), (set(&[0, 2]), set(&[1, 3])));
    }

    fn sizes(a: &BTreeMap<String, BTreeSet<Tp>>) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    fn check_complete(a: &BTreeMap<String, BTreeSet<Tp>>, total: usize) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for tp in set {
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice: {a:?}");
            }
        }
        assert_eq!(seen.len(), total, "{a:?}");
    }

    #[test]
    fn range_splits_each_topic_into_contiguous_ranges() {
        let a = assign(Assignor::Range, &input(&["a", "b"], &[("t", 5), ("u", 2)]));
        check_complete(&a, 7);
        let a_parts: Vec<_> = a["a"].iter().cloned().collect();
        assert_eq!(
            a_parts,
            vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2), ("u".into(), 0)]
        );
    }

    #[test]
    fn sticky_balances_and_moves_little() {
        let mut inp = input(&["a", "b"], &[("t", 6)]);
        let first = assign(Assignor::CooperativeSticky, &inp);
        check_complete(&first, 6);
        assert_eq!(sizes(&first), vec![3, 3]);
        // c joins: 2 each, and a and b each keep 2 of their 3.
        inp.subscriptions.insert("c", inp.subscriptions["a"].clone());
        inp.current = first.iter().map(|(m, s)| (m.as_str(), s.clone())).collect();
        let second = assign(Assignor::CooperativeSticky, &inp);
        check_complete(&second, 6);
        assert_eq!(sizes(&second), vec![2, 2, 2]);
        for m in ["a", "b"] {
            assert_eq!(
                second[m].intersection(&first[m]).count(),
                2,
                "{m}: {first:?} -> {second:?}"
            );
        }
        // b leaves: a and c keep theirs and share b's.
        inp.subscriptions.remove("b");
        inp.current = second.iter().map(|(m, s)| (m.as_str(), s.clone())).collect();
        let third = assign(Assignor::CooperativeSticky, &inp);
        check_complete(&third, 6);
        assert_eq!(sizes(&third), vec![3, 3]);
        for m in ["a", "c"] {
            assert!(third[m].is_superset(&second[m]), "{m}: {second:?} -> {third:?}");
        }
    }

    #[test]
    fn sticky_respects_different_subscriptions() {
        let mut inp = input(&["a", "b"], &[("t", 4), ("u", 4)]);
        inp.subscriptions.insert("b", ["u".to_string()].into());
        let a = assign(Assignor::CooperativeSticky, &inp);
        check_complete(&a, 8);
        assert!(a["b"].iter().all(|(t, _)| t == "u"), "{a:?}");
        assert_eq!(sizes(&a), vec![4, 4]);
    }

    #[test]
    fn partitions_of_unsubscribed_or_shrunk_topics_are_dropped() {
        let mut inp = input(&["a"], &[("t", 2)]);
        inp.current.insert("a", [("t".to_string(), 5), ("gone".to_string(), 0)].into());
        let a = assign(Assignor::CooperativeSticky, &inp);
        assert_eq!(a["a"], [("t".to_string(), 0), ("t".to_string(), 1)].into());
    }

    #[test]
    fn assignor_names_parse() {
        assert_eq!(Assignor::parse("").unwrap(), Assignor::CooperativeSticky);
        assert_eq!(Assignor::parse("range").unwrap(), Assignor::Range);
        assert_eq!(Assignor::parse("uniform").unwrap(), Assignor::Uniform);
        let unknown = Assignor::parse("roundrobin").unwrap_err();
        assert_eq!(unknown.reason, shale_core::error::Reason::UnsupportedAssignor);
        let e = Assignor::parse("roundrobin").unwrap_err();
        assert!(e.message.contains("roundrobin"), "{}", e.message);
    }
}
