//! One partition replica on this broker: its log, its leader epoch, its topic config, its
//! replication state, and the reads. The write path is in `produce.rs`, the directory
//! claim in `dir.rs`, producer-state snapshots in `snapshots.rs`, the tier side in
//! `tier.rs`, lookups by time in `timestamps.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::producers::ProducerStates;
use super::remote::RemoteLog;
use super::replication::Replication;
use crate::metrics::ProduceStages;
use shale_core::error::{Error, ErrorKind};
use shale_core::topic_config::{FlushPolicyKind, TopicConfig};
use shale_meta::Revision;
use shale_meta::topics::PartitionState;
use shale_storage::log::{FlushPolicy, LogConfig, LogOffsets, PartitionLog, ReadChunk};
use shale_storage::tier::PartitionRef;
use shale_storage::tier::reader::RemoteReader;

mod ack;
mod compaction;
mod dir;
mod produce;
mod snapshots;
mod tier;
mod timestamps;

pub use compaction::Cleaning;
pub use produce::{PendingAck, Produced, append_all};

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

/// File that ties a partition directory to a topic id, so a directory left from a deleted
/// topic of the same name is never mistaken for the new topic's data.
pub(crate) const METADATA_FILE: &str = "partition.metadata";

/// Maps the topic configs onto what the log layer needs.
///
/// A tiered topic keeps `local.retention.*` on local disk (`-2`: the same as `retention.*`);
/// `retention.*` then applies to the remote log. A topic that only compacts
/// (`cleanup.policy=compact`) deletes nothing by age or size, but a tiered one still frees
/// local disk by `local.retention.*` (its records are in the bucket).
pub fn log_config(config: &TopicConfig) -> LogConfig {
    let local = |local: i64, total: i64| if local == -2 { total } else { local };
    let deletes = config.cleanup_policy.deletes();
    let (retention_ms, retention_bytes) = if config.remote_storage_enable {
        // `compact` alone: the remote log keeps each key's latest record, for good.
        let total = |retention: i64| if deletes { retention } else { -1 };
        (
            local(config.local_retention_ms, total(config.retention_ms)),
            local(config.local_retention_bytes, total(config.retention_bytes)),
        )
    } else if !deletes {
        // `compact` alone: the cleaner keeps each key's latest record, for good.
        (-1, -1)
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
    /// The mod revision that state was stored at.
    pub revision: Revision,
    /// Topic config in force.
    pub config: Arc<TopicConfig>,
    /// Reads of the remote log, when the broker has an object store.
    pub remote: Option<RemoteReader>,
    /// Where produce requests' stage timings go.
    pub stages: Arc<ProduceStages>,
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
    /// Shared with the log's offsets listener (see `start`).
    config: Arc<RwLock<Arc<TopicConfig>>>,
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
    /// The sequence of the last manifest whose aborted transactions were learned.
    aborted_learned: AtomicU64,
    /// Set when the partition is closed (deleted or moved away); ends long-polls.
    closed_tx: watch::Sender<bool>,
    /// This replica is being added by a reassignment (it is in the state's `adding`): its
    /// copying is throttled and counted.
    joining: std::sync::atomic::AtomicBool,
    /// Batch bytes this replica copied from its leader while joining.
    copied: AtomicU64,
    /// Produce stage timings (the broker's, shared by its partitions).
    stages: Arc<ProduceStages>,
    /// How many times the log's tail was cut (a truncation or reset as a follower), under
    /// the append lock: a produce is acknowledged only if none happened since its append.
    cuts: AtomicU64,
    /// What the log cleaner last found and did here (compacted topics).
    cleaning: std::sync::Mutex<Cleaning>,
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
        dir::claim_dir(resources.disk(), &dir, &spec.topic, &spec.topic_id, spec.index)?;
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
            config: Arc::new(RwLock::new(spec.config)),
            repl,
            producers: ProducerStates::default(),
            remote,
            append_lock: std::sync::Mutex::new(()),
            snapshot_base: std::sync::atomic::AtomicI64::new(-1),
            aborted_learned: AtomicU64::new(0),
            closed_tx: watch::channel(false).0,
            joining: std::sync::atomic::AtomicBool::new(false),
            copied: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            stages: spec.stages,
            cleaning: std::sync::Mutex::default(),
        };
        p.follow_log();
        p.set_state(&spec.state, spec.revision);
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

    /// Applies a partition state read from the store at `revision` (its key's mod
    /// revision). The epoch only moves forward, and a state older than the one applied last
    /// changes nothing (see [`Replication::apply`]).
    pub fn set_state(&self, state: &PartitionState, revision: Revision) {
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
        if !self.repl.apply(state, revision, self.log.log_end_offset()) {
            return;
        }
        self.joining.store(state.adding.contains(&self.broker_id), Ordering::Release);
        self.refresh_hw();
    }

    /// Whether this replica is being added by a reassignment.
    pub fn is_joining(&self) -> bool {
        self.joining.load(Ordering::Acquire)
    }

    /// Counts `bytes` copied from the leader while joining.
    pub fn count_copied(&self, bytes: u64) {
        self.copied.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Batch bytes copied from the leader while joining.
    pub fn copied_bytes(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
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

    /// Keeps the high watermark in step with the log (appends, fsyncs, truncation,
    /// retention): the log calls this replica's part of it at every change, in order, on
    /// the thread that made the change. A task woken by the log's watch did this before
    /// session 20: a wake-up per append, 4% of a broker's CPU at 1,000 partitions. The
    /// listener holds the replication state and the config, not the partition, so it
    /// never drops the partition (and its log) from inside the log's lock.
    fn follow_log(&self) {
        let (repl, config) = (self.repl.clone(), self.config.clone());
        self.log.on_offsets(Box::new(move |offsets| {
            let policy = match config.read() {
                Ok(c) => c.flush_policy,
                Err(p) => p.into_inner().flush_policy,
            };
            repl.set_own_end(visible_end(policy, offsets));
        }));
    }

    /// Marks the partition closed: long-polls on it end.
    pub fn mark_closed(&self) {
        self.closed_tx.send_replace(true);
    }

    /// Whether the partition is closed here (deleted, or moved away).
    pub fn is_closed(&self) -> bool {
        *self.closed_tx.borrow()
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

    /// The last stable offset: below it every transaction is decided (committed or aborted,
    /// its marker below the high watermark); `read_committed` readers read below it. The
    /// high watermark when no transaction is open.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers.last_stable_offset(self.high_watermark())
    }

    /// Whether the high watermark is the committed end of the log, as readers need it: on
    /// a leader, once its replication state has applied this leadership and the high
    /// watermark reached the start of its epoch
    /// ([`Replication::high_watermark_known_at`]).
    pub fn high_watermark_known(&self) -> bool {
        let (leader, epoch) = self.leadership();
        self.repl.high_watermark_known_at(leader == self.broker_id, epoch)
    }

    /// The high watermark once it is known, waiting up to `within` for a new leader's
    /// followers to tell it what is committed ([`Replication::high_watermark_known`]).
    pub async fn settled_high_watermark(&self, within: Duration) -> Result<i64, Error> {
        let mut watermark = self.subscribe_hw();
        let settled = async {
            loop {
                let hw = *watermark.borrow_and_update();
                if self.high_watermark_known() {
                    return hw;
                }
                if watermark.changed().await.is_err() {
                    return hw;
                }
            }
        };
        tokio::time::timeout(within, settled).await.map_err(|_| {
            Error::unavailable(format!(
                "the high watermark of {}-{} is not yet known: its new leader waits for its \
                 followers to fetch (high watermark {} after {within:?}); retry",
                self.topic,
                self.index,
                self.high_watermark()
            ))
        })
    }

    /// Watch the high watermark.
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.repl.subscribe()
    }

    /// This replica's own contribution to the high watermark, from a snapshot of offsets.
    pub fn visible_end(&self, offsets: &LogOffsets) -> i64 {
        visible_end(self.config().flush_policy, offsets)
    }

    /// The idempotent-producer state of this partition.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
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
    /// log, else the local log start; never below the log start DeleteRecords set.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.log.log_start_offset();
        let start = match self.remote.as_ref().and_then(RemoteLog::range) {
            Some((start, end)) if end >= local => start.min(local),
            _ => local,
        };
        start.max(self.log.start_floor())
    }

    /// Reads whole batches from `offset` below the high watermark: from the local log, or
    /// from the bucket below the local log start. Below the log start (in the bucket too,
    /// once DeleteRecords moved it there) is out of range.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadChunk, Error> {
        self.read_below(offset, max_bytes, self.high_watermark()).await
    }

    /// [`read`](Self::read), below `upper` (at most the high watermark: the last stable
    /// offset, for a `read_committed` reader).
    pub async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> Result<ReadChunk, Error> {
        let upper = upper.min(self.high_watermark());
        let mut offset = offset;
        loop {
            let chunk = self.read_once(offset, max_bytes, upper).await?;
            // Compacted remote segments may hold no batch up to the remote log's end: the
            // read goes on from there (locally).
            if chunk.bytes.is_empty() && chunk.next_offset > offset {
                offset = chunk.next_offset;
                continue;
            }
            return Ok(chunk);
        }
    }

    /// One read, remote or local, as [`read`](Self::read) describes.
    async fn read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> Result<ReadChunk, Error> {
        let start = self.log_start_offset();
        if offset < start {
            return Err(super::fetch::offset_out_of_range(offset, start, self.high_watermark()));
        }
        if offset < self.log.log_start_offset()
            && let Some(chunk) = self.read_remote(offset, max_bytes, upper).await?
        {
            return Ok(chunk);
        }
        // Batches still in the segment's buffer (a consumer at the tail) are copied on
        // this task; a read of the file, or one the log's locks would make wait, goes to
        // a blocking thread, as it may wait for the disk. At 100 partitions with a
        // consumer at the tail, the hop per read made most of the broker's context
        // switches (docs/benchmarks.md).
        let local = match self.log.read_if_buffered(offset, max_bytes, upper) {
            Ok(Some(chunk)) => Ok(chunk),
            Err(e) => Err(Error::from(e)),
            Ok(None) => {
                let log = self.log.clone();
                tokio::task::spawn_blocking(move || log.read(offset, max_bytes, upper))
                    .await
                    .map_err(|e| Error::internal(format!("read task failed: {e}")))?
                    .map_err(Error::from)
            }
        };
        match local {
            // Local retention moved the start past `offset` meanwhile: the bucket has it.
            Err(e) if e.kind == ErrorKind::OutOfRange && offset < self.log.log_start_offset() => {
                self.read_remote(offset, max_bytes, upper).await?.ok_or(e)
            }
            other => other,
        }
    }

    /// The aborted transactions a `read_committed` read from `from` below `upper` overlaps
    /// (see `ProducerStates::aborted_between`). A read below the local log first learns
    /// the bucket's list, once per manifest: a replica whose history starts later than the
    /// remote log has those only there. Without the list the read fails (retriable) rather
    /// than show aborted records.
    pub async fn aborted_for_read(&self, from: i64, upper: i64) -> Result<Vec<(i64, i64)>, Error> {
        if let Some(remote) = self.remote.as_ref().filter(|_| from < self.log.log_start_offset()) {
            let seq = remote.pointer().map_or(0, |p| p.seq);
            if self.aborted_learned.load(Ordering::Acquire) != seq {
                if let Some(m) = remote.manifest().await? {
                    self.producers.learn_aborted(m.aborted_txns());
                }
                self.aborted_learned.store(seq, Ordering::Release);
            }
        }
        Ok(self.producers.aborted_between(from, upper))
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

#[cfg(test)]
mod start_tests;
#[cfg(test)]
mod tests;
