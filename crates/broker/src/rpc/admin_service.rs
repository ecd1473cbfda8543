//! `shale.v1.Admin`: topics, configs and cluster metadata.

use crate::audit::Resource;
use shale_proto::status::into_status;
use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::acl::{CLUSTER, Operation, ResourceType};
use crate::auth::layer::identity;
use crate::broker::Broker;
use crate::broker::moves::Reassignment;
use crate::broker::topics::NewTopic;
use shale_core::error::Error;
use shale_proto::pb;

/// The Admin service over a broker.
#[derive(Debug, Clone)]
pub struct AdminService {
    broker: Arc<Broker>,
}

impl AdminService {
    /// Serves `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        AdminService { broker }
    }

    async fn controller_id(&self) -> Result<i32, Error> {
        let store = self.broker.topic_store();
        let key = store.keys().controller();
        Ok(match store.store().get(&key).await? {
            Some(kv) => serde_json::from_slice::<serde_json::Value>(&kv.value)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_i64()))
                .map(|id| id as i32)
                .unwrap_or(-1),
            None => -1,
        })
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
        let name = req.name.clone();
        let validate_only = req.validate_only;
        // Create on the cluster allows any topic; Create on the topic allows that one.
        let acl = self.broker.acl();
        if !acl.allows(&who, Operation::Create, ResourceType::Cluster, CLUSTER) {
            acl.check(&who, "CreateTopic", Operation::Create, ResourceType::Topic, &name)
                .map_err(into_status)?;
        }
        let created = self
            .broker
            .create_topic(NewTopic {
                name: req.name,
                partitions: req.partitions,
                replication_factor: req.replication_factor,
                configs: req.configs.into_iter().collect(),
                validate_only: req.validate_only,
            })
            .await;
        if !validate_only {
            crate::audit::mutation(&who, "create_topic", Resource::Topic(&name), &created);
        }
        let entry = created.map_err(into_status)?;
        Ok(Response::new(pb::CreateTopicResponse { topic: Some(convert::topic_info(&entry)) }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let who = identity(&request);
        let name = request.into_inner().name;
        let acl = self.broker.acl();
        acl.check(&who, "DeleteTopic", Operation::Delete, ResourceType::Topic, &name)
            .map_err(into_status)?;
        let deleted = self.broker.delete_topic(&name).await;
        crate::audit::mutation(&who, "delete_topic", Resource::Topic(&name), &deleted);
        deleted.map_err(into_status)?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let who = identity(&request);
        let mut topics = self.broker.list_topics().await.map_err(into_status)?;
        let acl = self.broker.acl();
        topics
            .retain(|t| acl.allows(&who, Operation::Describe, ResourceType::Topic, &t.record.name));
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
        let acl = self.broker.acl();
        acl.check(&who, "DescribeTopic", Operation::Describe, ResourceType::Topic, &name)
            .map_err(into_status)?;
        let (entry, parts) = self.broker.describe_topic(&name).await.map_err(into_status)?;
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
        let acl = self.broker.acl();
        acl.check(
            &who,
            "AlterTopicConfig",
            Operation::AlterConfigs,
            ResourceType::Topic,
            &req.name,
        )
        .map_err(into_status)?;
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        let altered =
            self.broker.alter_topic_config(&req.name, &set, &req.delete, req.validate_only).await;
        if !req.validate_only {
            crate::audit::mutation(
                &who,
                "alter_topic_config",
                Resource::Topic(&req.name),
                &altered,
            );
        }
        let entry = altered.map_err(into_status)?;
        Ok(Response::new(pb::AlterTopicConfigResponse { configs: convert::config_entries(&entry) }))
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        // As Kafka: Alter on the topic.
        let acl = self.broker.acl();
        acl.check(&who, "CreatePartitions", Operation::Alter, ResourceType::Topic, &req.name)
            .map_err(into_status)?;
        let added =
            self.broker.create_partitions(&req.name, req.partitions, req.validate_only).await;
        if !req.validate_only {
            crate::audit::mutation(&who, "create_partitions", Resource::Topic(&req.name), &added);
        }
        let entry = added.map_err(into_status)?;
        Ok(Response::new(pb::CreatePartitionsResponse { topic: Some(convert::topic_info(&entry)) }))
    }

    async fn reassign_partitions(
        &self,
        request: Request<pb::ReassignPartitionsRequest>,
    ) -> Result<Response<pb::ReassignPartitionsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        // As Kafka's AlterPartitionReassignments: Alter on the cluster.
        self.broker
            .acl()
            .check(&who, "ReassignPartitions", Operation::Alter, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let requests: Vec<Reassignment> = req
            .reassignments
            .into_iter()
            .map(|r| Reassignment {
                topic: r.topic,
                partition: r.partition,
                replicas: (!r.replicas.is_empty()).then_some(r.replicas),
            })
            .collect();
        let done = self.broker.reassign(&requests, req.validate_only).await;
        if !req.validate_only {
            for r in &requests {
                let name = format!("{}/{}", r.topic, r.partition);
                let what = if r.replicas.is_some() { "reassign" } else { "cancel_reassignment" };
                crate::audit::mutation(&who, what, Resource::Partition(&name), &done);
            }
        }
        done.map_err(into_status)?;
        Ok(Response::new(pb::ReassignPartitionsResponse {}))
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        let who = identity(&request);
        self.broker
            .acl()
            .check(&who, "ListReassignments", Operation::Describe, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let me = self.broker.id();
        Ok(Response::new(pb::ListReassignmentsResponse {
            broker_id: me,
            reassignments: self
                .broker
                .reassignments()
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
        self.broker
            .acl()
            .check(&who, "AlterReplicationFactor", Operation::Alter, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let altered = self
            .broker
            .alter_replication_factor(&req.name, req.replication_factor, req.validate_only)
            .await;
        if !req.validate_only {
            crate::audit::mutation(
                &who,
                "alter_replication_factor",
                Resource::Topic(&req.name),
                &altered,
            );
        }
        let (entry, moves) = altered.map_err(into_status)?;
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
        self.broker
            .acl()
            .check(&who, "DecommissionBroker", Operation::Alter, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let done = self.broker.decommission(req.broker_id, req.cancel).await;
        let id = req.broker_id.to_string();
        let what = if req.cancel { "cancel_decommission" } else { "decommission" };
        crate::audit::mutation(&who, what, Resource::Broker(&id), &done);
        Ok(Response::new(pb::DecommissionBrokerResponse {
            replicas_left: done.map_err(into_status)?,
        }))
    }

    async fn rebalance(
        &self,
        request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let op = if req.execute { Operation::Alter } else { Operation::Describe };
        self.broker
            .acl()
            .check(&who, "Rebalance", op, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let done = self.broker.rebalance(req.execute, req.max_moves as usize).await;
        if req.execute {
            crate::audit::mutation(&who, "rebalance", Resource::Cluster, &done);
        }
        let (moves, requested) = done.map_err(into_status)?;
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
        let acl = self.broker.acl();
        acl.check(&who, "DescribeCluster", Operation::Describe, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let brokers = self.broker.topic_store().brokers().await.map_err(into_status)?;
        let load = self.broker.cluster_load().await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeClusterResponse {
            cluster: self.broker.settings().cluster.name.clone(),
            brokers: brokers.iter().map(convert::broker_info).collect(),
            controller_id: self.controller_id().await.map_err(into_status)?,
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
        let acl = self.broker.acl();
        for name in &req.topics {
            acl.check(&who, "GetMetadata", Operation::Describe, ResourceType::Topic, name)
                .map_err(into_status)?;
        }
        let store = self.broker.topic_store();
        let brokers = store.brokers().await.map_err(into_status)?;
        let mut all = self.broker.list_topics().await.map_err(into_status)?;
        let wanted: Vec<_> = if req.topics.is_empty() {
            // Every topic the caller may see; brokers are listed for anyone.
            all.retain(|t| {
                acl.allows(&who, Operation::Describe, ResourceType::Topic, &t.record.name)
            });
            all
        } else {
            let mut out = Vec::with_capacity(req.topics.len());
            for name in &req.topics {
                match all.iter().find(|t| &t.record.name == name) {
                    Some(t) => out.push(t.clone()),
                    None => return Err(into_status(crate::broker::unknown_topic(name))),
                }
            }
            out
        };
        let mut topics = Vec::with_capacity(wanted.len());
        for t in &wanted {
            let states = store.partitions(&t.record.name).await.map_err(into_status)?;
            topics.push(pb::TopicMetadata {
                topic: Some(convert::topic_info(t)),
                partitions: states
                    .iter()
                    .map(|(p, s)| convert::partition_metadata(*p, s))
                    .collect(),
            });
        }
        Ok(Response::new(pb::GetMetadataResponse {
            cluster: self.broker.settings().cluster.name.clone(),
            brokers: brokers.iter().map(convert::broker_info).collect(),
            topics,
            controller_id: self.controller_id().await.map_err(into_status)?,
        }))
    }

    async fn create_acls(
        &self,
        request: Request<pb::CreateAclsRequest>,
    ) -> Result<Response<pb::CreateAclsResponse>, Status> {
        let who = identity(&request);
        let acl = self.broker.acl();
        acl.check(&who, "CreateAcls", Operation::Alter, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let bindings = request
            .into_inner()
            .bindings
            .into_iter()
            .map(convert::acl_binding)
            .collect::<Result<Vec<_>, _>>()
            .map_err(into_status)?;
        let created = acl.create(&bindings).await;
        for b in &bindings {
            crate::audit::mutation(&who, "create_acl", Resource::Acl(&b.to_string()), &created);
        }
        created.map_err(into_status)?;
        Ok(Response::new(pb::CreateAclsResponse {}))
    }

    async fn describe_acls(
        &self,
        request: Request<pb::DescribeAclsRequest>,
    ) -> Result<Response<pb::DescribeAclsResponse>, Status> {
        let who = identity(&request);
        let acl = self.broker.acl();
        acl.check(&who, "DescribeAcls", Operation::Describe, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let filter = convert::acl_filter(request.into_inner().filter).map_err(into_status)?;
        let bindings = acl.describe(&filter).await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeAclsResponse {
            bindings: bindings.iter().map(convert::acl_binding_to_proto).collect(),
        }))
    }

    async fn delete_acls(
        &self,
        request: Request<pb::DeleteAclsRequest>,
    ) -> Result<Response<pb::DeleteAclsResponse>, Status> {
        let who = identity(&request);
        let acl = self.broker.acl();
        acl.check(&who, "DeleteAcls", Operation::Alter, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let filter = convert::acl_filter(request.into_inner().filter).map_err(into_status)?;
        let deleted = acl.delete(&filter).await;
        if let Ok(list) = &deleted {
            for b in list {
                let ok: Result<(), shale_core::error::Error> = Ok(());
                crate::audit::mutation(&who, "delete_acl", Resource::Acl(&b.to_string()), &ok);
            }
        }
        let deleted = deleted.map_err(into_status)?;
        Ok(Response::new(pb::DeleteAclsResponse {
            deleted: deleted.iter().map(convert::acl_binding_to_proto).collect(),
        }))
    }

    async fn alter_quota(
        &self,
        request: Request<pb::AlterQuotaRequest>,
    ) -> Result<Response<pb::AlterQuotaResponse>, Status> {
        let who = identity(&request);
        let acl = self.broker.acl();
        acl.check(&who, "AlterQuota", Operation::AlterConfigs, ResourceType::Cluster, CLUSTER)
            .map_err(into_status)?;
        let q = request.into_inner().quota.unwrap_or_default();
        let limits = crate::quota::QuotaLimits {
            produce_bytes_per_sec: q.produce_bytes_per_sec,
            fetch_bytes_per_sec: q.fetch_bytes_per_sec,
            requests_per_sec: q.requests_per_sec,
        };
        let set = self.broker.quotas().set(&q.principal, limits).await;
        crate::audit::mutation(&who, "alter_quota", Resource::Quota(&q.principal), &set);
        set.map_err(into_status)?;
        Ok(Response::new(pb::AlterQuotaResponse {}))
    }

    async fn describe_quotas(
        &self,
        request: Request<pb::DescribeQuotasRequest>,
    ) -> Result<Response<pb::DescribeQuotasResponse>, Status> {
        let who = identity(&request);
        let acl = self.broker.acl();
        acl.check(
            &who,
            "DescribeQuotas",
            Operation::DescribeConfigs,
            ResourceType::Cluster,
            CLUSTER,
        )
        .map_err(into_status)?;
        let quotas = self.broker.quotas().list().await.map_err(into_status)?;
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
}
