//! `DeleteRecords` (KIP-107): each partition's records below an offset (-1: the high
//! watermark) are deleted by its leader, which answers once every in-sync replica has moved
//! its log start too (Kafka's low watermark), or `REQUEST_TIMED_OUT` after the request's
//! `timeout_ms`. The partitions of one request are handled at once, under one timeout.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_core::error::Error;

/// `DeleteRecords`.
pub(crate) fn delete_records(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DeleteRecordsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let within = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
        let topics = req.topics.into_iter().map(|t| {
            let (kafka, who) = (kafka.clone(), who.clone());
            async move {
                let topic = t.name.0.to_string();
                let partitions = t.partitions.into_iter().map(|p| {
                    let (kafka, who, topic) = (kafka.clone(), who.clone(), topic.clone());
                    async move {
                        let deleted = match u32::try_from(p.partition_index) {
                            Ok(partition) => {
                                kafka
                                    .api
                                    .delete_records(&who, &topic, partition, p.offset, within)
                                    .await
                            }
                            Err(_) => Err(Error::invalid(format!(
                                "partition {} of {topic:?} is negative",
                                p.partition_index
                            ))),
                        };
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        match deleted {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(e) => result
                                .with_low_watermark(-1)
                                .with_error_code(code(&e, About::Partition)),
                        }
                    }
                });
                let partitions = futures::future::join_all(partitions).await;
                DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
            }
        });
        let topics = futures::future::join_all(topics).await;
        let body = DeleteRecordsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_topics(topics);
        replier.later(&body, Duration::ZERO)
    }))
}
