//! `Produce` and `InitProducerId`. A transactional producer's batches are admitted with its
//! transactional id (Write on it) and open its transaction on each partition through the
//! id's coordinator. A produce request's partitions are admitted and
//! appended in request order while the connection waits (so requests of one connection
//! append in the order sent); their acknowledgements are awaited concurrently and answered
//! together. Batches are stored byte for byte after the broker's validation: a message set
//! of magic 0 or 1 is refused with INVALID_RECORD, as Kafka 4 refuses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::settings::split_host_port;
use shale_broker::api::{Payload, PendingProduce, Produced, TxnProduce};
use shale_core::acks::Acks;
use shale_core::error::Error;

/// One partition's answer: its index, and the append's outcome or why there is none.
type Outcome = (i32, Result<PendingProduce, Error>);

/// `Produce`.
pub(crate) async fn produce(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ProduceRequest = call.decode()?;
    let acks = match req.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    // Produce v12+ is a transactions-v2 producer's (KIP-890): its partitions join its
    // transaction as it writes to them.
    let txn = req
        .transactional_id
        .as_ref()
        .map(|id| TxnProduce { transactional_id: id.0.to_string(), tv2: call.version() >= 12 });
    // The request's partitions are appended in order, in one journal round (`append_all`).
    let who = &session.identity;
    let appends = async move {
        let mut throttle = Duration::ZERO;
        let mut topics: Vec<(TopicName, Vec<Outcome>)> = Vec::with_capacity(req.topic_data.len());
        for t in req.topic_data {
            // The name as decoded (a view of the request), answered as is: no copy.
            let topic: &str = &t.name.0;
            let mut outcomes = Vec::with_capacity(t.partition_data.len());
            for p in t.partition_data {
                let outcome = match acks {
                    None => Err(invalid_acks(req.acks)),
                    Some(acks) => {
                        let appended = append(kafka, who, (topic, p.index), p.records, acks, &txn);
                        appended.await.map(|(pending, wait)| {
                            throttle = throttle.max(wait);
                            pending
                        })
                    }
                };
                outcomes.push((p.index, outcome));
            }
            topics.push((t.name, outcomes));
        }
        (topics, throttle)
    };
    let ((topics, throttle), marks) = shale_broker::api::append_all(appends).await;
    if acks == Some(Acks::None) {
        // Kafka sends no answer to acks=0; the appends above happened, in order.
        return Ok(Answer::Nothing);
    }
    let kafka = kafka.clone();
    let replier = call.replier;
    let version = replier.version;
    let throttle_ms = replier.throttle_ms(throttle);
    Ok(Answer::later(async move {
        // One wake-up for the request's journal rounds, then its partitions' answers (one
        // partition's own wait is as cheap as a wait for its round).
        if topics.iter().map(|(_, outcomes)| outcomes.len()).sum::<usize>() > 1 {
            marks.told().await;
        }
        let mut endpoints = Vec::new();
        let mut responses = Vec::with_capacity(topics.len());
        for (topic, outcomes) in topics {
            let mut partitions = Vec::with_capacity(outcomes.len());
            for (index, outcome) in outcomes {
                let result = match outcome {
                    Ok(pending) => pending.await,
                    Err(e) => Err(e),
                };
                partitions.push(partition_response(&kafka, index, result, version, &mut endpoints));
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic)
                    .with_partition_responses(partitions),
            );
        }
        let body = ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms)
            .with_node_endpoints(endpoints);
        replier.later(&body, throttle)
    }))
}

/// Admits and appends one partition's batches; the acknowledgement to await, and how long
/// the produce quota throttles the client.
async fn append(
    kafka: &Kafka,
    who: &shale_broker::api::Identity,
    (topic, index): (&str, i32),
    records: Option<Bytes>,
    acks: Acks,
    txn: &Option<TxnProduce>,
) -> Result<(PendingProduce, Duration), Error> {
    let partition = u32::try_from(index)
        .map_err(|_| Error::invalid(format!("partition {index} of topic {topic:?} is negative")))?;
    let batches = records.unwrap_or_default();
    let payload = Payload::Batches(batches);
    let admitted = match txn {
        None => kafka.api.admit_produce(who, topic, &payload)?,
        Some(t) => kafka.api.admit_transactional_produce(who, topic, &payload, t.clone())?,
    };
    let wait = admitted.wait();
    let pending = kafka.api.append(admitted, partition, payload, acks).await?;
    Ok((pending, wait))
}

