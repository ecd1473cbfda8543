//! What the schema registry needs of its broker (`registry::RegistryHost`): its log,
//! `_schemas`/0, created on first use; reads of this broker's replica of it; the
//! leadership that makes this broker the writer; appends at an expected offset; the ID
//! watermark in the metadata store. And the registry's place in the broker: made at
//! start, following the log for as long as the broker runs. A broker that holds no
//! replica of the log follows it from its leader, as a consumer reads, so every broker
//! has a copy to answer reads and to validate produced records against.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;

use super::Broker;
use super::OffsetSpec;
use super::topics::NewTopic;
use crate::registry::{
    IdWatermark, LogCopy, LogRead, Registry, RegistryHost, TOPIC, WriterPosition,
};
use shale_core::error::{Error, ErrorKind};
use shale_core::record::{
    BatchBuilder, Compression, DecodedRecord, Limits, Record, decode_batches,
};
use shale_proto::pb;

/// How long a new log's partition may take to get a leader here.
const LOG_READY: Duration = Duration::from_secs(10);
/// How long the writer waits for its log to be wholly committed.
const COMMITTED: Duration = Duration::from_secs(10);
/// How often a broker without a replica of the log looks again.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The most a follower reads at once.
const READ_BYTES: usize = 1 << 20;
/// How long a read from the log's leader waits for new records.
const REMOTE_WAIT: Duration = Duration::from_millis(500);
/// How long a broker without a replica waits before it reads from the leader again, after
/// a read that found nothing new (that read already waited `REMOTE_WAIT`).
const REMOTE_PAUSE: Duration = Duration::from_millis(20);

/// The broker as its registry sees it (weakly: the broker owns the registry).
struct Host {
    broker: Weak<Broker>,
    ids: IdWatermark,
    /// The log's high watermark at its leader, as the last read from it said (-1 before
    /// the first).
    remote_end: AtomicI64,
}

impl Host {
    fn broker(&self) -> Result<Arc<Broker>, Error> {
        self.broker.upgrade().ok_or_else(|| Error::unavailable("broker is shutting down; retry"))
    }
}

#[async_trait::async_trait]
impl RegistryHost for Host {
    fn is_gone(&self) -> bool {
        self.broker.upgrade().is_none_or(|b| b.is_closing())
    }

    fn copy(&self) -> LogCopy {
        let Some(b) = self.broker.upgrade() else { return LogCopy::Elsewhere };
        match (b.has_topic(TOPIC), b.hosted_partition(TOPIC, 0).is_some()) {
            (false, _) => LogCopy::NoLog,
            (true, true) => LogCopy::Here,
            (true, false) => LogCopy::Elsewhere,
        }
    }

    fn log_end(&self) -> i64 {
        let Some(b) = self.broker.upgrade() else { return -1 };
        match b.hosted_partition(TOPIC, 0) {
            Some(p) => p.log().log_end_offset(),
            None => self.remote_end.load(Ordering::Acquire),
        }
    }

