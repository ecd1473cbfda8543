//! Background work of a broker: retention, periodic flush for `flush.policy=interval`, ISR
//! maintenance for the partitions it leads, and, for the consumer groups it coordinates,
//! removing expired members and refreshing lag for `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Broker;
use shale_core::topic_config::FlushPolicyKind;
use shale_meta::topics::PartitionState;

/// How often a leader checks its followers for the ISR.
const ISR_TICK: Duration = Duration::from_millis(200);

/// How often the interval flusher looks for due partitions.
const FLUSH_TICK: Duration = Duration::from_millis(20);

pub(super) fn start(broker: &Arc<Broker>) {
    let retention_every = Duration::from_millis(broker.settings.log.retention_check_interval_ms);
    let lag_every =
        Duration::from_millis(u64::from(broker.settings.groups.lag_metrics_interval_ms).max(100));
    let w = || Arc::downgrade(broker);
    let life = &broker.life;
    life.spawn(periodic(w(), retention_every, Serving::NotNeeded, retention_pass));
    life.spawn(flush_loop(w()));
    life.spawn(periodic(w(), ISR_TICK, Serving::Needed, isr_pass));
    life.spawn(periodic(w(), GROUP_SWEEP_TICK, Serving::Needed, |b| async move {
        b.groups().sweep(b.as_ref()).await
    }));
    life.spawn(periodic(w(), lag_every, Serving::Needed, |b| async move {
        if let Err(e) = b.groups().refresh_lag(b.as_ref()).await {
            tracing::debug!(error = %e, "refreshing group lag failed");
        }
    }));
}

/// How often expired group members are looked for.
const GROUP_SWEEP_TICK: Duration = Duration::from_millis(200);

/// Whether a periodic pass needs the broker to be serving (live, metadata caught up).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serving {
    Needed,
    NotNeeded,
}

/// Runs `pass` every `every` (delayed, never bunched up) until the broker is gone; with
/// `Serving::Needed`, ticks while the broker is not serving are skipped.
async fn periodic<F, Fut>(broker: Weak<Broker>, every: Duration, serving: Serving, pass: F)
where
    F: Fn(Arc<Broker>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if serving == Serving::Needed && b.check_serving().is_err() {
            continue;
        }
        pass(b).await;
    }
}

async fn retention_pass(b: Arc<Broker>) {
    // A failed log (fail-stop) was reported when it failed; it changes no more.
    for p in b.hosted().into_iter().filter(|p| p.log().failure().is_none()) {
        if let Err(e) = p.apply_retention().await {
            tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "retention failed");
        }
    }
}

async fn flush_loop(broker: Weak<Broker>) {
    let mut last_flush: HashMap<(String, u32), i64> = HashMap::new();
    let mut tick = tokio::time::interval(FLUSH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        let now = b.clock.now_ms();
        for p in b.hosted() {
            let config = p.config();
            if config.flush_policy != FlushPolicyKind::Interval {
                continue;
            }
            let key = (p.topic().to_string(), p.index());
            let last = *last_flush.entry(key.clone()).or_insert(now);
            let log = p.log();
            if now - last >= config.flush_ms as i64 && log.durable_offset() < log.log_end_offset() {
                if let Err(e) = p.flush().await {
                    tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "interval flush failed");
                }
                last_flush.insert(key, now);
            }
        }
    }
}

