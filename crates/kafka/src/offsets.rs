//! `ListOffsets` (earliest, latest, by time) and `OffsetForLeaderEpoch` (where an epoch
//! ends, for a consumer's truncation detection, KIP-320), answered by partition leaders.

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
use crate::connection::{Answer, Session};
use crate::dispatch::Call;
use crate::errors::{About, code};
use shale_broker::api::{Identity, OffsetSpec};
use shale_core::error::Error;

/// Kafka's `ListOffsets` timestamps that are not times.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

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
                let found = list_one(&kafka, &who, &topic, p.partition_index, p.timestamp).await;
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
    timestamp: i64,
) -> Result<shale_broker::api::ListedOffset, Error> {
    let partition = u32::try_from(partition)
        .map_err(|_| Error::invalid(format!("partition {partition} of {topic:?} is negative")))?;
    let spec = match timestamp {
        LATEST => OffsetSpec::Latest,
        EARLIEST => OffsetSpec::Earliest,
        ts if ts >= 0 => OffsetSpec::Timestamp(ts),
        other => {
            return Err(Error::invalid(format!(
                "ListOffsets timestamp {other} is not served: expected a time (ms), -1 \
                 (latest) or -2 (earliest)"
            )));
        }
    };
    let mut found = kafka.api.list_offsets(who, topic, partition, spec).await?;
    if spec == OffsetSpec::Latest || spec == OffsetSpec::Earliest {
        found.timestamp_ms = -1;
    }
    Ok(found)
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
    let read = kafka.api.open_for_read(who, "OffsetForLeaderEpoch", topic, partition)?;
    crate::fetch::check_leader_epoch(&read, current)?;
    Ok(read.end_of_epoch(epoch))
}
