//! `shale.v1.Groups`: consumer group heartbeats (forwarded to the group's coordinator),
//! offsets and group administration (served by any broker from etcd).

use shale_proto::status::into_status;

use tonic::{Request, Response, Status};

use std::time::Duration;

use crate::forward::{self, Coordinated, acting};
use crate::{convert, decoded};
use shale_broker::api::{Ack, AckBatch, Api, FetchShape, ShareFetch};
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

    async fn share_fetch(
        &self,
        request: Request<pb::ShareFetchRequest>,
    ) -> Result<Response<pb::ShareFetchResponse>, Status> {
        let api = &self.api;
        let who = acting(api, &request).map_err(into_status)?;
        let r = request.into_inner();
        let acks = convert::share_acks(&r.acknowledgements).map_err(into_status)?;
        let (group, member, topic, partition) = (&r.group, &r.member_id, &r.topic, r.partition);
        if !acks.is_empty() {
            api.share_acknowledge(&who, group, member, topic, partition, &acks)
                .await
                .map_err(into_status)?;
        }
        let fetch = ShareFetch {
            group: group.clone(),
            member: member.clone(),
            partitions: vec![(topic.clone(), partition)],
            max_wait: Duration::from_millis(u64::from(r.max_wait_ms)),
            max_bytes: FetchShape::new(api, 0, 0, false).max_bytes(),
            max_records: match r.max_records {
                0 => 500,
                n => n as usize,
            },
        };
        let chunk = api.share_fetch(&who, &fetch).await.map_err(into_status)?;
        let chunk = chunk.into_iter().next().unwrap_or_else(|| Ok(Default::default()));
        let chunk = chunk.map_err(into_status)?;
        let (records, gaps) =
            decoded::shared_records((topic, partition), chunk).await.map_err(into_status)?;
        // Offsets that hold no record are the broker's to acknowledge: a thin client never
        // sees them.
        if !gaps.is_empty() {
            let gaps: Vec<AckBatch> = gaps
                .into_iter()
                .map(|(first, last)| AckBatch { first, last, types: vec![Ack::Gap] })
                .collect();
            api.share_acknowledge(&who, group, member, topic, partition, &gaps)
                .await
                .map_err(into_status)?;
        }
        let lock_ms = api.share_lock_ms(group).await;
        Ok(Response::new(pb::ShareFetchResponse { records, lock_ms }))
    }

    async fn share_acknowledge(
        &self,
        request: Request<pb::ShareAcknowledgeRequest>,
    ) -> Result<Response<pb::ShareAcknowledgeResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let r = request.into_inner();
        let acks = convert::share_acks(&r.acknowledgements).map_err(into_status)?;
        self.api
            .share_acknowledge(&who, &r.group, &r.member_id, &r.topic, r.partition, &acks)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::ShareAcknowledgeResponse {}))
    }
}
