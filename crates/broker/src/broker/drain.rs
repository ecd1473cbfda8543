//! Controlled shutdown (SIGTERM): stop taking produce, hand every leadership that has
//! another live in-sync replica over to it, let uploads in flight finish, then close.
//!
//! Produce is refused first (a retriable `BROKER_DRAINING`), so followers reach the
//! leader's log end before the hand-over and nothing needs truncating. Then the broker marks
//! its registration `draining`; from then on the other brokers coordinate its consumer
//! groups (it forwards their requests), so members see no coordinator vanish when it
//! leaves. The controller moves each of its leaderships to a staying in-sync replica, at a
//! new epoch. That replica holds every acknowledged record, because
//! acks=all waits for the whole ISR. Clients follow the new leaders by metadata, as on any
//! leader change. Partitions with no other in-sync replica keep their leader until the
//! broker leaves, then go offline as on a crash. They come back when it returns.

use std::time::Duration;

use super::Broker;
use shale_core::error::{Error, ErrorKind, Reason};

/// What a drain achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Partitions this broker led when the drain started.
    pub led_before: usize,
    /// Partitions it still led when it finished: no other in-sync replica, or the timeout.
    pub led_after: usize,
    /// Of those, how many had a staying in-sync replica (non-zero only on timeout).
    pub movable_after: usize,
    /// Whether the uploads in flight finished (false: the timeout cut them off).
    pub uploads_finished: bool,
}

/// The answer to produce while draining.
pub(super) fn draining_error(id: i32) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        Reason::BrokerDraining,
        format!(
            "broker {id} is shutting down and handing its partitions to in-sync replicas; \
             retry (the new leader is in the metadata within moments)"
        ),
    )
}

impl Broker {
    /// Whether a controlled shutdown is under way.
    pub fn is_draining(&self) -> bool {
        self.life.is_draining()
    }

    /// Led partitions, and how many of them have a live in-sync replica on a broker that
    /// is not draining (they can move).
    fn leadership(&self) -> (usize, usize) {
        let led: Vec<_> = self.hosted().into_iter().filter(|p| p.is_leader()).collect();
        let Ok(cache) = self.view.cache.read() else { return (led.len(), 0) };
        let movable = led
            .iter()
            .filter(|p| {
                cache.states.get(&(p.topic().to_string(), p.index())).is_some_and(|(s, _)| {
                    s.isr
                        .iter()
                        .any(|r| *r != self.id && cache.brokers.get(r).is_some_and(|b| !b.draining))
                })
            })
            .count();
        (led.len(), movable)
    }

    /// Drains the broker (see the module docs); bounded by `timeout`. Serving continues
    /// for fetches and replication; `close` ends the rest.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let deadline = self.clock.instant() + timeout;
        if !self.life.start_draining() {
            return DrainReport::default();
        }
        let (led_before, movable) = self.leadership();
        tracing::info!(broker = self.id, led = led_before, movable, "draining");
        // Also with nothing to move: the flag hands the consumer groups this broker
        // coordinates to a staying broker while it still forwards their requests.
        if (movable > 0 || self.live_brokers().len() > 1)
            && let Err(e) = self.view.membership.set_draining().await
        {
            tracing::warn!(error = %e, "could not mark the registration draining; leaders move when the broker leaves");
        }
        // Leadership changes arrive by watch; look again on every resync and at least
        // every 50 ms.
        let mut synced = self.view.synced_tx.subscribe();
        let (mut led_after, mut movable_after) = self.leadership();
        while movable_after > 0 && self.clock.instant() < deadline {
            let wake = deadline.min(self.clock.instant() + Duration::from_millis(50));
            let _ = tokio::time::timeout_at(wake, synced.changed()).await;
            (led_after, movable_after) = self.leadership();
        }
        let _ = tokio::time::timeout_at(deadline, shale_core::failpoint::hold("drain.hold")).await;
        // The uploader starts no pass while draining; wait for the one in flight.
        let uploads_finished =
            tokio::time::timeout_at(deadline, self.tier.upload_pass.clone().lock_owned())
                .await
                .is_ok();
        let report = DrainReport { led_before, led_after, movable_after, uploads_finished };
        if movable_after > 0 || !uploads_finished {
            tracing::warn!(broker = self.id, ?report, "drain timed out; closing anyway");
        } else {
            tracing::info!(broker = self.id, ?report, "drained");
        }
        report
    }
}
