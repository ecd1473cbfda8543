//! The heartbeat task of a [`GroupConsumer`](super::GroupConsumer): sends what the consumer
//! owns, receives the assignment, and notices fencing and session loss.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use shale_core::clock::monotonic_now;
use shale_core::error::{ErrorKind, Reason};
use shale_proto::pb;

use super::{GroupConfig, Shared, Tp, lock};
use crate::{Client, status_error};

/// Heartbeats to the group's coordinator in a task of its own, so slow processing between
/// polls does not cost the membership; hands what it receives to the consumer.
///
/// One function on purpose: a single loop whose state (backoff, the coordinator's
/// address, the last answer) lives in its locals; the consumer applies what it received
/// (`GroupConsumer::reconcile`).
pub(super) async fn heartbeat_loop(
    client: Client,
    config: GroupConfig,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    wake: Arc<Notify>,
) {
    let mut interval = Duration::from_millis(500);
    loop {
        let request = {
            let s = lock(&shared);
            if s.fenced.is_some() {
                // Wait for the consumer to drop its partitions first.
                None
            } else {
                // Epoch 0 joins; a member's epochs start at 1, so one that has applied
                // nothing yet sends 1 (the coordinator then trusts `owned` only at epoch 1).
                let joining = s.member_id.is_empty();
                Some(pb::HeartbeatRequest {
                    group: config.group.clone(),
                    member_id: s.member_id.clone(),
                    member_epoch: if joining { 0 } else { s.applied_epoch.max(1) },
                    topics: config.topics.clone(),
                    topic_pattern: config.topic_pattern.clone().unwrap_or_default(),
                    owned: to_pb(&s.applied),
                    assignor: config.assignor.clone(),
                    session_timeout_ms: config.session_timeout.as_millis() as u32,
                    client_id: config.client_id.clone(),
                    share: false,
                })
            }
        };
        if let Some(request) = request {
            let joining = request.member_epoch == 0;
            // The coordinator vouched for the assignment no earlier than this: the session
            // (after which this member drops its partitions) counts from here, never from
            // the answer's arrival, so a slow answer cannot stretch the ownership.
            let sent = monotonic_now();
            let result = match client.groups_rpc() {
                Ok(mut rpc) => rpc.heartbeat(request).await.map_err(|s| status_error(&s)),
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let mut s = lock(&shared);
                    s.member_id = resp.member_id;
                    s.last_ok = sent;
                    if joining {
                        s.applied_epoch = 0;
                    }
                    if resp.member_epoch != s.received_epoch || joining {
                        s.received_epoch = resp.member_epoch;
                        s.received = shale_proto::convert::partition_set(&resp.assignment);
                        drop(s);
                        changed.notify_one();
                    }
                    interval = Duration::from_millis(u64::from(resp.heartbeat_interval_ms.max(50)));
                }
                Err(e) if e.kind == ErrorKind::Fenced => {
                    lock(&shared).fenced = Some(e);
                    changed.notify_one();
                }
                Err(e) if e.kind.is_retriable() || e.reason == Reason::GrpcError => {
                    tracing::debug!(error = %e, "heartbeat failed; retrying");
                    client.next_bootstrap();
                    interval = Duration::from_millis(200);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat refused");
                    lock(&shared).failed = Some(e);
                    changed.notify_one();
                    interval = Duration::from_secs(1);
                }
            }
        }
        tokio::select! {
            _ = shale_core::clock::sleep(interval) => {}
            _ = wake.notified() => {}
        }
    }
}

fn to_pb(set: &BTreeSet<Tp>) -> Vec<pb::TopicPartitions> {
    shale_proto::convert::partition_set_to_proto(set)
}
