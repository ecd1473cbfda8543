//! [`TxnAdmin`]: listing, describing and aborting transactions (`shale txn`).

use shale_core::error::Error;
use shale_proto::pb;

use crate::Client;

/// Transaction administration.
#[derive(Debug, Clone)]
pub struct TxnAdmin {
    client: Client,
}

impl TxnAdmin {
    /// Calls through `client`'s bootstrap brokers.
    pub fn new(client: Client) -> TxnAdmin {
        TxnAdmin { client }
    }

    /// Calls one Transactions RPC, retrying retriable failures on the next bootstrap broker.
    async fn call<Req, Resp, F, Fut>(&self, request: Req, rpc: F) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(pb::transactions_client::TransactionsClient<crate::Transport>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.client.call_bootstrap(Client::txn_rpc, request, rpc).await
    }

    /// The cluster's transactional ids that `filter` selects.
    pub async fn list(
        &self,
        filter: pb::ListTransactionsRequest,
    ) -> Result<Vec<pb::TransactionListing>, Error> {
        let resp =
            self.call(filter, |mut c, r| async move { c.list_transactions(r).await }).await?;
        Ok(resp.transactions)
    }

    /// The transaction of transactional id `id`.
    pub async fn describe(&self, id: &str) -> Result<pb::DescribeTransactionResponse, Error> {
        let request = pb::DescribeTransactionRequest { transactional_id: id.to_string() };
        self.call(request, |mut c, r| async move { c.describe_transaction(r).await }).await
    }

    /// Aborts the open transaction of `id` (a hung application's), fencing its producer.
    pub async fn abort(&self, id: &str) -> Result<(), Error> {
        let request = pb::AbortTransactionRequest { transactional_id: id.to_string() };
        self.call(request, |mut c, r| async move { c.abort_transaction(r).await }).await?;
        Ok(())
    }
}
