//! The follower side of replication: for each partition this broker follows, one task
//! truncates the log where it diverges from the leader's (by leader epoch, Kafka's
//! KIP-101/279), then keeps a `ReplicaFetch` stream open to the leader: append the batches
//! the leader sends (with the leader's offsets and epochs), fsync, report the new log end.
//! A new leader or epoch replaces the task.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::broker::{Broker, Partition, TopicPartition};
use shale_core::error::{Error, Reason};
use shale_meta::topics::PartitionState;
use shale_proto::pb;
use shale_proto::pb::replica_client::ReplicaClient;

/// Longest pause between attempts to reach a leader.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A running fetcher: the leader epoch it follows, and how to stop it.
#[derive(Debug)]
pub(in crate::broker) struct Running {
    epoch: i32,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Makes sure a fetcher follows `p` if this broker is a follower of it at `state`'s
    /// epoch, and that none runs otherwise.
    pub(in crate::broker) fn ensure_fetcher(&self, p: &Arc<Partition>, state: &PartitionState) {
        let key: TopicPartition = (p.topic().to_string(), p.index());
        let follower = state.leader >= 0 && state.leader != self.id;
        let Ok(mut fetchers) = self.replicas.fetchers.lock() else { return };
        if let Some(f) = fetchers.get(&key)
            && follower
            && f.epoch == state.leader_epoch
            && !f.task.is_finished()
        {
            return;
        }
        if let Some(f) = fetchers.remove(&key) {
            f.stop.cancel();
        }
        if follower {
            let Some(me) = self.self_ref.get().cloned() else { return };
            let stop = self.life.child_token();
            let fetch = run(me, p.clone(), state.leader, state.leader_epoch);
            let task = self.life.spawn_until(stop.clone(), fetch);
            fetchers.insert(key, Running { epoch: state.leader_epoch, stop, task });
        }
    }

    /// Stops the fetcher of a partition, if any.
    pub(in crate::broker) fn stop_fetcher(&self, key: &TopicPartition) {
        if let Ok(mut fetchers) = self.replicas.fetchers.lock()
            && let Some(f) = fetchers.remove(key)
        {
            f.stop.cancel();
        }
    }
}

/// Follows one partition at one leader epoch until superseded.
async fn run(broker: Weak<Broker>, p: Arc<Partition>, leader: i32, epoch: i32) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if p.leader_epoch() != epoch || p.leader() != leader {
            return;
        }
        match follow(&broker, &p, leader, epoch).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(
                    topic = p.topic(),
                    partition = p.index(),
                    leader,
                    epoch,
                    error = %e,
                    "replica fetch interrupted; retrying"
                );
                shale_core::clock::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn status(e: tonic::Status) -> Error {
    shale_proto::status::from_status(&e)
}

