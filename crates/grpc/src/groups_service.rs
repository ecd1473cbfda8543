//! `shale.v1.Groups`: consumer group heartbeats (forwarded to the group's coordinator),
//! offsets and group administration (served by any broker from etcd).

use shale_proto::status::into_status;

use tonic::{Request, Response, Status};

use crate::convert;
use crate::forward::{self, Coordinated, acting};
use shale_broker::api::Api;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// The answer to a stable offsets fetch while `n` partitions, `topic`-`partition` first,
/// have offsets a transaction holds.
fn unstable_offsets(group: &str, topic: &str, partition: u32, n: usize) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        Reason::UnstableOffsetCommit,
        format!(
            "group {group:?}: a transaction holds offsets of {topic}-{partition} ({n} \
             partition(s)) until it ends; retry"
        ),
    )
    .with("group", group)
}

/// The Groups service over a broker.
#[derive(Debug, Clone)]
pub struct GroupsService {
    api: Api,
}

impl GroupsService {
    /// Serves `api`.
    pub fn new(api: Api) -> Self {
        GroupsService { api }
    }
}

#[tonic::async_trait]
impl pb::groups_server::Groups for GroupsService {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let api = &self.api;
        let forwarded = forward::was_forwarded(&request);
        let who = acting(api, &request).map_err(into_status)?;
        let req = request.into_inner();
        let beat = convert::heartbeat(&req);
        api.check_heartbeat(&who, &beat).map_err(into_status)?;
        let coordinator = api.group_coordinator(&req.group);
        match forward::route(api, (Coordinated::Group, &req.group), coordinator, forwarded) {
            Ok(None) => {
                let answer = api.heartbeat(&who, beat).await.map_err(into_status)?;
                Ok(Response::new(convert::heartbeat_answer(answer)))
            }
            Ok(Some(channel)) => {
                let forward = forward::forwarding(api, &who, req).map_err(into_status)?;
                pb::groups_client::GroupsClient::new(channel).heartbeat(forward).await
            }
            Err(e) => Err(into_status(e)),
        }
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let r = request.into_inner();
        let commit = convert::commit_offsets(r.group, r.member_id, r.member_epoch, r.offsets);
        self.api.commit_offsets(&who, commit).await.map_err(into_status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let req = request.into_inner();
        if !req.require_stable {
            let offsets =
                self.api.fetch_offsets(&who, &req.group, &req.topics).await.map_err(into_status)?;
            let offsets = convert::committed_offsets(offsets);
            return Ok(Response::new(pb::FetchOffsetsResponse { offsets }));
        }
        let (offsets, unstable) = self
            .api
            .fetch_stable_offsets(&who, &req.group, &req.topics)
            .await
            .map_err(into_status)?;
        if let Some((topic, partition)) = unstable.first() {
            return Err(into_status(unstable_offsets(
                &req.group,
                topic,
                *partition,
                unstable.len(),
            )));
        }
        let offsets = convert::committed_offsets(offsets);
        Ok(Response::new(pb::FetchOffsetsResponse { offsets }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let req = convert::reset_offsets(request.into_inner()).map_err(into_status)?;
        let offsets = self.api.reset_offsets(&who, req).await.map_err(into_status)?;
        let offsets = convert::committed_offsets(offsets);
        Ok(Response::new(pb::ResetOffsetsResponse { offsets }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let group = request.into_inner().group;
        self.api.delete_group(&who, &group).await.map_err(into_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let groups = self.api.list_groups(&who).await.map_err(into_status)?;
        let groups = groups.into_iter().map(convert::group_listing).collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let group = request.into_inner().group;
        let described = self.api.describe_group(&who, &group).await.map_err(into_status)?;
        Ok(Response::new(convert::group_description(described)))
    }
}
