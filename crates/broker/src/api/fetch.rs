//! Consumers' reads, written once for both front ends: [`Api::fetch`] is a Kafka `Fetch`
//! (many partitions, a long-poll for `min_bytes`), and [`Api::fetch_stream`], gRPC's
//! `Fetch`, is the same read repeated. Each checks Read on the topic, the partition's
//! leader and leader epoch (KIP-320) and the offset's range, counts the fetch for its topic
//! and charges the fetch quota.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Api, FetchChunk, Identity, QuotaKind};
use crate::acl::{Operation, ResourceType};
use crate::broker::fetch::{self, Isolation, ReadWant, WaitFor};
use crate::metrics::TopicCounters;
use shale_core::error::Error;

/// One partition a fetch asks for.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// First offset wanted.
    pub offset: i64,
    /// Batch bytes of this partition at most (the first batch goes out whatever its size).
    pub max_bytes: usize,
    /// The leader epoch the client believes current, when it names one (KIP-320).
    pub leader_epoch: Option<i32>,
    /// Whether the reader sees open and aborted transactions.
    pub isolation: Isolation,
}

/// What a fetch found: each partition's chunk or error, in the order asked, and how long
/// the fetch quota holds (gRPC) or throttles (Kafka) the caller.
#[derive(Debug)]
pub struct Fetched {
    /// Per partition asked.
    pub partitions: Vec<Result<FetchChunk, Error>>,
    /// The fetch quota's wait: a fetch is never refused for its rate, only held.
    pub throttle: Duration,
}

/// How a fetch stream reads, from the client's request and the broker's limits.
#[derive(Debug, Clone, Copy)]
pub struct FetchShape {
    max_bytes: usize,
    max_wait: Option<Duration>,
    stop_at_end: bool,
    isolation: Isolation,
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
        FetchShape { max_bytes, max_wait, stop_at_end, isolation: Isolation::ReadUncommitted }
    }

    /// Reads as `isolation`'s reader sees the log: `ReadCommitted` up to the last stable
    /// offset (the stream's end, with `stop_at_end`), with the aborted transactions each
    /// read overlaps.
    pub fn with_isolation(mut self, isolation: Isolation) -> FetchShape {
        self.isolation = isolation;
        self
    }

    /// Whose view of transactions the stream reads.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Bytes per message: of batches, or of decoded records.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How long at the end before an empty message (0: never).
    pub fn max_wait_ms(&self) -> u32 {
        self.max_wait.map_or(0, |w| u32::try_from(w.as_millis()).unwrap_or(u32::MAX))
    }

    /// Whether the stream ends at the high watermark.
    pub fn stops_at_end(&self) -> bool {
        self.stop_at_end
    }
}

/// Messages buffered per stream: small, so a slow consumer pushes back on reads.
const STREAM_BUFFER: usize = 2;

/// Partitions opened for reading: each one's read (or why it cannot be read here), with its
/// topic's counters.
struct Opened {
    wants: Vec<Result<ReadWant, Error>>,
    counters: Vec<Option<Arc<TopicCounters>>>,
}

impl Api {
    /// Reads `wants` as one Kafka `Fetch` does: each partition's batches below its high
    /// watermark, in order within `max_bytes`; while fewer than `min_bytes` are there, waits
    /// for more up to `max_wait`. `action` names the request in the audit trail.
    pub async fn fetch(
        &self,
        who: &Identity,
        action: &str,
        wants: &[FetchPartition],
        max_bytes: usize,
        min_bytes: usize,
        max_wait: Duration,
    ) -> Fetched {
        let opened = self.open_reads(who, action, wants);
        let wait = WaitFor { max_bytes, min_bytes, max_wait: Some(max_wait), answer_at_end: false };
        self.read_opened(who, &opened, &wait).await
    }

