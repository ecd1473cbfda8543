//! A transactional producer's requests: `InitProducerId` with a transactional id,
//! `AddPartitionsToTxn` (v0–3, what clients send), `AddOffsetsToTxn`, `TxnOffsetCommit` and
//! `EndTxn`, each a call to the domain API. Transactions v2 (KIP-890) is what a client
//! negotiates from `ApiVersions`' finalized feature `transaction.version`: it then adds
//! partitions by producing (Produce v12), offsets by `TxnOffsetCommit` v5, and ends with
//! `EndTxn` v5, which answers the epoch of its next transaction.
//!
//! Versions before a request's `PRODUCER_FENCED` existed get `INVALID_PRODUCER_EPOCH`
//! instead, as Kafka answers them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, EndTxnRequest,
    EndTxnResponse, ProducerId, TopicName, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::commits::ToCommit;
use crate::errors::{About, code};
use shale_broker::api::TxnCommitter;
use shale_core::error::Error;

/// The last version of each request that predates `PRODUCER_FENCED`.
const FENCED_UNKNOWN_BELOW: [(kafka_protocol::messages::ApiKey, i16); 4] = [
    (kafka_protocol::messages::ApiKey::InitProducerId, 4),
    (kafka_protocol::messages::ApiKey::AddPartitionsToTxn, 2),
    (kafka_protocol::messages::ApiKey::AddOffsetsToTxn, 2),
    (kafka_protocol::messages::ApiKey::EndTxn, 2),
];

/// The Kafka code of `e` in an answer to `key` at `version`.
pub(crate) fn txn_code(e: &Error, key: kafka_protocol::messages::ApiKey, version: i16) -> i16 {
    let c = code(e, About::Group);
    let old = FENCED_UNKNOWN_BELOW.iter().any(|(k, below)| *k == key && version < *below);
    match old && c == ResponseError::ProducerFenced.code() {
        true => ResponseError::InvalidProducerEpoch.code(),
        false => c,
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The producer id and epoch a request names, or why they are not one.
fn producer(id: i64, epoch: i16) -> Result<(i64, i16), Error> {
    match id >= 0 && epoch >= 0 {
        true => Ok((id, epoch)),
        false => Err(Error::invalid(format!(
            "producer id {id} epoch {epoch} is no producer: InitProducerId comes first"
        ))),
    }
}

/// `AddPartitionsToTxn` v0–3 (v4+, broker to broker, is not served: Shale's leaders ask
/// coordinators over the `Replica` service).
pub(crate) fn add_partitions(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AddPartitionsToTxnRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let asked: Vec<(String, i32)> = req
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        let pid = req.v3_and_below_producer_id.0;
        let outcome = match producer(pid, req.v3_and_below_producer_epoch) {
            Ok(p) => kafka.api.add_partitions_to_txn(&who, &id, p, asked.clone()).await,
            Err(e) => Err(e),
        };
        let results: Vec<((String, i32), i16)> = match outcome {
            Ok(results) => results
                .into_iter()
                .map(|(tp, r)| {
                    let c = r.err().map_or(0, |e| txn_code(&e, replier.key, replier.version));
                    (tp, c)
                })
                .collect(),
            Err(e) => {
                let c = txn_code(&e, replier.key, replier.version);
                asked.into_iter().map(|tp| (tp, c)).collect()
            }
        };
        let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> =
            BTreeMap::new();
        for ((topic, p), c) in results {
            by_topic.entry(topic).or_default().push(
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(p)
                    .with_partition_error_code(c),
            );
        }
        let body = AddPartitionsToTxnResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results_by_topic_v3_and_below(
                by_topic
                    .into_iter()
                    .map(|(t, results)| {
                        AddPartitionsToTxnTopicResult::default()
                            .with_name(TopicName(text(&t)))
                            .with_results_by_partition(results)
                    })
                    .collect(),
            );
        replier.later(&body, Duration::ZERO)
    }))
}

/// `AddOffsetsToTxn`.
pub(crate) fn add_offsets(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AddOffsetsToTxnRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let id = req.transactional_id.0.to_string();
        let outcome = match producer(req.producer_id.0, req.producer_epoch) {
            Ok(p) => kafka.api.add_offsets_to_txn(&who, &id, p, &req.group_id.0).await,
            Err(e) => Err(e),
        };
        let body = AddOffsetsToTxnResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(
                outcome.err().map_or(0, |e| txn_code(&e, replier.key, replier.version)),
            );
        replier.later(&body, Duration::ZERO)
    }))
}

/// `TxnOffsetCommit`, at the group's coordinator. Version 5 is transactions v2: the group
/// joins the transaction here, with no `AddOffsetsToTxn` before.
pub(crate) fn txn_offset_commit(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: TxnOffsetCommitRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let id = req.transactional_id.0.to_string();
        let group = req.group_id.0.to_string();
        let asked = ToCommit::new(req.topics.iter().flat_map(|t| {
            t.partitions.iter().map(|p| {
                let metadata = p.committed_metadata.as_deref();
                (t.name.0.as_str(), p.partition_index, p.committed_offset, metadata)
            })
        }));
        let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
        let committer = TxnCommitter {
            member: &req.member_id,
            instance: instance.as_deref(),
            generation: req.generation_id,
        };
        let tv2 = replier.version >= 5;
        let outcome = match producer(req.producer_id.0, req.producer_epoch) {
            Ok(p) => {
                let api = &kafka.api;
                let offsets = asked.offsets.clone();
                api.txn_offset_commit(&who, (&id, p), &group, committer, offsets, tv2).await
            }
            Err(e) => Err(e),
        };
        let codes = asked.codes(outcome, |e| txn_code(e, replier.key, replier.version));
        let body = TxnOffsetCommitResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_topics(
                codes
                    .into_iter()
                    .map(|(t, partitions)| {
                        TxnOffsetCommitResponseTopic::default()
                            .with_name(TopicName(text(&t)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, c)| {
                                        TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(c)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        replier.later(&body, Duration::ZERO)
    }))
}

/// `EndTxn`. Version 5 is transactions v2: the answer carries the producer id and epoch of
/// the next transaction.
pub(crate) fn end_txn(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: EndTxnRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let id = req.transactional_id.0.to_string();
        let tv2 = replier.version >= 5;
        let outcome = match producer(req.producer_id.0, req.producer_epoch) {
            Ok(p) => kafka.api.end_txn(&who, &id, p, req.committed, tv2).await,
            Err(e) => Err(e),
        };
        let mut body = EndTxnResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match outcome {
            Ok((pid, epoch)) if tv2 => {
                body.producer_id = ProducerId(pid);
                body.producer_epoch = epoch;
            }
            Ok(_) => {}
            Err(e) => body.error_code = txn_code(&e, replier.key, replier.version),
        }
        replier.later(&body, Duration::ZERO)
    }))
}
