//! `Metadata` and `DescribeCluster`: the brokers at their advertised Kafka addresses, the
//! controller, and topics with their partitions' leaders, epochs, replicas and ISRs, so
//! clients route produce and fetch to leaders. Served from the broker's own cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::settings::split_host_port;
use shale_broker::api::{
    BrokerRecord, NewTopic, Operation, ResourceType, TopicEntry, TopicsWanted,
};

/// `authorized_operations` when the client did not ask for them (Kafka's sentinel).
const NOT_ASKED: i32 = i32::MIN;

/// Kafka's ACL operation codes, as `authorized_operations` bit positions.
fn acl_code(op: Operation) -> i32 {
    match op {
        Operation::All => 2,
        Operation::Read => 3,
        Operation::Write => 4,
        Operation::Create => 5,
        Operation::Delete => 6,
        Operation::Alter => 7,
        Operation::Describe => 8,
        Operation::ClusterAction => 9,
        Operation::DescribeConfigs => 10,
        Operation::AlterConfigs => 11,
        Operation::IdempotentWrite => 12,
    }
}

/// The bit set of `ops` the caller may do on a resource.
pub(crate) fn authorized_operations(
    kafka: &Kafka,
    session: &Session,
    kind: ResourceType,
    name: &str,
    ops: &[Operation],
) -> i32 {
    ops.iter()
        .filter(|op| kafka.api.allows(&session.identity, **op, kind, name))
        .fold(0, |bits, op| bits | 1 << acl_code(*op))
}

/// The operations Kafka reports for a topic.
const TOPIC_OPS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

/// The operations Kafka reports for the cluster.
const CLUSTER_OPS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

/// The brokers that have a Kafka listener, as `(id, host, port, rack)`.
fn kafka_brokers(brokers: &[BrokerRecord]) -> Vec<(i32, String, i32, Option<String>)> {
    brokers
        .iter()
        .filter(|b| !b.kafka_address.is_empty())
        .map(|b| {
            let (host, port) = split_host_port(&b.kafka_address);
            let rack = (!b.rack.is_empty()).then(|| b.rack.clone());
            (b.id, host, port, rack)
        })
        .collect()
}

/// `Metadata`.
pub(crate) async fn metadata(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: MetadataRequest = call.decode()?;
    let version = call.version();
    let api = &kafka.api;
    // v0: an empty list means every topic; v1+: null does, and empty means none. From
    // v10 a topic may be asked by id (its name null, or empty as the Java client sends it
    // for a broker-side regex subscription, KIP-848); an id nobody knows is answered
    // UNKNOWN_TOPIC_ID.
    let mut unknown_ids = Vec::new();
    let names: Option<Vec<String>> = match &req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .iter()
                .filter_map(|t| match &t.name {
                    Some(n) if !n.is_empty() || t.topic_id.is_nil() => Some(n.0.to_string()),
                    _ => {
                        let name = api.topic_name(&t.topic_id.to_string());
                        if name.is_none() {
                            unknown_ids.push(t.topic_id);
                        }
                        name
                    }
                })
                .collect(),
        ),
    };
    if let Some(names) = &names
        && req.allow_auto_topic_creation
        && kafka.settings.auto_create_topics
    {
        for name in names {
            if !name.is_empty() && !api.topic_exists(name) {
                let new = NewTopic { name: name.clone(), ..Default::default() };
                if let Err(e) = api.create_topic(&session.identity, new).await {
                    tracing::debug!(topic = %name, error = %e, "auto-creating a topic failed");
                }
            }
        }
    }
    let wanted = match names {
        None => TopicsWanted::All,
        Some(names) => TopicsWanted::Named(names),
    };
    let m = api.metadata(&session.identity, wanted).map_err(|e| e.to_string())?;
    let live: HashSet<i32> = m.brokers.iter().map(|b| b.id).collect();
    let brokers = kafka_brokers(&m.brokers)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_rack(rack.filter(|_| version >= 1).map(StrBytes::from_string))
        })
        .collect();
    let ask_ops = req.include_topic_authorized_operations;
    let topics = m
        .topics
        .into_iter()
        .map(|t| match t {
            Ok((entry, states)) => {
                let mut topic = described(&entry, &states, &live, version);
                topic.topic_authorized_operations = match ask_ops && version >= 8 {
                    true => authorized_operations(
                        kafka,
                        session,
                        ResourceType::Topic,
                        &entry.record.name,
                        TOPIC_OPS,
                    ),
                    false => NOT_ASKED,
                };
                topic
            }
            Err((name, e)) => MetadataResponseTopic::default()
                .with_error_code(code(&e, About::Partition))
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_topic_authorized_operations(NOT_ASKED),
        })
        .chain(unknown_ids.into_iter().map(|id| {
            MetadataResponseTopic::default()
                .with_error_code(kafka_protocol::ResponseError::UnknownTopicId.code())
                .with_topic_id(id)
                .with_topic_authorized_operations(NOT_ASKED)
        }))
        .collect();
    let cluster_ops = match req.include_cluster_authorized_operations && (8..=10).contains(&version)
    {
        true => {
            authorized_operations(kafka, session, ResourceType::Cluster, "cluster", CLUSTER_OPS)
        }
        false => NOT_ASKED,
    };
    let body = MetadataResponse::default()
        .with_throttle_time_ms(call.throttle_ms(Duration::ZERO))
        .with_brokers(brokers)
        .with_cluster_id(
            (version >= 2).then(|| StrBytes::from_string(api.cluster_name().to_string())),
        )
        .with_controller_id(BrokerId(if version >= 1 { m.controller_id } else { -1 }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops);
    Ok(call.reply(&body, Duration::ZERO))
}

