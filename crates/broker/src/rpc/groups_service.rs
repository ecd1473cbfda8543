//! `shale.v1.Groups`: consumer group heartbeats (forwarded to the group's coordinator),
//! offsets and group administration (served by any broker from etcd).

use crate::audit::Resource;
use shale_proto::status::into_status;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::groups::coordinator_of;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// Metadata key marking a heartbeat a broker forwarded to the coordinator it computed.
const FORWARDED: &str = "x-shale-forwarded";

/// The Groups service over a broker.
#[derive(Debug, Clone)]
pub struct GroupsService {
    broker: Arc<Broker>,
}

impl GroupsService {
    /// Serves `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        GroupsService { broker }
    }
}

fn not_coordinator(group: &str, id: i32, coordinator: Option<(i32, String)>) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        Reason::NotCoordinator,
        format!(
            "broker {id} does not coordinate group {group:?} ({}); retry",
            coordinator.map_or("no live broker does".to_string(), |(c, a)| format!(
                "broker {c} at {a} does"
            ))
        ),
    )
    .with("group", group)
}

#[tonic::async_trait]
impl pb::groups_server::Groups for GroupsService {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let b = &self.broker;
        let forwarded = request.metadata().contains_key(FORWARDED);
        let req = request.into_inner();
        shale_core::names::validate_group(&req.group).map_err(into_status)?;
        let coordinator = coordinator_of(&req.group, &b.coordinator_candidates());
        match coordinator {
            Some((id, _)) if id == b.id() => {
                // A coordinator confirms assignments only while it can prove its lease, before
                // and after the work: once it cannot, another broker may take the group over
                // and, a session timeout later, give these partitions to other members.
                b.check_serving().map_err(into_status)?;
                let answer = b.groups().heartbeat(b.as_ref(), req).await.map_err(into_status)?;
                b.check_serving().map_err(into_status)?;
                Ok(Response::new(answer))
            }
            Some((_, addr)) if !forwarded => {
                let mut client =
                    pb::groups_client::GroupsClient::new(b.peer(&addr).map_err(into_status)?);
                let mut forward = Request::new(req);
                forward
                    .metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from(b.id()));
                client.heartbeat(forward).await
            }
            other => Err(into_status(not_coordinator(&req.group, b.id(), other))),
        }
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let b = &self.broker;
        b.groups().commit(b.as_ref(), request.into_inner()).await.map_err(into_status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let req = request.into_inner();
        let b = &self.broker;
        let offsets = b
            .groups()
            .fetch_offsets(b.as_ref(), &req.group, &req.topics)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::FetchOffsetsResponse { offsets }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let b = &self.broker;
        let who = crate::auth::layer::identity(&request);
        let req = request.into_inner();
        let (group, dry_run) = (req.group.clone(), req.dry_run);
        let reset = b.groups().reset_offsets(b.as_ref(), req).await;
        if !dry_run {
            crate::audit::mutation(&who, "reset_offsets", Resource::Group(&group), &reset);
        }
        let offsets = reset.map_err(into_status)?;
        Ok(Response::new(pb::ResetOffsetsResponse { offsets }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let who = crate::auth::layer::identity(&request);
        let group = request.into_inner().group;
        let deleted = self.broker.groups().delete_group(&group).await;
        crate::audit::mutation(&who, "delete_group", Resource::Group(&group), &deleted);
        deleted.map_err(into_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let groups = self.broker.groups().list_groups().await.map_err(into_status)?;
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let b = &self.broker;
        Ok(Response::new(
            b.groups()
                .describe_group(b.as_ref(), &request.into_inner().group)
                .await
                .map_err(into_status)?,
        ))
    }
}