async fn follow(
    broker: &Weak<Broker>,
    p: &Arc<Partition>,
    leader: i32,
    epoch: i32,
) -> Result<(), Error> {
    let (client, me, incarnation, max_bytes, max_wait) = {
        let b = broker.upgrade().ok_or_else(|| Error::unavailable("broker closed"))?;
        let addr = b
            .broker_address(leader)
            .ok_or_else(|| Error::unavailable(format!("leader {leader} has no known address")))?;
        let r = &b.settings.replication;
        let client = ReplicaClient::new(b.peer(&addr)?);
        (client, b.id, b.incarnation(), r.fetch_max_bytes, r.fetch_max_wait_ms)
    };
    let mut client = client.max_decoding_message_size(usize::MAX);
    if let Some(tiered) = p.remote().and_then(|r| r.tiered_end())
        && p.log().log_end_offset() < tiered
    {
        // Everything below `tiered` is in the bucket (an empty disk after a broker was
        // replaced, or a long absence): copy only the untiered tail.
        reset(p, tiered, (leader, epoch)).await?;
    }
    truncate_to_leader(&mut client, p, (leader, epoch)).await?;

    let request = |fetch_offset: i64| pb::ReplicaFetchRequest {
        topic: p.topic().to_string(),
        partition: p.index(),
        replica_id: me,
        leader_epoch: epoch,
        fetch_offset,
        max_bytes,
        max_wait_ms: max_wait,
        replica_incarnation: incarnation,
        last_fetched_epoch: p.log().latest_epoch().map_or(-1, |e| e.epoch),
        log_start_floor: p.log().start_floor(),
    };
    // Report only what is fsynced here: the leader counts it towards the high watermark.
    let log = p.log().clone();
    log.flush_until(log.log_end_offset()).await?;
    let (tx, rx) = mpsc::channel(2);
    let closed = || Error::unavailable("replica fetch stream closed");
    tx.send(request(log.log_end_offset())).await.map_err(|_| closed())?;
    let mut stream =
        client.replica_fetch(ReceiverStream::new(rx)).await.map_err(status)?.into_inner();
    while let Some(resp) = stream.message().await.map_err(status)? {
        if p.leader_epoch() != epoch {
            return Ok(());
        }
        if let Some(err) = &resp.error {
            let e = shale_proto::convert::error_from_proto(err);
            repair_after_refusal(p, &e, &resp, (leader, epoch)).await?;
            return Err(e);
        }
        if !resp.batches.is_empty() {
            if p.is_joining() {
                let bytes = resp.batches.len() as u64;
                joining_copied(broker, p, bytes).await;
            }
            // A blocking step that runs to its end even if this task is aborted (this
            // broker became leader meanwhile): batch and producer state land together.
            // It fsyncs too, on the same thread (unless the volume shares fsync rounds):
            // one hop per fetch, where the fetch loop would wait for a flusher anyway.
            let part = p.clone();
            let batches = resp.batches;
            let appended = tokio::task::spawn_blocking(move || -> Result<bool, Error> {
                let appended = part.append_replicated(leader, epoch, &batches)?;
                if appended {
                    part.log().flush_here()?;
                }
                Ok(appended)
            })
            .await
            .map_err(|e| Error::internal(format!("replica append task failed: {e}")))??;
            if !appended {
                return Ok(());
            }
            // At once when fsynced above.
            log.flush_until(log.log_end_offset()).await?;
        }
        let end = log.log_end_offset();
        p.replication().follower_hw(resp.high_watermark, end);
        if resp.log_start_floor > log.start_floor() {
            learn_log_start(p, resp.log_start_floor).await?;
        }
        tx.send(request(end)).await.map_err(|_| closed())?;
    }
    Err(closed())
}

/// Counts what a replica joining in a reassignment copied, and waits out the broker's
/// move throttle: the bytes are charged when they arrive, so the next fetch goes out only
/// once the copy is back under the rate.
async fn joining_copied(broker: &Weak<Broker>, p: &Arc<Partition>, bytes: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    p.count_copied(bytes);
    let Some(b) = broker.upgrade() else { return };
    b.replicas.move_copied_bytes.fetch_add(bytes, Relaxed);
    let wait = match &b.replicas.move_throttle {
        Some(bucket) => match bucket.lock() {
            Ok(mut bucket) => bucket.take(bytes, shale_core::clock::monotonic_now()),
            Err(_) => Duration::ZERO,
        },
        None => Duration::ZERO,
    };
    drop(b);
    if !wait.is_zero() {
        if let Some(b) = broker.upgrade() {
            b.replicas.move_throttled_ms.fetch_add(wait.as_millis() as u64, Relaxed);
        }
        shale_core::clock::sleep(wait).await;
    }
}