/// One partition's answer; a NOT_LEADER_OR_FOLLOWER names the leader the broker knows
/// (KIP-951, v10+), with its endpoint added once to `endpoints`.
fn partition_response(
    kafka: &Kafka,
    index: i32,
    result: Result<Produced, Error>,
    version: i16,
    endpoints: &mut Vec<NodeEndpoint>,
) -> PartitionProduceResponse {
    let part = PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
    match result {
        Ok(p) => part.with_base_offset(p.base_offset).with_log_start_offset(if version >= 5 {
            p.log_start_offset
        } else {
            -1
        }),
        Err(e) => {
            let mut part = part
                .with_error_code(code(&e, About::Partition))
                .with_base_offset(-1)
                .with_error_message(
                    (version >= 8).then(|| StrBytes::from_string(e.message.clone())),
                );
            // The record a batch was refused for (its offset in the batch), v8+.
            if version >= 8
                && let Some(record) = e.details.get("record_index").and_then(|i| i.parse().ok())
            {
                part.record_errors = vec![
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(record)
                        .with_batch_index_error_message(Some(StrBytes::from_string(
                            e.message.clone(),
                        ))),
                ];
            }
            if version >= 10
                && part.error_code == ResponseError::NotLeaderOrFollower.code()
                && let Some((leader, epoch)) = leader_of(&e)
            {
                part.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                add_endpoint(kafka, leader, endpoints);
            }
            part
        }
    }
}

/// The leader and epoch a NOT_LEADER error names, when it knows them.
pub(crate) fn leader_of(e: &Error) -> Option<(i32, i32)> {
    let leader = e.details.get("leader_id")?.parse::<i32>().ok().filter(|l| *l >= 0)?;
    let epoch = e.details.get("leader_epoch")?.parse::<i32>().ok()?;
    Some((leader, epoch))
}

/// Adds broker `id`'s Kafka endpoint to `endpoints` once, when it has one.
fn add_endpoint(kafka: &Kafka, id: i32, endpoints: &mut Vec<NodeEndpoint>) {
    if endpoints.iter().any(|n| n.node_id.0 == id) {
        return;
    }
    let Some(b) = kafka.api.broker_record(id).filter(|b| !b.kafka_address.is_empty()) else {
        return;
    };
    let (host, port) = split_host_port(&b.kafka_address);
    endpoints.push(
        NodeEndpoint::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host))
            .with_port(port)
            .with_rack((!b.rack.is_empty()).then(|| StrBytes::from_string(b.rack))),
    );
}

fn invalid_acks(acks: i16) -> Error {
    Error::invalid(format!("acks {acks} is invalid: expected 0, 1 or -1 (all)")).with("acks", acks)
}

/// `InitProducerId`: for an idempotent producer, a new producer id tagged for the caller
/// (IdempotentWrite on the cluster, or Write on some topic); for a transactional one, the
/// id and epoch of its new instance from its transactional id's coordinator (Write on the
/// id), which fences older instances.
pub(crate) fn init_producer_id(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: InitProducerIdRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut body = InitProducerIdResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let outcome = match &req.transactional_id {
            None => kafka.api.init_producer_id(&who).await,
            Some(id) => match expected(req.producer_id.0, req.producer_epoch) {
                Ok(expected) => {
                    let timeout = req.transaction_timeout_ms;
                    kafka.api.init_transactional_producer(&who, id, timeout, expected).await
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok((id, epoch)) => {
                body.producer_id = ProducerId(id);
                body.producer_epoch = epoch;
            }
            Err(e) => {
                body.error_code = crate::transactions::txn_code(&e, replier.key, replier.version)
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// The producer id and epoch an `InitProducerId` asks to keep (KIP-360): both -1 is none;
/// one of them alone is invalid.
fn expected(producer_id: i64, epoch: i16) -> Result<Option<(i64, i16)>, Error> {
    match (producer_id, epoch) {
        (-1, -1) => Ok(None),
        (id, e) if id >= 0 && e >= 0 => Ok(Some((id, e))),
        (id, e) => Err(Error::invalid(format!(
            "producer id {id} with epoch {e}: give both (to keep them) or neither (-1)"
        ))),
    }
}
