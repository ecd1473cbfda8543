//! DeleteRecords (Kafka's KIP-107), answered by the partition's leader: its log start moves
//! up to an offset (the high watermark for -1), fsynced before anything else happens; then
//! the answer waits, as Kafka's does, until the low watermark (the lowest log start among
//! the in-sync replicas, which learn the leader's from their next fetch and report theirs in
//! the one after) reaches it. Every replica that could lead next then refuses the deleted
//! records too, whatever fails afterwards. A wait that runs out answers REQUEST_TIMED_OUT:
//! the leader's own log start has moved already, and the followers still learn it.

use std::time::Duration;

use super::Broker;
use super::list_offsets::SETTLE_WAIT;
use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};

/// DeleteRecords' offset that means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

impl Broker {
    /// Deletes the records of `topic`-`partition` below `offset` (-1: the high watermark),
    /// waiting up to `within` for every in-sync replica to have done so too. Returns the
    /// partition's log start then (Kafka's low watermark in its answer).
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        within: Duration,
    ) -> Result<i64, Error> {
        let p = self.partition(topic, partition)?;
        let hw = p.settled_high_watermark(SETTLE_WAIT.min(within)).await?;
        let target = if offset == HIGH_WATERMARK { hw } else { offset };
        if target < 0 || target > hw {
            let start = p.log_start_offset();
            return Err(offset_out_of_range(offset, start, hw, RangeEnd::HighWatermark));
        }
        let log = p.log().clone();
        tokio::task::spawn_blocking(move || log.advance_log_start(target))
            .await
            .map_err(|e| Error::internal(format!("log start task failed: {e}")))??;
        let repl = p.replication().clone();
        let mut changes = repl.subscribe_floors();
        let spread = async {
            loop {
                changes.borrow_and_update();
                if !p.is_leader() || repl.low_watermark(p.log().start_floor()) >= target {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        let timed_out = tokio::time::timeout(within, spread).await.is_err();
        // Leadership moved meanwhile: the client asks the new leader, which may not have it.
        let p = self.partition(topic, partition)?;
        if timed_out {
            let low = repl.low_watermark(p.log().start_floor());
            return Err(Error::new(
                ErrorKind::Unavailable,
                Reason::RequestTimedOut,
                format!(
                    "{topic}-{partition}: the leader deleted the records below {target}, but not \
                     every in-sync replica had within {within:?} (lowest log start {low}); \
                     they follow as they fetch, retry to wait again"
                ),
            )
            .with("low_watermark", low));
        }
        Ok(p.log_start_offset())
    }
}
