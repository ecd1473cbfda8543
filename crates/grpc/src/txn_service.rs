//! `shale.v1.Transactions`: a transactional producer's calls and their administration.
//! Calls for a transactional id run at its coordinator (forwarded there from any broker);
//! `SendOffsets` and `ListTransactions` are served by any broker.

use tonic::{Request, Response, Status};

use crate::convert;
use crate::forward::{self, Coordinated, acting};
use shale_broker::api::{Api, Identity, TxnFilter, TxnRecord};
use shale_core::error::Error;
use shale_proto::pb;
use shale_proto::pb::transactions_client::TransactionsClient;
use shale_proto::status::into_status;

/// Kafka's default `transaction.timeout.ms`, for a request that names none.
const DEFAULT_TIMEOUT_MS: u32 = 60_000;

/// The Transactions service over a broker.
#[derive(Debug, Clone)]
pub struct TransactionsService {
    api: Api,
}

impl TransactionsService {
    /// Serves `api`.
    pub fn new(api: Api) -> Self {
        TransactionsService { api }
    }

    /// Who `request` acts for, and where its transactional id's call runs: here (`None`)
    /// or at the coordinator's channel.
    fn route<T>(
        &self,
        request: &Request<T>,
        id: &str,
    ) -> Result<(Identity, Option<TransactionsClient<tonic::transport::Channel>>), Status> {
        let who = acting(&self.api, request).map_err(into_status)?;
        if id.is_empty() {
            return Err(into_status(Error::invalid("a transactional id must not be empty")));
        }
        let coordinator = self.api.txn_coordinator(id);
        let forwarded = forward::was_forwarded(request);
        let at =
            forward::route(&self.api, (Coordinated::TransactionalId, id), coordinator, forwarded)
                .map_err(into_status)?;
        Ok((who, at.map(TransactionsClient::new)))
    }

    fn forwarding<T>(&self, who: &Identity, msg: T) -> Result<Request<T>, Status> {
        forward::forwarding(&self.api, who, msg).map_err(into_status)
    }
}

/// A producer's (id, epoch) as the wire carries it.
fn producer(id: i64, epoch: i32) -> Result<(i64, i16), Status> {
    let epoch = i16::try_from(epoch).map_err(|_| {
        into_status(
            Error::invalid(format!("producer epoch {epoch} is not an int16"))
                .with("producer_epoch", epoch),
        )
    })?;
    Ok((id, epoch))
}

fn partitions(r: &TxnRecord) -> Vec<pb::TopicPartitions> {
    r.partitions
        .iter()
        .map(|(topic, ps)| pb::TopicPartitions {
            topic: topic.clone(),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

#[tonic::async_trait]
impl pb::transactions_server::Transactions for TransactionsService {
    async fn init_transactions(
        &self,
        request: Request<pb::InitTransactionsRequest>,
    ) -> Result<Response<pb::InitTransactionsResponse>, Status> {
        let id = request.get_ref().transactional_id.clone();
        let (who, at) = self.route(&request, &id)?;
        let req = request.into_inner();
        if let Some(mut coordinator) = at {
            return coordinator.init_transactions(self.forwarding(&who, req)?).await;
        }
        let timeout = match req.transaction_timeout_ms {
            0 => DEFAULT_TIMEOUT_MS,
            t => t,
        };
        let timeout = i32::try_from(timeout).map_err(|_| {
            into_status(Error::invalid(format!("transaction timeout {timeout} ms is too long")))
        })?;
        let (producer_id, epoch) = self
            .api
            .init_transactional_producer(&who, &id, timeout, None)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::InitTransactionsResponse {
            producer_id,
            producer_epoch: i32::from(epoch),
        }))
    }

    async fn send_offsets(
        &self,
        request: Request<pb::SendOffsetsRequest>,
    ) -> Result<Response<pb::SendOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let req = request.into_inner();
        let at = producer(req.producer_id, req.producer_epoch)?;
        let offsets =
            convert::commit_offsets(req.group, req.member_id, req.member_epoch, req.offsets);
        let id = req.transactional_id.as_str();
        self.api.send_txn_offsets(&who, (id, at), &offsets).await.map_err(into_status)?;
        Ok(Response::new(pb::SendOffsetsResponse {}))
    }

    async fn end_transaction(
        &self,
        request: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        let id = request.get_ref().transactional_id.clone();
        let (who, at) = self.route(&request, &id)?;
        let req = request.into_inner();
        if let Some(mut coordinator) = at {
            return coordinator.end_transaction(self.forwarding(&who, req)?).await;
        }
        let at = producer(req.producer_id, req.producer_epoch)?;
        let (producer_id, epoch) =
            self.api.end_txn(&who, &id, at, req.commit, true).await.map_err(into_status)?;
        Ok(Response::new(pb::EndTransactionResponse {
            producer_id,
            producer_epoch: i32::from(epoch),
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let req = request.into_inner();
        let filter = TxnFilter {
            states: req.states,
            producer_ids: req.producer_ids,
            open_longer_than_ms: (req.open_longer_than_ms > 0).then_some(req.open_longer_than_ms),
        };
        let listed = self.api.list_all_transactions(&who, &filter).await.map_err(into_status)?;
        let transactions = listed
            .into_iter()
            .map(|(id, r, coordinator)| pb::TransactionListing {
                transactional_id: id,
                producer_id: r.producer_id,
                state: r.state.name().to_string(),
                coordinator: coordinator.unwrap_or(-1),
            })
            .collect();
        Ok(Response::new(pb::ListTransactionsResponse { transactions }))
    }

    async fn describe_transaction(
        &self,
        request: Request<pb::DescribeTransactionRequest>,
    ) -> Result<Response<pb::DescribeTransactionResponse>, Status> {
        let id = request.get_ref().transactional_id.clone();
        let (who, at) = self.route(&request, &id)?;
        let req = request.into_inner();
        if let Some(mut coordinator) = at {
            return coordinator.describe_transaction(self.forwarding(&who, req)?).await;
        }
        let r = self.api.describe_transaction(&who, &id).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeTransactionResponse {
            transactional_id: id,
            state: r.state.name().to_string(),
            producer_id: r.producer_id,
            producer_epoch: i32::from(r.producer_epoch),
            transaction_timeout_ms: u32::try_from(r.timeout_ms).unwrap_or(0),
            start_time_ms: r.started_ms,
            partitions: partitions(&r),
            groups: r.groups.iter().cloned().collect(),
            coordinator: self.api.broker_id(),
        }))
    }

    async fn abort_transaction(
        &self,
        request: Request<pb::AbortTransactionRequest>,
    ) -> Result<Response<pb::AbortTransactionResponse>, Status> {
        let id = request.get_ref().transactional_id.clone();
        let (who, at) = self.route(&request, &id)?;
        let req = request.into_inner();
        if let Some(mut coordinator) = at {
            return coordinator.abort_transaction(self.forwarding(&who, req)?).await;
        }
        self.api.abort_transaction(&who, &id).await.map_err(into_status)?;
        Ok(Response::new(pb::AbortTransactionResponse {}))
    }
}
