//! Who owned which partition of a consumer group when, as each member's rebalance listener
//! saw it, and the check that no partition ever had two owners at once.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// When each partition was assigned to and revoked from a member, as its listener saw it.
pub(crate) type Ownership = Arc<Mutex<Vec<(Instant, u32, bool)>>>;

/// Records ownership changes (true: assigned, false: revoked or lost).
pub(crate) struct Recorder(pub Ownership);

impl shale::client::RebalanceListener for Recorder {
    fn on_assigned(&mut self, partitions: &[(String, u32)]) {
        let now = Instant::now();
        self.0.lock().unwrap().extend(partitions.iter().map(|(_, p)| (now, *p, true)));
    }
    fn on_revoked(&mut self, partitions: &[(String, u32)], _lost: bool) {
        let now = Instant::now();
        self.0.lock().unwrap().extend(partitions.iter().map(|(_, p)| (now, *p, false)));
    }
}

/// Asserts that no partition had two owners at once: per member, each partition is owned
/// from an assignment to the next revocation (or `end`), and those spans never overlap
/// across members.
pub(crate) fn assert_no_two_owners(members: &[(&str, &Ownership)], end: Instant) {
    let mut spans: BTreeMap<u32, Vec<(Instant, Instant, &str)>> = BTreeMap::new();
    for (name, events) in members {
        let mut open: BTreeMap<u32, Instant> = BTreeMap::new();
        for (at, p, assigned) in events.lock().unwrap().iter() {
            match assigned {
                true => {
                    open.insert(*p, *at);
                }
                false => {
                    if let Some(from) = open.remove(p) {
                        spans.entry(*p).or_default().push((from, *at, name));
                    }
                }
            }
        }
        for (p, from) in open {
            spans.entry(p).or_default().push((from, end, name));
        }
    }
    let mut handovers = 0;
    for (p, mut list) in spans {
        list.sort();
        for w in list.windows(2) {
            let ((_, a_end, a), (b_start, _, b)) = (w[0], w[1]);
            assert!(
                a == b || a_end <= b_start,
                "partition {p} had two owners: {a} until {a_end:?}, {b} from {b_start:?}"
            );
            handovers += usize::from(a != b);
        }
    }
    println!("ownership: {handovers} hand-overs between members, never two owners at once");
}

/// The partitions a member owns after its recorded events.
pub(crate) fn owned_now(events: &Ownership) -> std::collections::BTreeSet<u32> {
    let mut owned = std::collections::BTreeSet::new();
    for (_, p, assigned) in events.lock().unwrap().iter() {
        match assigned {
            true => owned.insert(*p),
            false => owned.remove(p),
        };
    }
    owned
}
