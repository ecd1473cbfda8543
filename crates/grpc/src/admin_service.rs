//! `shale.v1.Admin`: topics, configs and cluster metadata.

use shale_proto::status::into_status;
use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use crate::auth_layer::identity;
use crate::convert;
use shale_broker::api::{
    Api, NewTopic, QuotaLimits, Reassignment, ScramChange, ScramMechanism, TopicsWanted,
};
use shale_proto::pb;

/// How long DeleteRecords waits for the in-sync replicas when the request says 0 (Kafka's
/// admin client default).
const DELETE_RECORDS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The Admin service over a broker.
#[derive(Debug, Clone)]
pub struct AdminService {
    api: Api,
}

impl AdminService {
    /// Serves `api`.
    pub fn new(api: Api) -> Self {
        AdminService { api }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let new = NewTopic {
            name: req.name,
            partitions: req.partitions,
            replication_factor: req.replication_factor,
            configs: req.configs.into_iter().collect(),
            validate_only: req.validate_only,
        };
        let entry = self.api.create_topic(&who, new).await.map_err(into_status)?;
        Ok(Response::new(pb::CreateTopicResponse { topic: Some(convert::topic_info(&entry)) }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let who = identity(&request);
        let name = request.into_inner().name;
        self.api.delete_topic(&who, &name).await.map_err(into_status)?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let who = identity(&request);
        let topics = self.api.list_topics(&who).await.map_err(into_status)?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: topics.iter().map(convert::topic_info).collect(),
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let who = identity(&request);
        let name = request.into_inner().name;
        let (entry, parts) = self.api.describe_topic(&who, &name).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeTopicResponse {
            topic: Some(convert::topic_info(&entry)),
            partitions: parts.iter().map(convert::partition_info).collect(),
            configs: convert::config_entries(&entry),
        }))
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        let entry = self
            .api
            .alter_topic_config(&who, &req.name, &set, &req.delete, req.validate_only)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::AlterTopicConfigResponse { configs: convert::config_entries(&entry) }))
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let entry = self
            .api
            .create_partitions(&who, &req.name, req.partitions, req.validate_only)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::CreatePartitionsResponse { topic: Some(convert::topic_info(&entry)) }))
    }

    async fn delete_records(
        &self,
        request: Request<pb::DeleteRecordsRequest>,
    ) -> Result<Response<pb::DeleteRecordsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let within = match req.timeout_ms {
            0 => DELETE_RECORDS_TIMEOUT,
            ms => std::time::Duration::from_millis(u64::from(ms)),
        };
        let low_watermark = self
            .api
            .delete_records(&who, &req.topic, req.partition, req.offset, within)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::DeleteRecordsResponse { low_watermark }))
    }

    async fn reassign_partitions(
        &self,
        request: Request<pb::ReassignPartitionsRequest>,
    ) -> Result<Response<pb::ReassignPartitionsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let requests: Vec<Reassignment> = req
            .reassignments
            .into_iter()
            .map(|r| Reassignment {
                topic: r.topic,
                partition: r.partition,
                replicas: (!r.replicas.is_empty()).then_some(r.replicas),
            })
            .collect();
        self.api.reassign(&who, &requests, req.validate_only).await.map_err(into_status)?;
        Ok(Response::new(pb::ReassignPartitionsResponse {}))
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        let who = identity(&request);
        let me = self.api.broker_id();
        Ok(Response::new(pb::ListReassignmentsResponse {
            broker_id: me,
            reassignments: self
                .api
                .reassignments(&who)
                .await
                .map_err(into_status)?
                .into_iter()
                .map(|m| pb::ReassignmentStatus {
                    topic: m.topic,
                    partition: m.partition,
                    replicas: m.state.replicas,
                    adding: m.state.adding,
                    removing: m.state.removing,
                    pending: m.state.target,
                    leader_id: m.state.leader,
                    isr: m.state.isr,
                    leader_log_end_offset: m.leader_log_end.unwrap_or(-1),
                    joining: m
                        .joining
                        .map(|(start, end, copied)| pb::ReplicaProgress {
                            broker_id: me,
                            log_start_offset: start,
                            log_end_offset: end,
                            copied_bytes: copied,
                        })
                        .into_iter()
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn alter_replication_factor(
        &self,
        request: Request<pb::AlterReplicationFactorRequest>,
    ) -> Result<Response<pb::AlterReplicationFactorResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let (entry, moves) = self
            .api
            .alter_replication_factor(&who, &req.name, req.replication_factor, req.validate_only)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::AlterReplicationFactorResponse {
            topic: Some(convert::topic_info(&entry)),
            moves: moves.iter().map(convert::planned_move).collect(),
        }))
    }

    async fn decommission_broker(
        &self,
        request: Request<pb::DecommissionBrokerRequest>,
    ) -> Result<Response<pb::DecommissionBrokerResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let left =
            self.api.decommission(&who, req.broker_id, req.cancel).await.map_err(into_status)?;
        Ok(Response::new(pb::DecommissionBrokerResponse { replicas_left: left }))
    }

    async fn rebalance(
        &self,
        request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let (moves, requested) = self
            .api
            .rebalance(&who, req.execute, req.max_moves as usize)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::RebalanceResponse {
            moves: moves.iter().map(convert::planned_move).collect(),
            requested: requested as u32,
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let id = identity(&request);
        Ok(Response::new(pb::WhoAmIResponse {
            principal: id.principal.to_string(),
            authenticated_by: id.via.as_str().to_string(),
            broker: id.broker,
        }))
    }

    async fn describe_cluster(
        &self,
        request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let who = identity(&request);
        let (brokers, controller_id, load) =
            self.api.describe_cluster(&who).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeClusterResponse {
            cluster: self.api.cluster_name().to_string(),
            brokers: brokers.iter().map(convert::broker_info).collect(),
            controller_id,
            decommissioned: load.decommissioned.into_iter().collect(),
            loads: load
                .loads
                .into_iter()
                .map(|(id, l)| {
                    let load = pb::BrokerLoad {
                        replicas: l.replicas,
                        leaders: l.leaders,
                        hosted: l.hosted,
                        bytes: l.bytes,
                    };
                    (id, load)
                })
                .collect(),
        }))
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let wanted = match req.topics.is_empty() {
            true => TopicsWanted::All,
            false => TopicsWanted::Named(req.topics),
        };
        let m = self.api.metadata(&who, wanted).map_err(into_status)?;
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            let (t, states) = t.map_err(|(_, e)| into_status(e))?;
            topics.push(pb::TopicMetadata {
                topic: Some(convert::topic_info(&t)),
                partitions: states
                    .iter()
                    .map(|(p, s)| convert::partition_metadata(*p, s))
                    .collect(),
            });
        }
        Ok(Response::new(pb::GetMetadataResponse {
            cluster: self.api.cluster_name().to_string(),
            brokers: m.brokers.iter().map(convert::broker_info).collect(),
            topics,
            controller_id: m.controller_id,
        }))
    }

    async fn create_acls(
        &self,
        request: Request<pb::CreateAclsRequest>,
    ) -> Result<Response<pb::CreateAclsResponse>, Status> {
        let who = identity(&request);
        let bindings = request
            .into_inner()
            .bindings
            .into_iter()
            .map(convert::acl_binding)
            .collect::<Result<Vec<_>, _>>()
            .map_err(into_status)?;
        self.api.create_acls(&who, &bindings).await.map_err(into_status)?;
        Ok(Response::new(pb::CreateAclsResponse {}))
    }

    async fn describe_acls(
        &self,
        request: Request<pb::DescribeAclsRequest>,
    ) -> Result<Response<pb::DescribeAclsResponse>, Status> {
        let who = identity(&request);
        let filter = convert::acl_filter(request.into_inner().filter).map_err(into_status)?;
        let bindings = self.api.describe_acls(&who, &filter).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeAclsResponse {
            bindings: bindings.iter().map(convert::acl_binding_to_proto).collect(),
        }))
    }

    async fn delete_acls(
        &self,
        request: Request<pb::DeleteAclsRequest>,
    ) -> Result<Response<pb::DeleteAclsResponse>, Status> {
        let who = identity(&request);
        let filter = convert::acl_filter(request.into_inner().filter).map_err(into_status)?;
        let deleted = self.api.delete_acls(&who, &filter).await.map_err(into_status)?;
        Ok(Response::new(pb::DeleteAclsResponse {
            deleted: deleted.iter().map(convert::acl_binding_to_proto).collect(),
        }))
    }

    async fn alter_quota(
        &self,
        request: Request<pb::AlterQuotaRequest>,
    ) -> Result<Response<pb::AlterQuotaResponse>, Status> {
        let who = identity(&request);
        let q = request.into_inner().quota.unwrap_or_default();
        let limits = QuotaLimits {
            produce_bytes_per_sec: q.produce_bytes_per_sec,
            fetch_bytes_per_sec: q.fetch_bytes_per_sec,
            requests_per_sec: q.requests_per_sec,
        };
        self.api.alter_quota(&who, &q.principal, limits).await.map_err(into_status)?;
        Ok(Response::new(pb::AlterQuotaResponse {}))
    }

    async fn describe_quotas(
        &self,
        request: Request<pb::DescribeQuotasRequest>,
    ) -> Result<Response<pb::DescribeQuotasResponse>, Status> {
        let who = identity(&request);
        let quotas = self.api.describe_quotas(&who).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeQuotasResponse {
            quotas: quotas
                .into_iter()
                .map(|(principal, l)| pb::Quota {
                    principal,
                    produce_bytes_per_sec: l.produce_bytes_per_sec,
                    fetch_bytes_per_sec: l.fetch_bytes_per_sec,
                    requests_per_sec: l.requests_per_sec,
                })
                .collect(),
        }))
    }

    async fn set_user_credential(
        &self,
        request: Request<pb::SetUserCredentialRequest>,
    ) -> Result<Response<pb::SetUserCredentialResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let iterations = if req.iterations == 0 { 8192 } else { req.iterations };
        let changes = mechanisms(&req.mechanisms)
            .map_err(into_status)?
            .into_iter()
            .map(|m| {
                let change = ScramChange::Password { password: req.password.clone(), iterations };
                (req.user.clone(), m, change)
            })
            .collect();
        for done in self.api.alter_scram(&who, changes).await.map_err(into_status)? {
            done.map_err(into_status)?;
        }
        Ok(Response::new(pb::SetUserCredentialResponse {}))
    }

    async fn delete_user_credential(
        &self,
        request: Request<pb::DeleteUserCredentialRequest>,
    ) -> Result<Response<pb::DeleteUserCredentialResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let all = req.mechanisms.is_empty();
        let changes: Vec<_> = mechanisms(&req.mechanisms)
            .map_err(into_status)?
            .into_iter()
            .map(|m| (req.user.clone(), m, ScramChange::Delete))
            .collect();
        let outcomes = self.api.alter_scram(&who, changes).await.map_err(into_status)?;
        // Deleting "every mechanism" is done when at least one credential was there.
        let mut deleted = 0;
        let mut first_error = None;
        for o in outcomes {
            match o {
                Ok(()) => deleted += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !all || deleted == 0 => Err(into_status(e)),
            _ => Ok(Response::new(pb::DeleteUserCredentialResponse {})),
        }
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let who = identity(&request);
        let users = self.api.describe_scram(&who, None).await.map_err(into_status)?;
        let credentials = users
            .into_iter()
            .flat_map(|(user, found)| {
                found.unwrap_or_default().into_iter().map(move |(m, iterations)| {
                    pb::UserCredential {
                        user: user.clone(),
                        mechanism: m.name().into(),
                        iterations,
                    }
                })
            })
            .collect();
        Ok(Response::new(pb::ListUsersResponse { credentials }))
    }
}

/// The SCRAM mechanisms named (both when none is), or the error naming a bad one.
fn mechanisms(names: &[String]) -> Result<Vec<ScramMechanism>, shale_core::error::Error> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::parse(n).ok_or_else(|| {
                shale_core::error::Error::invalid(format!(
                    "SCRAM mechanism {n:?} is unknown: SCRAM-SHA-256 or SCRAM-SHA-512"
                ))
            })
        })
        .collect()
}
