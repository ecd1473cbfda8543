//! What the schema registry needs of its broker (`registry::RegistryHost`): its log,
//! `_schemas`/0, created on first use; reads of this broker's replica of it; the
//! leadership that makes this broker the writer; appends at an expected offset; the ID
//! watermark in the metadata store. And the registry's place in the broker: made at
//! start, following the log for as long as the broker runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;

use super::Broker;
use super::topics::NewTopic;
use crate::registry::{
    IdWatermark, LogCopy, LogRead, Registry, RegistryHost, TOPIC, WriterPosition,
};
use shale_core::error::{Error, ErrorKind};
use shale_core::record::{BatchBuilder, Compression, Limits, Record, decode_batches};

/// How long a new log's partition may take to get a leader here.
const LOG_READY: Duration = Duration::from_secs(10);
/// How long the writer waits for its log to be wholly committed.
const COMMITTED: Duration = Duration::from_secs(10);
/// How often a broker without a replica of the log looks again.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The most a follower reads at once.
const READ_BYTES: usize = 1 << 20;

/// The broker as its registry sees it (weakly: the broker owns the registry).
struct Host {
    broker: Weak<Broker>,
    ids: IdWatermark,
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
        let Some(p) = b.hosted_partition(TOPIC, 0) else { return Ok(None) };
        let chunk = p.read(from, READ_BYTES).await?;
        let limits = Limits {
            max_batch_bytes: READ_BYTES.max(p.config().max_message_bytes as usize),
            ..Limits::default()
        };
        let records = decode_batches(&chunk.bytes, &limits).map_err(|e| {
            Error::internal(format!(
                "the schema registry's log at offset {from} cannot be read: {e}"
            ))
        })?;
        Ok(Some(LogRead { records, next_offset: chunk.next_offset }))
    }

    async fn wait_for_more(&self, from: i64) {
        let Ok(b) = self.broker() else { return };
        let Some(p) = b.hosted_partition(TOPIC, 0) else {
            shale_core::clock::sleep(IDLE_POLL).await;
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

/// Makes the broker's registry and starts following its log.
pub(super) fn install(broker: &Arc<Broker>, ids: IdWatermark) {
    let host = Host { broker: Arc::downgrade(broker), ids };
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
