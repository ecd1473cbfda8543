//! The consumer: assigned partitions are read from their leaders through long-polling
//! streams merged into `poll()` — by default one `FetchMany` stream per broker for all the
//! partitions it leads (`many.rs`), or, with `multiplex: false`, one `Fetch` stream and task
//! per partition. Retriable failures read again from the next offset not yet delivered, so
//! a broker restart or a leader change costs a pause, not a gap or a duplicate. A partition
//! waits for a reachable leader with exponential backoff for up to `leader_wait`, then
//! fails with an error naming the broker and the partition.

mod many;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use shale_core::task::OwnedTask;
use tokio::sync::mpsc;

use super::retry::{RetryPolicy, gave_up, worth_retrying};
use super::{Client, locate, status_error};
use shale_core::error::Error;
use shale_core::record::control::CommittedFilter;
use shale_core::record::{DecodedRecord, Header, Limits, RecordError, decode_batches_except};
use shale_proto::pb;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Earliest,
    /// The high watermark (only new records).
    Latest,
    /// An exact offset.
    Offset(i64),
    /// The first record at or after a timestamp (ms); the end if none.
    Timestamp(i64),
}

/// Which records of transactions a consumer reads (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Every record, those of open and aborted transactions too (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Committed records only: a partition's read ends at its last stable offset, and
    /// aborted transactions' records are left out.
    ReadCommitted,
}

impl Isolation {
    /// As the wire names it.
    fn to_proto(self) -> i32 {
        match self {
            Isolation::ReadUncommitted => pb::Isolation::ReadUncommitted as i32,
            Isolation::ReadCommitted => pb::Isolation::ReadCommitted as i32,
        }
    }
}

/// Decodes a fetch message's `batches` (with generous limits: the broker validated them on
/// the way in) as `isolation`'s reader sees them: without markers, and for
/// `ReadCommitted` without the records of the `aborted` transactions the message lists.
fn decode_fetched(
    batches: &Bytes,
    aborted: &[pb::AbortedTransaction],
    isolation: Isolation,
) -> Result<Vec<DecodedRecord>, RecordError> {
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    let mut filter = (isolation == Isolation::ReadCommitted)
        .then(|| CommittedFilter::new(aborted.iter().map(|a| (a.producer_id, a.first_offset))));
    decode_batches_except(batches, &limits, |header, bytes| {
        filter.as_mut().is_some_and(|f| f.skips(header, bytes))
    })
}

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Batch bytes per fetch message (`fetch.max.bytes`).
    pub max_bytes: u32,
    /// End each partition at its high watermark instead of waiting for more.
    pub stop_at_end: bool,
    /// First pause before reconnecting after a retriable failure (`retry.backoff.ms`);
    /// pauses double while the leader stays unreachable.
    pub retry_backoff: Duration,
    /// Longest pause between reconnects (`retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
    /// How long a partition may go without a reachable leader (lookups of its offsets,
    /// reconnects of its fetch) before the consumer gives up on it.
    pub leader_wait: Duration,
    /// Records buffered ahead of `poll` (across partitions), in fetch messages.
    pub buffered_messages: usize,
    /// Read all the partitions a broker leads over one `FetchMany` stream (the default);
    /// `false`: one `Fetch` stream per partition.
    pub multiplex: bool,
    /// `isolation.level`: uncommitted (the default) or committed records only.
    pub isolation: Isolation,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        ConsumerConfig {
            max_bytes: 1024 * 1024,
            stop_at_end: false,
            retry_backoff: retry.initial,
            retry_backoff_max: retry.max,
            leader_wait: retry.total,
            buffered_messages: 16,
            multiplex: true,
            isolation: Isolation::ReadUncommitted,
        }
    }
}

impl ConsumerConfig {
    /// How the consumer waits for a leader.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: self.retry_backoff,
            max: self.retry_backoff_max,
            total: self.leader_wait,
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp_ms: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// A decoded record of `topic`'s `partition`.
    fn of(topic: &str, partition: u32, r: shale_core::record::DecodedRecord) -> ConsumerRecord {
        ConsumerRecord {
            topic: topic.to_string(),
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }
    }
}

enum EventKind {
    Records(Vec<ConsumerRecord>),
    Done,
    Failed(Error),
}

/// What a partition's fetch task reports, tagged with the task, so events of a task that
/// was replaced (seek, unassign) are dropped.
struct Event {
    key: (String, u32),
    task: u64,
    kind: EventKind,
}

