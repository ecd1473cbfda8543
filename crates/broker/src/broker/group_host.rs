//! What the group coordinator needs of its broker (`groups::GroupHost`), and `ListOffsets`
//! for any partition: answered here when this broker leads it, else forwarded to its
//! leader.

use super::Broker;
use shale_core::error::{Error, ErrorKind};

impl Broker {
    /// `ListOffsets` for any partition: answered here when this broker leads it, else by
    /// its leader.
    pub async fn list_offsets_anywhere(
        &self,
        topic: &str,
        partition: u32,
        spec: Option<shale_proto::pb::list_offsets_request::Spec>,
    ) -> Result<shale_proto::pb::ListOffsetsResponse, Error> {
        use shale_proto::pb;
        match self.partition(topic, partition) {
            Ok(p) => {
                let log_start = p.log_start_offset();
                let hw = p.high_watermark();
                let (offset, timestamp_ms) = match spec {
                    Some(pb::list_offsets_request::Spec::Earliest(_)) => (log_start, -1),
                    None | Some(pb::list_offsets_request::Spec::Latest(_)) => (hw, -1),
                    Some(pb::list_offsets_request::Spec::TimestampMs(ts)) => {
                        p.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))
                    }
                };
                Ok(pb::ListOffsetsResponse {
                    offset,
                    timestamp_ms,
                    log_start_offset: log_start,
                    high_watermark: hw,
                })
            }
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
