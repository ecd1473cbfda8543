//! Lookups by time on a partition, across the bucket and the local log, below the high
//! watermark and at or above the log start: the first record at or after a time (ListOffsets
//! by timestamp) and the record with the largest timestamp (MAX_TIMESTAMP, KIP-734). The
//! logs find batches by their max timestamps; the records within one are found by decoding
//! it. The batch holding the log start may hold records DeleteRecords removed: only its
//! records at or above the start count.

use super::Partition;
use shale_core::error::Error;
use shale_core::record::{BatchFrames, DecodedRecord, Limits, decode_batches};

/// Bytes read at a time when a remote segment's batch headers are scanned.
const SCAN_BYTES: usize = 1 << 20;

impl Partition {
    /// First record with a timestamp at or after `ts`, below the high watermark and at or
    /// above the log start, with its timestamp (Kafka's ListOffsets by time).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, Error> {
        let hw = self.high_watermark();
        self.first_record_at_or_after(ts, self.log_start_offset(), hw).await
    }

    /// The record with the largest timestamp below the high watermark and at or above the
    /// log start (its first one on a tie), with that timestamp: Kafka's MAX_TIMESTAMP, which
    /// since Kafka 3.8 answers the record's own offset, not its batch's.
    pub async fn max_timestamp_record(&self) -> Result<Option<(i64, i64)>, Error> {
        let (start, hw) = (self.log_start_offset(), self.high_watermark());
        if start >= hw {
            return Ok(None);
        }
        let (records, next) = self.batch_records(start).await?;
        let mut first: Option<(i64, i64)> = None;
        for r in records.iter().filter(|r| r.offset >= start && r.offset < hw) {
            if r.timestamp_ms >= 0 && first.is_none_or(|(_, t)| r.timestamp_ms > t) {
                first = Some((r.offset, r.timestamp_ms));
            }
        }
        match (first, self.max_batch_timestamp(next, hw).await?) {
            (Some(f), Some(max)) if f.1 >= max => Ok(Some(f)),
            (_, Some(max)) => self.first_record_at_or_after(max, next, hw).await,
            (f, None) => Ok(f),
        }
    }

    /// The first record at or after `from` and below `hw` whose timestamp reaches `ts`.
    async fn first_record_at_or_after(
        &self,
        ts: i64,
        mut from: i64,
        hw: i64,
    ) -> Result<Option<(i64, i64)>, Error> {
        while from < hw {
            let Some((base, _)) = self.batch_at_or_after(ts, from).await? else { return Ok(None) };
            if base >= hw {
                return Ok(None);
            }
            let (records, next) = self.batch_records(base.max(from)).await?;
            let found =
                records.iter().find(|r| r.offset >= from && r.offset < hw && r.timestamp_ms >= ts);
            if let Some(r) = found {
                return Ok(Some((r.offset, r.timestamp_ms)));
            }
            // The batch reached `ts` with records below `from` only (deleted ones).
            if next <= from {
                return Ok(None);
            }
            from = next;
        }
        Ok(None)
    }

    /// The first batch ending after `from` whose max timestamp reaches `ts`, as (its base
    /// offset, its max timestamp): in the bucket below the local log start, else locally.
    async fn batch_at_or_after(&self, ts: i64, from: i64) -> Result<Option<(i64, i64)>, Error> {
        let local_start = self.log.log_start_offset();
        if let Some(remote) = self.remote.as_ref().filter(|r| r.range().is_some())
            && from < local_start
        {
            let found = remote.offset_for_timestamp(ts, from).await?;
            if let Some(found) = found.filter(|(base, _)| *base < local_start) {
                return Ok(Some(found));
            }
        }
        let log = self.log.clone();
        Ok(tokio::task::spawn_blocking(move || log.offset_for_timestamp(ts, from))
            .await
            .map_err(|e| Error::internal(format!("lookup task failed: {e}")))??)
    }

    /// The records of the batch holding `offset`, and the offset after that batch.
    async fn batch_records(&self, offset: i64) -> Result<(Vec<DecodedRecord>, i64), Error> {
        let chunk = self.read(offset, 1).await?;
        let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
        Ok((decode_batches(&chunk.bytes, &limits)?, chunk.next_offset))
    }

    /// The largest max timestamp of the whole batches in `[from, until)`: the local log's,
    /// and below its start the bucket's (a remote segment's own max when it lies wholly in
    /// range, else from its batch headers).
    async fn max_batch_timestamp(&self, from: i64, until: i64) -> Result<Option<i64>, Error> {
        let log = self.log.clone();
        let mut max = tokio::task::spawn_blocking(move || log.max_timestamp(from, until))
            .await
            .map_err(|e| Error::internal(format!("lookup task failed: {e}")))??;
        let local_start = self.log.log_start_offset();
        let Some(remote) = self.remote.as_ref().filter(|r| r.range().is_some()) else {
            return Ok(max);
        };
        if from >= local_start {
            return Ok(max);
        }
        let Some(manifest) = remote.manifest().await? else { return Ok(max) };
        for seg in
            manifest.segments.iter().filter(|s| s.next_offset > from && s.base_offset < local_start)
        {
            let seg_max = if seg.base_offset >= from && seg.next_offset <= until {
                Some(seg.max_timestamp)
            } else if max.is_some_and(|m| m >= seg.max_timestamp) {
                // Its records cannot beat what was found: no need to read it.
                None
            } else {
                self.scan_max(from.max(seg.base_offset), seg.next_offset.min(until)).await?
            };
            max = max.max(seg_max.filter(|ts| *ts >= 0));
        }
        Ok(max)
    }

    /// The largest max timestamp of the batches read from `from` (a batch boundary) up to
    /// `until`, batch header by batch header.
    async fn scan_max(&self, mut from: i64, until: i64) -> Result<Option<i64>, Error> {
        let mut max = None;
        while from < until {
            let chunk = self.read(from, SCAN_BYTES).await?;
            if chunk.bytes.is_empty() || chunk.next_offset <= from {
                break;
            }
            for (header, _) in BatchFrames::new(&chunk.bytes, usize::MAX).flatten() {
                if header.base_offset >= from && header.next_offset() <= until {
                    max = max.max(Some(header.max_timestamp));
                }
            }
            from = chunk.next_offset;
        }
        Ok(max)
    }
}
