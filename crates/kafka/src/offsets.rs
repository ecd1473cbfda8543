//! `ListOffsets` (earliest, latest, by time; the largest timestamp from v7, KIP-734; the
//! local log start from v8, KIP-405; the last tiered offset from v9, KIP-1005) and
//! `OffsetForLeaderEpoch` (where an epoch ends, for a consumer's truncation detection,
//! KIP-320), answered by partition leaders. A request naming a leader epoch (v4+) is
//! refused at another one; under `read_committed` (v2+) the end is the last stable offset:
//! latest is it, and a record found by time at or past it is not there yet (-1).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ListOffsetsRequest, OffsetForLeaderEpochRequest};

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::{Identity, Isolation, OffsetSpec};
use shale_core::error::Error;

/// Kafka's `ListOffsets` timestamps that are not times, with the version each came in.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: (i64, i16) = (-3, 7);
const EARLIEST_LOCAL: (i64, i16) = (-4, 8);
const LATEST_TIERED: (i64, i16) = (-5, 9);

/// `ListOffsets`.
pub(crate) fn list_offsets(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ListOffsetsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    let version = replier.version;
    Ok(Answer::later(async move {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let topic = t.name.0.to_string();
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let part =
                    ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                let epoch = (version >= 4).then_some(p.current_leader_epoch);
                let committed = version >= 2 && req.isolation_level == 1;
                let at = (p.timestamp, committed);
                let found =
                    list_one(&kafka, &who, &topic, p.partition_index, at, version, epoch).await;
                partitions.push(match found {
                    Ok(f) => part
                        .with_offset(f.offset)
                        .with_timestamp(f.timestamp_ms)
                        .with_leader_epoch(if version >= 4 { f.leader_epoch } else { -1 }),
                    Err(e) => part
                        .with_error_code(code(&e, About::Partition))
                        .with_offset(-1)
                        .with_timestamp(-1),
                });
            }
            topics.push(
                ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions),
            );
        }
        let body = ListOffsetsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_topics(topics);
        replier.later(&body, Duration::ZERO)
    }))
}

async fn list_one(
    kafka: &Kafka,
    who: &Identity,
    topic: &str,
    partition: i32,
    (timestamp, committed): (i64, bool),
    version: i16,
    leader_epoch: Option<i32>,
) -> Result<shale_broker::api::ListedOffset, Error> {
    let partition = u32::try_from(partition)
        .map_err(|_| Error::invalid(format!("partition {partition} of {topic:?} is negative")))?;
    let spec = match (timestamp, version) {
        (LATEST, _) => OffsetSpec::Latest,
        (EARLIEST, _) => OffsetSpec::Earliest,
        (ts, v) if ts == MAX_TIMESTAMP.0 && v >= MAX_TIMESTAMP.1 => OffsetSpec::MaxTimestamp,
        (ts, v) if ts == EARLIEST_LOCAL.0 && v >= EARLIEST_LOCAL.1 => OffsetSpec::EarliestLocal,
        (ts, v) if ts == LATEST_TIERED.0 && v >= LATEST_TIERED.1 => OffsetSpec::LatestTiered,
        (ts, _) if ts >= 0 => OffsetSpec::Timestamp(ts),
        (other, v) => {
            return Err(Error::invalid(format!(
                "ListOffsets v{v} timestamp {other} is not served: expected a time (ms), -1 \
                 (latest), -2 (earliest), and from v7 -3 (max timestamp), from v8 -4 \
                 (earliest local), from v9 -5 (latest tiered)"
            )));
        }
    };
    let isolation = match committed {
        true => Isolation::ReadCommitted,
        false => Isolation::ReadUncommitted,
    };
    kafka.api.list_offsets(who, (topic, partition), spec, leader_epoch, isolation).await
}

/// `OffsetForLeaderEpoch` from a consumer: for each partition, the largest epoch at or
/// below the one asked for in the leader's log and where it ends.
pub(crate) fn for_leader_epoch(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: OffsetForLeaderEpochRequest = call.decode()?;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = t.topic.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let part = EpochEndOffset::default().with_partition(p.partition);
            let found = end_of_epoch(
                kafka,
                &session.identity,
                &topic,
                p.partition,
                p.current_leader_epoch,
                p.leader_epoch,
            );
            partitions.push(match found {
                Ok((epoch, end)) => part.with_leader_epoch(epoch).with_end_offset(end),
                Err(e) => part
                    .with_error_code(code(&e, About::Partition))
                    .with_leader_epoch(-1)
                    .with_end_offset(-1),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions),
        );
    }
    let body = OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(call.throttle_ms(Duration::ZERO))
        .with_topics(topics);
    Ok(call.reply(&body, Duration::ZERO))
}

fn end_of_epoch(
    kafka: &Kafka,
    who: &Identity,
    topic: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> Result<(i32, i64), Error> {
    let partition = u32::try_from(partition)
        .map_err(|_| Error::invalid(format!("partition {partition} of {topic:?} is negative")))?;
    let current = Some(current).filter(|e| *e >= 0);
    kafka.api.end_of_leader_epoch(who, topic, partition, current, epoch)
}