    /// Checks that `who` may read `topic` and streams `partition` from `offset`: the reads
    /// of [`fetch`](Self::fetch) one after the other, shaped by `shape`, each held for the
    /// fetch quota. The stream ends with the first error.
    pub fn fetch_stream(
        &self,
        who: &Identity,
        action: &str,
        topic: &str,
        partition: u32,
        offset: i64,
        shape: &FetchShape,
    ) -> Result<impl Stream<Item = Result<FetchChunk, Error>> + Send + 'static, Error> {
        let want = FetchPartition {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: shape.max_bytes,
            leader_epoch: None,
            isolation: shape.isolation,
        };
        let mut opened = self.open_reads(who, action, std::slice::from_ref(&want));
        fetch::check_range(opened.only()?)?;
        let wait = WaitFor {
            max_bytes: shape.max_bytes,
            min_bytes: 1,
            max_wait: shape.max_wait,
            answer_at_end: shape.stop_at_end,
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (api, who, stop_at_end) = (self.clone(), who.clone(), shape.stop_at_end);
        // Detached: the loop ends when the receiver is dropped, at an error, or at the end.
        shale_core::task::spawn_detached(async move {
            loop {
                let read = api.read_opened(&who, &opened, &wait).await;
                let Some(chunk) = read.partitions.into_iter().next() else { return };
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if !read.throttle.is_zero() {
                    shale_core::clock::sleep(read.throttle).await;
                }
                let end = stop_at_end && chunk.at_end;
                if let Some(Ok(want)) = opened.wants.first_mut() {
                    want.offset = chunk.next_offset;
                }
                if !(end && chunk.batches.is_empty()) && tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
                if end {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    /// The end of `epoch` in the log of `topic`-`partition` (OffsetForLeaderEpoch, KIP-320):
    /// the largest epoch at or below it that the leader's log has, and where it ends;
    /// `(-1, -1)` when it has none. Read on the topic; `current_epoch` as in a fetch.
    pub fn end_of_leader_epoch(
        &self,
        who: &Identity,
        topic: &str,
        partition: u32,
        current_epoch: Option<i32>,
        epoch: i32,
    ) -> Result<(i32, i64), Error> {
        let want = FetchPartition {
            topic: topic.into(),
            partition,
            offset: 0,
            max_bytes: 0,
            leader_epoch: current_epoch,
            isolation: Isolation::ReadUncommitted,
        };
        let opened = self.open_reads(who, "OffsetForLeaderEpoch", std::slice::from_ref(&want));
        Ok(crate::broker::replication::leader::end_of_epoch_on(&opened.only()?.partition, epoch))
    }

    /// Each want's partition, when `who` may read its topic (checked once per topic), this
    /// broker leads it and at the epoch the client names. Counts a fetch for each.
    fn open_reads(&self, who: &Identity, action: &str, wants: &[FetchPartition]) -> Opened {
        let mut allowed: Vec<(&str, Result<(), Error>)> = Vec::new();
        let (wants, counters) = wants
            .iter()
            .map(|w| {
                let may = match allowed.iter().find(|(t, _)| *t == w.topic) {
                    Some((_, may)) => may.clone(),
                    None => {
                        let acl = self.broker.acl();
                        let may =
                            acl.check(who, action, Operation::Read, ResourceType::Topic, &w.topic);
                        allowed.push((&w.topic, may.clone()));
                        may
                    }
                };
                let opened = may.and_then(|()| {
                    let partition = self.broker.partition(&w.topic, w.partition)?;
                    crate::broker::check_leader_epoch(&partition, w.leader_epoch)?;
                    Ok(partition)
                });
                match opened {
                    Ok(partition) => {
                        let counters = self.broker.request_metrics().topic(&w.topic);
                        counters.fetch_requests.fetch_add(1, Ordering::Relaxed);
                        let read = ReadWant {
                            partition,
                            offset: w.offset,
                            max_bytes: w.max_bytes,
                            isolation: w.isolation,
                        };
                        (Ok(read), Some(counters))
                    }
                    Err(e) => (Err(e), None),
                }
            })
            .unzip();
        Opened { wants, counters }
    }

    /// Reads opened partitions as `wait` says; a partition that closed here answers where
    /// it went (its new leader, or that it is gone). Counts the bytes for each topic and
    /// charges them to the fetch quota.
    async fn read_opened(&self, who: &Identity, opened: &Opened, wait: &WaitFor) -> Fetched {
        let wants = &opened.wants;
        let mut partitions = fetch::long_poll(wants, wait, self.broker.closed_signal()).await;
        let mut total = 0u64;
        for ((chunk, want), counters) in partitions.iter_mut().zip(wants).zip(&opened.counters) {
            let (Ok(want), Some(counters)) = (want, counters) else { continue };
            match chunk {
                Ok(c) => {
                    let bytes = c.batches.len() as u64;
                    counters.fetch_bytes.fetch_add(bytes, Ordering::Relaxed);
                    total += bytes;
                }
                Err(e) if want.partition.is_closed() => {
                    let (topic, index) = (want.partition.topic(), want.partition.index());
                    if let Err(moved) = self.broker.partition(topic, index) {
                        *e = moved;
                    }
                }
                Err(_) => {}
            }
        }
        let throttle = self.broker.quotas().owe(who, QuotaKind::Fetch, total);
        Fetched { partitions, throttle }
    }
}

impl Opened {
    /// The one partition opened, or why it could not be.
    fn only(&self) -> Result<&ReadWant, Error> {
        match self.wants.as_slice() {
            [want] => want.as_ref().map_err(Error::clone),
            _ => Err(Error::internal("one partition was to be opened")),
        }
    }
}
