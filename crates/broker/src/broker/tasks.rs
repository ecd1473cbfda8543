//! Background work of a broker: retention, ISR
//! maintenance for the partitions it leads (`replication/isr.rs`), for the consumer groups it coordinates,
//! removing expired members and refreshing lag for `/metrics` (and dropping share
//! partitions it no longer leads), and the transaction coordinator's sweep.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Broker;

/// How often a leader checks its followers for the ISR (`replication::isr::pass`).
const ISR_TICK: Duration = Duration::from_millis(200);

pub(super) fn start(broker: &Arc<Broker>) {
    let retention_every = Duration::from_millis(broker.settings.log.retention_check_interval_ms);
    let lag_every =
        Duration::from_millis(u64::from(broker.settings.groups.lag_metrics_interval_ms).max(100));
    let w = || Arc::downgrade(broker);
    let life = &broker.life;
    life.spawn(periodic(w(), retention_every, Serving::NotNeeded, retention_pass));
    life.spawn(periodic(w(), ISR_TICK, Serving::Needed, super::replication::isr::pass));
    life.spawn(periodic(w(), LOAD_EVERY, Serving::Needed, publish_load));
    life.spawn(periodic(w(), GROUP_SWEEP_TICK, Serving::Needed, |b| async move {
        b.groups().sweep(b.as_ref()).await;
        // Share partitions this broker no longer leads are dropped from memory.
        b.groups().shares().retain(|k| b.partition(&k.topic, k.partition).is_ok());
    }));
    life.spawn(periodic(w(), TXN_SWEEP_EVERY, Serving::Needed, super::txn_host::sweep));
    life.spawn(periodic(w(), lag_every, Serving::Needed, |b| async move {
        if let Err(e) = b.groups().refresh_lag(b.as_ref()).await {
            tracing::debug!(error = %e, "refreshing group lag failed");
        }
    }));
}

/// How often a broker publishes the local bytes of the partitions it leads (`loads/{id}`,
/// the balancer's weights).
const LOAD_EVERY: Duration = Duration::from_secs(30);

async fn publish_load(b: Arc<Broker>) {
    let partitions = b
        .hosted()
        .into_iter()
        .filter(|p| p.is_leader())
        .map(|p| (p.topic().to_string(), p.index(), p.log().size_bytes()))
        .collect();
    let load = shale_meta::topics::LoadRecord { broker: b.id, partitions };
    if let Err(e) = b.view.topics.publish_load(&load, b.view.membership.lease()).await {
        tracing::debug!(error = %e, "publishing partition sizes failed");
    }
}

/// How often the transaction coordinator looks for transactions to finish or abort (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
const TXN_SWEEP_EVERY: Duration = Duration::from_secs(10);

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
