//! A share group's start offsets for administrators (KIP-932, v0):
//! `DescribeShareGroupOffsets`, `AlterShareGroupOffsets` and `DeleteShareGroupOffsets`
//! (`groups::share::admin`). Any broker answers: the state is read from and written to
//! the metadata store, and the partitions' leaders follow a change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, TopicName,
};

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::consumer_groups::text;
use crate::errors::{About, code};
use shale_broker::api::ShareOffset;
use shale_core::error::{Error, ErrorKind, Reason};

/// A group-level result's error code and message (0 and none when it succeeded).
fn outcome(result: &Result<(), Error>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (code(e, About::Group), Some(text(&e.message))),
    }
}

fn topic_id(kafka: &Kafka, topic: &str) -> uuid::Uuid {
    kafka.api.topic_id(topic).and_then(|id| uuid::Uuid::parse_str(&id).ok()).unwrap_or_default()
}

/// `offsets` grouped by topic, as the answer lists them.
fn by_topic(
    kafka: &Kafka,
    offsets: Vec<ShareOffset>,
    unknown: &[(String, Vec<i32>)],
) -> Vec<DescribeShareGroupOffsetsResponseTopic> {
    let mut topics: BTreeMap<String, Vec<DescribeShareGroupOffsetsResponsePartition>> =
        BTreeMap::new();
    for o in offsets {
        topics.entry(o.topic).or_default().push(
            DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(o.partition as i32)
                .with_start_offset(o.start)
                .with_leader_epoch(o.leader_epoch),
        );
    }
    for (t, ps) in unknown {
        let parts = topics.entry(t.clone()).or_default();
        parts.extend(ps.iter().map(|p| {
            DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(*p)
                .with_start_offset(-1)
                .with_leader_epoch(-1)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        }));
    }
    topics
        .into_iter()
        .map(|(t, partitions)| {
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_id(topic_id(kafka, &t))
                .with_topic_name(TopicName(text(&t)))
                .with_partitions(partitions)
        })
        .collect()
}

/// `DescribeShareGroupOffsets`: each group's start offsets, of the topics asked (every
/// partition with state when none is named).
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeShareGroupOffsetsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let group = g.group_id.0.to_string();
            let mut known = Vec::new();
            let mut unknown = Vec::new();
            for t in g.topics.iter().flatten() {
                let name = t.topic_name.0.to_string();
                let exists = kafka.api.topic_id(&name).is_some();
                let valid: Vec<u32> =
                    t.partitions.iter().filter_map(|p| u32::try_from(*p).ok()).collect();
                match exists && valid.len() == t.partitions.len() {
                    true => known.push((name, valid)),
                    false => unknown.push((name, t.partitions.clone())),
                }
            }
            let topics = g.topics.as_ref().map(|_| known.as_slice());
            let answer =
                DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match kafka.api.share_offsets(&who, &group, topics).await {
                Ok(offsets) => answer.with_topics(by_topic(&kafka, offsets, &unknown)),
                Err(e) => answer
                    .with_error_code(code(&e, About::Group))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = DescribeShareGroupOffsetsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_groups(groups);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `AlterShareGroupOffsets`: all or nothing; a group-level refusal (a group with
/// members, another kind of group) is the answer's error and each partition's.
pub(crate) fn alter(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AlterShareGroupOffsetsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let group = req.group_id.0.to_string();
        let offsets: Vec<(String, u32, i64)> = req
            .topics
            .iter()
            .flat_map(|t| {
                let name = t.topic_name.0.to_string();
                t.partitions.iter().map(move |p| {
                    (
                        name.clone(),
                        u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                        p.start_offset,
                    )
                })
            })
            .collect();
        let result = kafka.api.alter_share_offsets(&who, &group, &offsets).await;
        let (c, message) = outcome(&result);
        let responses = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        AlterShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(c)
                            .with_error_message(message.clone())
                    })
                    .collect();
                AlterShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_topic_id(topic_id(&kafka, &t.topic_name.0))
                    .with_partitions(partitions)
            })
            .collect();
        let body = AlterShareGroupOffsetsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(c)
            .with_error_message(message)
            .with_responses(responses);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `DeleteShareGroupOffsets`: forgets the named topics' state, all or nothing.
pub(crate) fn delete(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DeleteShareGroupOffsetsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let group = req.group_id.0.to_string();
        let topics: Vec<String> = req.topics.iter().map(|t| t.topic_name.0.to_string()).collect();
        let missing = |t: &str| kafka.api.topic_id(t).is_none();
        let result: Result<(), Error> = match topics.iter().find(|t| missing(t)) {
            Some(t) => Err(Error::new(
                ErrorKind::NotFound,
                Reason::UnknownTopic,
                format!("topic {t:?} does not exist"),
            )),
            None => kafka.api.delete_share_offsets(&who, &group, &topics).await,
        };
        let (c, message) = outcome(&result);
        let responses = req
            .topics
            .iter()
            .map(|t| {
                let (tc, tm) = match missing(&t.topic_name.0) {
                    true => (ResponseError::UnknownTopicOrPartition.code(), None),
                    false => (c, message.clone()),
                };
                DeleteShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_topic_id(topic_id(&kafka, &t.topic_name.0))
                    .with_error_code(tc)
                    .with_error_message(tm)
            })
            .collect();
        let top = match result.as_ref().err().filter(|e| e.reason != Reason::UnknownTopic) {
            Some(_) => (c, message),
            None => (0, None),
        };
        let body = DeleteShareGroupOffsetsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(top.0)
            .with_error_message(top.1)
            .with_responses(responses);
        replier.later(&body, Duration::ZERO)
    }))
}
