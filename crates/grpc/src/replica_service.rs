//! `shale.v1.Replica` over gRPC: the stream plumbing of `ReplicaFetch` and the unary
//! `OffsetForLeaderEpoch`, `WriteTxnMarker` and `AddPartitionToTxn`. What the leader answers is the broker's (`api::replica`).

use shale_proto::status::into_status;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use shale_broker::api::Api;
use shale_proto::{convert, pb};

/// The Replica service over a broker.
#[derive(Debug, Clone)]
pub struct ReplicaService {
    api: Api,
}

impl ReplicaService {
    /// Serves `api`.
    pub fn new(api: Api) -> Self {
        ReplicaService { api }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::replica_server::Replica for ReplicaService {
    type ReplicaFetchStream = BoxStream<pb::ReplicaFetchResponse>;

    async fn replica_fetch(
        &self,
        request: Request<Streaming<pb::ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        let who = crate::auth_layer::identity(&request);
        self.api.check_broker(&who, "ReplicaFetch").map_err(into_status)?;
        let mut inbound = request.into_inner();
        let service = self.clone();
        let mut broker_closed = self.api.closed_signal();
        let (tx, rx) = mpsc::channel(2);
        self.api.spawn(async move {
            loop {
                let req = tokio::select! {
                    next = inbound.message() => match next {
                        Ok(Some(req)) => req,
                        _ => return,
                    },
                    _ = broker_closed.wait_for(|c| *c) => return,
                };
                let msg = match service.api.replica_fetch(&req).await {
                    Ok(m) => m,
                    Err(e) => {
                        // Tell the follower why, with our local log range, and end the stream.
                        let (start, end) = service.api.leader_log_range(&req.topic, req.partition);
                        let _ = tx
                            .send(Ok(pb::ReplicaFetchResponse {
                                batches: Bytes::new(),
                                high_watermark: -1,
                                log_start_offset: start,
                                leader_log_end: end,
                                error: Some(convert::error_to_proto(&e)),
                                log_start_floor: 0,
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
        let who = crate::auth_layer::identity(&request);
        self.api.check_broker(&who, "OffsetForLeaderEpoch").map_err(into_status)?;
        let req = request.into_inner();
        let (leader_epoch, end_offset) = self
            .api
            .end_of_epoch(&req.topic, req.partition, req.current_leader_epoch, req.leader_epoch)
            .map_err(into_status)?;
        Ok(Response::new(pb::OffsetForLeaderEpochResponse { leader_epoch, end_offset }))
    }

    async fn write_txn_marker(
        &self,
        request: Request<pb::WriteTxnMarkerRequest>,
    ) -> Result<Response<pb::WriteTxnMarkerResponse>, Status> {
        let who = crate::auth_layer::identity(&request);
        self.api.check_broker(&who, "WriteTxnMarker").map_err(into_status)?;
        let offset = self.api.write_txn_marker(&request.into_inner()).await.map_err(into_status)?;
        Ok(Response::new(pb::WriteTxnMarkerResponse { offset }))
    }

    async fn add_partition_to_txn(
        &self,
        request: Request<pb::AddPartitionToTxnRequest>,
    ) -> Result<Response<pb::AddPartitionToTxnResponse>, Status> {
        let who = crate::auth_layer::identity(&request);
        self.api.check_broker(&who, "AddPartitionToTxn").map_err(into_status)?;
        self.api.add_partition_to_txn(&request.into_inner()).await.map_err(into_status)?;
        Ok(Response::new(pb::AddPartitionToTxnResponse {}))
    }

    async fn add_txn_offsets(
        &self,
        request: Request<pb::AddTxnOffsetsRequest>,
    ) -> Result<Response<pb::AddTxnOffsetsResponse>, Status> {
        let who = crate::auth_layer::identity(&request);
        self.api.check_broker(&who, "AddTxnOffsets").map_err(into_status)?;
        self.api.add_txn_offsets(&request.into_inner()).await.map_err(into_status)?;
        Ok(Response::new(pb::AddTxnOffsetsResponse {}))
    }
}
