//! `shale.v1.Admin`: topics, configs and cluster metadata.

use crate::audit::Resource;
use shale_proto::status::into_status;
use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::broker::Broker;
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
        let who = crate::auth::layer::identity(&request);
        let req = request.into_inner();
        let name = req.name.clone();
        let validate_only = req.validate_only;
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
        let who = crate::auth::layer::identity(&request);
        let name = request.into_inner().name;
        let deleted = self.broker.delete_topic(&name).await;
        crate::audit::mutation(&who, "delete_topic", Resource::Topic(&name), &deleted);
        deleted.map_err(into_status)?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let topics = self.broker.list_topics().await.map_err(into_status)?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: topics.iter().map(convert::topic_info).collect(),
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let (entry, parts) =
            self.broker.describe_topic(&request.into_inner().name).await.map_err(into_status)?;
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
        let who = crate::auth::layer::identity(&request);
        let req = request.into_inner();
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

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let id = crate::auth::layer::identity(&request);
        Ok(Response::new(pb::WhoAmIResponse {
            principal: id.principal.to_string(),
            authenticated_by: id.via.as_str().to_string(),
            broker: id.broker,
        }))
    }

    async fn describe_cluster(
        &self,
        _request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let brokers = self.broker.topic_store().brokers().await.map_err(into_status)?;
        Ok(Response::new(pb::DescribeClusterResponse {
            cluster: self.broker.settings().cluster.name.clone(),
            brokers: brokers.iter().map(convert::broker_info).collect(),
            controller_id: self.controller_id().await.map_err(into_status)?,
        }))
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let req = request.into_inner();
        let store = self.broker.topic_store();
        let brokers = store.brokers().await.map_err(into_status)?;
        let all = self.broker.list_topics().await.map_err(into_status)?;
        let wanted: Vec<_> = if req.topics.is_empty() {
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
}
