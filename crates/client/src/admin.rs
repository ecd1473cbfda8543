//! Topic and cluster administration. Errors name the broker asked (and the topic).

use std::collections::BTreeMap;

use super::{Client, locate, status_error};
use shale_core::error::Error;
use shale_proto::pb;

/// Admin operations against the bootstrap broker.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Calls one Admin RPC on the current bootstrap broker. One that cannot be reached (the
    /// connection is refused or fails: the call never arrived) is left for the next
    /// bootstrap broker; a read (`read_only`) also moves on after any retriable failure.
    /// A change that reached a broker is never sent twice. Errors name the broker and
    /// `topic`.
    async fn call<Req, Resp, F, Fut>(
        &self,
        topic: Option<&str>,
        read_only: bool,
        request: Req,
        rpc: F,
    ) -> Result<tonic::Response<Resp>, Error>
    where
        Req: Clone,
        F: Fn(shale_proto::pb::admin_client::AdminClient<crate::Transport>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let attempts = 2 * self.client.inner.bootstrap.len();
        let mut attempt = 0;
        loop {
            let broker = self.client.bootstrap().to_string();
            let status = match rpc(self.client.admin_rpc()?, request.clone()).await {
                Ok(resp) => return Ok(resp),
                Err(status) => status,
            };
            // A broker's refusal carries its reason in the details; a status without them
            // came from the transport, and "connect" says the request never left.
            let unreached = status.code() == tonic::Code::Unavailable
                && status.details().is_empty()
                && status.message().contains("connect");
            let e = locate(status_error(&status), &broker, topic, None);
            attempt += 1;
            if attempt >= attempts || !(unreached || (read_only && e.kind.is_retriable())) {
                return Err(e);
            }
            self.client.next_bootstrap();
            shale_core::clock::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
        }
    }

    /// Turns a failed call to the current bootstrap broker about `topic` into an error
    /// naming both.
    fn failed(&self, topic: Option<&str>) -> impl Fn(tonic::Status) -> Error {
        let broker = self.client.bootstrap().to_string();
        let topic = topic.map(str::to_string);
        move |s| locate(status_error(&s), &broker, topic.as_deref(), None)
    }

    /// Creates a topic (`replication_factor` 0 = broker default).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<pb::TopicInfo, Error> {
        let resp = self
            .call(
                Some(name),
                false,
                pb::CreateTopicRequest {
                    name: name.to_string(),
                    partitions,
                    replication_factor,
                    configs: configs.into_iter().collect(),
                    validate_only: false,
                },
                |mut rpc, req| async move { rpc.create_topic(req).await },
            )
            .await?;
        resp.into_inner().topic.ok_or_else(|| Error::internal("create topic answered no topic"))
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        self.call(
            Some(name),
            false,
            pb::DeleteTopicRequest { name: name.to_string() },
            |mut rpc, req| async move { rpc.delete_topic(req).await },
        )
        .await?;
        self.client.invalidate(name);
        Ok(())
    }

    /// Every topic.
    pub async fn list_topics(&self) -> Result<Vec<pb::TopicInfo>, Error> {
        let resp = self
            .call(None, true, pb::ListTopicsRequest {}, |mut rpc, req| async move {
                rpc.list_topics(req).await
            })
            .await?;
        Ok(resp.into_inner().topics)
    }

    /// A topic with partitions and configs in force. Each broker knows the offsets of the
    /// partitions it hosts, so offsets of partitions led elsewhere are asked of their leaders.
    pub async fn describe_topic(&self, name: &str) -> Result<pb::DescribeTopicResponse, Error> {
        let request = pb::DescribeTopicRequest { name: name.to_string() };
        let mut resp =
            self.call(Some(name), true, request, |mut rpc, req| async move {
                rpc.describe_topic(req).await
            })
            .await?
            .into_inner();
        let mut asked = std::collections::HashSet::new();
        loop {
            let Some(leader) = resp
                .partitions
                .iter()
                .filter(|p| p.log_end_offset < 0)
                .filter_map(|p| p.metadata.as_ref().map(|m| m.leader_id))
                .find(|l| *l >= 0 && !asked.contains(l))
            else {
                return Ok(resp);
            };
            asked.insert(leader);
            let Some(addr) = self.client.broker_address(leader).await else { continue };
            // Best effort: a leader that cannot answer leaves its partitions at -1.
            let Ok(theirs) = self.describe_on(&addr, name).await else { continue };
            for p in resp.partitions.iter_mut().filter(|p| p.log_end_offset < 0) {
                let mine = p.metadata.as_ref().map(|m| m.partition);
                if let Some(t) = theirs.partitions.iter().find(|t| {
                    t.metadata.as_ref().map(|m| m.partition) == mine && t.log_end_offset >= 0
                }) {
                    *p = t.clone();
                }
            }
        }
    }

    async fn describe_on(
        &self,
        addr: &str,
        name: &str,
    ) -> Result<pb::DescribeTopicResponse, Error> {
        let resp = self
            .client
            .admin_rpc_at(addr)?
            .describe_topic(pb::DescribeTopicRequest { name: name.to_string() })
            .await
            .map_err(|s| locate(status_error(&s), addr, Some(name), None))?;
        Ok(resp.into_inner())
    }

    /// Sets and removes topic config overrides; returns the configs in force.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<Vec<pb::ConfigEntry>, Error> {
        let resp = self
            .call(
                Some(name),
                false,
                pb::AlterTopicConfigRequest {
                    name: name.to_string(),
                    set: set.into_iter().collect(),
                    delete,
                    validate_only: false,
                },
                |mut rpc, req| async move { rpc.alter_topic_config(req).await },
            )
            .await?;
        Ok(resp.into_inner().configs)
    }

    /// Adds partitions to a topic so that it has `partitions` in all (Kafka's
    /// CreatePartitions); returns the topic. Keyed records then hash over the new count, so
    /// a key's later records may land in another partition than its earlier ones. This
    /// client sees the new partitions at once; others within their metadata max age.
    pub async fn create_partitions(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<pb::TopicInfo, Error> {
        let resp = self
            .call(
                Some(name),
                false,
                pb::CreatePartitionsRequest {
                    name: name.to_string(),
                    partitions,
                    validate_only: false,
                },
                |mut rpc, req| async move { rpc.create_partitions(req).await },
            )
            .await?;
        self.client.invalidate(name);
        resp.into_inner()
            .topic
            .ok_or_else(|| Error::internal(format!("the broker answered no topic for {name:?}")))
    }

    /// Requests reassignments (Kafka's AlterPartitionReassignments): each partition moves
    /// to the replica set given, preferred leader first; an empty set cancels its move.
    /// Returns once requested; the controller carries them out.
    pub async fn reassign_partitions(
        &self,
        reassignments: Vec<pb::Reassignment>,
        validate_only: bool,
    ) -> Result<(), Error> {
        let topic = reassignments.first().map(|r| r.topic.clone());
        self.call(
            topic.as_deref(),
            false,
            pb::ReassignPartitionsRequest { reassignments, validate_only },
            |mut rpc, req| async move { rpc.reassign_partitions(req).await },
        )
        .await?;
        Ok(())
    }

    /// Reassignments pending or in progress, with their progress gathered from every live
    /// broker (each reports the partitions it leads and the joining replicas it hosts).
    /// Brokers that do not answer are left out of the progress, not of the list.
    pub async fn list_reassignments(&self) -> Result<Vec<pb::ReassignmentStatus>, Error> {
        let first = self
            .call(None, true, pb::ListReassignmentsRequest {}, |mut rpc, req| async move {
                rpc.list_reassignments(req).await
            })
            .await?
            .into_inner();
        let mut merged: std::collections::BTreeMap<(String, u32), pb::ReassignmentStatus> =
            first.reassignments.into_iter().map(|r| ((r.topic.clone(), r.partition), r)).collect();
        let cluster = self.describe_cluster().await?;
        for b in cluster.brokers.iter().filter(|b| b.id != first.broker_id) {
            let Ok(mut rpc) = self.client.admin_rpc_at(&b.address) else { continue };
            let Ok(resp) = rpc.list_reassignments(pb::ListReassignmentsRequest {}).await else {
                continue;
            };
            for r in resp.into_inner().reassignments {
                let Some(m) = merged.get_mut(&(r.topic.clone(), r.partition)) else { continue };
                if r.leader_log_end_offset >= 0 {
                    m.leader_log_end_offset = r.leader_log_end_offset;
                }
                m.joining.extend(r.joining);
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Changes a topic's replication factor by reassigning its partitions; returns the
    /// topic and the moves requested.
    pub async fn alter_replication_factor(
        &self,
        name: &str,
        replication_factor: u32,
    ) -> Result<pb::AlterReplicationFactorResponse, Error> {
        let resp = self
            .call(
                Some(name),
                false,
                pb::AlterReplicationFactorRequest {
                    name: name.to_string(),
                    replication_factor,
                    validate_only: false,
                },
                |mut rpc, req| async move { rpc.alter_replication_factor(req).await },
            )
            .await?;
        self.client.invalidate(name);
        Ok(resp.into_inner())
    }

    /// Decommissions broker `id` (with `cancel`, lets it stay); returns the replicas still
    /// on it or headed for it.
    pub async fn decommission_broker(&self, id: i32, cancel: bool) -> Result<u32, Error> {
        let resp = self
            .call(
                None,
                false,
                pb::DecommissionBrokerRequest { broker_id: id, cancel },
                |mut rpc, req| async move { rpc.decommission_broker(req).await },
            )
            .await?;
        Ok(resp.into_inner().replicas_left)
    }

    /// Plans moves that balance replicas and leaders (at most `max_moves` replica moves,
    /// 0 = no limit) and, with `execute`, requests them.
    pub async fn rebalance(
        &self,
        execute: bool,
        max_moves: u32,
    ) -> Result<pb::RebalanceResponse, Error> {
        let resp = self
            .call(
                None,
                false,
                pb::RebalanceRequest { execute, max_moves },
                |mut rpc, req| async move { rpc.rebalance(req).await },
            )
            .await?;
        Ok(resp.into_inner())
    }

    /// Brokers and controller.
    pub async fn describe_cluster(&self) -> Result<pb::DescribeClusterResponse, Error> {
        let resp = self
            .call(None, true, pb::DescribeClusterRequest {}, |mut rpc, req| async move {
                rpc.describe_cluster(req).await
            })
            .await?;
        Ok(resp.into_inner())
    }

    /// The principal the bootstrap broker sees for this client, and how it was established.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, Error> {
        let resp = self
            .call(None, true, pb::WhoAmIRequest {}, |mut rpc, req| async move {
                rpc.who_am_i(req).await
            })
            .await?;
        Ok(resp.into_inner())
    }

    /// Stores access-control bindings, all or none (needs Alter on the cluster).
    pub async fn create_acls(&self, bindings: Vec<pb::AclBinding>) -> Result<(), Error> {
        self.call(None, false, pb::CreateAclsRequest { bindings }, |mut rpc, req| async move {
            rpc.create_acls(req).await
        })
        .await?;
        Ok(())
    }

    /// The bindings `filter` selects (needs Describe on the cluster).
    pub async fn describe_acls(&self, filter: pb::AclFilter) -> Result<Vec<pb::AclBinding>, Error> {
        let resp = self
            .call(
                None,
                true,
                pb::DescribeAclsRequest { filter: Some(filter) },
                |mut rpc, req| async move { rpc.describe_acls(req).await },
            )
            .await?;
        Ok(resp.into_inner().bindings)
    }

    /// Deletes the bindings `filter` selects and returns them (needs Alter on the cluster).
    pub async fn delete_acls(&self, filter: pb::AclFilter) -> Result<Vec<pb::AclBinding>, Error> {
        let resp = self
            .call(
                None,
                false,
                pb::DeleteAclsRequest { filter: Some(filter) },
                |mut rpc, req| async move { rpc.delete_acls(req).await },
            )
            .await?;
        Ok(resp.into_inner().deleted)
    }

    /// Replaces a principal's quotas (every limit unset removes them; needs AlterConfigs
    /// on the cluster).
    pub async fn alter_quota(&self, quota: pb::Quota) -> Result<(), Error> {
        self.call(
            None,
            false,
            pb::AlterQuotaRequest { quota: Some(quota) },
            |mut rpc, req| async move { rpc.alter_quota(req).await },
        )
        .await?;
        Ok(())
    }

    /// Every principal's quotas (needs DescribeConfigs on the cluster).
    pub async fn describe_quotas(&self) -> Result<Vec<pb::Quota>, Error> {
        let resp = self
            .call(None, true, pb::DescribeQuotasRequest {}, |mut rpc, req| async move {
                rpc.describe_quotas(req).await
            })
            .await?;
        Ok(resp.into_inner().quotas)
    }

    /// Sets `user`'s password credential for `mechanisms` (both SCRAM ones when empty;
    /// needs Alter on the cluster).
    pub async fn set_user_credential(
        &self,
        user: &str,
        password: &str,
        mechanisms: Vec<String>,
        iterations: u32,
    ) -> Result<(), Error> {
        let request = pb::SetUserCredentialRequest {
            user: user.to_string(),
            password: password.to_string(),
            mechanisms,
            iterations,
        };
        self.call(None, false, request, |mut rpc, req| async move {
            rpc.set_user_credential(req).await
        })
        .await?;
        Ok(())
    }

    /// Deletes `user`'s credentials for `mechanisms` (all when empty).
    pub async fn delete_user_credential(
        &self,
        user: &str,
        mechanisms: Vec<String>,
    ) -> Result<(), Error> {
        let request = pb::DeleteUserCredentialRequest { user: user.to_string(), mechanisms };
        self.call(None, false, request, |mut rpc, req| async move {
            rpc.delete_user_credential(req).await
        })
        .await?;
        Ok(())
    }

    /// Every user's credentials, one per mechanism (needs Describe on the cluster).
    pub async fn list_users(&self) -> Result<Vec<pb::UserCredential>, Error> {
        let resp = self
            .call(None, true, pb::ListUsersRequest {}, |mut rpc, req| async move {
                rpc.list_users(req).await
            })
            .await?;
        Ok(resp.into_inner().credentials)
    }

    /// Brokers, controller and partition leaders of `topics` (all when empty).
    pub async fn metadata(&self, topics: &[String]) -> Result<pb::GetMetadataResponse, Error> {
        self.client
            .retrying(|| async {
                let resp = self
                    .client
                    .admin_rpc()?
                    .get_metadata(pb::GetMetadataRequest { topics: topics.to_vec() })
                    .await
                    .map_err(self.failed(None))?;
                Ok(resp.into_inner())
            })
            .await
    }

    /// Deletes a partition's records below `offset` (-1: up to the high watermark), as
    /// Kafka's DeleteRecords: asked of the partition's leader, which answers once every
    /// in-sync replica refuses them, or `REQUEST_TIMED_OUT` after `timeout` (0: 30 s; the
    /// leader has deleted them by then, its followers follow). Returns the partition's new
    /// log start.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        timeout: std::time::Duration,
    ) -> Result<i64, Error> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let req =
            pb::DeleteRecordsRequest { topic: topic.to_string(), partition, offset, timeout_ms };
        let policy = crate::retry::RetryPolicy::QUICK;
        self.client
            .at_leader_within(topic, partition, policy, |addr| {
                let (rpc, req, addr) =
                    (self.client.admin_rpc_at(addr), req.clone(), addr.to_string());
                async move {
                    match rpc?.delete_records(req).await {
                        Ok(resp) => Ok(Ok(resp.into_inner().low_watermark)),
                        // Waiting again is the caller's choice, not a retry's.
                        Err(s) => match status_error(&s) {
                            e if e.reason == shale_core::error::Reason::RequestTimedOut => {
                                Ok(Err(locate(e, &addr, Some(topic), Some(partition))))
                            }
                            e => Err(e),
                        },
                    }
                }
            })
            .await?
    }

    /// Earliest, latest or by-timestamp offset of a partition.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: pb::list_offsets_request::Spec,
    ) -> Result<pb::ListOffsetsResponse, Error> {
        let req = pb::ListOffsetsRequest { topic: topic.to_string(), partition, spec: Some(spec) };
        let resp = self
            .client
            .on_leader(topic, partition, |mut log| {
                let req = req.clone();
                async move { log.list_offsets(req).await }
            })
            .await?;
        Ok(resp)
    }
}
