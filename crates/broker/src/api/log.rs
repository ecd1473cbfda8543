//! Produce, fetch, offsets and producer ids, as the front ends call them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;

use super::{Api, FetchChunk, Identity, Payload, Produced, QuotaKind};
use crate::acl::{Operation, ResourceType};
use crate::broker::fetch::{self, FetchOptions};
use crate::broker::{ListedOffset, OffsetSpec, Partition};
use shale_core::acks::Acks;
use shale_core::error::Error;

/// How a fetch stream reads, from the client's request and the broker's limits.
#[derive(Debug, Clone, Copy)]
pub struct FetchShape {
    max_bytes: usize,
    max_wait: Option<Duration>,
    stop_at_end: bool,
}

impl FetchShape {
    /// Batch bytes per message (0: the broker's `log.fetch_max_bytes`; capped at what the
    /// broker accepts in a request), an empty message after `max_wait_ms` at the end (0:
    /// none), and whether the stream ends at the high watermark.
    pub fn new(api: &Api, max_bytes: u32, max_wait_ms: u32, stop_at_end: bool) -> FetchShape {
        let limits = &api.settings().log;
        let max_bytes = match max_bytes {
            0 => limits.fetch_max_bytes,
            n => (n as usize).min(limits.max_request_bytes),
        };
        let max_wait = (max_wait_ms > 0).then(|| Duration::from_millis(u64::from(max_wait_ms)));
        FetchShape { max_bytes, max_wait, stop_at_end }
    }

