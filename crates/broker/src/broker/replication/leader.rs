//! The leader's side of replication: answering a follower's `ReplicaFetch` (batches from
//! its log end up to ours, a long-poll when it has everything, its position credited
//! towards the high watermark only once its log is known to match ours, KIP-320) and
//! `OffsetForLeaderEpoch` (where an epoch ends here, KIP-101/279), and the refusals a
//! follower at the wrong epoch gets. `rpc/replica_service.rs` is the gRPC adapter over it.

use std::time::Duration;

use bytes::Bytes;

use crate::broker::fetch::offset_out_of_range;
use crate::broker::{Broker, Partition};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// Answers one fetch of a follower: batches from its log end, or nothing after the wait.
pub(crate) async fn answer(
    broker: &Broker,
    req: &pb::ReplicaFetchRequest,
) -> Result<pb::ReplicaFetchResponse, Error> {
    let p = broker.leader_at_epoch(&req.topic, req.partition, req.leader_epoch)?;
    let log = p.log().clone();
    let leader_end = log.log_end_offset();
    let start = log.log_start_offset();
    if req.fetch_offset < start || req.fetch_offset > leader_end {
        return Err(offset_out_of_range(req.fetch_offset, start, leader_end));
    }
    // Credit the follower with its position only once the log below it is known to be
    // ours: its last batch's epoch must run at least that far here (KIP-320).
    if req.last_fetched_epoch >= 0 && req.fetch_offset > start {
        match log.end_offset_for_epoch(req.last_fetched_epoch) {
            Some((epoch, end)) if epoch == req.last_fetched_epoch && end >= req.fetch_offset => {}
            other => {
                let (epoch, end) = other.unwrap_or((-1, start));
                return Err(diverging_epoch(&p, req, epoch, end));
            }
        }
    }
    p.replication().follower_fetched(
        req.replica_id,
        req.replica_incarnation,
        req.fetch_offset,
        leader_end,
    );
    p.replication().follower_log_start(req.replica_id, req.log_start_floor);
    let mut offsets = log.subscribe();
    let floor = offsets.borrow().start_floor;
    let mut closed = p.closed_signal();
    if req.fetch_offset == log.log_end_offset() {
        // Nothing new: hold the fetch open until there is, or the wait runs out; a log
        // start that DeleteRecords moves meanwhile is news too (it waits for followers).
        let wait = Duration::from_millis(req.max_wait_ms.max(1) as u64);
        let more = offsets.wait_for(|o| o.log_end > req.fetch_offset || o.start_floor > floor);
        tokio::select! {
            _ = tokio::time::timeout(wait, more) => {}
            _ = closed.wait_for(|c| *c) => return Err(Error::unavailable("partition closed")),
        }
    }
    let end = log.log_end_offset();
    let batches = if req.fetch_offset < end {
        let reader = log.clone();
        let (offset, max) = (req.fetch_offset, req.max_bytes.max(1024) as usize);
        // Followers read up to the leader's log end, not the high watermark.
        tokio::task::spawn_blocking(move || reader.read(offset, max, end))
            .await
            .map_err(|e| Error::internal(format!("replica read task failed: {e}")))??
            .bytes
    } else {
        Bytes::new()
    };
    p.replication().answered(req.replica_id, end);
    Ok(pb::ReplicaFetchResponse {
        batches,
        high_watermark: p.high_watermark(),
        log_start_offset: log.log_start_offset(),
        leader_log_end: end,
        error: None,
        log_start_floor: log.start_floor(),
    })
}

/// Where `epoch` ends in the log of the partition this broker leads at `current_epoch`:
/// the largest epoch at or below it and its end offset, or `(-1, -1)` when the log knows
/// none (a follower then truncates to its high watermark).
pub(crate) fn end_of_epoch(
    broker: &Broker,
    topic: &str,
    partition: u32,
    current_epoch: i32,
    epoch: i32,
) -> Result<(i32, i64), Error> {
    let p = broker.leader_at_epoch(topic, partition, current_epoch)?;
    Ok(end_of_epoch_on(&p, epoch))
}

/// Where `epoch` ends in `p`'s log: the largest epoch at or below it and its end offset,
/// or `(-1, -1)` when the log knows none.
pub(crate) fn end_of_epoch_on(p: &Partition, epoch: i32) -> (i32, i64) {
    p.log().end_offset_for_epoch(epoch).unwrap_or((-1, -1))
}

/// The answer to a follower whose log diverges from the leader's below its fetch offset:
/// the leader's largest epoch at or below the follower's last one, and where it ends here.
fn diverging_epoch(p: &Partition, req: &pb::ReplicaFetchRequest, epoch: i32, end: i64) -> Error {
    Error::new(
        ErrorKind::OutOfRange,
        Reason::DivergingEpoch,
        format!(
            "{}-{}: replica {} fetches from offset {} after a batch of epoch {}, but here \
             that epoch ends at {end} (largest epoch at or below it: {epoch}); truncate and \
             fetch again",
            p.topic(),
            p.index(),
            req.replica_id,
            req.fetch_offset,
            req.last_fetched_epoch
        ),
    )
    .with("diverging_epoch", epoch)
    .with("diverging_end_offset", end)
}

/// The error for a replica request at an epoch this broker does not lead.
pub(in crate::broker) fn fenced(p: &Partition, asked: i32) -> Error {
    let (leader, ours) = p.leadership();
    let message = format!(
        "{}-{}: request for leader epoch {asked}, but this broker is at epoch {ours} \
         (leader {leader})",
        p.topic(),
        p.index(),
    );
    if asked < ours {
        Error::new(ErrorKind::Fenced, Reason::FencedLeaderEpoch, message).with("leader_epoch", ours)
    } else {
        shale_core::error::not_leader(p.topic(), p.index(), (leader, ours), "", message)
    }
}
