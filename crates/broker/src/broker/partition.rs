//! One partition replica on this broker: its log, its leader epoch, its topic config, and
//! the produce/read operations with their durability rules.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::idempotence::{ProducerStates, Verdict};
use super::remote::RemoteLog;
use super::replication::Replication;
use shale_core::acks::Acks;
use shale_core::disk::Disk;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::{Limits, decode_batches, validate_batches};
use shale_core::topic_config::{FlushPolicyKind, TopicConfig};
use shale_meta::topics::PartitionState;
use shale_storage::log::{AppendInfo, FlushPolicy, LogConfig, LogOffsets, PartitionLog, ReadChunk};
use shale_storage::tier::PartitionRef;
use shale_storage::tier::reader::RemoteReader;

mod snapshots;
mod tier;

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Leader epoch the batches were stamped with.
    pub leader_epoch: i32,
}

/// How long an `acks=all` produce waits for the in-sync replicas.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A replica's own contribution to the high watermark: durable data under
/// `flush.policy=always`, everything appended under `interval`.
fn visible_end(policy: FlushPolicyKind, offsets: &LogOffsets) -> i64 {
    match policy {
        FlushPolicyKind::Always => offsets.durable_end,
        FlushPolicyKind::Interval => offsets.log_end,
    }
}

fn pack(leader: i32, epoch: i32) -> u64 {
    (u64::from(epoch as u32) << 32) | u64::from(leader as u32)
}

fn unpack(v: u64) -> (i32, i32) {
    (v as u32 as i32, (v >> 32) as u32 as i32)
}

/// Resolves when a produce is acknowledged per its `acks`.
pub type PendingAck = futures::future::BoxFuture<'static, Result<Produced, Error>>;

/// File that ties a partition directory to a topic id, so a directory left from a deleted
/// topic of the same name is never mistaken for the new topic's data.
pub(crate) const METADATA_FILE: &str = "partition.metadata";

/// Maps the topic configs onto what the log layer needs.
///
/// A tiered topic keeps `local.retention.*` on local disk (`-2`: the same as `retention.*`);
/// `retention.*` then applies to the remote log.
pub fn log_config(config: &TopicConfig) -> LogConfig {
    let local = |local: i64, total: i64| if local == -2 { total } else { local };
    let (retention_ms, retention_bytes) = if config.remote_storage_enable {
        (
            local(config.local_retention_ms, config.retention_ms),
            local(config.local_retention_bytes, config.retention_bytes),
        )
    } else {
        (config.retention_ms, config.retention_bytes)
    };
    LogConfig {
        segment_bytes: config.segment_bytes,
        segment_ms: config.segment_ms,
        retention_ms,
        retention_bytes,
        flush: match config.flush_policy {
            FlushPolicyKind::Always => FlushPolicy::Always,
            FlushPolicyKind::Interval => FlushPolicy::Interval(config.flush_interval()),
        },
        max_message_bytes: config.max_message_bytes as usize,
        ..LogConfig::default()
    }
}

/// What identifies a hosted partition and how it starts.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Topic name.
    pub topic: String,
    /// Topic id (guards against directories of a deleted incarnation).
    pub topic_id: String,
    /// Partition index.
    pub index: u32,
    /// This broker's id.
    pub broker_id: i32,
    /// The partition state it opens with.
    pub state: PartitionState,
    /// Topic config in force.
    pub config: Arc<TopicConfig>,
    /// Reads of the remote log, when the broker has an object store.
    pub remote: Option<RemoteReader>,
}

/// One partition replica hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    topic: String,
    topic_id: String,
    index: u32,
    dir: PathBuf,
    log: Arc<PartitionLog>,
    broker_id: i32,
    /// Leader id and leader epoch, packed so that they are always read and written together.
    leadership: AtomicU64,
    config: RwLock<Arc<TopicConfig>>,
    repl: Arc<Replication>,
    producers: ProducerStates,
    /// The remote log, when the broker has an object store.
    remote: Option<RemoteLog>,
    /// Serializes every change to the log's tail with the producer state and leadership
    /// checks that go with it. Held only on blocking threads, for one whole step, so a
    /// caller that goes away mid-step cannot leave the step half done.
    append_lock: std::sync::Mutex<()>,
    /// The active segment's base when producer state was last snapshotted (or checked).
    snapshot_base: std::sync::atomic::AtomicI64,
    /// Set when the partition is closed (deleted or moved away); ends long-polls.
    closed_tx: watch::Sender<bool>,
    hw_task: std::sync::Mutex<Option<shale_core::task::OwnedTask<()>>>,
}

