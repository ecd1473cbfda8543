//! Topics, configs, partitions, moves, the cluster, ACLs and quotas, as the front ends
//! call them: each checks the caller's ACLs and audits what it changes.

use std::collections::BTreeMap;

use super::{
    AclBinding, AclFilter, Api, Identity, NewTopic, QuotaLimits, Reassignment, TopicEntry,
};
use crate::acl::{CLUSTER, Operation, ResourceType};
use crate::audit::{self, Resource};
use crate::broker::TopicWithStates;
use crate::broker::moves::{ClusterLoad, MoveStatus};
use crate::broker::topics::PartitionDescription;
use shale_core::error::Error;
use shale_meta::controller::Move;
use shale_meta::topics::BrokerRecord;

/// What a metadata request answers: the brokers, the controller, and the topics asked for
/// with their partitions' states, or why a topic cannot be described.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    /// Live brokers, by id.
    pub brokers: Vec<BrokerRecord>,
    /// The controller's broker id, -1 when none is known.
    pub controller_id: i32,
    /// Each topic asked for, in the order asked (all: by name).
    pub topics: Vec<TopicMetadata>,
}

/// One topic of a metadata answer: its entry and partitions' states by index, or the
/// topic's name and why it cannot be described (unknown, not authorized).
pub type TopicMetadata = Result<TopicWithStates, (String, Error)>;

/// Which topics a metadata request asks for.
#[derive(Debug, Clone)]
pub enum TopicsWanted {
    /// Every topic the caller may describe.
    All,
    /// These, each checked.
    Named(Vec<String>),
}

impl Api {
    /// Creates a topic: Create on the cluster allows any, Create on the topic that one.
    pub async fn create_topic(&self, who: &Identity, new: NewTopic) -> Result<TopicEntry, Error> {
        let acl = self.broker.acl();
        if !acl.allows(who, Operation::Create, ResourceType::Cluster, CLUSTER) {
            acl.check(who, "CreateTopic", Operation::Create, ResourceType::Topic, &new.name)?;
        }
        let (name, validate_only) = (new.name.clone(), new.validate_only);
        let created = self.broker.create_topic(new).await;
        if !validate_only {
            audit::mutation(who, "create_topic", Resource::Topic(&name), &created);
        }
        created
    }

