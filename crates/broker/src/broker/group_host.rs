//! What the group coordinator needs of its broker (`groups::GroupHost`), and `ListOffsets`
//! for any partition: answered here when this broker leads it, else forwarded to its
//! leader.

use std::time::Duration;

use super::{Broker, Partition};
use shale_core::error::{Error, ErrorKind};
use shale_proto::pb;

/// How long `ListOffsets` waits for a new leader's high watermark before answering
/// `UNAVAILABLE` (retriable): followers fetch within milliseconds of a leader change, or
/// leave the ISR after `replica.lag.time.max.ms`.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// `ListOffsets` answered by the partition's leader. The latest offset (and a lookup by
/// time, bounded by it) waits until the high watermark is known, so a reader starting
/// right after a failover never takes a stale one for the end.
pub async fn list_offsets_here(
    partition: &Partition,
    spec: Option<pb::list_offsets_request::Spec>,
) -> Result<pb::ListOffsetsResponse, Error> {
    let (offset, timestamp_ms) = match spec {
        Some(pb::list_offsets_request::Spec::Earliest(_)) => (partition.log_start_offset(), -1),
        None | Some(pb::list_offsets_request::Spec::Latest(_)) => {
            (partition.settled_high_watermark(SETTLE_WAIT).await?, -1)
        }
        Some(pb::list_offsets_request::Spec::TimestampMs(ts)) => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            partition.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))
        }
    };
    Ok(pb::ListOffsetsResponse {
        offset,
        timestamp_ms,
        log_start_offset: partition.log_start_offset(),
        high_watermark: partition.high_watermark(),
    })
}

impl Broker {
    /// `ListOffsets` for any partition: answered here when this broker leads it, else by
    /// its leader.
    pub async fn list_offsets_anywhere(
        &self,
        topic: &str,
        partition: u32,
        spec: Option<shale_proto::pb::list_offsets_request::Spec>,
    ) -> Result<shale_proto::pb::ListOffsetsResponse, Error> {
        match self.partition(topic, partition) {
            Ok(p) => list_offsets_here(&p, spec).await,
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let addr = e.details.get("leader_address").cloned().unwrap_or_default();
                if addr.is_empty() {
                    return Err(e);
                }
                let mut client = pb::log_client::LogClient::new(self.peer(&addr)?);
                let request = pb::ListOffsetsRequest { topic: topic.to_string(), partition, spec };
                let response = client
                    .list_offsets(request)
                    .await
                    .map_err(|s| shale_proto::status::from_status(&s))?;
                Ok(response.into_inner())
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl crate::groups::GroupHost for Broker {
    fn broker_id(&self) -> i32 {
        self.id
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        Broker::coordinator_candidates(self)
    }

    fn topic_names(&self) -> Vec<String> {
        Broker::topic_names(self)
    }

    fn topic_record(&self, name: &str) -> Result<shale_meta::topics::TopicRecord, Error> {
        self.topic(name).map(|e| e.record)
    }

    fn may_read(&self, principal: &str, topic: &str) -> bool {
        use crate::acl::{Operation, ResourceType};
        self.acl.principal_allows(principal, Operation::Read, ResourceType::Topic, topic)
    }

    async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: Option<shale_proto::pb::list_offsets_request::Spec>,
    ) -> Result<shale_proto::pb::ListOffsetsResponse, Error> {
        self.list_offsets_anywhere(topic, partition, spec).await
    }
}
