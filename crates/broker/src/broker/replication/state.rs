//! Replication state of one hosted partition: the replicas and in-sync replicas (ISR) from
//! the partition state, each follower's log end and when it was last caught up (kept by
//! the leader), and the high watermark.
//!
//! The high watermark (HW) is the offset below which every ISR member has the data durably:
//! on the leader, the minimum of its own visible end (durable end under
//! `flush.policy=always`) and each in-sync follower's reported log end (followers report
//! only after append + fsync). It never moves backwards on a leader. Consumers read below
//! it, and `acks=all` waits for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use shale_core::clock::{Instant, SharedClock};
use tokio::sync::watch;

use shale_meta::Revision;
use shale_meta::topics::PartitionState;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Reported log end (everything below is fsynced there); -1 until the first fetch.
    log_end: i64,
    /// Last time the follower had everything the leader had (Kafka's lastCaughtUpTime).
    last_caught_up: Instant,
    /// The leader's log end when it last answered this follower, and when.
    answered: Option<(i64, Instant)>,
    /// The follower's incarnation as its fetches state it (0 until known).
    incarnation: u64,
    /// The log start DeleteRecords set there, as its fetches state it (0 until known).
    log_start_floor: i64,
}

impl Follower {
    fn new(now: Instant) -> Self {
        Follower {
            log_end: -1,
            last_caught_up: now,
            answered: None,
            incarnation: 0,
            log_start_floor: 0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    leader: bool,
    replicas: Vec<i32>,
    /// Replicas a reassignment is adding: not expected in the ISR yet.
    adding: Vec<i32>,
    isr: Vec<i32>,
    /// Incarnations the partition state recorded for ISR members.
    incarnations: BTreeMap<i32, u64>,
    followers: HashMap<i32, Follower>,
    own_end: i64,
    /// The leader epoch applied last, and where this replica's log ended when it started
    /// leading at it: the start offset of the current epoch.
    epoch: i32,
    epoch_start: i64,
    /// Mod revision of the partition state applied last (0: none yet).
    revision: Revision,
    /// Followers this leader is writing into the ISR, and the revision the write is based
    /// on: counted in the high watermark from before the write until a later state says
    /// how it ended (Kafka's maximal ISR, KIP-497).
    joining_isr: Vec<i32>,
    joining_since: Revision,
}

/// Replicas, ISR, follower progress and the high watermark of one partition.
#[derive(Debug)]
pub struct Replication {
    broker_id: i32,
    clock: SharedClock,
    inner: Mutex<Inner>,
    hw_tx: watch::Sender<i64>,
    /// Bumped whenever a follower's log start or the ISR changes: what DeleteRecords waits
    /// on ([`low_watermark`](Self::low_watermark)).
    floors_tx: watch::Sender<u64>,
}

impl Replication {
    /// State for a partition opened with high watermark `hw`.
    pub fn new(broker_id: i32, hw: i64, clock: SharedClock) -> Self {
        Replication {
            broker_id,
            clock,
            inner: Mutex::new(Inner {
                leader: false,
                replicas: vec![],
                adding: vec![],
                isr: vec![],
                incarnations: BTreeMap::new(),
                followers: HashMap::new(),
                own_end: hw,
                epoch: -1,
                epoch_start: 0,
                revision: 0,
                joining_isr: vec![],
                joining_since: 0,
            }),
            hw_tx: watch::channel(hw).0,
            floors_tx: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies replicas, ISR and leadership from the partition state stored at `revision`
    /// (the mod revision of its key), with this replica's log end. A new leadership (or a
    /// new epoch of it) forgets follower positions: they are learnt again from the
    /// followers' fetches.
    ///
    /// A state older than the one applied last (an earlier revision at no later epoch) is
    /// ignored (returns false): a resync that read the store before this leader's own ISR
    /// write would otherwise take back a member the store already counts, and the high
    /// watermark would pass records that member lacks — records lost if it then leads.
    pub fn apply(&self, state: &PartitionState, revision: Revision, log_end: i64) -> bool {
        let leader = state.leader == self.broker_id;
        let mut inner = self.lock();
        // A later epoch is newer whatever its revision (a store restored from a backup may
        // number its writes lower).
        let later_epoch = state.leader_epoch > inner.epoch;
        if revision < inner.revision && !later_epoch {
            tracing::debug!(revision, applied = inner.revision, isr = ?state.isr,
                "ignored a partition state older than the one applied");
            return false;
        }
        inner.revision = revision;
        if revision > inner.joining_since || later_epoch {
            // A later state says how the ISR write ended: written, or beaten by another.
            inner.joining_isr.clear();
        }
        let moved = leader != inner.leader || inner.epoch != state.leader_epoch;
        if leader && moved {
            let now = self.clock.instant();
            inner.followers = state
                .replicas
                .iter()
                .filter(|id| **id != self.broker_id)
                .map(|id| (*id, Follower::new(now)))
                .collect();
            inner.epoch_start = log_end;
        }
        inner.leader = leader;
        inner.epoch = state.leader_epoch;
        inner.replicas = state.replicas.clone();
        inner.adding = state.adding.clone();
        inner.isr = state.isr.clone();
        inner.incarnations = state.incarnations.clone();
        self.recompute(&inner);
        self.floors_tx.send_modify(|n| *n += 1);
        if moved {
            // Whether the high watermark is known changed with the leadership: wake its
            // watchers to look again.
            self.hw_tx.send_modify(|_| {});
        }
        true
    }

    /// The revision an ISR write still counting followers in the high watermark was based
    /// on, while no later state has said how it ended.
    pub fn pending_isr_join(&self) -> Option<Revision> {
        let inner = self.lock();
        (!inner.joining_isr.is_empty()).then_some(inner.joining_since)
    }

    /// The revision of the partition state applied last.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// This leader is about to write `followers` into the ISR, by a compare-and-swap on the
    /// state at `base` (the revision applied last). From now until a later state is
    /// applied, the high watermark counts them: once the write lands, the controller may
    /// hand one of them leadership, and it must hold every record the high watermark
    /// covers. Returns those still caught up to the high watermark and the epoch start
    /// (checked under the lock the high watermark moves under), the only ones to write.
    /// Joins at the same `base` add up: a write that failed without an answer may still
    /// have landed, so only a later state clears them.
    pub fn begin_isr_join(&self, followers: &[i32], base: Revision) -> Vec<i32> {
        let mut inner = self.lock();
        if !inner.leader || base != inner.revision {
            return vec![];
        }
        let hw = self.high_watermark();
        let joining: Vec<i32> = followers
            .iter()
            .copied()
            .filter(|id| {
                inner.followers.get(id).is_some_and(|f| {
                    f.log_end >= hw && f.log_end >= inner.epoch_start && f.log_end >= 0
                })
            })
            .collect();
        // Added to any earlier join at this revision whose write's fate is unknown yet.
        for id in &joining {
            if !inner.joining_isr.contains(id) {
                inner.joining_isr.push(*id);
            }
        }
        inner.joining_since = base;
        joining
    }

    /// Replicas as last applied.
    pub fn replicas(&self) -> Vec<i32> {
        self.lock().replicas.clone()
    }

    /// Whether any replica besides this one exists (or is being added): a partition without
    /// one has no ISR to maintain and nobody to hand a failed log over to.
    pub fn has_other_replicas(&self) -> bool {
        let inner = self.lock();
        inner.replicas.iter().chain(&inner.adding).any(|r| *r != self.broker_id)
    }

    /// Whether the ISR lacks a replica other than those a reassignment is adding (Kafka's
    /// under-replicated partition: a replica still copying does not count).
    pub fn under_replicated(&self) -> bool {
        let inner = self.lock();
        inner.replicas.iter().any(|r| !inner.isr.contains(r) && !inner.adding.contains(r))
    }

    /// In-sync replicas as last applied.
    pub fn isr(&self) -> Vec<i32> {
        self.lock().isr.clone()
    }

    /// How many in-sync replicas there are (no copy of the set: every produce asks).
    pub fn isr_len(&self) -> usize {
        self.lock().isr.len()
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        *self.hw_tx.borrow()
    }

    /// Whether the high watermark is final. A new leader learnt its high watermark as a
    /// follower, one fetch behind; until it reaches the start of the leader's epoch
    /// (everything the leader had when it took over) the followers have not yet told it
    /// what is committed, and records below its log end may be acknowledged already. Kafka
    /// answers ListOffsets with OFFSET_NOT_AVAILABLE in this window.
    pub fn high_watermark_known(&self) -> bool {
        let inner = self.lock();
        !inner.leader || self.high_watermark() >= inner.epoch_start
    }

    /// [`high_watermark_known`](Self::high_watermark_known) for a partition whose own
    /// leadership says `leader` at `epoch`: a leadership this state has not applied yet (the
    /// partition publishes its new leadership a moment before its replication state
    /// follows) is not known either, so a reader never takes the high watermark of the
    /// replica it was for its end.
    pub fn high_watermark_known_at(&self, leader: bool, epoch: i32) -> bool {
        let inner = self.lock();
        match leader {
            false => true,
            true => {
                inner.leader && inner.epoch == epoch && self.high_watermark() >= inner.epoch_start
            }
        }
    }

    /// Watch the high watermark.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// This replica's visible log end changed (append fsynced, truncation, retention).
    pub fn set_own_end(&self, own_end: i64) {
        let mut inner = self.lock();
        inner.own_end = own_end;
        self.recompute(&inner);
    }

    /// A follower (at `incarnation`) asked for data from `fetch_offset` (its durable log
    /// end) while the leader's log ended at `leader_log_end`.
    pub fn follower_fetched(
        &self,
        id: i32,
        incarnation: u64,
        fetch_offset: i64,
        leader_log_end: i64,
    ) {
        let mut inner = self.lock();
        let now = self.clock.instant();
        let f = inner.followers.entry(id).or_insert(Follower::new(now));
        f.log_end = fetch_offset;
        f.incarnation = incarnation;
        // Kafka's rule: caught up now if it has everything the leader has; else caught up as
        // of the last answer if it has everything the leader had then.
        if fetch_offset >= leader_log_end {
            f.last_caught_up = now;
        } else if let Some((leo, at)) = f.answered
            && fetch_offset >= leo
        {
            f.last_caught_up = f.last_caught_up.max(at);
        }
        self.recompute(&inner);
    }

    /// A follower's fetch stated the log start DeleteRecords set there.
    pub fn follower_log_start(&self, id: i32, floor: i64) {
        let mut inner = self.lock();
        let Some(f) = inner.followers.get_mut(&id) else { return };
        if f.log_start_floor != floor {
            f.log_start_floor = floor;
            self.floors_tx.send_modify(|n| *n += 1);
        }
    }

    /// Kafka's low watermark, for DeleteRecords: the lowest log start DeleteRecords set among
    /// the in-sync replicas (those being written into the ISR too), this leader's own being
    /// `own`. Every replica that could lead next refuses what is below it.
    pub fn low_watermark(&self, own: i64) -> i64 {
        let inner = self.lock();
        let members = inner.isr.iter().chain(&inner.joining_isr);
        members
            .filter(|id| **id != self.broker_id)
            .map(|id| inner.followers.get(id).map_or(0, |f| f.log_start_floor))
            .fold(own, i64::min)
    }

    /// Changes of followers' log starts or of the ISR, for DeleteRecords' wait.
    pub fn subscribe_floors(&self) -> watch::Receiver<u64> {
        self.floors_tx.subscribe()
    }

    /// The leader answered a follower's fetch while its own log ended at `leader_log_end`.
    pub fn answered(&self, id: i32, leader_log_end: i64) {
        let mut inner = self.lock();
        if let Some(f) = inner.followers.get_mut(&id) {
            f.answered = Some((leader_log_end, self.clock.instant()));
        }
    }

    /// The incarnation a follower's fetches stated (0 if unknown).
    pub fn incarnation_of(&self, id: i32) -> u64 {
        self.lock().followers.get(&id).map_or(0, |f| f.incarnation)
    }

    /// ISR members (other than the leader) not caught up within `max_lag`, or fetching
    /// under an incarnation other than the one the ISR recorded (they restarted and may
    /// have lost data they had reported).
    pub fn lagging(&self, max_lag: Duration) -> Vec<i32> {
        let inner = self.lock();
        let now = self.clock.instant();
        inner
            .isr
            .iter()
            .filter(|id| **id != self.broker_id)
            .filter(|id| {
                inner.followers.get(id).is_none_or(|f| {
                    now.duration_since(f.last_caught_up) > max_lag
                        || inner
                            .incarnations
                            .get(id)
                            .is_some_and(|i| f.incarnation != 0 && f.incarnation != *i)
                })
            })
            .copied()
            .collect()
    }

    /// Replicas outside the ISR that have caught up recently, to the high watermark and to
    /// the start of the leader's current epoch: a high watermark learnt from an earlier
    /// leader can be stale, and a follower below the epoch start may still hold a suffix
    /// the new leader does not have (KAFKA-7128).
    pub fn caught_up(&self, max_lag: Duration) -> Vec<i32> {
        let inner = self.lock();
        let hw = self.high_watermark();
        let now = self.clock.instant();
        inner
            .replicas
            .iter()
            .filter(|id| **id != self.broker_id && !inner.isr.contains(id))
            .filter(|id| {
                inner.followers.get(id).is_some_and(|f| {
                    f.log_end >= hw
                        && f.log_end >= inner.epoch_start
                        && f.log_end >= 0
                        && now.duration_since(f.last_caught_up) <= max_lag
                })
            })
            .copied()
            .collect()
    }

    /// Caps the high watermark at this replica's log end (after a follower truncates, or
    /// resets its log). Wakes every waiter even when the mark stays: a produce waiting on
    /// it learns its records were cut (see `Partition::pending_ack`).
    ///
    /// The epoch start is capped too: a follower's cut under way (it holds the append lock,
    /// having checked it still follows) may end after this replica was elected and took
    /// its log end, uncut, for the start of its epoch. Nothing of the new epoch is
    /// appended before the cut ends, so the epoch starts where the cut left the log; with
    /// the start above it no follower could ever catch up to it and rejoin the ISR.
    pub fn cap(&self, log_end: i64) {
        {
            let mut inner = self.lock();
            inner.epoch_start = inner.epoch_start.min(log_end);
        }
        self.hw_tx.send_modify(|hw| *hw = (*hw).min(log_end));
    }

    /// A follower learns the leader's high watermark (kept for when it becomes leader).
    pub fn follower_hw(&self, leader_hw: i64, own_end: i64) {
        self.advance(leader_hw.min(own_end));
    }

    fn recompute(&self, inner: &Inner) {
        if !inner.leader {
            return;
        }
        let mut hw = inner.own_end;
        let members = inner.isr.iter().chain(&inner.joining_isr);
        for id in members.filter(|id| **id != self.broker_id) {
            let end = inner.followers.get(id).map_or(-1, |f| f.log_end);
            hw = hw.min(end);
        }
        self.advance(hw);
    }

    fn advance(&self, hw: i64) {
        self.hw_tx.send_if_modified(|current| {
            if hw > *current {
                *current = hw;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies replicas and ISR with `leader` leading at epoch 1, log end 0.
    fn members(r: &Replication, replicas: &[i32], isr: &[i32], leader: i32) {
        let state = PartitionState::new(replicas.to_vec(), leader, 1, isr.to_vec());
        r.apply(&state, r.revision() + 1, 0);
    }

    #[test]
    fn hw_is_the_minimum_over_the_isr_and_never_moves_back() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        members(&r, &[1, 2, 3], &[1, 2, 3], 1);
        r.set_own_end(10);
        assert_eq!(r.high_watermark(), 0, "followers not heard from yet");
        r.follower_fetched(2, 0, 7, 10);
        r.follower_fetched(3, 0, 5, 10);
        assert_eq!(r.high_watermark(), 5);
        r.follower_fetched(3, 0, 10, 10);
        assert_eq!(r.high_watermark(), 7);
        // Shrinking the ISR to the leader lets the HW follow the leader alone.
        members(&r, &[1, 2, 3], &[1], 1);
        assert_eq!(r.high_watermark(), 10);
        members(&r, &[1, 2, 3], &[1, 2], 1);
        assert_eq!(r.high_watermark(), 10, "never backwards");
    }

    #[test]
    fn the_low_watermark_is_the_lowest_log_start_in_the_isr() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        members(&r, &[1, 2, 3], &[1, 2, 3], 1);
        let mut changes = r.subscribe_floors();
        changes.borrow_and_update();
        assert_eq!(r.low_watermark(40), 0, "followers not heard from yet");
        r.follower_fetched(2, 0, 50, 50);
        r.follower_log_start(2, 40);
        assert!(changes.has_changed().unwrap());
        assert_eq!(r.low_watermark(40), 0, "3 has not moved yet");
        r.follower_log_start(3, 30);
        assert_eq!(r.low_watermark(40), 30);
        r.follower_log_start(3, 45);
        assert_eq!(r.low_watermark(40), 40, "the leader's own counts too");
        // A member that leaves the ISR no longer holds it back.
        r.follower_log_start(3, 10);
        changes.borrow_and_update();
        members(&r, &[1, 2, 3], &[1, 2], 1);
        assert!(changes.has_changed().unwrap());
        assert_eq!(r.low_watermark(40), 40);
    }

    /// A follower's cut that ends after this replica was elected (it took its uncut log end,
    /// 20, for its epoch's start) moves the epoch start down to the cut: followers at the
    /// cut's offset catch up and may rejoin the ISR.
    #[test]
    fn a_cut_ending_after_the_election_moves_the_epoch_start_down() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        r.apply(&PartitionState::new(vec![1, 2, 3], 2, 1, vec![1, 2, 3]), 5, 20);
        r.apply(&PartitionState::new(vec![1, 2, 3], 1, 2, vec![1]), 6, 20);
        r.cap(12);
        r.set_own_end(12);
        for f in [2, 3] {
            r.follower_fetched(f, 0, 12, 12);
        }
        let lag = Duration::from_secs(10);
        assert_eq!(r.caught_up(lag), vec![2, 3], "{}", r.high_watermark());
        assert_eq!(r.begin_isr_join(&[2, 3], 6), vec![2, 3]);
    }

    /// Leader 1 at epoch 1 (revision 5) with ISR `isr`; its log and every follower at 10.
    fn all_at_ten(isr: &[i32]) -> Replication {
        let r = Replication::new(1, 0, shale_core::clock::system());
        r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, isr.to_vec()), 5, 0);
        r.set_own_end(10);
        for f in [2, 3] {
            r.follower_fetched(f, 0, 10, 10);
        }
        assert_eq!(r.high_watermark(), 10);
        r
    }

    #[test]
    fn a_state_older_than_the_applied_one_does_not_shrink_the_isr() {
        // The leader wrote follower 3 into the ISR (revision 6); a resync that read the
        // store before that write applies revision 5 after it.
        let r = all_at_ten(&[1, 2]);
        assert!(r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, vec![1, 2, 3]), 6, 10));
        assert!(!r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, vec![1, 2]), 5, 10));
        assert_eq!(r.isr(), vec![1, 2, 3]);
        r.set_own_end(20);
        r.follower_fetched(2, 0, 20, 20);
        assert_eq!(r.high_watermark(), 10, "follower 3, in the stored ISR, has only 10");
        // A later epoch applies whatever its revision.
        assert!(r.apply(&PartitionState::new(vec![1, 2, 3], 2, 2, vec![2, 3]), 3, 20));
        assert_eq!(r.isr(), vec![2, 3]);
    }

    #[test]
    fn a_follower_being_written_into_the_isr_holds_the_high_watermark_meanwhile() {
        let r = all_at_ten(&[1, 2]);
        assert_eq!(r.caught_up(Duration::from_secs(10)), vec![3]);
        assert_eq!(r.begin_isr_join(&[3], 5), vec![3]);
        // While the write is on its way the leader and follower 2 move on; follower 3 may
        // lead as soon as the write lands, so the high watermark waits for it.
        r.set_own_end(20);
        r.follower_fetched(2, 0, 20, 20);
        assert_eq!(r.high_watermark(), 10);
        r.follower_fetched(3, 0, 15, 20);
        assert_eq!(r.high_watermark(), 15);
        // The write landed: follower 3 is a member like any other.
        assert!(r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, vec![1, 2, 3]), 6, 20));
        assert_eq!(r.high_watermark(), 15);
        assert_eq!(r.pending_isr_join(), None);
        // Another write beat it (revision 7 without follower 3): no longer counted.
        let r = all_at_ten(&[1, 2]);
        assert_eq!(r.begin_isr_join(&[3], 5), vec![3]);
        assert_eq!(r.pending_isr_join(), Some(5), "unsettled until a later state");
        assert!(r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, vec![1, 2]), 5, 10));
        assert_eq!(r.pending_isr_join(), Some(5), "the state it was based on settles nothing");
        assert!(r.apply(&PartitionState::new(vec![1, 2, 3], 1, 1, vec![1, 2]), 7, 10));
        assert_eq!(r.pending_isr_join(), None);
        r.set_own_end(20);
        r.follower_fetched(2, 0, 20, 20);
        assert_eq!(r.high_watermark(), 20);
    }

    #[test]
    fn a_follower_below_the_high_watermark_is_not_written_into_the_isr() {
        let r = all_at_ten(&[1, 2]);
        assert_eq!(r.caught_up(Duration::from_secs(10)), vec![3]);
        // Between the check and the write, the high watermark moved past follower 3.
        r.set_own_end(20);
        r.follower_fetched(2, 0, 20, 20);
        assert!(r.begin_isr_join(&[3], 5).is_empty(), "3 has 10, the high watermark is 20");
        assert!(r.begin_isr_join(&[3], 4).is_empty(), "based on a state not applied");
    }

    #[test]
    fn a_leadership_not_applied_yet_has_no_known_high_watermark() {
        // A follower at epoch 1 (leader 2) whose partition already says it leads at epoch
        // 2: its high watermark (a follower's hint, 0) is not the new leader's.
        let r = Replication::new(1, 0, shale_core::clock::system());
        r.apply(&PartitionState::new(vec![1, 2], 2, 1, vec![1, 2]), r.revision() + 1, 10);
        assert!(r.high_watermark_known_at(false, 1), "a follower's high watermark is a hint");
        assert!(!r.high_watermark_known_at(true, 2), "not applied yet: not known");
        r.apply(&PartitionState::new(vec![1], 1, 2, vec![1]), r.revision() + 1, 10);
        r.set_own_end(10);
        assert!(r.high_watermark_known_at(true, 2), "applied, and at the epoch start");
        assert!(!r.high_watermark_known_at(true, 3), "a later epoch is not applied yet");
    }

    #[test]
    fn a_new_leaders_high_watermark_is_unknown_until_it_reaches_the_epoch_start() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        r.apply(&PartitionState::new(vec![1, 2], 2, 1, vec![1, 2]), r.revision() + 1, 0);
        r.follower_hw(4, 10);
        assert!(r.high_watermark_known(), "a follower's high watermark is only a hint");
        let mut hw = r.subscribe();
        hw.borrow_and_update();
        // Broker 1 takes over with ten records; it learnt only four were committed.
        r.apply(&PartitionState::new(vec![1, 2], 1, 2, vec![1, 2]), r.revision() + 1, 10);
        r.set_own_end(10);
        assert!(hw.has_changed().unwrap(), "watchers learn the leadership moved");
        assert_eq!(r.high_watermark(), 4);
        assert!(!r.high_watermark_known());
        r.follower_fetched(2, 0, 10, 10);
        assert_eq!(r.high_watermark(), 10);
        assert!(r.high_watermark_known());
    }

    #[test]
    fn single_replica_hw_follows_the_own_end() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        members(&r, &[1], &[1], 1);
        r.set_own_end(42);
        assert_eq!(r.high_watermark(), 42);
        assert!(r.lagging(Duration::from_secs(1)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn followers_that_stop_catching_up_lag_and_rejoin_when_they_do() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        members(&r, &[1, 2], &[1, 2], 1);
        r.set_own_end(10);
        r.follower_fetched(2, 0, 0, 10);
        r.answered(2, 10);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(r.lagging(Duration::from_secs(2)), vec![2]);
        members(&r, &[1, 2], &[1], 1);
        r.follower_fetched(2, 0, 10, 10);
        assert_eq!(r.caught_up(Duration::from_secs(2)), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_rejoins_only_from_the_start_of_the_leaders_epoch() {
        // Leader 1 took over at epoch 2 with its log ending at 10; follower 3, still in the
        // ISR, holds the high watermark back at 5 (a stale one, learnt under epoch 1).
        let r = Replication::new(1, 0, shale_core::clock::system());
        r.apply(&PartitionState::new(vec![1, 2, 3], 1, 2, vec![1, 3]), r.revision() + 1, 10);
        r.set_own_end(12);
        r.follower_fetched(3, 0, 5, 12);
        assert_eq!(r.high_watermark(), 5);
        // Follower 2 is past the HW but below the epoch start: it may still hold a suffix
        // of epoch 1 that the new leader does not have (KAFKA-7128).
        r.follower_fetched(2, 0, 7, 12);
        assert!(r.caught_up(Duration::from_secs(2)).is_empty(), "below the epoch start");
        r.follower_fetched(2, 0, 10, 12);
        assert_eq!(r.caught_up(Duration::from_secs(2)), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_fetching_under_a_new_incarnation_is_lagging_at_once() {
        let r = Replication::new(1, 0, shale_core::clock::system());
        let mut state = PartitionState::new(vec![1, 2], 1, 1, vec![1, 2]);
        state.incarnations = [(1, 11), (2, 22)].into();
        r.apply(&state, r.revision() + 1, 10);
        r.set_own_end(10);
        r.follower_fetched(2, 22, 10, 10);
        assert!(r.lagging(Duration::from_secs(30)).is_empty());
        // Broker 2 restarted (it may have lost its disk) and reports the same position.
        r.follower_fetched(2, 23, 10, 10);
        assert_eq!(r.lagging(Duration::from_secs(30)), vec![2], "a new incarnation");
        assert_eq!(r.incarnation_of(2), 23);
    }
}