/// A partition's current read: its id, and without multiplexing its task.
type Read = (u64, Option<OwnedTask<()>>);

/// Reads assigned partitions.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    /// Per partition: its read's id and, without multiplexing, its task.
    tasks: HashMap<(String, u32), Read>,
    /// With multiplexing: the streams of every partition, started on first use.
    router: Option<many::Router>,
    running: usize,
    next_task: u64,
}

impl Consumer {
    /// A consumer with nothing assigned.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        let (tx, rx) = mpsc::channel(config.buffered_messages.max(1));
        Consumer {
            client,
            config,
            tx,
            rx,
            tasks: HashMap::new(),
            router: None,
            running: 0,
            next_task: 0,
        }
    }

    /// The number of partitions of `topic`, waiting for metadata for up to `leader_wait`.
    pub async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        self.client.partition_count_within(topic, self.config.retry_policy()).await
    }

    /// Resolves a start position to an offset, waiting for the partition's leader for up to
    /// `leader_wait`.
    pub async fn resolve(&self, topic: &str, partition: u32, start: StartAt) -> Result<i64, Error> {
        use pb::list_offsets_request::Spec;
        let spec = match start {
            StartAt::Offset(o) => return Ok(o),
            StartAt::Earliest => Spec::Earliest(true),
            // A read_committed reader's log ends at the last stable offset.
            StartAt::Latest if self.config.isolation == Isolation::ReadCommitted => {
                Spec::LastStable(true)
            }
            StartAt::Latest => Spec::Latest(true),
            StartAt::Timestamp(ts) => Spec::TimestampMs(ts),
        };
        let req = pb::ListOffsetsRequest { topic: topic.to_string(), partition, spec: Some(spec) };
        let policy = self.config.retry_policy();
        let resp = self
            .client
            .on_leader_within(topic, partition, policy, |mut log| {
                let req = req.clone();
                async move { log.list_offsets(req).await }
            })
            .await?;
        Ok(if resp.offset < 0 { resp.high_watermark } else { resp.offset })
    }

    /// Starts reading a partition from `start`; returns the resolved offset. Assigning an
    /// assigned partition again seeks it.
    pub async fn assign(
        &mut self,
        topic: &str,
        partition: u32,
        start: StartAt,
    ) -> Result<i64, Error> {
        let offset = self.resolve(topic, partition, start).await?;
        self.seek(topic, partition, offset);
        Ok(offset)
    }

    /// Moves a partition to `offset` (assigning it if needed).
    pub fn seek(&mut self, topic: &str, partition: u32, offset: i64) {
        self.unassign(topic, partition);
        self.next_task += 1;
        let id = self.next_task;
        let key = (topic.to_string(), partition);
        let task = if self.config.multiplex {
            let (client, config, tx) = (&self.client, &self.config, &self.tx);
            let router = self.router.get_or_insert_with(|| {
                many::Router::new(client.clone(), config.clone(), tx.clone())
            });
            router.start(key.clone(), id, offset);
            None
        } else {
            Some(shale_core::task::spawn_owned(fetch_loop(
                self.client.clone(),
                self.config.clone(),
                topic.to_string(),
                partition,
                offset,
                Tagged { tx: self.tx.clone(), key: key.clone(), task: id },
            )))
        };
        self.tasks.insert(key, (id, task));
        self.running += 1;
    }

    /// Stops reading a partition; records of it not yet polled are dropped.
    pub fn unassign(&mut self, topic: &str, partition: u32) {
        // Dropping the task's handle stops it; the router is told.
        let key = (topic.to_string(), partition);
        if self.tasks.remove(&key).is_some() {
            self.running -= 1;
            if let Some(router) = &self.router {
                router.stop(key);
            }
        }
    }

    /// Fetch streams open now: one per broker read from, or (without multiplexing) one per
    /// assigned partition.
    pub fn fetch_streams(&self) -> usize {
        match &self.router {
            Some(router) => router.streams(),
            None => self.tasks.len(),
        }
    }

    /// Whether the event comes from the current task of its partition.
    fn current(&self, e: &Event) -> bool {
        self.tasks.get(&e.key).is_some_and(|(id, _)| *id == e.task)
    }

    /// Records that arrive within `timeout` (empty if none), for callers that do other
    /// work between polls. Partitions that end (with `stop_at_end`) are dropped; a
    /// partition that fails is reported as `(topic, partition, error)` and dropped.
    pub async fn poll_for(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<ConsumerRecord>, ((String, u32), Error)> {
        let deadline = shale_core::clock::monotonic_now() + timeout;
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                return Ok(Vec::new());
            };
            let Some(event) = event else { return Ok(Vec::new()) };
            if !self.current(&event) {
                continue;
            }
            match event.kind {
                EventKind::Records(r) => return Ok(r),
                EventKind::Done => {
                    self.tasks.remove(&event.key);
                    self.running -= 1;
                }
                EventKind::Failed(e) => {
                    self.tasks.remove(&event.key);
                    self.running -= 1;
                    return Err((event.key, e));
                }
            }
        }
    }

    /// The next records from any assigned partition (in offset order per partition).
    /// `Ok(None)` once every partition has ended (only with `stop_at_end`).
    pub async fn poll(&mut self) -> Result<Option<Vec<ConsumerRecord>>, Error> {
        loop {
            if self.running == 0 {
                return Ok(None);
            }
            let Some(event) = self.rx.recv().await else { return Ok(None) };
            if !self.current(&event) {
                continue;
            }
            match event.kind {
                EventKind::Records(r) => return Ok(Some(r)),
                EventKind::Done => {
                    self.tasks.remove(&event.key);
                    self.running -= 1;
                }
                EventKind::Failed(e) => {
                    self.tasks.remove(&event.key);
                    self.running -= 1;
                    return Err(e);
                }
            }
        }
    }
}

