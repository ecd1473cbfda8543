//! `shale.v1.Groups`: consumer group heartbeats (forwarded to the group's coordinator),
//! offsets and group administration (served by any broker from etcd).

use shale_proto::status::into_status;

use tonic::{Request, Response, Status};

use shale_broker::api::{Api, Identity};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// Metadata key marking a heartbeat a broker forwarded to the coordinator it computed.
const FORWARDED: &str = "x-shale-forwarded";

/// Metadata key carrying the principal a broker forwards a heartbeat for; believed only
/// from brokers.
const ON_BEHALF_OF: &str = "x-shale-on-behalf-of";

/// Who a request acts for: its caller, or the principal a broker forwarded it for.
fn acting<T>(api: &Api, request: &Request<T>) -> Result<Identity, Error> {
    let caller = crate::auth_layer::identity(request);
    let claimed = match request.metadata().get(ON_BEHALF_OF) {
        None => None,
        Some(v) => {
            Some(v.to_str().map_err(|_| Error::invalid("x-shale-on-behalf-of is not text"))?)
        }
    };
    api.acting_for(caller, claimed)
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
        let api = &self.api;
        let forwarded = request.metadata().contains_key(FORWARDED);
        let who = acting(api, &request).map_err(into_status)?;
        let req = request.into_inner();
        api.check_heartbeat(&who, &req).map_err(into_status)?;
        match api.group_coordinator(&req.group) {
            Some((id, _)) if id == api.broker_id() => {
                Ok(Response::new(api.heartbeat(&who, req).await.map_err(into_status)?))
            }
            Some((_, addr)) if !forwarded => {
                let mut client =
                    pb::groups_client::GroupsClient::new(api.peer(&addr).map_err(into_status)?);
                let mut forward = Request::new(req);
                forward
                    .metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from(api.broker_id()));
                let on_behalf_of = who.principal.as_str().parse().map_err(|_| {
                    into_status(Error::invalid(format!(
                        "principal {} cannot travel in metadata",
                        who.principal
                    )))
                })?;
                forward.metadata_mut().insert(ON_BEHALF_OF, on_behalf_of);
                client.heartbeat(forward).await
            }
            other => Err(into_status(not_coordinator(&req.group, api.broker_id(), other))),
        }
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        self.api.commit_offsets(&who, request.into_inner()).await.map_err(into_status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let req = request.into_inner();
        let offsets =
            self.api.fetch_offsets(&who, &req.group, &req.topics).await.map_err(into_status)?;
        Ok(Response::new(pb::FetchOffsetsResponse { offsets }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let offsets =
            self.api.reset_offsets(&who, request.into_inner()).await.map_err(into_status)?;
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
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let who = acting(&self.api, &request).map_err(into_status)?;
        let group = request.into_inner().group;
        Ok(Response::new(self.api.describe_group(&who, &group).await.map_err(into_status)?))
    }
}
