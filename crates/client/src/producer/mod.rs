//! The producer: records are batched per partition (by `batch_size` and `linger`),
//! compressed, and sent in order over one pipelined `ProduceStream` per partition with up
//! to `max_in_flight` batches awaiting acks.
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
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

mod sender;

use sender::sender_loop;

use crate::{Client, RetryPolicy, locate, partitioner, status_error};
use shale_core::acks::Acks;
use shale_core::clock::Clock as _;
use shale_core::error::Error;
use shale_core::record::{BatchBuilder, Compression, Header, Record};
use shale_proto::pb;

/// Producer tuning, with Kafka's names where they exist.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: all (default), leader, or none.
    pub acks: Acks,
    /// `batch.size`: seal a partition's batch at this many bytes.
    pub batch_size: usize,
    /// `linger.ms`: seal a batch this long after its first record at the latest.
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
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
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

struct OpenBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    generation: u64,
}

struct Sealed {
    created: tokio::time::Instant,
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
        pending.done(n);
    }
}

#[derive(Default)]
struct Pending {
    records: AtomicUsize,
    idle: Notify,
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
    open: HashMap<Tp, OpenBatch>,
    senders: HashMap<Tp, mpsc::Sender<Sealed>>,
    sticky: HashMap<String, u32>,
    /// Picks sticky partitions for records without a key; seeded by the OS per producer.
    rng: Picker,
    /// Next sequence number per partition (idempotence).
    next_seq: HashMap<Tp, i32>,
    generation: u64,
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
    config: Arc<ProducerConfig>,
    state: Mutex<State>,
    pending: Arc<Pending>,
    producer_id: tokio::sync::OnceCell<(i64, i16)>,
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
        Producer {
            inner: Arc::new(Inner {
                client,
                config: Arc::new(config),
                state: Mutex::new(State::default()),
                pending: Arc::new(Pending::default()),
                producer_id: tokio::sync::OnceCell::new(),
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
        let (tx, rx) = oneshot::channel();
        let mut state = self.inner.state.lock().await;
        let partition = match (explicit, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partitioner::partition_for_key(key, partitions),
            (None, None) => {
                let State { sticky, rng, .. } = &mut *state;
                *sticky
                    .entry(record.topic.clone())
                    .or_insert_with(|| rng.0.random_range(0..partitions))
            }
        };
        let tp = (record.topic.clone(), partition);
        let record_bytes = record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())
            + 32;
        let needs_room = state.open.get(&tp).is_some_and(|b| {
            !b.builder.is_empty()
                && b.builder.estimated_size() + record_bytes > self.inner.config.batch_size
        });
        if needs_room {
            self.seal(&mut state, &tp).await?;
        }
        state.generation += 1;
        let generation = state.generation;
        let compression = self.inner.config.compression;
        let producer = match self.inner.config.idempotence {
            true => Some(self.producer_id().await?),
            false => None,
        };
        let sequence = state.next_seq.get(&tp).copied().unwrap_or(0);
        let batch = state.open.entry(tp.clone()).or_insert_with(|| OpenBatch {
            builder: match producer {
                Some((id, epoch)) => {
                    BatchBuilder::new(compression).with_producer(id, epoch, sequence)
                }
                None => BatchBuilder::new(compression),
            },
            waiters: Vec::new(),
            generation,
        });
        let first = batch.builder.is_empty();
        if first {
            batch.generation = generation;
        }
        batch.builder.push(Record {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp_ms,
        });
        batch.waiters.push(tx);
        self.inner.pending.records.fetch_add(1, Ordering::AcqRel);
        let full = batch.builder.estimated_size() >= self.inner.config.batch_size;
        let batch_generation = batch.generation;
        if full {
            self.seal(&mut state, &tp).await?;
        } else if first {
            self.linger(tp, batch_generation);
        }
        Ok(Delivery(rx))
    }

    /// The producer id and epoch, asked of the cluster once.
    async fn producer_id(&self) -> Result<(i64, i16), Error> {
        let id = self
            .inner
            .producer_id
            .get_or_try_init(|| async {
                let client = &self.inner.client;
                let resp = client
                    .retrying(|| async {
                        let broker = client.bootstrap();
                        Ok(client
                            .log_rpc(broker)?
                            .init_producer_id(pb::InitProducerIdRequest {})
                            .await
                            .map_err(|s| locate(status_error(&s), broker, None, None))?
                            .into_inner())
                    })
                    .await?;
                Ok::<_, Error>((resp.producer_id, resp.producer_epoch as i16))
            })
            .await?;
        Ok(*id)
    }

    /// Seals every open batch and waits until every record sent so far is answered.
    pub async fn flush(&self) -> Result<(), Error> {
        {
            let mut state = self.inner.state.lock().await;
            let tps: Vec<Tp> = state.open.keys().cloned().collect();
            for tp in tps {
                self.seal(&mut state, &tp).await?;
            }
        }
        loop {
            let idle = self.inner.pending.idle.notified();
            if self.inner.pending.records.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            idle.await;
        }
    }

    fn linger(&self, tp: Tp, generation: u64) {
        let producer = self.clone();
        let linger = self.inner.config.linger;
        // Detached: a timer of `linger`, then one seal.
        shale_core::task::spawn_detached(async move {
            shale_core::clock::sleep(linger).await;
            let mut state = producer.inner.state.lock().await;
            if state.open.get(&tp).is_some_and(|b| b.generation == generation) {
                if let Err(e) = producer.seal(&mut state, &tp).await {
                    tracing::warn!(error = %e, "sealing a lingering batch failed");
                }
            }
        });
    }

    /// Builds the open batch of `tp` and queues it for its partition's sender.
    async fn seal(&self, state: &mut State, tp: &Tp) -> Result<(), Error> {
        let Some(open) = state.open.remove(tp) else { return Ok(()) };
        if open.waiters.is_empty() {
            return Ok(());
        }
        // A null-key topic moves on to another partition once its batch is sealed.
        if let Some(sticky) = state.sticky.get_mut(&tp.0) {
            if *sticky == tp.1 {
                let partitions = self.inner.client.partition_count(&tp.0).await.unwrap_or(1);
                if partitions > 1 {
                    let next = state.rng.0.random_range(0..partitions - 1);
                    *sticky = if next >= tp.1 { next + 1 } else { next };
                }
            }
        }
        if self.inner.config.idempotence {
            *state.next_seq.entry(tp.clone()).or_insert(0) += open.builder.len() as i32;
        }
        let sealed = Sealed {
            created: shale_core::clock::monotonic_now(),
            bytes: open.builder.build(),
            waiters: open.waiters,
            attempts: 0,
        };
        let sender = state
            .senders
            .entry(tp.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.inner.config.queued_batches.max(1));
                // Detached: the sender sends what is queued and ends once the queue
                // closes (the producer dropped, or this sender removed).
                shale_core::task::spawn_detached(sender_loop(
                    self.inner.client.clone(),
                    tp.clone(),
                    self.inner.config.clone(),
                    rx,
                    self.inner.pending.clone(),
                ));
                tx
            })
            .clone();
        if let Err(mpsc::error::SendError(sealed)) = sender.send(sealed).await {
            let e = Error::internal("partition sender stopped");
            sealed.fail(&e, &self.inner.pending);
            state.senders.remove(tp);
            return Err(e);
        }
        Ok(())
    }
}
