//! `ListOffsets`: where a partition starts and ends (in the bucket and locally), which offset
//! a time falls at, and which record has the largest timestamp; answered by the partition's
//! leader, and from any broker by forwarding to it.

use std::time::Duration;

use super::fetch::Isolation;
use super::{Broker, Partition};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

pub use shale_core::offsets::{ListedOffset, OffsetSpec};

/// How long `ListOffsets` waits for a new leader's high watermark before answering
/// `UNAVAILABLE` (retriable): followers fetch within milliseconds of a leader change, or
/// leave the ISR after `replica.lag.time.max.ms`.
pub(super) const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// `ListOffsets` answered by the partition's leader. The latest offset (and a lookup by
/// time, bounded by it) waits until the high watermark is known, so a reader starting
/// right after a failover never takes a stale one for the end. For a `read_committed`
/// reader the end is the last stable offset: latest is it, and a record found by time at
/// or past it is not there yet (-1), as Kafka answers.
pub async fn list_offsets_on(
    partition: &Partition,
    spec: OffsetSpec,
    isolation: Isolation,
) -> Result<ListedOffset, Error> {
    let committed = isolation == Isolation::ReadCommitted;
    let visible =
        |(offset, ts): (i64, i64)| match committed && offset >= partition.last_stable_offset() {
            true => (-1, -1),
            false => (offset, ts),
        };
    let (offset, timestamp_ms) = match spec {
        OffsetSpec::Earliest => (partition.log_start_offset(), -1),
        OffsetSpec::EarliestLocal => (partition.log().log_start_offset(), -1),
        OffsetSpec::Latest if committed => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            (partition.last_stable_offset(), -1)
        }
        OffsetSpec::Latest => (partition.settled_high_watermark(SETTLE_WAIT).await?, -1),
        OffsetSpec::LastStable => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            (partition.last_stable_offset(), -1)
        }
        OffsetSpec::LatestTiered => {
            let tiered = partition.remote().and_then(|r| r.tiered_end());
            (tiered.map_or(-1, |end| end - 1), -1)
        }
        OffsetSpec::Timestamp(ts) => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            visible(partition.offset_for_timestamp(ts).await?.unwrap_or((-1, -1)))
        }
        OffsetSpec::MaxTimestamp => {
            partition.settled_high_watermark(SETTLE_WAIT).await?;
            visible(partition.max_timestamp_record().await?.unwrap_or((-1, -1)))
        }
    };
    Ok(ListedOffset {
        offset,
        timestamp_ms,
        log_start_offset: partition.log_start_offset(),
        high_watermark: partition.high_watermark(),
        leader_epoch: if offset < 0 { -1 } else { partition.leader_epoch() },
    })
}

/// Refuses a request that names a leader epoch other than the one `partition` is led at
/// (KIP-320): an older one is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this
/// broker has not learnt it yet); both are retriable once the client's metadata is fresh.
pub fn check_leader_epoch(partition: &Partition, asked: Option<i32>) -> Result<(), Error> {
    let ours = partition.leader_epoch();
    let Some(asked) = asked.filter(|e| *e >= 0 && *e != ours) else { return Ok(()) };
    let reason = match asked < ours {
        true => Reason::FencedLeaderEpoch,
        false => Reason::Other("UNKNOWN_LEADER_EPOCH".into()),
    };
    Err(Error::new(
        ErrorKind::Fenced,
        reason,
        format!(
            "{}-{}: the request's leader epoch {asked} is not the leader's {ours}; refresh \
             the metadata and retry",
            partition.topic(),
            partition.index()
        ),
    )
    .with("leader_epoch", ours))
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
            Ok(p) => list_offsets_on(&p, spec, Isolation::ReadUncommitted).await,
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let mut client = self.leader_log_client(e)?;
                let spec = Some(shale_proto::convert::offset_spec_to_proto(spec));
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
