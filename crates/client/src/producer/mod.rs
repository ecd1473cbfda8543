//! The producer: records are batched per partition (by `batch_size` and `linger`, see
//! `lane`), compressed, and sent in order, up to `max_in_flight` batches per partition
//! awaiting acks, over one pipelined `ProduceMany` stream per broker shared by the
//! partitions it leads (`mux`): requests of many partitions travel in one message.
//!
//! Retries resend a failed batch and everything sent after it, in order, until
//! `delivery_timeout`. With `idempotence` (the default) every batch carries the producer's
//! id, epoch and per-partition sequence numbers, so the leader — also a new leader after a
//! failover — answers a resent batch with its original offsets instead of writing it again,
//! and refuses a batch that overtook a missing one: retries neither duplicate nor reorder.
//! A record that finally fails carries an error naming the broker and the partition.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{Mutex, Notify, oneshot};

mod lane;
mod mux;
mod sender;
#[cfg(test)]
mod tests;
mod txn;

use lane::{Batching, Lane, Pushed};
pub use mux::MAX_MESSAGES_IN_FLIGHT;
use sender::sender_loop;
pub use txn::{GroupMetadata, TransactionalConfig, TransactionalProducer};

use crate::{Client, RetryPolicy, locate, partitioner, status_error};
use shale_core::acks::Acks;
use shale_core::clock::Clock as _;
use shale_core::error::Error;
use shale_core::record::{Compression, Header, Record};
use shale_proto::pb;

/// Producer tuning, with Kafka's names where they exist.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: all (default), leader, or none.
    pub acks: Acks,
    /// `batch.size`: the most bytes a partition's batch grows to. With `linger` zero a
    /// batch is only this big under load (see `linger`), so the default is larger than
    /// Kafka's 16 KiB: 256 KiB, which large batches under load need to reach the disk's
    /// bandwidth, at no cost in latency when idle.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch may wait to fill before it is sent. Zero (the
    /// default) sends a batch as soon as the partition's in-flight window has room: one
    /// record at a time when idle, while under load the next batch fills (up to
    /// `batch_size`) until an answer frees a slot, so batches grow with the load and no
    /// timer adds latency.
    pub linger: Duration,
    /// `compression.type`.
    pub compression: Compression,
    /// `retries`: resends of a batch after a retriable failure (also bounded by
    /// `delivery_timeout`).
    pub retries: u32,
    /// `delivery.timeout.ms`: how long a record may take, retries included.
    pub delivery_timeout: Duration,
    /// `enable.idempotence`: producer id and sequence numbers, so retries never duplicate.
    pub idempotence: bool,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `max.in.flight.requests.per.connection`: batches awaiting acks per partition.
    pub max_in_flight: usize,
    /// `request.timeout.ms`: how long to wait for one batch's answer.
    pub request_timeout: Duration,
    /// Sealed batches queued per partition before `send` waits (memory bound).
    pub queued_batches: usize,
    /// `max.block.ms`: how long `send` waits for a topic's metadata while no broker answers
    /// (a restart, or the whole cluster coming back after a power cut).
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            batch_size: 256 * 1024,
            linger: Duration::ZERO,
            compression: Compression::None,
            retries: u32::MAX,
            delivery_timeout: Duration::from_secs(120),
            idempotence: true,
            retry_backoff: Duration::from_millis(100),
            max_in_flight: 5,
            request_timeout: Duration::from_secs(30),
            queued_batches: 32,
            max_block: Duration::from_secs(60),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition; `None` hashes the key, or sticks to one partition per batch for null keys.
    pub partition: Option<u32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
    /// CreateTime (ms); `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord { topic: topic.into(), value: Some(value.into()), ..Default::default() }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header { key: key.into(), value: Some(value.into()) });
        self
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch of the leader that acknowledged the record.
    pub leader_epoch: i32,
}

type Waiter = oneshot::Sender<Result<RecordMetadata, Error>>;

/// Resolves when the record is acknowledged (or finally failed).
#[derive(Debug)]
pub struct Delivery(oneshot::Receiver<Result<RecordMetadata, Error>>);

impl Future for Delivery {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Error::internal("producer dropped the record before answering"))
            })
        })
    }
}

type Tp = (String, u32);

struct Sealed {
    created: shale_core::clock::Instant,
    bytes: Bytes,
    waiters: Vec<Waiter>,
    attempts: u32,
}

impl Sealed {
    fn complete(self, topic: &str, partition: u32, resp: &pb::ProduceResponse, pending: &Pending) {
        let n = self.waiters.len();
        for (i, w) in self.waiters.into_iter().enumerate() {
            let _ = w.send(Ok(RecordMetadata {
                topic: topic.to_string(),
                partition,
                offset: resp.base_offset + i as i64,
                leader_epoch: resp.leader_epoch,
            }));
        }
        pending.done(n);
    }

