//! `DescribeProducers` (KIP-664, what `kafka-transactions.sh describe-producers` asks): the
//! producers each partition's leader keeps state for: id, epoch, last sequence and
//! timestamp, the coordinator epoch of its last marker, and where its open transaction
//! starts.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, ProducerId};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_core::error::Error;

/// `DescribeProducers`.
pub(crate) fn describe_producers(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeProducersRequest = call.decode()?;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = t.name.0.to_string();
        let partitions = t
            .partition_indexes
            .iter()
            .map(|&index| {
                let part = PartitionResponse::default().with_partition_index(index);
                let found = u32::try_from(index)
                    .map_err(|_| {
                        Error::invalid(format!("partition {index} of {topic:?} is negative"))
                    })
                    .and_then(|p| kafka.api.describe_producers(&session.identity, &topic, p));
                match found {
                    Ok(producers) => part.with_active_producers(
                        producers
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(p.txn_start_offset)
                            })
                            .collect(),
                    ),
                    Err(e) => part
                        .with_error_code(code(&e, About::Partition))
                        .with_error_message(Some(StrBytes::from_string(e.message.clone()))),
                }
            })
            .collect();
        topics.push(TopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    let body = DescribeProducersResponse::default()
        .with_throttle_time_ms(call.throttle_ms(Duration::ZERO))
        .with_topics(topics);
    Ok(call.reply(&body, Duration::ZERO))
}
