//! ISR maintenance on the leader: a follower that stopped catching up leaves the in-sync
//! replicas, one that caught up again rejoins, and a leader whose log failed hands
//! leadership to a live in-sync replica. Every change is a compare-and-swap on the
//! partition state at this broker's leader epoch, so a deposed leader cannot write it.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{Broker, Partition};
use shale_meta::Revision;
use shale_meta::topics::PartitionState;

/// Shrinks the ISR of led partitions by followers that stopped catching up, and expands it
/// by followers that caught up again. Each change is a compare-and-swap on the partition
/// state read at this broker's leader epoch, so a deposed leader cannot write it.
pub(in crate::broker) async fn pass(b: Arc<Broker>) {
    let max_lag = Duration::from_millis(b.settings.replication.lag_time_max_ms);
    // Single-replica partitions (cheaply skipped: a broker may host 100,000) have no ISR
    // to change and nobody to hand a failed log to.
    for p in b.hosted().into_iter().filter(|p| p.is_leader()) {
        if !p.replication().has_other_replicas() {
            continue;
        }
        if let Some(reason) = p.log().failure() {
            hand_over_failed(&b, &p, &reason).await;
            continue;
        }
        let repl = p.replication();
        if let Some(base) = repl.pending_isr_join() {
            settle_isr_join(&b, &p, base).await;
            continue;
        }
        let lagging = repl.lagging(max_lag);
        let caught_up = repl.caught_up(max_lag);
        if lagging.is_empty() && caught_up.is_empty() {
            continue;
        }
        let key = (p.topic().to_string(), p.index());
        let Some((state, revision)) = led_state(&b, &p) else { continue };
        // Followers joining count in the high watermark from before the write can land
        // (Kafka's maximal ISR); one that fell below it since `caught_up` waits for the
        // next pass.
        let joining: Vec<i32> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| caught_up.contains(r) && !state.isr.contains(r))
            .collect();
        let joining = match joining.is_empty() {
            true => joining,
            false => repl.begin_isr_join(&joining, revision),
        };
        let isr: Vec<i32> = state
            .replicas
            .iter()
            .filter(|r| {
                **r == b.id
                    || (state.isr.contains(r) && !lagging.contains(r))
                    || joining.contains(r)
            })
            .copied()
            .collect();
        // The ISR records each member's incarnation: the leader's own, a joining
        // follower's as its fetches state it, the others' as recorded before.
        let incarnations = isr
            .iter()
            .filter_map(|r| {
                let known = match *r == b.id {
                    true => b.incarnation(),
                    false if joining.contains(r) => repl.incarnation_of(*r),
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
        match b.view.topics.replace_partition(&key.0, key.1, &next, revision).await {
            Ok(Some(written)) => {
                tracing::info!(
                    topic = %key.0,
                    partition = key.1,
                    epoch = next.leader_epoch,
                    from = ?state.isr,
                    to = ?next.isr,
                    "isr changed"
                );
                p.set_state(&next, written);
            }
            Ok(None) => {} // changed meanwhile; the next resync brings the new state
            Err(e) => {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "isr update failed")
            }
        }
    }
}

/// The cached state of `p` and its revision, if it still says this broker leads at the
/// epoch `p` applied: the only state this leader may write over.
fn led_state(b: &Broker, p: &Partition) -> Option<(PartitionState, Revision)> {
    let key = (p.topic().to_string(), p.index());
    let (state, revision) = b.view.cache.read().ok()?.states.get(&key).cloned()?;
    (state.leader == b.id && state.leader_epoch == p.leader_epoch()).then_some((state, revision))
}

/// Settles an ISR write (adding followers, based on the state at `base`) whose outcome
/// this leader has not learnt: it failed without an answer, or lost to another write not
/// applied here yet. Until then the joining followers hold the high watermark, and one
/// that died would hold it for good. If the key is still at `base`, the same state is
/// written again at `base`: once the key has moved on, the earlier write can never land,
/// so the followers can stop counting. If it moved on, the resync brings the outcome.
async fn settle_isr_join(b: &Arc<Broker>, p: &Arc<Partition>, base: Revision) {
    let key = (p.topic().to_string(), p.index());
    let Some((state, revision)) = led_state(b, p) else { return };
    if revision != base {
        return;
    }
    match b.view.topics.replace_partition(&key.0, key.1, &state, base).await {
        Ok(Some(written)) => p.set_state(&state, written),
        Ok(None) => {} // moved on meanwhile: the resync brings the outcome
        Err(e) => {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "isr update failed")
        }
    }
}

/// A led partition whose log failed (fail-stop after a failed fsync) takes no writes here
/// again until the broker restarts: hand leadership to a live in-sync replica at a new
/// epoch, leaving the ISR. A compare-and-swap at this broker's epoch, like the ISR
/// changes.
async fn hand_over_failed(b: &Arc<Broker>, p: &Arc<Partition>, reason: &str) {
    let key = (p.topic().to_string(), p.index());
    let Some((state, revision)) = led_state(b, p) else { return };
    let Some(live) = b.view.cache.read().ok().map(|c| {
        c.brokers
            .values()
            .filter(|r| !b.view.obituaries.is_dead(r))
            .map(|r| r.id)
            .collect::<Vec<i32>>()
    }) else {
        return;
    };
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
        ..state.clone()
    };
    match b.view.topics.replace_partition(&key.0, key.1, &next, revision).await {
        Ok(Some(written)) => {
            tracing::error!(topic = %key.0, partition = key.1, leader = next.leader,
                epoch = next.leader_epoch, reason, "the partition log failed here; leadership moved");
            p.set_state(&next, written);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(topic = %key.0, partition = key.1, error = %e,
            "could not move leadership away from a failed log"),
    }
}