    /// Deletes a topic (Delete on it).
    pub async fn delete_topic(&self, who: &Identity, name: &str) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "DeleteTopic", Operation::Delete, ResourceType::Topic, name)?;
        let deleted = self.broker.delete_topic(name).await;
        audit::mutation(who, "delete_topic", Resource::Topic(name), &deleted);
        deleted
    }

    /// Every topic the caller may describe.
    pub async fn list_topics(&self, who: &Identity) -> Result<Vec<TopicEntry>, Error> {
        let mut topics = self.broker.list_topics().await?;
        let acl = self.broker.acl();
        topics
            .retain(|t| acl.allows(who, Operation::Describe, ResourceType::Topic, &t.record.name));
        Ok(topics)
    }

    /// A topic with its partitions (Describe on it).
    pub async fn describe_topic(
        &self,
        who: &Identity,
        name: &str,
    ) -> Result<(TopicEntry, Vec<PartitionDescription>), Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeTopic", Operation::Describe, ResourceType::Topic, name)?;
        self.broker.describe_topic(name).await
    }

    /// A topic's configs (DescribeConfigs on it).
    pub fn topic_configs(&self, who: &Identity, name: &str) -> Result<TopicEntry, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeConfigs", Operation::DescribeConfigs, ResourceType::Topic, name)?;
        self.broker.topic(name)
    }

    /// The broker's own settings as `section.key = value` (DescribeConfigs on the cluster),
    /// with the asking front end's own section (`own`: its name and settings) among them,
    /// for reading only: they come from the settings file, environment and flags.
    pub fn broker_configs<S: serde::Serialize>(
        &self,
        who: &Identity,
        own: (&str, &S),
    ) -> Result<Vec<(String, String)>, Error> {
        let acl = self.broker.acl();
        let action = "DescribeConfigs";
        acl.check(who, action, Operation::DescribeConfigs, ResourceType::Cluster, CLUSTER)?;
        let unreadable =
            |e: serde_json::Error| Error::internal(format!("cannot read the settings: {e}"));
        let mut value = serde_json::to_value(self.broker.settings()).map_err(unreadable)?;
        if let serde_json::Value::Object(sections) = &mut value {
            sections.insert(own.0.to_string(), serde_json::to_value(own.1).map_err(unreadable)?);
        }
        let mut out = Vec::new();
        flatten("", &value, &mut out);
        Ok(out)
    }

    /// Sets and removes a topic's config overrides (AlterConfigs on it); the configs in
    /// force afterwards.
    pub async fn alter_topic_config(
        &self,
        who: &Identity,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<TopicEntry, Error> {
        let acl = self.broker.acl();
        acl.check(who, "AlterTopicConfig", Operation::AlterConfigs, ResourceType::Topic, name)?;
        let altered = self.broker.alter_topic_config(name, set, delete, validate_only).await;
        if !validate_only {
            audit::mutation(who, "alter_topic_config", Resource::Topic(name), &altered);
        }
        altered
    }

    /// Grows a topic to `partitions` (Alter on it, as Kafka).
    pub async fn create_partitions(
        &self,
        who: &Identity,
        name: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<TopicEntry, Error> {
        let acl = self.broker.acl();
        acl.check(who, "CreatePartitions", Operation::Alter, ResourceType::Topic, name)?;
        let added = self.broker.create_partitions(name, partitions, validate_only).await;
        if !validate_only {
            audit::mutation(who, "create_partitions", Resource::Topic(name), &added);
        }
        added
    }

    /// Deletes the records of `topic`-`partition` below `offset` (-1: the high watermark;
    /// Delete on the topic, as Kafka's DeleteRecords), waiting up to `within` for every
    /// in-sync replica to have done so; the partition's log start then.
    pub async fn delete_records(
        &self,
        who: &Identity,
        topic: &str,
        partition: u32,
        offset: i64,
        within: std::time::Duration,
    ) -> Result<i64, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DeleteRecords", Operation::Delete, ResourceType::Topic, topic)?;
        let deleted = self.broker.delete_records(topic, partition, offset, within).await;
        let name = format!("{topic}/{partition}");
        audit::mutation(who, "delete_records", Resource::Partition(&name), &deleted);
        deleted
    }

    /// Starts or cancels replica moves (Alter on the cluster, as Kafka's
    /// AlterPartitionReassignments).
    pub async fn reassign(
        &self,
        who: &Identity,
        requests: &[Reassignment],
        validate_only: bool,
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "ReassignPartitions", Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let done = self.broker.reassign(requests, validate_only).await;
        if !validate_only {
            for r in requests {
                let name = format!("{}/{}", r.topic, r.partition);
                let what = if r.replicas.is_some() { "reassign" } else { "cancel_reassignment" };
                audit::mutation(who, what, Resource::Partition(&name), &done);
            }
        }
        done
    }

    /// Moves in progress (Describe on the cluster).
    pub async fn reassignments(&self, who: &Identity) -> Result<Vec<MoveStatus>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "ListReassignments", Operation::Describe, ResourceType::Cluster, CLUSTER)?;
        self.broker.reassignments().await
    }

    /// Waits until `topic`-`partition`'s preferred replica leads it (Alter on the cluster,
    /// as Kafka's `ElectLeaders`), at most `within`.
    pub async fn elect_preferred(
        &self,
        who: &Identity,
        topic: &str,
        partition: u32,
        within: std::time::Duration,
    ) -> Result<crate::broker::Elected, Error> {
        let acl = self.broker.acl();
        acl.check(who, "ElectLeaders", Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let elected = self.broker.elect_preferred(topic, partition, within).await;
        let name = format!("{topic}/{partition}");
        audit::mutation(who, "elect_preferred_leader", Resource::Partition(&name), &elected);
        elected
    }

    /// Changes a topic's replication factor (Alter on the cluster); the moves planned.
    pub async fn alter_replication_factor(
        &self,
        who: &Identity,
        name: &str,
        replication_factor: u32,
        validate_only: bool,
    ) -> Result<(TopicEntry, Vec<Move>), Error> {
        let acl = self.broker.acl();
        let action = "AlterReplicationFactor";
        acl.check(who, action, Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let altered =
            self.broker.alter_replication_factor(name, replication_factor, validate_only).await;
        if !validate_only {
            audit::mutation(who, "alter_replication_factor", Resource::Topic(name), &altered);
        }
        altered
    }

    /// Empties a broker of replicas, or cancels that (Alter on the cluster); the replicas
    /// left on it.
    pub async fn decommission(&self, who: &Identity, id: i32, cancel: bool) -> Result<u32, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DecommissionBroker", Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let done = self.broker.decommission(id, cancel).await;
        let what = if cancel { "cancel_decommission" } else { "decommission" };
        audit::mutation(who, what, Resource::Broker(&id.to_string()), &done);
        done
    }

    /// Plans (Describe on the cluster) or executes (Alter) a rebalance of replicas.
    pub async fn rebalance(
        &self,
        who: &Identity,
        execute: bool,
        max_moves: usize,
    ) -> Result<(Vec<Move>, usize), Error> {
        let op = if execute { Operation::Alter } else { Operation::Describe };
        self.broker.acl().check(who, "Rebalance", op, ResourceType::Cluster, CLUSTER)?;
        let done = self.broker.rebalance(execute, max_moves).await;
        if execute {
            audit::mutation(who, "rebalance", Resource::Cluster, &done);
        }
        done
    }

    /// The brokers, the controller and each broker's load (Describe on the cluster).
    pub async fn describe_cluster(
        &self,
        who: &Identity,
    ) -> Result<(Vec<BrokerRecord>, i32, ClusterLoad), Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeCluster", Operation::Describe, ResourceType::Cluster, CLUSTER)?;
        let brokers = self.broker.topic_store().brokers().await?;
        let load = self.broker.cluster_load().await?;
        Ok((brokers, self.controller_id().await?, load))
    }

    /// Brokers, controller and topics for clients to route by, from this broker's cache
    /// (what it acts on itself). Brokers are listed for anyone; a named topic needs
    /// Describe on it, and without names only the topics the caller may describe are listed.
    pub fn metadata(&self, who: &Identity, wanted: TopicsWanted) -> Result<ClusterMetadata, Error> {
        let acl = self.broker.acl();
        let topics = match wanted {
            TopicsWanted::All => self
                .broker
                .cached_topics(None)?
                .into_iter()
                .filter(|(t, _)| {
                    acl.allows(who, Operation::Describe, ResourceType::Topic, &t.record.name)
                })
                .map(Ok)
                .collect(),
            TopicsWanted::Named(names) => {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let action = "Metadata";
                    if let Err(e) =
                        acl.check(who, action, Operation::Describe, ResourceType::Topic, &name)
                    {
                        out.push(Err((name, e)));
                        continue;
                    }
                    match self.broker.cached_topics(Some(std::slice::from_ref(&name)))?.pop() {
                        Some(found) => out.push(Ok(found)),
                        None => {
                            let e = self.broker.topic(&name).err().unwrap_or_else(|| {
                                Error::unavailable(format!("topic {name:?} is being created"))
                            });
                            out.push(Err((name, e)));
                        }
                    }
                }
                out
            }
        };
        Ok(ClusterMetadata {
            brokers: self.broker.cached_brokers(),
            controller_id: self.broker.controller_id(),
            topics,
        })
    }

    /// Whether `who` may do `op` on the resource (no audit: for reporting what a caller
    /// may do, as Kafka's `authorized_operations`).
    pub fn allows(&self, who: &Identity, op: Operation, kind: ResourceType, name: &str) -> bool {
        self.broker.acl().allows(who, op, kind, name)
    }

    /// `Ok` if `who` may do `op` on the cluster, else the denial, audited under `action`.
    pub fn check_cluster(&self, who: &Identity, action: &str, op: Operation) -> Result<(), Error> {
        self.broker.acl().check(who, action, op, ResourceType::Cluster, CLUSTER)
    }

    /// Whether this broker knows a topic of that name.
    pub fn topic_exists(&self, name: &str) -> bool {
        self.broker.has_topic(name)
    }

    /// The name of the topic with id `id`, if this broker knows it.
    pub fn topic_name(&self, id: &str) -> Option<String> {
        self.broker.topic_name_by_id(id)
    }

    /// The id of the topic named `name`, if this broker knows it.
    pub fn topic_id(&self, name: &str) -> Option<String> {
        self.broker.topic(name).ok().map(|t| t.record.id.clone())
    }

    /// A live broker's record (its addresses), if this broker knows it.
    pub fn broker_record(&self, id: i32) -> Option<BrokerRecord> {
        self.broker.cached_broker(id)
    }

    /// The controller's broker id as stored, -1 when none.
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

    /// Stores ACL bindings (Alter on the cluster); all or none.
    pub async fn create_acls(&self, who: &Identity, bindings: &[AclBinding]) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "CreateAcls", Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let created = acl.create(bindings).await;
        for b in bindings {
            audit::mutation(who, "create_acl", Resource::Acl(&b.to_string()), &created);
        }
        created
    }

    /// The stored bindings a filter selects (Describe on the cluster).
    pub async fn describe_acls(
        &self,
        who: &Identity,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeAcls", Operation::Describe, ResourceType::Cluster, CLUSTER)?;
        acl.describe(filter).await
    }

    /// Deletes the bindings a filter selects (Alter on the cluster); returns them.
    pub async fn delete_acls(
        &self,
        who: &Identity,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DeleteAcls", Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let deleted = acl.delete(filter).await?;
        for b in &deleted {
            let ok: Result<(), Error> = Ok(());
            audit::mutation(who, "delete_acl", Resource::Acl(&b.to_string()), &ok);
        }
        Ok(deleted)
    }

    /// Sets a principal's quotas (AlterConfigs on the cluster).
    pub async fn alter_quota(
        &self,
        who: &Identity,
        principal: &str,
        limits: QuotaLimits,
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "AlterQuota", Operation::AlterConfigs, ResourceType::Cluster, CLUSTER)?;
        let set = self.broker.quotas().set(principal, limits).await;
        audit::mutation(who, "alter_quota", Resource::Quota(principal), &set);
        set
    }

    /// Every principal's quotas (DescribeConfigs on the cluster).
    pub async fn describe_quotas(
        &self,
        who: &Identity,
    ) -> Result<BTreeMap<String, QuotaLimits>, Error> {
        let acl = self.broker.acl();
        let action = "DescribeQuotas";
        acl.check(who, action, Operation::DescribeConfigs, ResourceType::Cluster, CLUSTER)?;
        self.broker.quotas().list().await
    }
}

/// `value`'s leaves as `prefix.key` pairs (arrays and tables of arrays as JSON text).
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