impl Partition {
    /// Opens (recovering if needed) the partition's log under `data_dir`.
    pub fn open(
        data_dir: &Path,
        spec: PartitionSpec,
        clock: shale_core::clock::SharedClock,
        resources: Arc<shale_storage::log::LogResources>,
    ) -> Result<Partition, Error> {
        let dir = data_dir.join(format!("{}-{}", spec.topic, spec.index));
        claim_dir(resources.disk(), &dir, &spec.topic, &spec.topic_id, spec.index)?;
        let log = PartitionLog::open(&dir, log_config(&spec.config), clock.clone(), resources)?;
        // The high watermark is learnt again after a restart: from the leader's own end
        // and its followers' fetches; until then consumers wait rather than read ahead.
        let repl = Arc::new(Replication::new(spec.broker_id, log.log_start_offset(), clock));
        let remote = spec.remote.map(|reader| {
            let pref = PartitionRef {
                topic: spec.topic.clone(),
                topic_id: spec.topic_id.clone(),
                partition: spec.index,
            };
            RemoteLog::new(reader, pref)
        });
        let p = Partition {
            topic: spec.topic,
            topic_id: spec.topic_id,
            index: spec.index,
            dir,
            log: Arc::new(log),
            broker_id: spec.broker_id,
            leadership: AtomicU64::new(pack(-1, spec.state.leader_epoch)),
            config: RwLock::new(spec.config),
            repl,
            producers: ProducerStates::default(),
            remote,
            append_lock: std::sync::Mutex::new(()),
            snapshot_base: std::sync::atomic::AtomicI64::new(-1),
            closed_tx: watch::channel(false).0,
            hw_task: std::sync::Mutex::new(None),
        };
        p.set_state(&spec.state);
        p.rebuild_producer_state();
        Ok(p)
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Id of the topic incarnation this partition belongs to.
    pub fn topic_id(&self) -> &str {
        &self.topic_id
    }

    /// Partition index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying log.
    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// Current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leadership().1
    }

    /// Leader id and leader epoch of the state last applied, read together.
    pub fn leadership(&self) -> (i32, i32) {
        unpack(self.leadership.load(Ordering::Acquire))
    }

    /// Whether this broker leads the partition in the state last applied.
    pub fn is_leader(&self) -> bool {
        self.leader() == self.broker_id
    }

