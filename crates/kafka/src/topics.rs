//! `CreateTopics` and `DeleteTopics`, with topic configs by their Kafka names validated
//! as the gRPC API validates them. A manual replica assignment is refused: Shale's
//! controller places replicas (a placement can be changed afterwards by a reassignment).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::{NewTopic, TopicEntry};
use shale_core::error::{Error, ErrorKind, Reason};

/// Kafka's `config_source` for a topic's own setting and for a default.
const TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

/// `CreateTopics`.
pub(crate) fn create(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: CreateTopicsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    let version = replier.version;
    Ok(Answer::later(async move {
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let created = match new_topic(&name, &t, req.validate_only) {
                Ok(new) => kafka.api.create_topic(&who, new).await,
                Err(e) => Err(e),
            };
            results.push(match created {
                Ok(entry) => described(result, &entry, version),
                Err(e) => result
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            });
        }
        let body = CreateTopicsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_topics(results);
        replier.later(&body, Duration::ZERO)
    }))
}

/// A creation request in Shale's terms; -1 counts mean the broker's defaults.
fn new_topic(
    name: &str,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<NewTopic, Error> {
    if !t.assignments.is_empty() {
        return Err(manual_assignment(format!(
            "topic {name:?}: manual replica assignments are not accepted; give a partition \
             count and replication factor (the controller places replicas; move them \
             afterwards with AlterPartitionReassignments)"
        )));
    }
    let count = |what: &str, n: i64| -> Result<u32, Error> {
        match n {
            -1 => Ok(0),
            n if n > 0 => {
                u32::try_from(n).map_err(|_| Error::invalid(format!("{what} {n} is too large")))
            }
            n => Err(Error::invalid(format!(
                "topic {name:?}: {what} {n} must be positive, or -1 for the default"
            ))),
        }
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(Error::invalid(format!(
                "topic {name:?}: config {} has no value",
                c.name.as_str()
            )));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    Ok(NewTopic {
        name: name.to_string(),
        partitions: count("partition count", i64::from(t.num_partitions))?,
        replication_factor: count("replication factor", i64::from(t.replication_factor))?,
        configs,
        validate_only,
    })
}

/// A created topic's answer: its id, counts and configs in force (v5+).
fn described(
    result: CreatableTopicResult,
    entry: &TopicEntry,
    version: i16,
) -> CreatableTopicResult {
    let r = &entry.record;
    let result = match version {
        0..=6 => result,
        _ => result.with_topic_id(uuid::Uuid::parse_str(&r.id).unwrap_or_default()),
    };
    if version < 5 {
        return result;
    }
    let configs = entry
        .config
        .entries(&r.configs)
        .into_iter()
        .map(|(key, value, source)| {
            let source = if source == "topic" { TOPIC_CONFIG } else { DEFAULT_CONFIG };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(key))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect();
    result
        .with_num_partitions(r.partitions as i32)
        .with_replication_factor(i16::try_from(r.replication_factor).unwrap_or(i16::MAX))
        .with_configs(Some(configs))
}

/// `DeleteTopics`: by name, or by id (v6).
pub(crate) fn delete(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DeleteTopicsRequest = call.decode()?;
    let version = call.version();
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let named: Vec<(Option<String>, uuid::Uuid)> = match version {
            0..=5 => {
                req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
            }
            _ => req
                .topics
                .iter()
                .map(|t| match &t.name {
                    Some(n) => (Some(n.0.to_string()), t.topic_id),
                    None => (kafka.api.topic_name(&t.topic_id.to_string()), t.topic_id),
                })
                .collect(),
        };
        let mut responses = Vec::with_capacity(named.len());
        for (name, id) in named {
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(id);
            let deleted = match &name {
                Some(n) => kafka.api.delete_topic(&who, n).await,
                None => Err(Error::new(
                    shale_core::error::ErrorKind::NotFound,
                    shale_core::error::Reason::UnknownTopic,
                    format!("no topic has id {id}"),
                )),
            };
            responses.push(match deleted {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(match name {
                        None => kafka_protocol::ResponseError::UnknownTopicId.code(),
                        Some(_) => code(&e, About::Partition),
                    })
                    .with_error_message((version >= 5).then(|| StrBytes::from_string(e.message))),
            });
        }
        let body = DeleteTopicsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_responses(responses);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `CreatePartitions`: grows topics to the counts asked (Alter on each). A manual
/// assignment of the new partitions is refused, as for `CreateTopics`.
pub(crate) fn create_partitions(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: CreatePartitionsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let grown = match (&t.assignments, u32::try_from(t.count)) {
                (Some(a), _) if !a.is_empty() => Err(manual_assignment(format!(
                    "topic {name:?}: manual assignments of new partitions are not accepted; the \
                     controller places them"
                ))),
                (_, Err(_)) => {
                    Err(Error::invalid(format!("partition count {} is negative", t.count)))
                }
                (_, Ok(count)) => kafka
                    .api
                    .create_partitions(&who, &name, count, req.validate_only)
                    .await
                    .map(|_| ()),
            };
            let result = CreatePartitionsTopicResult::default().with_name(t.name);
            results.push(match grown {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            });
        }
        let body = CreatePartitionsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}

/// A manual replica assignment, which Shale's controller does not take:
/// INVALID_REPLICA_ASSIGNMENT, as Kafka answers an assignment it cannot follow.
fn manual_assignment(message: String) -> Error {
    Error::new(ErrorKind::Invalid, Reason::InvalidReplicaAssignment, message)
}
