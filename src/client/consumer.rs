//! The consumer: assigned partitions are read through long-polling `Fetch` streams from
//! their leaders, one task per partition, merged into `poll()`. Retriable failures reconnect
//! from the last position, so a broker restart costs a pause, not a gap or a duplicate.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Client, status_error};
use crate::error::{Error, ErrorKind};
use crate::record::{Header, Limits, decode_batches};
use crate::rpc::pb;

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

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Batch bytes per fetch message (`fetch.max.bytes`).
    pub max_bytes: u32,
    /// End each partition at its high watermark instead of waiting for more.
    pub stop_at_end: bool,
    /// Pause before reconnecting after a retriable failure.
    pub retry_backoff: Duration,
    /// Records buffered ahead of `poll` (across partitions), in fetch messages.
    pub buffered_messages: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_bytes: 1024 * 1024,
            stop_at_end: false,
            retry_backoff: Duration::from_millis(200),
            buffered_messages: 16,
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

/// Reads assigned partitions.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    tasks: HashMap<(String, u32), (u64, JoinHandle<()>)>,
    running: usize,
    next_task: u64,
}

impl Consumer {
    /// A consumer with nothing assigned.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        let (tx, rx) = mpsc::channel(config.buffered_messages.max(1));
        Consumer { client, config, tx, rx, tasks: HashMap::new(), running: 0, next_task: 0 }
    }

    /// Resolves a start position to an offset.
    pub async fn resolve(&self, topic: &str, partition: u32, start: StartAt) -> Result<i64, Error> {
        use pb::list_offsets_request::Spec;
        let spec = match start {
            StartAt::Offset(o) => return Ok(o),
            StartAt::Earliest => Spec::Earliest(true),
            StartAt::Latest => Spec::Latest(true),
            StartAt::Timestamp(ts) => Spec::TimestampMs(ts),
        };
        let resp = self.client.admin().list_offsets(topic, partition, spec).await?;
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
        let task = tokio::spawn(fetch_loop(
            self.client.clone(),
            self.config.clone(),
            topic.to_string(),
            partition,
            offset,
            Tagged { tx: self.tx.clone(), key: (topic.to_string(), partition), task: id },
        ));
        self.tasks.insert((topic.to_string(), partition), (id, task));
        self.running += 1;
    }

    /// Stops reading a partition; records of it not yet polled are dropped.
    pub fn unassign(&mut self, topic: &str, partition: u32) {
        if let Some((_, old)) = self.tasks.remove(&(topic.to_string(), partition)) {
            old.abort();
            self.running -= 1;
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
        let deadline = tokio::time::Instant::now() + timeout;
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

impl Drop for Consumer {
    fn drop(&mut self) {
        for (_, t) in self.tasks.values() {
            t.abort();
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

async fn fetch_loop(
    client: Client,
    config: ConsumerConfig,
    topic: String,
    partition: u32,
    mut position: i64,
    tx: Tagged,
) {
    // Decode with generous limits: the broker validated these batches on the way in.
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    loop {
        let result = async {
            let leader = client.leader(&topic, partition).await?;
            let mut stream = client
                .log_rpc(&leader)?
                .fetch(pb::FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset: position,
                    max_bytes: config.max_bytes,
                    max_wait_ms: 0,
                    stop_at_end: config.stop_at_end,
                })
                .await
                .map_err(|s| status_error(&s))?
                .into_inner();
            while let Some(msg) = stream.message().await.map_err(|s| status_error(&s))? {
                if msg.batches.is_empty() {
                    continue;
                }
                let decoded = decode_batches(&msg.batches, &limits)?;
                let records: Vec<ConsumerRecord> = decoded
                    .into_iter()
                    .filter(|r| r.offset >= position)
                    .map(|r| ConsumerRecord {
                        topic: topic.clone(),
                        partition,
                        offset: r.offset,
                        timestamp_ms: r.timestamp_ms,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    })
                    .collect();
                position = position.max(msg.next_offset);
                if !records.is_empty() && !tx.send(EventKind::Records(records)).await {
                    return Ok(true);
                }
            }
            Ok::<bool, Error>(config.stop_at_end)
        }
        .await;
        match result {
            Ok(true) => {
                tx.send(EventKind::Done).await;
                return;
            }
            Ok(false) => {}
            Err(e)
                if e.kind.is_retriable()
                    || e.kind == ErrorKind::Internal && e.reason == "GRPC_ERROR" =>
            {
                tracing::debug!(topic, partition, error = %e, "fetch interrupted; reconnecting");
                client.invalidate(&topic);
            }
            Err(e) => {
                tx.send(EventKind::Failed(e)).await;
                return;
            }
        }
        tokio::time::sleep(config.retry_backoff).await;
    }
}
