//! A hosted partition as the tier layer sees it ([`TierPartition`]): what the uploader and
//! remote retention read and mark through.

use std::sync::Arc;

use super::Partition;
use crate::broker::remote::RemoteLog;
use shale_core::topic_config::TopicConfig;
use shale_storage::log::PartitionLog;
use shale_storage::tier::{PartitionRef, TierPartition, TierPointer};

impl TierPartition for Partition {
    fn tier_ref(&self) -> PartitionRef {
        PartitionRef {
            topic: self.topic.clone(),
            topic_id: self.topic_id.clone(),
            partition: self.index,
        }
    }

    fn leading_epoch(&self) -> Option<i32> {
        let (leader, epoch) = self.leadership();
        (leader == self.broker_id).then_some(epoch)
    }

    fn topic_config(&self) -> Arc<TopicConfig> {
        self.config()
    }

    fn local_log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    fn high_watermark(&self) -> i64 {
        Partition::high_watermark(self)
    }

    fn tier_pointer(&self) -> Option<TierPointer> {
        self.remote.as_ref().and_then(RemoteLog::pointer)
    }

    fn set_tier_pointer(&self, pointer: Option<TierPointer>) {
        if let Some(remote) = &self.remote {
            remote.set_pointer(pointer);
        }
    }

    fn aborted_transactions(&self) -> Vec<shale_core::record::control::AbortedTxn> {
        self.producers.aborted_in(i64::MIN, i64::MAX)
    }
}