    fn fail(self, e: &Error, pending: &Pending) {
        let n = self.waiters.len();
        for w in self.waiters {
            let _ = w.send(Err(e.clone()));
        }
        pending.failed.fetch_add(n, Ordering::AcqRel);
        if e.kind == shale_core::error::ErrorKind::Fenced {
            let _ = pending.fenced.set(e.clone());
        }
        pending.done(n);
    }
}

#[derive(Default)]
struct Pending {
    records: AtomicUsize,
    idle: Notify,
    /// Records that finally failed, ever: a transaction that lost one may not commit.
    failed: AtomicUsize,
    /// The first fencing failure: the producer's epoch is over.
    fenced: std::sync::OnceLock<Error>,
}

impl Pending {
    fn done(&self, n: usize) {
        if self.records.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

#[derive(Default)]
struct State {
    lanes: HashMap<Tp, Arc<Lane>>,
    /// Per topic, the partition records without a key stick to, and the bytes sent there
    /// since it was picked (Kafka's sticky partitioner moves on after `batch_size`).
    sticky: HashMap<String, (u32, usize)>,
    /// Picks sticky partitions for records without a key; seeded by the OS per producer.
    rng: Picker,
}

impl State {
    /// The partition for a record without a key: the topic's sticky one, moved on to
    /// another once `batch_size` bytes went there.
    fn sticky_partition(
        &mut self,
        topic: &str,
        partitions: u32,
        bytes: usize,
        batch_size: usize,
    ) -> u32 {
        let State { sticky, rng, .. } = self;
        let entry = sticky
            .entry(topic.to_string())
            .or_insert_with(|| (rng.0.random_range(0..partitions), 0));
        if entry.0 >= partitions || entry.1 >= batch_size {
            entry.0 = if partitions <= 1 {
                0
            } else {
                let current = entry.0.min(partitions - 1);
                let next = rng.0.random_range(0..partitions - 1);
                if next >= current { next + 1 } else { next }
            };
            entry.1 = 0;
        }
        entry.1 += bytes;
        entry.0
    }
}

/// A seedable generator, seeded from the OS by default.
struct Picker(rand::rngs::StdRng);

impl Default for Picker {
    fn default() -> Self {
        Picker(rand::SeedableRng::from_os_rng())
    }
}

struct Inner {
    client: Client,
    /// One `ProduceMany` stream per broker, shared by the partitions it leads.
    links: Arc<mux::Links>,
    config: Arc<ProducerConfig>,
    state: Mutex<State>,
    pending: Arc<Pending>,
    producer_id: tokio::sync::OnceCell<(i64, i16)>,
    /// A transactional producer's id, producer id and epoch, and open transaction.
    txn: Option<Arc<txn::Session>>,
}

impl Drop for Inner {
    /// The senders send what is left in their lanes, then end.
    fn drop(&mut self) {
        for lane in self.state.get_mut().lanes.values() {
            lane.close();
        }
    }
}

/// Sends records to a cluster; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("config", &self.inner.config).finish()
    }
}