    /// Applies a partition state read from the store. The epoch only moves forward.
    pub fn set_state(&self, state: &PartitionState) {
        let next = pack(state.leader, state.leader_epoch);
        let Ok(prev) = self.leadership.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (state.leader_epoch >= unpack(v).1).then_some(next)
        }) else {
            return;
        };
        let (was, current) = unpack(prev);
        if state.leader_epoch != current || state.leader != was {
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                leader = state.leader,
                epoch = state.leader_epoch,
                isr = ?state.isr,
                "partition leadership"
            );
        }
        self.repl.apply(state, self.log.log_end_offset());
        self.refresh_hw();
    }

    /// The current leader id from the state last applied (-1 = none).
    pub fn leader(&self) -> i32 {
        self.leadership().0
    }

    /// Replicas, ISR, follower progress and the high watermark.
    pub fn replication(&self) -> &Arc<Replication> {
        &self.repl
    }

    /// Recomputes the high watermark from the log's current offsets.
    pub fn refresh_hw(&self) {
        self.repl.set_own_end(self.visible_end(&self.log.offsets()));
    }

    /// Keeps the high watermark in step with the log (appends fsynced, truncation,
    /// retention). One small task per partition; no thread.
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut offsets = self.log.subscribe();
        let task = shale_core::task::spawn_owned(async move {
            while offsets.changed().await.is_ok() {
                let Some(p) = weak.upgrade() else { return };
                p.refresh_hw();
            }
        });
        if let Ok(mut t) = self.hw_task.lock() {
            *t = Some(task);
        }
    }

    /// Marks the partition closed: long-polls on it end, its task stops.
    pub fn mark_closed(&self) {
        self.closed_tx.send_replace(true);
        if let Ok(mut t) = self.hw_task.lock() {
            // Dropping the handle stops the task.
            t.take();
        }
    }

    /// Resolves to true once the partition is closed.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed_tx.subscribe()
    }

    /// Topic config in force.
    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Applies a changed topic config (segment size, retention, flush policy...).
    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.log.set_config(log_config(&config));
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
        self.refresh_hw();
    }

    /// The offset below which consumers may read: every in-sync replica has the data (on a
    /// single replica: durable data under `flush.policy=always`, everything appended under
    /// `interval`, the explicit opt-in to weaker durability).
    pub fn high_watermark(&self) -> i64 {
        self.repl.high_watermark()
    }

    /// Watch the high watermark.
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.repl.subscribe()
    }

    /// This replica's own contribution to the high watermark, from a snapshot of offsets.
    pub fn visible_end(&self, offsets: &LogOffsets) -> i64 {
        visible_end(self.config().flush_policy, offsets)
    }

    /// Validates and appends producer batches, then waits as `acks` asks.
    pub async fn produce(self: &Arc<Self>, batches: Bytes, acks: Acks) -> Result<Produced, Error> {
        self.append(batches, acks).await?.await
    }

    /// Validates and appends producer batches; the returned future resolves when `acks` is
    /// satisfied. Appends happen in call order, waits may overlap, so a pipelined stream
    /// keeps its order while its fsyncs are shared (group commit).
    pub async fn append(self: &Arc<Self>, batches: Bytes, acks: Acks) -> Result<PendingAck, Error> {
        let config = self.config();
        let min_isr = config.min_insync_replicas as usize;
        if acks == Acks::All && self.repl.isr().len() < min_isr {
            return Err(self.not_enough_replicas(
                min_isr,
                Reason::NotEnoughReplicas,
                "are refused",
            ));
        }
        let limits =
            Limits { max_batch_bytes: config.max_message_bytes as usize, ..Limits::default() };
        // One blocking step, run to the end even if this caller is dropped (a client that
        // disconnects): what reaches the log always reaches the producer state too.
        let p = self.clone();
        let produced = tokio::task::spawn_blocking(move || p.append_step(batches, &limits))
            .await
            .map_err(|e| Error::internal(format!("append task failed: {e}")))??;
        Ok(self.pending_ack(produced, acks, &config, min_isr))
    }

    /// Validates, checks leadership and producer state, appends and records, under the
    /// append lock.
    fn append_step(&self, batches: Bytes, limits: &Limits) -> Result<Produced, Error> {
        let headers = validate_batches(&batches, limits)?;
        let idempotent = headers.iter().any(|h| h.producer_id >= 0);
        if idempotent && headers.len() != 1 {
            return Err(Error::invalid(format!(
                "a produce request with idempotent batches must carry exactly one batch, not {}",
                headers.len()
            )));
        }
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: a follower's fetcher truncates and appends under it too,
        // so nothing is written here after this broker stopped leading at this epoch.
        let (leader, epoch) = self.leadership();
        if leader != self.broker_id {
            return Err(shale_core::error::not_leader(
                &self.topic,
                self.index,
                leader,
                epoch,
                format!(
                    "broker {} no longer leads {}-{} (leader {leader}, epoch {epoch}); the \
                     write was not appended",
                    self.broker_id, self.topic, self.index
                ),
            ));
        }
        if idempotent {
            if let Verdict::Duplicate(meta) = self.producers.check(&headers[0])? {
                tracing::debug!(
                    topic = %self.topic,
                    partition = self.index,
                    producer = headers[0].producer_id,
                    offset = meta.base_offset,
                    "duplicate batch answered with its original offsets"
                );
                return Ok(Produced {
                    base_offset: meta.base_offset,
                    last_offset: meta.last_offset,
                    log_start_offset: self.log.log_start_offset(),
                    leader_epoch: epoch,
                });
            }
        }
        let mut buf = BytesMut::from(batches);
        let info: AppendInfo = self.log.append(&mut buf, epoch)?;
        if idempotent {
            self.producers.record(&headers[0], info.base_offset);
        }
        self.snapshot_if_rolled(info.segment_base);
        Ok(Produced {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_start_offset: self.log.log_start_offset(),
            leader_epoch: epoch,
        })
    }

    /// Appends batches replicated from `leader` at `epoch` (a blocking step): only while
    /// this broker still follows that leader at that epoch, and with their producer state,
    /// so that once this broker leads it answers a client's retry of them as a duplicate.
    /// Returns false, appending nothing, when leadership has moved on.
    pub fn append_replicated(
        &self,
        leader: i32,
        epoch: i32,
        batches: &[u8],
    ) -> Result<bool, Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.leadership() != (leader, epoch) || leader == self.broker_id {
            return Ok(false);
        }
        let info = self.log.append_replicated(batches)?;
        for (header, _) in shale_core::record::BatchFrames::new(batches, usize::MAX).flatten() {
            self.producers.record(&header, header.base_offset);
        }
        self.snapshot_if_rolled(info.segment_base);
        Ok(true)
    }

    /// Empties the log and restarts it at `offset` (a blocking step): for a follower whose
    /// log ends below what the leader keeps locally, or below what is already in the
    /// bucket, so that it copies only the rest.
    pub fn reset_to(&self, offset: i64) -> Result<(), Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.log.reset_to(offset)?;
        self.producers.truncate(i64::MIN);
        self.remove_snapshots(|_| true);
        Ok(())
    }

    /// Cuts the log at `offset` (a follower diverging from its leader; a blocking step),
    /// with the producer state and high watermark that go with it. Returns the offset cut to.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let target = offset.max(self.log.log_start_offset());
        self.log.truncate_to(target)?;
        self.repl.cap(target);
        self.producers.truncate(target);
        // A snapshot past the cut would vouch for batches that are gone.
        self.remove_snapshots(|o| o > target);
        Ok(target)
    }

    /// The future that resolves once `acks` is satisfied for `produced`.
    fn pending_ack(
        &self,
        produced: Produced,
        acks: Acks,
        config: &TopicConfig,
        min_isr: usize,
    ) -> PendingAck {
        let always = config.flush_policy == FlushPolicyKind::Always;
        let log = self.log.clone();
        let upto = produced.last_offset + 1;
        match acks {
            Acks::All => {
                let repl = self.repl.clone();
                let policy = config.flush_policy;
                let after = self.not_enough_replicas(
                    min_isr,
                    Reason::NotEnoughReplicasAfterAppend,
                    "were not acknowledged",
                );
                let timed_out = Error::new(
                    ErrorKind::Unavailable,
                    Reason::RequestTimedOut,
                    format!(
                        "{}-{}: the in-sync replicas did not all confirm offset {} within {} s; \
                         the write was not acknowledged (it may still appear)",
                        self.topic,
                        self.index,
                        upto - 1,
                        REPLICATION_TIMEOUT.as_secs()
                    ),
                );
                Box::pin(async move {
                    if always {
                        log.flush_until(upto).await?;
                    }
                    // Our own part of the HW moves at once rather than via the log watch.
                    repl.set_own_end(visible_end(policy, &log.offsets()));
                    let mut hw = repl.subscribe();
                    match tokio::time::timeout(REPLICATION_TIMEOUT, hw.wait_for(|hw| *hw >= upto))
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => return Err(Error::unavailable("partition closed; retry")),
                        Err(_) => return Err(timed_out),
                    }
                    if repl.isr().len() < min_isr {
                        return Err(after);
                    }
                    Ok(produced)
                })
            }
            Acks::Leader if always => Box::pin(async move {
                log.flush_until(upto).await?;
                Ok(produced)
            }),
            Acks::None if always => {
                // Nobody waits, but the data must still become durable (and so visible).
                // Detached: it ends with the flush.
                shale_core::task::spawn_detached(async move {
                    if let Err(e) = log.flush_until(upto).await {
                        tracing::warn!(error = %e, "background flush failed");
                    }
                });
                Box::pin(std::future::ready(Ok(produced)))
            }
            _ => Box::pin(std::future::ready(Ok(produced))),
        }
    }

    /// The idempotent-producer state of this partition.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    fn not_enough_replicas(&self, min_isr: usize, reason: Reason, what: &str) -> Error {
        let isr = self.repl.isr();
        Error::new(
            ErrorKind::Unavailable,
            reason,
            format!(
                "{}-{} has {} in-sync replica(s) {isr:?}, below min.insync.replicas {min_isr}; \
                 acks=all writes {what} until replicas catch up (retry)",
                self.topic,
                self.index,
                isr.len(),
            ),
        )
        .with("min_insync_replicas", min_isr)
    }

    /// The remote log, when the broker has an object store.
    pub fn remote(&self) -> Option<&RemoteLog> {
        self.remote.as_ref()
    }

    /// Sealed local segments not yet in the bucket, as (segments, bytes); zero when the
    /// topic does not tier.
    pub fn upload_lag(&self) -> (u64, u64) {
        if !self.config().remote_storage_enable {
            return (0, 0);
        }
        let tiered = self
            .remote
            .as_ref()
            .and_then(RemoteLog::pointer)
            .filter(|p| p.segments > 0)
            .map_or(i64::MIN, |p| p.end_offset);
        self.log
            .sealed_ranges()
            .iter()
            .filter(|s| s.next_offset > tiered)
            .fold((0, 0), |(n, bytes), s| (n + 1, bytes + s.size))
    }

    /// First offset readable: the remote log start when the remote log reaches the local
    /// log, else the local log start.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.log.log_start_offset();
        match self.remote.as_ref().and_then(RemoteLog::range) {
            Some((start, end)) if end >= local => start.min(local),
            _ => local,
        }
    }

    /// Reads whole batches from `offset` below the high watermark: from the local log, or
    /// from the bucket below the local log start.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadChunk, Error> {
        let upper = self.high_watermark();
        if offset < self.log.log_start_offset() {
            if let Some(chunk) = self.read_remote(offset, max_bytes, upper).await? {
                return Ok(chunk);
            }
        }
        let log = self.log.clone();
        let local = tokio::task::spawn_blocking(move || log.read(offset, max_bytes, upper))
            .await
            .map_err(|e| Error::internal(format!("read task failed: {e}")))?
            .map_err(Error::from);
        match local {
            // Local retention moved the start past `offset` meanwhile: the bucket has it.
            Err(e) if e.kind == ErrorKind::OutOfRange && offset < self.log.log_start_offset() => {
                self.read_remote(offset, max_bytes, upper).await?.ok_or(e)
            }
            other => other,
        }
    }

    async fn read_remote(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> Result<Option<ReadChunk>, Error> {
        match &self.remote {
            Some(remote) => remote.read(offset, max_bytes, upper).await,
            None => Ok(None),
        }
    }

    /// First record with a timestamp at or after `ts`, below the high watermark, with its
    /// timestamp (Kafka's ListOffsets by time).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, Error> {
        let log = self.log.clone();
        let hw = self.high_watermark();
        let mut found = None;
        if let Some(remote) = self.remote.as_ref().filter(|r| r.range().is_some()) {
            // Older data first: the bucket holds what is below the local log start.
            found = remote
                .offset_for_timestamp(ts)
                .await?
                .filter(|(offset, _)| *offset < self.log.log_start_offset());
        }
        if found.is_none() {
            found = tokio::task::spawn_blocking(move || log.offset_for_timestamp(ts))
                .await
                .map_err(|e| Error::internal(format!("lookup task failed: {e}")))??;
        }
        let Some((base, batch_ts)) = found.filter(|(offset, _)| *offset < hw) else {
            return Ok(None);
        };
        // The log finds the batch; the record within it is found by decoding that batch.
        let chunk = self.read(base, 1).await?;
        let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
        let record = decode_batches(&chunk.bytes, &limits)?
            .into_iter()
            .find(|r| r.offset >= base && r.offset < hw && r.timestamp_ms >= ts);
        Ok(Some(record.map_or((base, batch_ts), |r| (r.offset, r.timestamp_ms))))
    }

    /// Deletes local segments past retention; for a tiered topic only those safely in the
    /// bucket, by `local.retention.*`. Never at or above the high watermark: what followers
    /// have not copied yet is not the leader's to delete (a segment there would vanish from
    /// every replica, and followers could not fetch it).
    pub async fn apply_retention(&self) -> Result<(), Error> {
        let log = self.log.clone();
        let limit = if self.config().remote_storage_enable {
            self.remote.as_ref().and_then(RemoteLog::tiered_end).unwrap_or(i64::MIN)
        } else {
            i64::MAX
        };
        let limit = limit.min(self.high_watermark());
        tokio::task::spawn_blocking(move || log.apply_retention_below(limit))
            .await
            .map_err(|e| Error::internal(format!("retention task failed: {e}")))??;
        Ok(())
    }

    /// Fsyncs everything appended (for `flush.policy=interval` and shutdown).
    pub async fn flush(&self) -> Result<(), Error> {
        let end = self.log.log_end_offset();
        Ok(self.log.flush_until(end).await?)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PartitionMetadata {
    version: u32,
    topic: String,
    topic_id: String,
    partition: u32,
}

/// Makes sure `dir` belongs to this topic id: a directory left by a deleted topic of the same
/// name (its `partition.metadata` names another topic id) is removed first. A directory whose
/// metadata cannot be read or parsed, or that holds segments without metadata, is never
/// touched: the partition fails to open with `CORRUPT_PARTITION_METADATA` naming the file,
/// because deleting it could delete acknowledged data.
fn claim_dir(
    disk: &dyn Disk,
    dir: &Path,
    topic: &str,
    topic_id: &str,
    index: u32,
) -> Result<(), Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::internal(format!("{what} {}: {e}", dir.display())).with("path", dir.display())
    };
    let meta_path = dir.join(METADATA_FILE);
    let corrupt = |why: String| {
        let e = Error::new(
            ErrorKind::Data,
            Reason::CorruptPartitionMetadata,
            format!(
                "{}: {why}; partition {topic}-{index} is not opened and its directory is left \
                 as it is: restore the file (it names topic id {topic_id}) or move the \
                 directory away",
                meta_path.display()
            ),
        )
        .with("path", meta_path.display())
        .with("topic", topic)
        .with("partition", index);
        tracing::error!(path = %meta_path.display(), topic, partition = index, reason = %why,
            "partition metadata unreadable; refusing to open or delete the partition");
        e
    };
    if disk.metadata(dir).is_ok() {
        match disk.read(&meta_path) {
            Ok(bytes) => match serde_json::from_slice::<PartitionMetadata>(&bytes) {
                Ok(m) if m.topic_id == topic_id => return Ok(()),
                Ok(m) => {
                    tracing::warn!(path = %dir.display(), found_topic_id = m.topic_id, topic_id,
                        "partition directory belongs to another topic incarnation; removing it");
                    disk.remove_dir_all(dir).map_err(|e| io("cannot remove stale", e))?;
                }
                Err(e) => return Err(corrupt(format!("not valid partition metadata ({e})"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let names = disk.read_dir(dir).map_err(|e| io("cannot list", e))?;
                if names.iter().any(|n| n.ends_with(".log")) {
                    return Err(corrupt("missing, but the directory holds log segments".into()));
                }
            }
            Err(e) => return Err(corrupt(format!("cannot be read ({e})"))),
        }
    }
    shale_core::disk::create_dir_durable(disk, dir).map_err(|e| io("cannot create", e.source))?;
    let meta = PartitionMetadata {
        version: 1,
        topic: topic.to_string(),
        topic_id: topic_id.to_string(),
        partition: index,
    };
    let bytes = serde_json::to_vec(&meta).map_err(|e| Error::internal(e.to_string()))?;
    shale_core::disk::write_atomic(disk, dir, METADATA_FILE, &bytes)
        .map_err(|e| io("cannot write partition metadata in", e.source))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shale_core::record::{BatchBuilder, Compression, Record};

    fn state(leader: i32, epoch: i32) -> PartitionState {
        PartitionState {
            replicas: vec![1, 2],
            leader,
            leader_epoch: epoch,
            isr: vec![1, 2],
            incarnations: Default::default(),
        }
    }

    fn producer_batch(seq: i32) -> Bytes {
        let mut b = BatchBuilder::new(Compression::None).with_producer(7, 0, seq);
        b.push(Record {
            key: None,
            value: Some(Bytes::from(format!("v{seq}"))),
            headers: vec![],
            timestamp_ms: 1,
        });
        b.build()
    }

    /// One batch of plain (non-idempotent) records with `values`.
    fn plain_batch(values: impl IntoIterator<Item = String>) -> Bytes {
        let mut b = BatchBuilder::new(Compression::None);
        for v in values {
            b.push(Record {
                key: None,
                value: Some(Bytes::from(v)),
                headers: vec![],
                timestamp_ms: 1,
            });
        }
        b.build()
    }

    /// Partition 0 of topic `t` on broker `broker_id`.
    fn spec(broker_id: i32, state: PartitionState, config: TopicConfig) -> PartitionSpec {
        PartitionSpec {
            topic: "t".into(),
            topic_id: "id".into(),
            index: 0,
            broker_id,
            state,
            config: Arc::new(config),
            remote: None,
        }
    }

    /// Interval flushes and `min.insync.replicas=1`, so tests need no fsyncs or followers.
    fn relaxed() -> TopicConfig {
        TopicConfig {
            flush_policy: FlushPolicyKind::Interval,
            min_insync_replicas: 1,
            ..TopicConfig::default()
        }
    }

    fn open_spec(dir: &Path, spec: PartitionSpec) -> Result<Partition, Error> {
        let resources = Arc::new(shale_storage::log::LogResources::default());
        Partition::open(dir, spec, shale_core::clock::system(), resources)
    }

    fn open(dir: &Path, broker_id: i32, state: PartitionState) -> Arc<Partition> {
        Arc::new(open_spec(dir, spec(broker_id, state, relaxed())).unwrap())
    }

    #[tokio::test]
    async fn a_replicated_batch_is_a_duplicate_once_the_follower_leads() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, state(2, 3));
        let batch = producer_batch(0);
        assert!(p.append_replicated(2, 3, &batch).unwrap());
        // Leadership moved on: a replicated append from the old epoch is refused.
        p.set_state(&state(1, 4));
        assert!(!p.append_replicated(2, 3, &producer_batch(1)).unwrap());
        assert_eq!(p.log().log_end_offset(), 1);
        // The client's retry of the replicated batch lands nowhere new.
        let again = p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
        assert_eq!((again.base_offset, again.leader_epoch), (0, 4));
        assert_eq!(p.log().log_end_offset(), 1);
        let next = p.append(producer_batch(1), Acks::Leader).await.unwrap().await.unwrap();
        assert_eq!(next.base_offset, 1);
    }

    #[tokio::test]
    async fn a_broker_that_stopped_leading_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, state(1, 1));
        p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
        p.set_state(&state(2, 2));
        let err = match p.append(producer_batch(1), Acks::Leader).await {
            Err(e) => e,
            Ok(_) => panic!("a follower appended a produce"),
        };
        assert_eq!(err.reason, "NOT_LEADER");
        assert_eq!(p.log().log_end_offset(), 1);
        // An older state never moves leadership back.
        p.set_state(&state(1, 1));
        assert_eq!(p.leadership(), (2, 2));
    }

    /// Before: producer state was rebuilt from the last 10,000 offsets only, so after a
    /// restart the retry of a batch older than that was appended a second time.
    #[tokio::test]
    async fn producer_state_survives_a_restart_however_old_the_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        let config = TopicConfig { segment_bytes: 64 * 1024, ..relaxed() };
        let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config.clone())).unwrap());
        let first = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
        for chunk in 0..12 {
            let batch = plain_batch((0..1000).map(|i| format!("other-{chunk}-{i}")));
            p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
        }
        assert!(p.log().log_end_offset() > snapshots::PRODUCER_STATE_SCAN + 1);
        assert!(p.log().segment_count() > 1);
        p.log().close().unwrap();
        drop(p);
        let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
        let again = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
        assert_eq!(again.base_offset, first.base_offset, "the retry was appended a second time");
        let next = p.append(producer_batch(1), Acks::Leader).await.unwrap().await.unwrap();
        assert_eq!(next.base_offset, p.log().log_end_offset() - 1, "the next batch follows");
    }

    /// A truncation (a follower cut back to its leader's log) removes the snapshots past
    /// the cut: once the log grows past them again with other batches, a stale one would
    /// answer a retry of a batch that is gone as a duplicate, acknowledging nothing.
    #[tokio::test]
    async fn a_truncation_removes_the_producer_snapshots_past_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let config = TopicConfig { segment_bytes: 300, ..relaxed() };
        let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config.clone())).unwrap());
        for seq in 0..10 {
            p.append(producer_batch(seq), Acks::Leader).await.unwrap().await.unwrap();
        }
        let before = p.snapshots();
        assert!(!before.is_empty(), "rolls wrote snapshots");
        p.truncate_to(3).unwrap();
        // One batch of other records (as from a new leader) takes the log past every old
        // snapshot.
        let batch = plain_batch((0..=*before.last().unwrap()).map(|i| format!("new-{i}")));
        p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
        let end = p.log().log_end_offset();
        assert!(end > *before.last().unwrap());
        p.log().close().unwrap();
        drop(p);
        let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
        let retry = p.append(producer_batch(3), Acks::Leader).await.unwrap().await.unwrap();
        assert_eq!(retry.base_offset, end, "a batch that was cut is written, not a duplicate");
    }

    /// Before: size retention deleted sealed segments the followers had not copied yet.
    #[tokio::test]
    async fn retention_never_deletes_at_or_above_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let config = TopicConfig { segment_bytes: 200, retention_bytes: 0, ..relaxed() };
        let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
        for seq in 0..20 {
            p.append(producer_batch(seq), Acks::Leader).await.unwrap().await.unwrap();
        }
        // Follower 2 is in the ISR but has fetched nothing: the high watermark stays at 0.
        assert_eq!(p.high_watermark(), 0);
        assert!(p.log().segment_count() > 3);
        p.apply_retention().await.unwrap();
        assert_eq!(p.log().log_start_offset(), 0, "nothing below the high watermark to delete");
    }

    /// Before: a `partition.metadata` that did not parse made the broker delete the whole
    /// partition directory, acknowledged segments included.
    #[tokio::test]
    async fn damaged_partition_metadata_fails_the_partition_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, state(1, 1));
        p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
        p.log().close().unwrap();
        drop(p);
        let part_dir = dir.path().join("t-0");
        let meta = part_dir.join(METADATA_FILE);
        let segments = |d: &Path| {
            std::fs::read_dir(d)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        };
        for (damage, why) in [(Some(&b"{not json"[..]), "not valid"), (None, "missing")] {
            match damage {
                Some(bytes) => std::fs::write(&meta, bytes).unwrap(),
                None => std::fs::remove_file(&meta).unwrap(),
            }
            let err = match open_spec(dir.path(), spec(1, state(1, 1), TopicConfig::default())) {
                Err(e) => e,
                Ok(_) => panic!("opened a partition whose metadata is {why}"),
            };
            assert_eq!(err.reason, "CORRUPT_PARTITION_METADATA");
            assert!(err.message.contains(&meta.display().to_string()), "{}", err.message);
            assert!(err.message.contains(why), "{}", err.message);
            assert_eq!(segments(&part_dir), 1, "the segment is still there");
        }
    }
}
