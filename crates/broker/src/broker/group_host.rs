//! What the group coordinator needs of its broker (`groups::GroupHost`).

use super::{Broker, ListedOffset, OffsetSpec};
use shale_core::error::Error;

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

    fn replica_racks(&self, topic: &str, partition: u32) -> std::collections::BTreeSet<String> {
        let Ok(state) = self.partition_state(topic, partition) else { return Default::default() };
        state
            .replicas
            .iter()
            .filter_map(|id| self.cached_broker(*id))
            .map(|b| b.rack)
            .filter(|rack| !rack.is_empty())
            .collect()
    }

    async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, Error> {
        self.list_offsets_anywhere(topic, partition, spec).await
    }
}