impl Producer {
    /// A producer over `client`.
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        Producer::with_session(client, config, None)
    }

    /// A producer over `client`, transactional when `txn` is given.
    fn with_session(
        client: Client,
        config: ProducerConfig,
        txn: Option<Arc<txn::Session>>,
    ) -> Producer {
        Producer {
            inner: Arc::new(Inner {
                links: Arc::new(mux::Links::new(client.clone(), config.request_timeout)),
                client,
                config: Arc::new(config),
                state: Mutex::new(State::default()),
                pending: Arc::new(Pending::default()),
                producer_id: tokio::sync::OnceCell::new(),
                txn,
            }),
        }
    }

    /// Queues a record; the returned [`Delivery`] resolves when it is acknowledged.
    /// Waits only when the partition's queue is full.
    ///
    /// Long on purpose: one record's way into a batch (metadata wait, partition choice, then
    /// under the state lock: seal a full batch, open one with the next sequence, arm the
    /// linger); the part under the lock is one critical section so that a record's batch
    /// and its sequence agree.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, Error> {
        let config = &self.inner.config;
        let wait = RetryPolicy {
            initial: config.retry_backoff,
            total: config.max_block,
            ..RetryPolicy::default()
        };
        let mut partitions = self.inner.client.partition_count_within(&record.topic, wait).await?;
        let explicit = record.partition;
        if let Some(p) = explicit {
            // A partition past the cached count may be one just added (Kafka's producer
            // waits for metadata that has it): read the count again for about a second
            // before calling it out of range.
            let mut backoff = None;
            while p >= partitions {
                let Some(pause) =
                    backoff.get_or_insert_with(|| RetryPolicy::QUICK.start()).next_delay()
                else {
                    return Err(shale_core::error::partition_out_of_range(
                        &record.topic,
                        p,
                        partitions,
                    ));
                };
                self.inner.client.invalidate(&record.topic);
                partitions = self.inner.client.partition_count_within(&record.topic, wait).await?;
                if p >= partitions {
                    shale_core::clock::sleep(pause).await;
                }
            }
        }
        let timestamp_ms =
            record.timestamp_ms.unwrap_or_else(|| shale_core::clock::SystemClock.now_ms());
        let record_bytes = record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())
            + 32;
        let producer = match (&self.inner.txn, config.idempotence) {
            (Some(session), _) => Some(session.producer_in_txn()?),
            (None, true) => Some(self.producer_id(wait).await?),
            (None, false) => None,
        };
        let lane = {
            let mut state = self.inner.state.lock().await;
            let partition = match (explicit, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partitioner::partition_for_key(key, partitions),
                (None, None) => state.sticky_partition(
                    &record.topic,
                    partitions,
                    record_bytes,
                    config.batch_size,
                ),
            };
            self.lane(&mut state, (record.topic, partition))
        };
        let how = Batching {
            batch_size: config.batch_size,
            compression: config.compression,
            queued_batches: config.queued_batches,
            producer,
            transactional: self.inner.txn.is_some(),
        };
        let (tx, rx) = oneshot::channel();
        let mut entry = (
            Record { key: record.key, value: record.value, headers: record.headers, timestamp_ms },
            tx,
        );
        // Counted before the sender can see it, so its answer never counts down first.
        self.inner.pending.records.fetch_add(1, Ordering::AcqRel);
        loop {
            let room = lane.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let now = shale_core::clock::monotonic_now();
            match lane.push(entry.0, record_bytes, entry.1, &how, now) {
                Ok(Pushed::News) => lane.work.notify_one(),
                Ok(_) => {}
                Err(back) => {
                    // The lane's sealed batches are at `queued_batches`: wait for the sender.
                    entry = back;
                    room.await;
                    continue;
                }
            }
            return Ok(Delivery(rx));
        }
    }

    /// The producer id and epoch, asked of the cluster once.
    /// Like metadata, it is waited for within `max_block`: a cluster out of reach for a
    /// moment delays the first send rather than failing it.
    async fn producer_id(&self, wait: RetryPolicy) -> Result<(i64, i16), Error> {
        let id = self
            .inner
            .producer_id
            .get_or_try_init(|| async {
                let client = &self.inner.client;
                let init = || {
                    client.retrying(|| async {
                        let broker = client.bootstrap();
                        Ok(client
                            .log_rpc(broker)?
                            .init_producer_id(pb::InitProducerIdRequest {})
                            .await
                            .map_err(|s| locate(status_error(&s), broker, None, None))?
                            .into_inner())
                    })
                };
                let resp = wait.retry("a producer id", init).await?;
                Ok::<_, Error>((resp.producer_id, resp.producer_epoch as i16))
            })
            .await?;
        Ok(*id)
    }

    /// Sends every batch now, however young, and waits until every record sent so far is
    /// answered.
    pub async fn flush(&self) -> Result<(), Error> {
        for lane in self.inner.state.lock().await.lanes.values() {
            lane.hurry();
        }
        loop {
            let idle = self.inner.pending.idle.notified();
            if self.inner.pending.records.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            idle.await;
        }
    }

    /// Starts every partition's sequence again at 0: the producer's epoch changed (its
    /// transaction ended), with nothing in flight.
    async fn restart_sequences(&self) {
        for lane in self.inner.state.lock().await.lanes.values() {
            lane.restart_sequence();
        }
    }

    /// The lane of `tp`, with its sender task started on first use.
    fn lane(&self, state: &mut State, tp: Tp) -> Arc<Lane> {
        state
            .lanes
            .entry(tp)
            .or_insert_with_key(|tp| {
                let lane = Arc::new(Lane::default());
                // Detached: the sender sends what its lane holds and ends once the lane
                // closes (the producer dropped) and is empty.
                shale_core::task::spawn_detached(sender_loop(
                    self.inner.client.clone(),
                    self.inner.links.clone(),
                    tp.clone(),
                    self.inner.config.clone(),
                    lane.clone(),
                    self.inner.pending.clone(),
                    self.inner.txn.as_ref().map(|s| s.id.clone()),
                ));
                lane
            })
            .clone()
    }
}