    async fn ensure_log(&self) -> Result<(), Error> {
        let b = self.broker()?;
        if !b.has_topic(TOPIC) {
            let live = b.live_brokers().len().max(1);
            let new = NewTopic {
                name: TOPIC.to_string(),
                partitions: 1,
                replication_factor: live.min(3) as u32,
                configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
                validate_only: false,
            };
            match b.create_topic(new).await {
                Ok(_) => tracing::info!(topic = TOPIC, "created the schema registry's log"),
                Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        // A new log: wait (bounded) until its partition has a leader this broker knows.
        let clock = b.clock.clone();
        let deadline = clock.now_ms() + LOG_READY.as_millis() as i64;
        loop {
            match b.partition(TOPIC, 0) {
                Ok(_) => return Ok(()),
                // Led elsewhere: the writer's position says so, naming the leader.
                Err(e) if e.kind == ErrorKind::NotLeader => return Ok(()),
                Err(e) if clock.now_ms() >= deadline => return Err(e),
                Err(_) => shale_core::clock::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn read(&self, from: i64) -> Result<Option<LogRead>, Error> {
        let b = self.broker()?;
        if !b.has_topic(TOPIC) {
            return Ok(None);
        }
        let Some(p) = b.hosted_partition(TOPIC, 0) else { return self.read_remote(&b, from).await };
        let chunk = p.read(from, READ_BYTES).await?;
        let max = p.config().max_message_bytes as usize;
        let records = decode(&chunk.bytes, from, max)?;
        Ok(Some(LogRead { records, next_offset: chunk.next_offset }))
    }

    async fn leader_end(&self) -> Result<i64, Error> {
        let b = self.broker()?;
        Ok(b.list_offsets_anywhere(TOPIC, 0, OffsetSpec::Latest).await?.high_watermark)
    }

    async fn wait_for_more(&self, from: i64) {
        let Ok(b) = self.broker() else { return };
        let Some(p) = b.hosted_partition(TOPIC, 0) else {
            let pause = if b.has_topic(TOPIC) { REMOTE_PAUSE } else { IDLE_POLL };
            shale_core::clock::sleep(pause).await;
            return;
        };
        let mut hw = p.subscribe_hw();
        let more = hw.wait_for(|hw| *hw > from);
        // Bounded: the partition may move away or be replaced meanwhile.
        let _ = tokio::time::timeout(IDLE_POLL, more).await;
    }

    async fn writer_position(&self) -> Result<WriterPosition, Error> {
        let b = self.broker()?;
        let p = b.partition(TOPIC, 0)?;
        let epoch = p.leader_epoch();
        let mut hw = p.settled_high_watermark(COMMITTED).await?;
        let clock = b.clock.clone();
        let deadline = clock.now_ms() + COMMITTED.as_millis() as i64;
        loop {
            let end = p.log().log_end_offset();
            if hw >= end {
                return Ok(WriterPosition { epoch, end });
            }
            if clock.now_ms() >= deadline {
                return Err(Error::unavailable(format!(
                    "{TOPIC}-0 is not wholly committed (high watermark {hw}, log end {end}); retry"
                )));
            }
            let mut watch = p.subscribe_hw();
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.wait_for(|h| *h >= end))
                .await;
            hw = p.high_watermark();
        }
    }

    async fn append_at(
        &self,
        at: WriterPosition,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<i64, Error> {
        let b = self.broker()?;
        let now = b.clock.now_ms();
        let mut builder = BatchBuilder::new(Compression::None);
        for (key, value) in records {
            builder.push(Record {
                key: Some(Bytes::from(key)),
                value: value.map(Bytes::from),
                headers: Vec::new(),
                timestamp_ms: now,
            });
        }
        let pending = b.append_at((TOPIC, 0), builder.build(), at.end, at.epoch).await?;
        Ok(pending.await?.last_offset)
    }

    fn ids(&self) -> &IdWatermark {
        &self.ids
    }
}

impl Host {
    /// Committed records from `from`, read from the log's leader (a consumer's fetch,
    /// waiting up to `REMOTE_WAIT` for records to come); `None` when no leader is known.
    async fn read_remote(&self, b: &Broker, from: i64) -> Result<Option<LogRead>, Error> {
        let address = match b.partition(TOPIC, 0) {
            Ok(_) => return Ok(None), // Led here a moment ago: read locally next time.
            Err(e) if e.kind == ErrorKind::NotLeader => {
                e.details.get("leader_address").cloned().unwrap_or_default()
            }
            Err(e) => return Err(e),
        };
        if address.is_empty() {
            return Ok(None);
        }
        let mut client = pb::log_client::LogClient::new(b.peer(&address)?);
        let request = pb::FetchRequest {
            topic: TOPIC.to_string(),
            partition: 0,
            offset: from,
            max_bytes: READ_BYTES as u32,
            max_wait_ms: REMOTE_WAIT.as_millis() as u32,
            ..Default::default()
        };
        let status = |s: tonic::Status| shale_proto::status::from_status(&s);
        let mut stream = client.fetch(request).await.map_err(status)?.into_inner();
        let Some(message) = stream.message().await.map_err(status)? else { return Ok(None) };
        self.remote_end.fetch_max(message.high_watermark, Ordering::AcqRel);
        let records = decode(&message.batches, from, READ_BYTES)?;
        let next_offset = message.next_offset.max(from);
        Ok(Some(LogRead { records, next_offset }))
    }
}

/// The records at or after `from` in `batches` read from the log (whole batches: the
/// first may begin before `from`).
fn decode(
    batches: &Bytes,
    from: i64,
    max_message_bytes: usize,
) -> Result<Vec<DecodedRecord>, Error> {
    let limits = Limits { max_batch_bytes: READ_BYTES.max(max_message_bytes), ..Limits::default() };
    let mut records = decode_batches(batches, &limits).map_err(|e| {
        Error::internal(format!("the schema registry's log at offset {from} cannot be read: {e}"))
    })?;
    records.retain(|r| r.offset >= from);
    Ok(records)
}

/// Makes the broker's registry and starts following its log.
pub(super) fn install(broker: &Arc<Broker>, ids: IdWatermark) {
    let host = Host { broker: Arc::downgrade(broker), ids, remote_end: AtomicI64::new(-1) };
    let registry = Arc::new(Registry::new(Box::new(host)));
    let _ = broker.registry.set(registry.clone());
    broker.spawn(registry.follow());
}

impl Broker {
    /// The registry listener of the broker that leads `_schemas`/0 (the registry's
    /// writer), when that is another broker and it has one.
    pub fn registry_writer_address(&self) -> Option<String> {
        let cache = self.view.cache.read().ok()?;
        let (state, _) = cache.states.get(&(TOPIC.to_string(), 0))?;
        if state.leader == self.id {
            return None;
        }
        let writer = cache.brokers.get(&state.leader)?;
        (!writer.registry_address.is_empty()).then(|| writer.registry_address.clone())
    }

    /// The schema registry this broker serves.
    pub fn registry(&self) -> Result<&Arc<Registry>, Error> {
        self.registry
            .get()
            .ok_or_else(|| Error::unavailable("the schema registry is not started yet"))
    }
}
