//! What the tier layer needs from a hosted partition replica: the seam through which the
//! uploader and remote retention reach a partition the broker owns.

use std::sync::Arc;

use super::catalog::PartitionRef;
use super::manifest::TierPointer;
use crate::log::PartitionLog;
use shale_core::topic_config::TopicConfig;

/// A partition replica as tiering sees it. The broker's partitions implement it.
pub trait TierPartition: Send + Sync {
    /// The partition incarnation: topic, topic id and index.
    fn tier_ref(&self) -> PartitionRef;

    /// The leader epoch while this broker leads the partition; `None` on a follower.
    fn leading_epoch(&self) -> Option<i32>;

    /// The topic config in force (`remote.storage.enable`, `retention.*`).
    fn topic_config(&self) -> Arc<TopicConfig>;

    /// The local log, whose sealed segments are sliced for upload.
    fn local_log(&self) -> &Arc<PartitionLog>;

    /// Offsets below this are on enough replicas to leave for the bucket.
    fn high_watermark(&self) -> i64;

    /// The tier pointer this replica last saw, if any.
    fn tier_pointer(&self) -> Option<TierPointer>;

    /// Takes a pointer read from or written to the metadata store: offsets below its end
    /// are in the bucket, which lets local retention delete them.
    fn set_tier_pointer(&self, pointer: Option<TierPointer>);

    /// The aborted transactions of the partition's log as this replica knows them: an
    /// upload lists those whose marker is in the segment; a compaction removes their
    /// records, which shadow no committed value.
    fn aborted_transactions(&self) -> Vec<shale_core::record::control::AbortedTxn>;
}
