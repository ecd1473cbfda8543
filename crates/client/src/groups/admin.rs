//! [`GroupAdmin`]: committed offsets and group administration.

use shale_core::error::Error;
use shale_proto::pb;

use crate::Client;

/// Group administration and offsets.
#[derive(Debug, Clone)]
pub struct GroupAdmin {
    client: Client,
}

impl GroupAdmin {
    /// Calls through `client`'s bootstrap brokers.
    pub fn new(client: Client) -> GroupAdmin {
        GroupAdmin { client }
    }

    /// Calls one Groups RPC, retrying retriable failures on the next bootstrap broker.
    async fn call<Req, Resp, F, Fut>(&self, request: Req, rpc: F) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(pb::groups_client::GroupsClient<crate::Transport>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.client.call_bootstrap(Client::groups_rpc, request, rpc).await
    }

    /// Committed offsets of `group` (of `topics`, or all).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<pb::CommittedOffset>, Error> {
        let request = pb::FetchOffsetsRequest {
            group: group.to_string(),
            topics: topics.to_vec(),
            require_stable: false,
        };
        let resp = self.call(request, |mut c, r| async move { c.fetch_offsets(r).await }).await?;
        Ok(resp.offsets)
    }

    /// [`fetch_offsets`](Self::fetch_offsets) once no transaction holds offsets of them
    /// (KIP-447's `require_stable`), waiting for that within `wait`.
    pub async fn fetch_stable_offsets(
        &self,
        group: &str,
        topics: &[String],
        wait: crate::RetryPolicy,
    ) -> Result<Vec<pb::CommittedOffset>, Error> {
        let request = pb::FetchOffsetsRequest {
            group: group.to_string(),
            topics: topics.to_vec(),
            require_stable: true,
        };
        let resp = wait
            .retry("stable offsets", || {
                self.call(request.clone(), |mut c, r| async move { c.fetch_offsets(r).await })
            })
            .await?;
        Ok(resp.offsets)
    }

    /// Members, assignment and lag.
    pub async fn describe(&self, group: &str) -> Result<pb::DescribeGroupResponse, Error> {
        let request = pb::DescribeGroupRequest { group: group.to_string() };
        self.call(request, |mut c, r| async move { c.describe_group(r).await }).await
    }

    /// Every group.
    pub async fn list(&self) -> Result<Vec<pb::GroupListing>, Error> {
        let request = pb::ListGroupsRequest {};
        let resp = self.call(request, |mut c, r| async move { c.list_groups(r).await }).await?;
        Ok(resp.groups)
    }

    /// Moves an empty group's committed offsets.
    pub async fn reset_offsets(
        &self,
        request: pb::ResetOffsetsRequest,
    ) -> Result<Vec<pb::CommittedOffset>, Error> {
        let resp = self.call(request, |mut c, r| async move { c.reset_offsets(r).await }).await?;
        Ok(resp.offsets)
    }

    /// Deletes an empty group.
    pub async fn delete(&self, group: &str) -> Result<(), Error> {
        let request = pb::DeleteGroupRequest { group: group.to_string() };
        self.call(request, |mut c, r| async move { c.delete_group(r).await }).await?;
        Ok(())
    }

    /// Commits offsets outside the group protocol (only while the group has no members).
    pub async fn commit(&self, group: &str, offsets: Vec<pb::OffsetCommit>) -> Result<(), Error> {
        let request = pb::CommitOffsetsRequest {
            group: group.to_string(),
            member_id: String::new(),
            member_epoch: -1,
            offsets,
        };
        self.call(request, |mut c, r| async move { c.commit_offsets(r).await }).await?;
        Ok(())
    }
}