    /// Bytes per message: of batches, or of decoded records.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// A produce that passed authorization and its quota: what [`Api::append`] takes.
#[derive(Debug)]
pub struct Admitted {
    topic: String,
    bytes: u64,
    wait: Duration,
}

impl Admitted {
    /// How long the front end holds (gRPC) or throttles (Kafka) the producer for its quota.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// An append waiting for its acknowledgement.
pub type PendingProduce = Pin<Box<dyn Future<Output = Result<Produced, Error>> + Send>>;

/// Record bytes of a payload: what the produce quota charges and the topic counters count.
fn payload_bytes(payload: &Payload) -> u64 {
    match payload {
        Payload::Batches(b) => b.len() as u64,
        Payload::Records(r, _) => r
            .iter()
            .map(|r| {
                (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
                    as u64
            })
            .sum(),
    }
}

impl Api {
    /// Checks that `who` may write `payload` to `topic` (Write on it; its producer ids
    /// issued to `who`) and charges the produce quota.
    pub fn admit_produce(
        &self,
        who: &Identity,
        topic: &str,
        payload: &Payload,
    ) -> Result<Admitted, Error> {
        let acl = self.broker.acl();
        acl.check(who, "Produce", Operation::Write, ResourceType::Topic, topic)?;
        if let Payload::Batches(b) = payload {
            acl.check_producer_ids(who, topic, b)?;
        }
        let bytes = payload_bytes(payload);
        let wait = self.charge(who, QuotaKind::Produce, bytes)?;
        Ok(Admitted { topic: topic.to_string(), bytes, wait })
    }

    /// Appends an admitted produce; the returned future resolves once `acks` is satisfied.
    /// Appends to one partition happen in call order. Both steps are counted for the topic,
    /// and the whole is timed as produce latency.
    pub async fn append(
        &self,
        admitted: Admitted,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<PendingProduce, Error> {
        let Admitted { topic, bytes, .. } = admitted;
        let start = shale_core::clock::monotonic_now();
        let metrics = self.broker.request_metrics().clone();
        // Only existing topics get counters: request names alone must not grow the map.
        let counters = self.broker.has_topic(&topic).then(|| metrics.topic(&topic));
        match self.broker.append(&topic, partition, payload, acks).await {
            Ok(ack) => Ok(Box::pin(async move {
                let result = ack.await;
                if let Some(c) = &counters {
                    metrics.produced(c, bytes, result.is_ok(), start.elapsed());
                }
                result
            })),
            Err(e) => {
                if let Some(c) = &counters {
                    metrics.produced(c, 0, false, start.elapsed());
                }
                Err(e)
            }
        }
    }

    /// Checks that `who` may read `topic` and starts streaming `partition` from `offset`:
    /// messages shaped by `shape`, each paced by the fetch quota (a stream is held, never
    /// refused, for its rate) and counted for the topic. `action` names the request in the
    /// audit trail.
    pub fn fetch_stream(
        &self,
        who: &Identity,
        action: &str,
        topic: &str,
        partition: u32,
        offset: i64,
        shape: &FetchShape,
    ) -> Result<impl Stream<Item = Result<FetchChunk, Error>> + Send + 'static, Error> {
        self.broker.acl().check(who, action, Operation::Read, ResourceType::Topic, topic)?;
        let partition = self.broker.partition(topic, partition)?;
        let opts = FetchOptions {
            offset,
            max_bytes: shape.max_bytes,
            max_wait: shape.max_wait,
            stop_at_end: shape.stop_at_end,
        };
        let rx = fetch::start(partition, opts, self.broker.closed_signal())?;
        let counters = self.broker.request_metrics().topic(topic);
        counters.fetch_requests.fetch_add(1, Ordering::Relaxed);
        let quotas = self.broker.quotas().clone();
        let who = who.clone();
        Ok(ReceiverStream::new(rx).then(move |item| {
            let (quotas, who, counters) = (quotas.clone(), who.clone(), counters.clone());
            async move {
                if let Ok(c) = &item {
                    let bytes = c.batches.len() as u64;
                    quotas.throttle_stream(&who, QuotaKind::Fetch, bytes).await;
                    counters.fetch_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                item
            }
        }))
    }

    /// `Ok` if `who` may read `topic`, else the denial, audited under `action`.
    pub fn check_read(&self, who: &Identity, action: &str, topic: &str) -> Result<(), Error> {
        self.broker.acl().check(who, action, Operation::Read, ResourceType::Topic, topic)
    }

    /// Checks that `who` may read `topic` (audited under `action` when not) and opens
    /// `partition` for one-shot reads: the partition this broker leads, or the precise
    /// reason it cannot serve it here. Counts a fetch for the topic.
    pub fn open_for_read(
        &self,
        who: &Identity,
        action: &str,
        topic: &str,
        partition: u32,
    ) -> Result<LogRead, Error> {
        self.broker.acl().check(who, action, Operation::Read, ResourceType::Topic, topic)?;
        let partition = self.broker.partition(topic, partition)?;
        let counters = self.broker.request_metrics().topic(topic);
        counters.fetch_requests.fetch_add(1, Ordering::Relaxed);
        Ok(LogRead { partition, counters })
    }

    /// Offsets of `topic`-`partition` (Describe on the topic), answered by its leader; at
    /// `leader_epoch` when the caller names the epoch it believes current (KIP-320).
    pub async fn list_offsets(
        &self,
        who: &Identity,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
        leader_epoch: Option<i32>,
    ) -> Result<ListedOffset, Error> {
        let acl = self.broker.acl();
        acl.check(who, "ListOffsets", Operation::Describe, ResourceType::Topic, topic)?;
        let p = self.broker.partition(topic, partition)?;
        crate::broker::check_leader_epoch(&p, leader_epoch)?;
        crate::broker::list_offsets_on(&p, spec).await
    }

    /// A new producer id for an idempotent producer, tagged for `who`: IdempotentWrite on
    /// the cluster, or Write on some topic.
    pub async fn init_producer_id(&self, who: &Identity) -> Result<(i64, i16), Error> {
        self.broker.acl().check_idempotent_write(who, "InitProducerId")?;
        self.broker.init_producer_id(who).await
    }
}

/// One partition opened for reads by [`Api::open_for_read`].
#[derive(Debug, Clone)]
pub struct LogRead {
    partition: Arc<Partition>,
    counters: Arc<crate::metrics::TopicCounters>,
}

impl LogRead {
    /// Whole batches from `offset` below the high watermark, at least one if any is there
    /// however large, else up to `max_bytes`: from the local log, or from the bucket below
    /// the local log start. `OFFSET_OUT_OF_RANGE` outside the log.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<(Bytes, i64), Error> {
        let p = &self.partition;
        let (start, end) = (p.log_start_offset(), p.log().log_end_offset());
        if offset < start || offset > end {
            return Err(fetch::offset_out_of_range(offset, start, p.high_watermark()));
        }
        if offset >= p.high_watermark() {
            return Ok((Bytes::new(), offset));
        }
        let chunk = p.read(offset, max_bytes).await?;
        self.counters.fetch_bytes.fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        Ok((chunk.bytes, chunk.next_offset))
    }

    /// The high watermark: what consumers may read below.
    pub fn high_watermark(&self) -> i64 {
        self.partition.high_watermark()
    }

    /// The first offset still readable (in the bucket, for a tiered topic).
    pub fn log_start_offset(&self) -> i64 {
        self.partition.log_start_offset()
    }

    /// The leader epoch this broker leads the partition at.
    pub fn leader_epoch(&self) -> i32 {
        self.partition.leader_epoch()
    }

    /// Changes of the high watermark, for a long-poll.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.partition.subscribe_hw()
    }

    /// Resolves once the partition closes here (deleted, or moved away).
    pub async fn closed(&self) {
        let mut closed = self.partition.closed_signal();
        let _ = closed.wait_for(|c| *c).await;
    }

    /// The end offset of the largest epoch at or below `epoch` that this leader's log
    /// has, with that epoch (KIP-320): `(-1, -1)` when the log has none.
    pub fn end_of_epoch(&self, epoch: i32) -> (i32, i64) {
        crate::broker::replication::leader::end_of_epoch_on(&self.partition, epoch)
    }
}