/// One described topic: every partition with its leader, or LEADER_NOT_AVAILABLE while it
/// has none (being created, or offline).
fn described(
    entry: &TopicEntry,
    states: &std::collections::BTreeMap<u32, shale_broker::api::PartitionState>,
    live: &HashSet<i32>,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = (0..entry.record.partitions)
        .map(|p| {
            let part = MetadataResponsePartition::default().with_partition_index(p as i32);
            match states.get(&p) {
                None => part
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1),
                Some(s) => {
                    let error = match s.leader {
                        l if l < 0 || !live.contains(&l) => {
                            ResponseError::LeaderNotAvailable.code()
                        }
                        _ => 0,
                    };
                    let offline = match version {
                        0..=4 => Vec::new(),
                        _ => s
                            .replicas
                            .iter()
                            .filter(|r| !live.contains(r))
                            .map(|r| BrokerId(*r))
                            .collect(),
                    };
                    part.with_error_code(error)
                        .with_leader_id(BrokerId(s.leader))
                        .with_leader_epoch(if version >= 7 { s.leader_epoch } else { -1 })
                        .with_replica_nodes(s.replicas.iter().map(|r| BrokerId(*r)).collect())
                        .with_isr_nodes(s.isr.iter().map(|r| BrokerId(*r)).collect())
                        .with_offline_replicas(offline)
                }
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(entry.record.name.clone()))))
        .with_topic_id(match version {
            0..=9 => uuid::Uuid::nil(),
            _ => uuid::Uuid::parse_str(&entry.record.id).unwrap_or_default(),
        })
        .with_partitions(partitions)
}

/// `DescribeCluster`: the brokers, the controller and the cluster's id (Describe on the
/// cluster).
pub(crate) fn describe_cluster(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeClusterRequest = call.decode()?;
    let api = &kafka.api;
    let mut body = DescribeClusterResponse::default()
        .with_throttle_time_ms(call.throttle_ms(Duration::ZERO))
        .with_cluster_id(StrBytes::from_string(api.cluster_name().to_string()));
    match api.check_cluster(&session.identity, "DescribeCluster", Operation::Describe) {
        Err(e) => {
            body.error_code = code(&e, About::Partition);
            body.error_message = Some(StrBytes::from_string(e.message));
        }
        Ok(()) => {
            let m = api
                .metadata(&session.identity, TopicsWanted::Named(Vec::new()))
                .map_err(|e| e.to_string())?;
            body.controller_id = BrokerId(m.controller_id);
            body.brokers = kafka_brokers(&m.brokers)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port)
                        .with_rack(rack.map(StrBytes::from_string))
                })
                .collect();
            body.cluster_authorized_operations = match req.include_cluster_authorized_operations {
                true => authorized_operations(
                    kafka,
                    session,
                    ResourceType::Cluster,
                    "cluster",
                    CLUSTER_OPS,
                ),
                false => NOT_ASKED,
            };
        }
    }
    Ok(call.reply(&body, Duration::ZERO))
}
