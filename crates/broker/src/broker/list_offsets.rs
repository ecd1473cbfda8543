//! `ListOffsets`: where a partition starts and ends, and which offset a time falls at;
//! answered by the partition's leader, and from any broker by forwarding to it.

use std::time::Duration;

use super::{Broker, Partition};
use shale_core::error::{Error, ErrorKind};
use shale_proto::pb;

/// How long `ListOffsets` waits for a new leader's high watermark before answering
/// `UNAVAILABLE` (retriable): followers fetch within milliseconds of a leader change, or
/// leave the ISR after `replica.lag.time.max.ms`.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// Which offset `ListOffsets` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start (in the bucket, for a tiered topic).
    Earliest,
    /// The high watermark.
    Latest,
    /// The first record at or after this time (ms).
    Timestamp(i64),
}

/// What `ListOffsets` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset, or -1 when no record is at or after the time asked.
    pub offset: i64,
    /// The found record's timestamp for a lookup by time, else -1.
    pub timestamp_ms: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The high watermark.
    pub high_watermark: i64,
    /// The leader epoch of the leader that answered.
    pub leader_epoch: i32,
}

/// `ListOffsets` answered by the partition's leader. The latest offset (and a lookup by
/// time, bounded by it) waits until the high watermark is known, so a reader starting
/// right after a failover never takes a stale one for the end.
pub async fn list_offsets_on(
    partition: &Partition,
    spec: OffsetSpec,
) -> Result<ListedOffset, Error> {
    let (offset, timestamp_ms) = match spec {
        OffsetSpec::Earliest => (partition.log_start_offset(), -1),
        OffsetSpec::Latest => (partition.settled_high_watermark(SETTLE_WAIT).await?, -1),
        OffsetSpec::Timestamp(ts) => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            partition.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))
        }
    };
    Ok(ListedOffset {
        offset,
        timestamp_ms,
        log_start_offset: partition.log_start_offset(),
        high_watermark: partition.high_watermark(),
        leader_epoch: partition.leader_epoch(),
    })
}

impl Broker {
    /// `ListOffsets` for any partition: answered here when this broker leads it, else by
    /// its leader.
    pub async fn list_offsets_anywhere(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, Error> {
        match self.partition(topic, partition) {
            Ok(p) => list_offsets_on(&p, spec).await,
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let addr = e.details.get("leader_address").cloned().unwrap_or_default();
                if addr.is_empty() {
                    return Err(e);
                }
                let mut client = pb::log_client::LogClient::new(self.peer(&addr)?);
                let spec = Some(match spec {
                    OffsetSpec::Earliest => pb::list_offsets_request::Spec::Earliest(true),
                    OffsetSpec::Latest => pb::list_offsets_request::Spec::Latest(true),
                    OffsetSpec::Timestamp(ts) => pb::list_offsets_request::Spec::TimestampMs(ts),
                });
                let request = pb::ListOffsetsRequest { topic: topic.to_string(), partition, spec };
                let r = client
                    .list_offsets(request)
                    .await
                    .map_err(|s| shale_proto::status::from_status(&s))?
                    .into_inner();
                Ok(ListedOffset {
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    log_start_offset: r.log_start_offset,
                    high_watermark: r.high_watermark,
                    leader_epoch: -1,
                })
            }
            Err(e) => Err(e),
        }
    }
}
