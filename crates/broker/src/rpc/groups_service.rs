//! `shale.v1.Groups`: consumer group heartbeats (forwarded to the group's coordinator),
//! offsets and group administration (served by any broker from etcd).

use crate::audit::Resource;
use shale_proto::status::into_status;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::acl::{Authorizer, Operation, ResourceType};
use crate::auth::{Identity, Principal};
use crate::broker::Broker;
use crate::groups::coordinator_of;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// Metadata key marking a heartbeat a broker forwarded to the coordinator it computed.
const FORWARDED: &str = "x-shale-forwarded";

/// Metadata key carrying the principal a broker forwards a heartbeat for; believed only
/// from brokers.
const ON_BEHALF_OF: &str = "x-shale-on-behalf-of";

/// Who a request acts for: its caller, or the principal a broker forwarded it for.
/// Without authorization every caller is trusted alike (in a plaintext cluster brokers
/// are anonymous too), so the header is ignored from non-brokers; with it, refused.
fn acting<T>(acl: &Authorizer, request: &Request<T>) -> Result<Identity, Error> {
    let caller = crate::auth::layer::identity(request);
    let Some(v) = request.metadata().get(ON_BEHALF_OF) else { return Ok(caller) };
    if !caller.broker && !acl.enabled() {
        return Ok(caller);
    }
    if !caller.broker {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            Reason::AuthorizationFailed,
            format!("{} may not act on behalf of another principal", caller.principal),
        )
        .with("principal", caller.principal.to_string()));
    }
    let name = v.to_str().map_err(|_| Error::invalid("x-shale-on-behalf-of is not text"))?;
    Ok(Identity { principal: Principal::parse(name)?, via: caller.via, broker: false })
}

/// Checks `op` on the group and Read on each named topic.
fn check_group_and_topics<'a>(
    acl: &Authorizer,
    who: &Identity,
    action: &str,
    op: Operation,
    group: &str,
    topics: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    acl.check(who, action, op, ResourceType::Group, group)?;
    for t in topics {
        acl.check(who, action, Operation::Read, ResourceType::Topic, t)?;
    }
    Ok(())
}

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
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let req = request.into_inner();
        shale_core::names::validate_group(&req.group).map_err(into_status)?;
        let topics = req.topics.iter().map(String::as_str);
        check_group_and_topics(b.acl(), &who, "Heartbeat", Operation::Read, &req.group, topics)
            .map_err(into_status)?;
        let coordinator = coordinator_of(&req.group, &b.coordinator_candidates());
        match coordinator {
            Some((id, _)) if id == b.id() => {
                // A coordinator confirms assignments only while it can prove its lease, before
                // and after the work: once it cannot, another broker may take the group over
                // and, a session timeout later, give these partitions to other members.
                b.check_serving().map_err(into_status)?;
                // Members are bound to their principals only under authorization.
                let principal = match b.acl().enabled() {
                    true => who.principal.as_str(),
                    false => "",
                };
                let answer =
                    b.groups().heartbeat(b.as_ref(), req, principal).await.map_err(into_status)?;
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
                let on_behalf_of = who.principal.as_str().parse().map_err(|_| {
                    into_status(Error::invalid(format!(
                        "principal {} cannot travel in metadata",
                        who.principal
                    )))
                })?;
                forward.metadata_mut().insert(ON_BEHALF_OF, on_behalf_of);
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
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let req = request.into_inner();
        let topics = req.offsets.iter().map(|o| o.topic.as_str());
        check_group_and_topics(b.acl(), &who, "CommitOffsets", Operation::Read, &req.group, topics)
            .map_err(into_status)?;
        b.groups().commit(b.as_ref(), req).await.map_err(into_status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let req = request.into_inner();
        let b = &self.broker;
        let acl = b.acl();
        acl.check(&who, "FetchOffsets", Operation::Describe, ResourceType::Group, &req.group)
            .map_err(into_status)?;
        for t in &req.topics {
            acl.check(&who, "FetchOffsets", Operation::Describe, ResourceType::Topic, t)
                .map_err(into_status)?;
        }
        let mut offsets = b
            .groups()
            .fetch_offsets(b.as_ref(), &req.group, &req.topics)
            .await
            .map_err(into_status)?;
        // Asked for every topic: only those the caller may see.
        offsets.retain(|o| acl.allows(&who, Operation::Describe, ResourceType::Topic, &o.topic));
        Ok(Response::new(pb::FetchOffsetsResponse { offsets }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let b = &self.broker;
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let req = request.into_inner();
        let topics = [req.topic.as_str()];
        check_group_and_topics(b.acl(), &who, "ResetOffsets", Operation::Read, &req.group, topics)
            .map_err(into_status)?;
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
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let group = request.into_inner().group;
        let acl = self.broker.acl();
        acl.check(&who, "DeleteGroup", Operation::Delete, ResourceType::Group, &group)
            .map_err(into_status)?;
        let deleted = self.broker.groups().delete_group(&group).await;
        crate::audit::mutation(&who, "delete_group", Resource::Group(&group), &deleted);
        deleted.map_err(into_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let mut groups = self.broker.groups().list_groups().await.map_err(into_status)?;
        let acl = self.broker.acl();
        groups.retain(|g| acl.allows(&who, Operation::Describe, ResourceType::Group, &g.group));
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let b = &self.broker;
        let who = acting(self.broker.acl(), &request).map_err(into_status)?;
        let group = request.into_inner().group;
        b.acl()
            .check(&who, "DescribeGroup", Operation::Describe, ResourceType::Group, &group)
            .map_err(into_status)?;
        Ok(Response::new(b.groups().describe_group(b.as_ref(), &group).await.map_err(into_status)?))
    }
}