/// A fetch task's way to report.
struct Tagged {
    tx: mpsc::Sender<Event>,
    key: (String, u32),
    task: u64,
}

impl Tagged {
    async fn send(&self, kind: EventKind) -> bool {
        let event = Event { key: self.key.clone(), task: self.task, kind };
        self.tx.send(event).await.is_ok()
    }
}

/// Reads one partition from its leader from `offset` on and reports records, the end (with
/// `stop_at_end`) or a fatal error; reconnects (to a new leader too) on retriable ones.
///
/// One function on purpose: a single reconnecting loop whose state (position, backoff,
/// the open stream) lives in its locals, so every way a stream ends is handled in view.
async fn fetch_loop(
    client: Client,
    config: ConsumerConfig,
    topic: String,
    partition: u32,
    mut position: i64,
    tx: Tagged,
) {
    let policy = config.retry_policy();
    let mut backoff = policy.start();
    loop {
        // Whether this attempt reached a leader that answered: the wait starts over.
        let mut answered = false;
        let result = async {
            let leader = client.leader(&topic, partition).await?;
            let located = |e| locate(e, &leader, Some(&topic), Some(partition));
            let mut stream = client
                .log_rpc(&leader)
                .map_err(located)?
                .fetch(pb::FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset: position,
                    max_bytes: config.max_bytes,
                    max_wait_ms: 0,
                    stop_at_end: config.stop_at_end,
                    isolation: config.isolation.to_proto(),
                    ..Default::default()
                })
                .await
                .map_err(|s| located(status_error(&s)))?
                .into_inner();
            answered = true;
            while let Some(msg) = stream.message().await.map_err(|s| located(status_error(&s)))? {
                if msg.batches.is_empty() {
                    continue;
                }
                let decoded =
                    decode_fetched(&msg.batches, &msg.aborted_transactions, config.isolation)
                        .map_err(|e| located(e.into()))?;
                let records: Vec<ConsumerRecord> = decoded
                    .into_iter()
                    .filter(|r| r.offset >= position)
                    .map(|r| ConsumerRecord::of(&topic, partition, r))
                    .collect();
                position = position.max(msg.next_offset);
                if !records.is_empty() && !tx.send(EventKind::Records(records)).await {
                    return Ok(());
                }
            }
            if config.stop_at_end {
                return Ok(());
            }
            // The broker ended a stream that long-polls forever: it is going away.
            Err(locate(
                Error::unavailable("fetch stream ended by the broker"),
                &leader,
                Some(&topic),
                Some(partition),
            ))
        }
        .await;
        let e = match result {
            Ok(_) => {
                tx.send(EventKind::Done).await;
                return;
            }
            Err(e) if worth_retrying(&e) => e,
            Err(e) => {
                tx.send(EventKind::Failed(e)).await;
                return;
            }
        };
        tracing::debug!(topic, partition, position, error = %e, "fetch interrupted; reconnecting");
        client.invalidate(&topic);
        if answered {
            backoff = policy.start();
        }
        match backoff.next_delay() {
            Some(pause) => shale_core::clock::sleep(pause).await,
            None => {
                tx.send(EventKind::Failed(gave_up("leader", e, policy.total))).await;
                return;
            }
        }
    }
}
