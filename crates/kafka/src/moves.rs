//! `AlterPartitionReassignments`, `ListPartitionReassignments` and `ElectLeaders` on
//! Shale's replica moves: a move copies only what is not in the bucket (the tail), and
//! the controller moves leadership back to the preferred replica whenever it can, so a
//! preferred election waits until it has.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::{Elected, Reassignment};
use shale_core::error::Error;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|i| BrokerId(*i)).collect()
}

/// `AlterPartitionReassignments`: start a move to the replicas given, or cancel one
/// (replicas null). Each partition is requested on its own, so one refusal does not hold
/// the others back.
pub(crate) fn alter(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AlterPartitionReassignmentsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let moved = match u32::try_from(p.partition_index) {
                    Ok(partition) => {
                        let r = Reassignment {
                            topic: t.name.0.to_string(),
                            partition,
                            replicas: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                        };
                        kafka.api.reassign(&who, &[r], false).await
                    }
                    Err(_) => {
                        Err(Error::invalid(format!("partition {} is negative", p.partition_index)))
                    }
                };
                let part = ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index);
                partitions.push(match moved {
                    Ok(()) => part,
                    Err(e) => part
                        .with_error_code(code(&e, About::Partition))
                        .with_error_message(Some(text(&e.message))),
                });
            }
            topics.push(
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        let body = AlterPartitionReassignmentsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_responses(topics);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `ListPartitionReassignments`: moves under way, all or of the partitions named.
pub(crate) fn list(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ListPartitionReassignmentsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut body = ListPartitionReassignmentsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.reassignments(&who).await {
            Err(e) => {
                body.error_code = code(&e, About::Partition);
                body.error_message = Some(text(&e.message));
            }
            Ok(moves) => {
                let wanted = |topic: &str, p: u32| {
                    req.topics.as_ref().is_none_or(|ts| {
                        ts.iter().any(|t| {
                            t.name.0.as_str() == topic && t.partition_indexes.contains(&(p as i32))
                        })
                    })
                };
                let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
                for m in moves.into_iter().filter(|m| wanted(&m.topic, m.partition)) {
                    let s = &m.state;
                    // A requested move not started yet shows as its target being added.
                    let (replicas, adding) = match s.adding.is_empty() && !s.target.is_empty() {
                        true => (
                            s.replicas.clone(),
                            s.target.iter().filter(|r| !s.replicas.contains(r)).cloned().collect(),
                        ),
                        false => (s.replicas.clone(), s.adding.clone()),
                    };
                    let removing = match s.removing.is_empty() && !s.target.is_empty() {
                        true => {
                            s.replicas.iter().filter(|r| !s.target.contains(r)).cloned().collect()
                        }
                        false => s.removing.clone(),
                    };
                    let part = OngoingPartitionReassignment::default()
                        .with_partition_index(m.partition as i32)
                        .with_replicas(ids(&replicas))
                        .with_adding_replicas(ids(&adding))
                        .with_removing_replicas(ids(&removing));
                    match topics.iter_mut().find(|t| t.name.0.as_str() == m.topic) {
                        Some(t) => t.partitions.push(part),
                        None => topics.push(
                            OngoingTopicReassignment::default()
                                .with_name(TopicName(text(&m.topic)))
                                .with_partitions(vec![part]),
                        ),
                    }
                }
                body.topics = topics;
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// Kafka's election types.
const PREFERRED: i8 = 0;

/// `ElectLeaders`: preferred-leader elections (an unclean election on request is refused:
/// `unclean.leader.election.enable` on the topic lets the controller do it when needed).
pub(crate) fn elect(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ElectLeadersRequest = call.decode()?;
    let version = call.version();
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let within =
            Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0).clamp(1, 60_000));
        let wanted: Vec<(String, Vec<i32>)> = match &req.topic_partitions {
            Some(tps) => {
                tps.iter().map(|t| (t.topic.0.to_string(), t.partitions.clone())).collect()
            }
            // All partitions: those whose leader is not their preferred replica.
            None => kafka
                .api
                .metadata(&who, shale_broker::api::TopicsWanted::All)
                .map(|m| {
                    m.topics
                        .into_iter()
                        .flatten()
                        .map(|(t, states)| {
                            let off: Vec<i32> = states
                                .iter()
                                .filter(|(_, s)| s.replicas.first().is_some_and(|p| *p != s.leader))
                                .map(|(p, _)| *p as i32)
                                .collect();
                            (t.record.name, off)
                        })
                        .filter(|(_, ps)| !ps.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        for (topic, partitions) in wanted {
            let mut out = Vec::with_capacity(partitions.len());
            for p in partitions {
                let elected = match (req.election_type, u32::try_from(p)) {
                    (t, _) if version >= 1 && t != PREFERRED => Err(Error::invalid(
                        "unclean elections on request are not served: set \
                         unclean.leader.election.enable on the topic",
                    )),
                    (_, Err(_)) => Err(Error::invalid(format!("partition {p} is negative"))),
                    (_, Ok(partition)) => {
                        kafka.api.elect_preferred(&who, &topic, partition, within).await
                    }
                };
                let result = PartitionResult::default().with_partition_id(p);
                out.push(match elected {
                    Ok(Elected::Done) => result,
                    Ok(Elected::NotNeeded) => {
                        result.with_error_code(ResponseError::ElectionNotNeeded.code())
                    }
                    Err(e) => result
                        .with_error_code(code(&e, About::Partition))
                        .with_error_message(Some(text(&e.message))),
                });
            }
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(text(&topic)))
                    .with_partition_result(out),
            );
        }
        let body = ElectLeadersResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_replica_election_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}
