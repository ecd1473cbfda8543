//! `shale.v1.Replica`: the leader's side of replication (ReplicaFetch,
//! OffsetForLeaderEpoch).

use shale_proto::status::into_status;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::broker::Broker;
use crate::broker::fetch::offset_out_of_range;
use shale_core::error::{Error, Reason};
use shale_proto::{convert, pb};

/// The Replica service over a broker.
#[derive(Debug, Clone)]
pub struct ReplicaService {
    broker: Arc<Broker>,
}

impl ReplicaService {
    /// Serves `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        ReplicaService { broker }
    }

    /// Answers one fetch of a follower: batches from its log end, or nothing after the wait.
    async fn answer(
        &self,
        req: &pb::ReplicaFetchRequest,
    ) -> Result<pb::ReplicaFetchResponse, Error> {
        let p = self.broker.leader_at_epoch(&req.topic, req.partition, req.leader_epoch)?;
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
                Some((epoch, end))
                    if epoch == req.last_fetched_epoch && end >= req.fetch_offset => {}
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
        let mut offsets = log.subscribe();
        let mut closed = p.closed_signal();
        if req.fetch_offset == log.log_end_offset() {
            // Nothing new: hold the fetch open until there is, or the wait runs out.
            let wait = Duration::from_millis(req.max_wait_ms.max(1) as u64);
            let more = offsets.wait_for(|o| o.log_end > req.fetch_offset);
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
        })
    }
}

/// The answer to a follower whose log diverges from the leader's below its fetch offset:
/// the leader's largest epoch at or below the follower's last one, and where it ends here.
fn diverging_epoch(
    p: &crate::broker::Partition,
    req: &pb::ReplicaFetchRequest,
    epoch: i32,
    end: i64,
) -> Error {
    Error::new(
        shale_core::error::ErrorKind::OutOfRange,
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

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::replica_server::Replica for ReplicaService {
    type ReplicaFetchStream = BoxStream<pb::ReplicaFetchResponse>;

    async fn replica_fetch(
        &self,
        request: Request<Streaming<pb::ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        let mut inbound = request.into_inner();
        let service = self.clone();
        let mut broker_closed = self.broker.closed_signal();
        let (tx, rx) = mpsc::channel(2);
        self.broker.spawn(async move {
            loop {
                let req = tokio::select! {
                    next = inbound.message() => match next {
                        Ok(Some(req)) => req,
                        _ => return,
                    },
                    _ = broker_closed.wait_for(|c| *c) => return,
                };
                let msg = match service.answer(&req).await {
                    Ok(m) => m,
                    Err(e) => {
                        // Tell the follower why, with our local log range, and end the stream.
                        let (start, end) = service
                            .broker
                            .partition(&req.topic, req.partition)
                            .map_or((-1, -1), |p| {
                                (p.log().log_start_offset(), p.log().log_end_offset())
                            });
                        let _ = tx
                            .send(Ok(pb::ReplicaFetchResponse {
                                batches: Bytes::new(),
                                high_watermark: -1,
                                log_start_offset: start,
                                leader_log_end: end,
                                error: Some(convert::error_to_proto(&e)),
                            }))
                            .await;
                        return;
                    }
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<pb::OffsetForLeaderEpochRequest>,
    ) -> Result<Response<pb::OffsetForLeaderEpochResponse>, Status> {
        let req = request.into_inner();
        let p = self
            .broker
            .leader_at_epoch(&req.topic, req.partition, req.current_leader_epoch)
            .map_err(into_status)?;
        let (leader_epoch, end_offset) =
            p.log().end_offset_for_epoch(req.leader_epoch).unwrap_or((-1, -1));
        Ok(Response::new(pb::OffsetForLeaderEpochResponse { leader_epoch, end_offset }))
    }
}