/// Shrinks the ISR of led partitions by followers that stopped catching up, and expands it
/// by followers that caught up again. Each change is a compare-and-swap on the partition
/// state read at this broker's leader epoch, so a deposed leader cannot write it.
async fn isr_pass(b: Arc<Broker>) {
    let max_lag = Duration::from_millis(b.settings.replication.lag_time_max_ms);
    for p in b.hosted().into_iter().filter(|p| p.is_leader()) {
        if let Some(reason) = p.log().failure() {
            hand_over_failed(&b, &p, &reason).await;
            continue;
        }
        let repl = p.replication();
        let lagging = repl.lagging(max_lag);
        let caught_up = repl.caught_up(max_lag);
        if lagging.is_empty() && caught_up.is_empty() {
            continue;
        }
        let key = (p.topic().to_string(), p.index());
        let Some((state, revision)) =
            b.view.cache.read().ok().and_then(|c| c.states.get(&key).cloned())
        else {
            continue;
        };
        if state.leader != b.id || state.leader_epoch != p.leader_epoch() {
            continue;
        }
        let isr: Vec<i32> = state
            .replicas
            .iter()
            .filter(|r| {
                **r == b.id
                    || (state.isr.contains(r) && !lagging.contains(r))
                    || caught_up.contains(r)
            })
            .copied()
            .collect();
        // The ISR records each member's incarnation: the leader's own, a rejoining
        // follower's as its fetches state it, the others' as recorded before.
        let incarnations = isr
            .iter()
            .filter_map(|r| {
                let known = match *r == b.id {
                    true => b.incarnation(),
                    false if caught_up.contains(r) => repl.incarnation_of(*r),
                    false => 0,
                };
                match known {
                    0 => state.incarnations.get(r).map(|i| (*r, *i)),
                    i => Some((*r, i)),
                }
            })
            .collect();
        if isr == state.isr && incarnations == state.incarnations {
            continue;
        }
        let next = PartitionState { isr, incarnations, ..state.clone() };
        match b.view.topics.update_partition(&key.0, key.1, &next, revision).await {
            Ok(true) => {
                tracing::info!(
                    topic = %key.0,
                    partition = key.1,
                    epoch = next.leader_epoch,
                    from = ?state.isr,
                    to = ?next.isr,
                    "isr changed"
                );
                p.set_state(&next);
            }
            Ok(false) => {} // changed meanwhile; the next resync brings the new state
            Err(e) => {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "isr update failed")
            }
        }
    }
}

/// A led partition whose log failed (fail-stop after a failed fsync) takes no writes here
/// again until the broker restarts: hand leadership to a live in-sync replica at a new
/// epoch, leaving the ISR. A compare-and-swap at this broker's epoch, like the ISR
/// changes.
async fn hand_over_failed(b: &Arc<Broker>, p: &Arc<super::Partition>, reason: &str) {
    let key = (p.topic().to_string(), p.index());
    let Some((state, revision, live)) = b.view.cache.read().ok().and_then(|c| {
        let (state, revision) = c.states.get(&key).cloned()?;
        let live: Vec<i32> =
            c.brokers.values().filter(|r| !b.view.obituaries.is_dead(r)).map(|r| r.id).collect();
        Some((state, revision, live))
    }) else {
        return;
    };
    if state.leader != b.id || state.leader_epoch != p.leader_epoch() {
        return;
    }
    let isr: Vec<i32> = state.isr.iter().copied().filter(|r| *r != b.id).collect();
    // Nobody else in sync: stay, refusing writes (LOG_FAILED), rather than go offline and
    // have the controller hand the partition straight back.
    let Some(leader) = state.replicas.iter().copied().find(|r| isr.contains(r) && live.contains(r))
    else {
        return;
    };
    let mut incarnations = state.incarnations.clone();
    incarnations.remove(&b.id);
    let next = PartitionState {
        leader,
        leader_epoch: state.leader_epoch + 1,
        isr,
        incarnations,
        replicas: state.replicas.clone(),
    };
    match b.view.topics.update_partition(&key.0, key.1, &next, revision).await {
        Ok(true) => {
            tracing::error!(topic = %key.0, partition = key.1, leader = next.leader,
                epoch = next.leader_epoch, reason, "the partition log failed here; leadership moved");
            p.set_state(&next);
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(topic = %key.0, partition = key.1, error = %e,
            "could not move leadership away from a failed log"),
    }
}
