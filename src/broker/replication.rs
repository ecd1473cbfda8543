//! Replication state of one hosted partition: the replicas and in-sync replicas (ISR) from
//! the partition state, each follower's log end and when it was last caught up (kept by
//! the leader), and the high watermark.
//!
//! The high watermark (HW) is the offset below which every ISR member has the data durably:
//! on the leader, the minimum of its own visible end (durable end under
//! `flush.policy=always`) and each in-sync follower's reported log end (followers report
//! only after append + fsync). It never moves backwards on a leader. Consumers read below
//! it, and `acks=all` waits for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Reported log end (everything below is fsynced there); -1 until the first fetch.
    log_end: i64,
    /// Last time the follower had everything the leader had (Kafka's lastCaughtUpTime).
    last_caught_up: Instant,
    /// The leader's log end when it last answered this follower, and when.
    answered: Option<(i64, Instant)>,
}

#[derive(Debug)]
struct Inner {
    leader: bool,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    followers: HashMap<i32, Follower>,
    own_end: i64,
}

/// Replicas, ISR, follower progress and the high watermark of one partition.
#[derive(Debug)]
pub struct Replication {
    broker_id: i32,
    inner: Mutex<Inner>,
    hw_tx: watch::Sender<i64>,
}

impl Replication {
    /// State for a partition opened with high watermark `hw`.
    pub fn new(broker_id: i32, hw: i64) -> Self {
        Replication {
            broker_id,
            inner: Mutex::new(Inner {
                leader: false,
                replicas: vec![],
                isr: vec![],
                followers: HashMap::new(),
                own_end: hw,
            }),
            hw_tx: watch::channel(hw).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies replicas, ISR and leadership from the partition state. A new leadership
    /// forgets follower positions: they are learnt again from the followers' fetches.
    pub fn set_members(&self, replicas: &[i32], isr: &[i32], leader: bool) {
        let mut inner = self.lock();
        if leader && !inner.leader {
            let now = Instant::now();
            inner.followers = replicas
                .iter()
                .filter(|id| **id != self.broker_id)
                .map(|id| (*id, Follower { log_end: -1, last_caught_up: now, answered: None }))
                .collect();
        }
        inner.leader = leader;
        inner.replicas = replicas.to_vec();
        inner.isr = isr.to_vec();
        self.recompute(&inner);
    }

    /// Replicas as last applied.
    pub fn replicas(&self) -> Vec<i32> {
        self.lock().replicas.clone()
    }

    /// In-sync replicas as last applied.
    pub fn isr(&self) -> Vec<i32> {
        self.lock().isr.clone()
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        *self.hw_tx.borrow()
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

    /// A follower asked for data from `fetch_offset` (its durable log end) while the
    /// leader's log ended at `leader_log_end`.
    pub fn follower_fetched(&self, id: i32, fetch_offset: i64, leader_log_end: i64) {
        let mut inner = self.lock();
        let now = Instant::now();
        let f = inner.followers.entry(id).or_insert(Follower {
            log_end: -1,
            last_caught_up: now,
            answered: None,
        });
        f.log_end = fetch_offset;
        // Kafka's rule: caught up now if it has everything the leader has; else caught up as
        // of the last answer if it has everything the leader had then.
        if fetch_offset >= leader_log_end {
            f.last_caught_up = now;
        } else if let Some((leo, at)) = f.answered {
            if fetch_offset >= leo {
                f.last_caught_up = f.last_caught_up.max(at);
            }
        }
        self.recompute(&inner);
    }

    /// The leader answered a follower's fetch while its own log ended at `leader_log_end`.
    pub fn answered(&self, id: i32, leader_log_end: i64) {
        let mut inner = self.lock();
        if let Some(f) = inner.followers.get_mut(&id) {
            f.answered = Some((leader_log_end, Instant::now()));
        }
    }

    /// ISR members (other than the leader) not caught up within `max_lag`.
    pub fn lagging(&self, max_lag: Duration) -> Vec<i32> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .isr
            .iter()
            .filter(|id| **id != self.broker_id)
            .filter(|id| {
                inner
                    .followers
                    .get(id)
                    .is_none_or(|f| now.duration_since(f.last_caught_up) > max_lag)
            })
            .copied()
            .collect()
    }

    /// Replicas outside the ISR that have caught up to the high watermark recently.
    pub fn caught_up(&self, max_lag: Duration) -> Vec<i32> {
        let inner = self.lock();
        let hw = self.high_watermark();
        let now = Instant::now();
        inner
            .replicas
            .iter()
            .filter(|id| **id != self.broker_id && !inner.isr.contains(id))
            .filter(|id| {
                inner.followers.get(id).is_some_and(|f| {
                    f.log_end >= hw
                        && f.log_end >= 0
                        && now.duration_since(f.last_caught_up) <= max_lag
                })
            })
            .copied()
            .collect()
    }

    /// Caps the high watermark at this replica's log end (after a follower truncates).
    pub fn cap(&self, log_end: i64) {
        self.hw_tx.send_if_modified(|hw| {
            if *hw > log_end {
                *hw = log_end;
                true
            } else {
                false
            }
        });
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
        for id in inner.isr.iter().filter(|id| **id != self.broker_id) {
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

    #[test]
    fn hw_is_the_minimum_over_the_isr_and_never_moves_back() {
        let r = Replication::new(1, 0);
        r.set_members(&[1, 2, 3], &[1, 2, 3], true);
        r.set_own_end(10);
        assert_eq!(r.high_watermark(), 0, "followers not heard from yet");
        r.follower_fetched(2, 7, 10);
        r.follower_fetched(3, 5, 10);
        assert_eq!(r.high_watermark(), 5);
        r.follower_fetched(3, 10, 10);
        assert_eq!(r.high_watermark(), 7);
        // Shrinking the ISR to the leader lets the HW follow the leader alone.
        r.set_members(&[1, 2, 3], &[1], true);
        assert_eq!(r.high_watermark(), 10);
        r.set_members(&[1, 2, 3], &[1, 2], true);
        assert_eq!(r.high_watermark(), 10, "never backwards");
    }

    #[test]
    fn single_replica_hw_follows_the_own_end() {
        let r = Replication::new(1, 0);
        r.set_members(&[1], &[1], true);
        r.set_own_end(42);
        assert_eq!(r.high_watermark(), 42);
        assert!(r.lagging(Duration::from_secs(1)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn followers_that_stop_catching_up_lag_and_rejoin_when_they_do() {
        let r = Replication::new(1, 0);
        r.set_members(&[1, 2], &[1, 2], true);
        r.set_own_end(10);
        r.follower_fetched(2, 0, 10);
        r.answered(2, 10);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(r.lagging(Duration::from_secs(2)), vec![2]);
        r.set_members(&[1, 2], &[1], true);
        r.follower_fetched(2, 10, 10);
        assert_eq!(r.caught_up(Duration::from_secs(2)), vec![2]);
    }
}
