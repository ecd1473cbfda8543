//! Background work of a broker: retention and periodic flush for `flush.policy=interval`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Broker;
use crate::topic_config::FlushPolicyKind;

/// How often the interval flusher looks for due partitions.
const FLUSH_TICK: Duration = Duration::from_millis(20);

pub(super) fn start(broker: &Arc<Broker>) {
    let retention_every = Duration::from_millis(broker.settings.log.retention_check_interval_ms);
    let handles = vec![
        tokio::spawn(retention_loop(Arc::downgrade(broker), retention_every)),
        tokio::spawn(flush_loop(Arc::downgrade(broker))),
    ];
    if let Ok(mut tasks) = broker.tasks.lock() {
        tasks.extend(handles);
    }
}

async fn retention_loop(broker: Weak<Broker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        for p in b.hosted() {
            if let Err(e) = p.apply_retention().await {
                tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "retention failed");
            }
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