/// What a follower does when its leader refuses a fetch, before it reconnects: cut its log
/// where it is ahead of or diverges from the leader's, or start again where the leader's
/// local log starts. Any other refusal needs nothing here.
async fn repair_after_refusal(
    p: &Arc<Partition>,
    e: &Error,
    resp: &pb::ReplicaFetchResponse,
    following: (i32, i32),
) -> Result<(), Error> {
    let log = p.log();
    let end = log.log_end_offset();
    if e.reason == Reason::OffsetOutOfRange && resp.leader_log_end >= 0 && end > resp.leader_log_end
    {
        // Ahead of the leader (its unacknowledged tail was lost): cut ours to match.
        truncate(p, resp.leader_log_end, following).await?;
    } else if e.reason == Reason::DivergingEpoch {
        // Our log below the fetch offset is not the leader's: cut it where the
        // leader's epoch ends (and ours, if we know that epoch to end sooner).
        let detail = |k: &str| e.details.get(k).and_then(|v| v.parse::<i64>().ok());
        if let (Some(epoch), Some(mut target)) =
            (detail("diverging_epoch"), detail("diverging_end_offset"))
        {
            if let Some((_, own)) = log.end_offset_for_epoch(epoch as i32) {
                target = target.min(own);
            }
            if target < end {
                truncate(p, target.max(log.log_start_offset()), following).await?;
            }
        }
    } else if e.reason == Reason::OffsetOutOfRange && resp.log_start_offset > end {
        // Behind what the leader keeps locally (older data went to the bucket, or
        // expired): start again where the leader's local log starts.
        reset(p, resp.log_start_offset, following).await?;
    }
    Ok(())
}

/// Cuts the local log where it diverges from the leader's, by leader epoch.
async fn truncate_to_leader(
    client: &mut ReplicaClient<Channel>,
    p: &Arc<Partition>,
    following: (i32, i32),
) -> Result<(), Error> {
    let log = p.log();
    let Some(latest) = log.leader_epochs().last().copied() else { return Ok(()) };
    let resp = client
        .offset_for_leader_epoch(pb::OffsetForLeaderEpochRequest {
            topic: p.topic().to_string(),
            partition: p.index(),
            leader_epoch: latest.epoch,
            current_leader_epoch: following.1,
        })
        .await
        .map_err(status)?
        .into_inner();
    if resp.leader_epoch < 0 {
        // The leader knows no epoch at or below ours; the fetch settles the rest.
        return Ok(());
    }
    let mut target = resp.end_offset;
    if resp.leader_epoch < latest.epoch {
        // We have epochs the leader never saw: ours end where that epoch ends here, too.
        if let Some((_, own_end)) = log.end_offset_for_epoch(resp.leader_epoch) {
            target = target.min(own_end);
        }
    }
    if target < log.log_end_offset() {
        truncate(p, target, following).await?;
    }
    Ok(())
}

/// Raises this replica's log start to the leader's (DeleteRecords), no further than its
/// own log end, durably, before the next fetch reports it: the leader answers DeleteRecords
/// once every in-sync replica has it, so a later leader refuses the deleted records too.
async fn learn_log_start(p: &Arc<Partition>, leader_floor: i64) -> Result<(), Error> {
    let log = p.log().clone();
    let start = tokio::task::spawn_blocking(move || {
        log.advance_log_start(leader_floor.min(log.log_end_offset()))
    })
    .await
    .map_err(|e| Error::internal(format!("log start task failed: {e}")))??;
    tracing::debug!(
        topic = p.topic(),
        partition = p.index(),
        log_start = start,
        "log start raised to the leader's"
    );
    Ok(())
}

/// Cuts the log at `offset` while this broker follows `following` (leader, epoch).
async fn truncate(p: &Arc<Partition>, offset: i64, following: (i32, i32)) -> Result<(), Error> {
    let from = p.log().log_end_offset();
    let part = p.clone();
    let cut = tokio::task::spawn_blocking(move || part.truncate_to(offset, following))
        .await
        .map_err(|e| Error::internal(format!("truncate task failed: {e}")))??;
    let Some(to) = cut else { return Ok(()) };
    tracing::info!(
        topic = p.topic(),
        partition = p.index(),
        from,
        to,
        "truncated to the leader's log"
    );
    Ok(())
}

/// Restarts the log at `offset` while this broker follows `following` (leader, epoch).
async fn reset(p: &Arc<Partition>, offset: i64, following: (i32, i32)) -> Result<(), Error> {
    let from = p.log().log_end_offset();
    let part = p.clone();
    let reset = tokio::task::spawn_blocking(move || part.reset_to(offset, following))
        .await
        .map_err(|e| Error::internal(format!("reset task failed: {e}")))??;
    if !reset {
        return Ok(());
    }
    tracing::info!(
        topic = p.topic(),
        partition = p.index(),
        from,
        to = offset,
        "log restarted at a later offset; older data is in the bucket or expired"
    );
    Ok(())
}
