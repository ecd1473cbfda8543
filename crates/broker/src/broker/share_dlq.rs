//! A share group's dead-letter topic (KIP-1191's idea): each record the group rejects or
//! gives up on (past its delivery limit) is copied, key, value and headers, to the topic
//! the group names in `errors.deadletterqueue.topic.name`, with headers saying where it
//! came from and why:
//!
//! - `__dlq.errors.group.id`, `__dlq.errors.topic`, `__dlq.errors.partition`,
//!   `__dlq.errors.offset`: the record's group and place;
//! - `__dlq.errors.delivery.count`: how many times it was delivered;
//! - `__dlq.errors.reason`: `rejected` (a member said so) or `delivery.count.limit`.
//!
//! The copy goes to the partition of the same index (modulo the topic's partitions), with
//! `acks=all`, before the archive is stored: a copy is never lost, and after a failover
//! between the two the record may be copied twice. A copy that cannot be written (no such
//! topic, no leader) is logged and the record archived all the same: a dead-letter topic
//! is for looking at, and must not stall the queue.

use std::sync::Arc;

use bytes::Bytes;

use super::{Broker, Partition};
use crate::groups::share::{ArchiveReason, Archived};
use shale_core::error::Error;
use shale_core::record::codec::{DecodedRecord, decode_batch};
use shale_core::record::{BatchBuilder, BatchFrames, Compression, Header, Limits, Record};

fn header(key: &str, value: String) -> Header {
    Header { key: key.to_string(), value: Some(Bytes::from(value)) }
}

impl Broker {
    /// Copies `archived` records of `partition` to `topic`, the dead-letter topic of
    /// `group`. Failures are logged, not returned (see the module docs).
    pub(crate) async fn dead_letter(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        partition: &Partition,
        archived: &[Archived],
    ) {
        if archived.is_empty() {
            return;
        }
        if let Err(e) = self.try_dead_letter(group, topic, partition, archived).await {
            tracing::warn!(group, dead_letter_topic = topic, source = partition.topic(),
                partition = partition.index(), records = archived.len(), error = %e,
                "could not copy archived records to the share group's dead-letter topic");
        }
    }

    async fn try_dead_letter(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        partition: &Partition,
        archived: &[Archived],
    ) -> Result<(), Error> {
        let dlq = self.topic(topic)?;
        let mut builder = BatchBuilder::new(Compression::None);
        let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
        for a in archived {
            let Some(original) = self.record_at(partition, a.offset, &limits).await? else {
                continue;
            };
            let reason = match a.reason {
                ArchiveReason::Rejected => "rejected",
                ArchiveReason::DeliveryLimit => "delivery.count.limit",
            };
            let mut headers = original.headers;
            headers.extend([
                header("__dlq.errors.group.id", group.to_string()),
                header("__dlq.errors.topic", partition.topic().to_string()),
                header("__dlq.errors.partition", partition.index().to_string()),
                header("__dlq.errors.offset", a.offset.to_string()),
                header("__dlq.errors.delivery.count", a.deliveries.to_string()),
                header("__dlq.errors.reason", reason.to_string()),
            ]);
            builder.push(Record {
                key: original.key,
                value: original.value,
                headers,
                timestamp_ms: original.timestamp_ms,
            });
        }
        if builder.is_empty() {
            return Ok(());
        }
        let target = partition.index() % dlq.record.partitions.max(1);
        self.produce_anywhere(topic, target, builder.build()).await?;
        Ok(())
    }

    /// The record at `offset` of `partition`, if the log still has it.
    async fn record_at(
        &self,
        partition: &Partition,
        offset: i64,
        limits: &Limits,
    ) -> Result<Option<DecodedRecord>, Error> {
        if offset < partition.log_start_offset() {
            return Ok(None);
        }
        let read = partition.read_below(offset, 1, partition.high_watermark()).await?;
        for frame in BatchFrames::new(&read.bytes, usize::MAX) {
            let (header, range) =
                frame.map_err(|e| Error::internal(format!("reading offset {offset}: {e}")))?;
            if header.last_offset() < offset {
                continue;
            }
            let (_, records) = decode_batch(&read.bytes.slice(range), limits)
                .map_err(|e| Error::internal(format!("reading offset {offset}: {e}")))?;
            return Ok(records.into_iter().find(|r| r.offset == offset));
        }
        Ok(None)
    }
}
