//! `PartitionLog`: one partition's log: open, append, read, lookups, offsets watch, close.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::checkpoint::sync_dir;
use super::config::MAX_SEGMENT_BYTES;
use super::epoch::{EpochCache, EpochEntry};
use super::index::SegmentIndex;
use super::recovery::recover;
use super::scan::{Frame, frame};
use super::segment::{
    ActiveSegment, IndexBuilder, LOG_SUFFIX, NO_TIMESTAMP, SealedSegment, load_sealed_index,
    segment_path,
};
use super::{AppendInfo, LogConfig, LogError, LogOffsets, LogResources, RecoveryStats};
use shale_core::clock::SharedClock;
use shale_core::record::RecordError;
use shale_core::record::batch::stamp;

/// One partition's log on local disk. Synchronous and internally locked; async callers hold
/// it in an `Arc` and run the blocking calls (`append`, `read`, ...) via `spawn_blocking`.
#[derive(Debug)]
pub struct PartitionLog {
    pub(super) inner: Arc<Inner>,
}

/// Shared state behind the handle (also owned by in-flight fsync tasks).
#[derive(Debug)]
pub(super) struct Inner {
    pub dir: PathBuf,
    pub clock: SharedClock,
    pub resources: Arc<LogResources>,
    pub state: Mutex<State>,
    /// Every offset below this is fsynced.
    pub durable: AtomicI64,
    /// Set while the log is queued for or in an fsync round, or queued for or in a turn of
    /// an fsync loop (at most one place at a time).
    pub flushing: AtomicBool,
    /// Set when an fsync was asked for while `flushing` was set: the round looks again.
    pub again: AtomicBool,
    /// The file system the log is on, with its fsync rounds and failure.
    pub volume: Arc<super::rounds::Volume>,
    /// Set while an interval flush is due (`FlushPolicy::Interval`; at most one per log).
    pub flush_due: AtomicBool,
    pub offsets: watch::Sender<LogOffsets>,
    /// The durable offset and whether the log stopped taking writes, published only when
    /// one of them changes: what `flush_until` waits on, woken by fsyncs, not by appends.
    pub synced: watch::Sender<(i64, bool)>,
    /// Called with the offsets at every publish (see [`PartitionLog::on_offsets`]).
    pub listener: std::sync::OnceLock<Listener>,
    /// Data-file fsyncs done (group commits, rolls, close).
    pub syncs: AtomicU64,
    pub recovery: RecoveryStats,
    /// Test hook: sleep this long inside each group-commit fsync, to force overlap.
    #[cfg(test)]
    pub sync_delay_ms: AtomicU64,
    /// Test hook: sleep this long between the flusher's last check and its stop, to widen
    /// the window an append can fall into.
    #[cfg(test)]
    pub flusher_stop_delay_us: AtomicU64,
}

/// What a log calls with its offsets at every change, under its lock.
pub type OffsetsListener = Box<dyn Fn(&LogOffsets) + Send + Sync>;

/// The listener of a log, if one was set.
pub(super) struct Listener(OffsetsListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// Everything guarded by the partition lock.
#[derive(Debug)]
pub(super) struct State {
    pub config: LogConfig,
    pub sealed: BTreeMap<i64, SealedSegment>,
    pub active: ActiveSegment,
    pub epochs: EpochCache,
    /// Sum of sealed segment sizes.
    pub sealed_bytes: u64,
    /// Bumped by every truncation, so an fsync that started before one does not
    /// advance the durable offset over rewritten bytes.
    pub generation: u64,
    pub closed: bool,
    /// The recovery point last stored, when it is known to be the one on disk.
    pub stored_point: Option<super::checkpoint::RecoveryPoint>,
    /// Set by a failed data fsync; the log then refuses writes and flushes (fail-stop).
    pub failed: Option<FailStop>,
}

/// Why and where a log stopped: what [`LogError::Failed`] reports on every later call.
#[derive(Debug, Clone)]
pub(super) struct FailStop {
    pub path: PathBuf,
    pub reason: String,
    pub durable: i64,
}

impl State {
    /// First offset in the log.
    pub(super) fn log_start(&self) -> i64 {
        self.sealed.first_key_value().map_or(self.active.base, |(base, _)| *base)
    }

    /// Offset the next append gets.
    pub(super) fn log_end(&self) -> i64 {
        self.active.next_offset
    }

    /// Bytes of all segments.
    pub(super) fn size_bytes(&self) -> u64 {
        self.sealed_bytes + self.active.size
    }

    /// `Closed` or `Failed` when the log takes no more writes.
    pub(super) fn check_open(&self) -> Result<(), LogError> {
        if let Some(FailStop { path, reason, durable }) = self.failed.clone() {
            return Err(LogError::Failed { path, reason, durable });
        }
        if self.closed {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// The out-of-range error for `offset` against the current range.
    pub(super) fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange { offset, log_start: self.log_start(), log_end: self.log_end() }
    }
}

impl Inner {
    /// The disk the partition's files live on.
    pub(super) fn disk(&self) -> &dyn shale_core::disk::Disk {
        self.resources.disk()
    }

    /// The partition lock; a panic while it was held makes the log unusable (`Closed`).
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, State>, LogError> {
        self.state.lock().map_err(|_| LogError::Closed)
    }

    /// The partition lock for read-only peeks, even after a panic.
    pub(super) fn peek(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the current offsets to subscribers, and to `flush_until`'s waiters when
    /// the durable offset or the log's open state changed.
    pub(super) fn publish(&self, st: &State) {
        let log_end = st.log_end();
        let durable_end = self.durable.load(Ordering::Acquire).min(log_end);
        let offsets = LogOffsets { log_start: st.log_start(), log_end, durable_end };
        self.offsets.send_replace(offsets);
        if let Some(Listener(listener)) = self.listener.get() {
            listener(&offsets);
        }
        let synced = (durable_end, st.check_open().is_err());
        self.synced.send_if_modified(|now| {
            let changed = *now != synced;
            *now = synced;
            changed
        });
    }

    /// Fsyncs the active segment's data; a failure stops the log for good (fail-stop):
    /// retrying could report success for bytes the kernel already dropped.
    pub(super) fn sync_segment(&self, st: &mut State) -> Result<(), LogError> {
        st.check_open()?;
        let r = self.volume_ok().and_then(|()| st.active.sync(&self.resources));
        self.note_sync(st, r)
    }

    /// Fails if the log's file system failed an fsync (with shared fsyncs): this log's own
    /// fsync may then succeed over bytes another handle was told were lost.
    pub(super) fn volume_ok(&self) -> Result<(), LogError> {
        self.volume.failure().map_or(Ok(()), Err)
    }

    /// Marks the log failed if `r` is a failed fsync.
    pub(super) fn note_sync(
        &self,
        st: &mut State,
        r: Result<(), LogError>,
    ) -> Result<(), LogError> {
        let Err(e) = r else { return Ok(()) };
        self.volume.fail(&e);
        let durable = self.durable.load(Ordering::Acquire);
        tracing::error!(dir = %self.dir.display(), durable_offset = durable, error = %e,
            "fsync failed; the partition log stops taking writes until it is reopened");
        st.failed = Some(FailStop { path: self.dir.clone(), reason: e.to_string(), durable });
        self.publish(st);
        st.check_open()
    }

    /// Seals the active segment (index files and data fsynced first, so the durable offset
    /// stays truthful) and starts a new one at the log end.
    pub(super) fn roll(&self, st: &mut State) -> Result<(), LogError> {
        let end = st.log_end();
        st.active.write_index(self.disk(), &self.dir)?;
        self.sync_segment(st)?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let mut next =
            ActiveSegment::open(&self.resources, &self.dir, end, 0, IndexBuilder::new())?;
        next.next_offset = end;
        sync_dir(self.disk(), &self.dir)?;
        next.end_point().store(self.disk(), &self.dir)?;
        let old = std::mem::replace(&mut st.active, next);
        st.stored_point = Some(st.active.end_point());
        st.sealed_bytes += old.size;
        st.sealed.insert(
            old.base,
            SealedSegment {
                base: old.base,
                next_offset: end,
                size: old.size,
                max_timestamp: Some(old.builder.max_timestamp),
            },
        );
        self.resources.adopt_index(&old.path, old.builder.index);
        self.durable.fetch_max(end, Ordering::AcqRel);
        tracing::debug!(path = %old.path.display(), offset = end, "rolled segment");
        Ok(())
    }

    /// Rolls if the incoming bytes or offsets would overflow the active segment or it is
    /// older than `segment_ms`; refuses an append that cannot fit in any segment.
    fn prepare_segment(
        &self,
        st: &mut State,
        bytes: u64,
        records: i64,
        now: i64,
    ) -> Result<(), LogError> {
        st.check_open()?;
        if let Err(e) = self.volume_ok() {
            return self.note_sync(st, Err(e));
        }
        let a = &st.active;
        let limit = st.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = a.size + bytes > limit || a.next_offset + records - a.base > i64::from(u32::MAX);
        let old = a.first_append_ms.is_some_and(|t| now.saturating_sub(t) >= st.config.segment_ms);
        if !a.is_empty() && (full || old) {
            self.roll(st)?;
        }
        if st.active.size + bytes > MAX_SEGMENT_BYTES {
            let size = usize::try_from(bytes).unwrap_or(usize::MAX);
            return Err(RecordError::BatchTooLarge { size, max: MAX_SEGMENT_BYTES as usize }.into());
        }
        Ok(())
    }

    /// Writes framed, stamped batches to the active segment and publishes the new end.
    fn write(
        &self,
        st: &mut State,
        buf: &[u8],
        frames: &[Frame],
        now: i64,
    ) -> Result<AppendInfo, LogError> {
        self.resources.activity().note_write();
        let interval = st.config.index_interval_bytes as u64;
        st.active.append(&self.resources, buf, frames, interval, now)?;
        let (first, last) = (frames[0].0, frames[frames.len() - 1].0);
        let info = AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_end_offset: st.log_end(),
            max_timestamp: frames.iter().map(|(h, _)| h.max_timestamp).max().unwrap_or(-1),
            log_start_offset: st.log_start(),
            batch_count: frames.len(),
            bytes: buf.len(),
            segment_base: st.active.base,
        };
        self.publish(st);
        Ok(info)
    }

    /// Under `FlushPolicy::Interval`, makes sure an fsync comes within the interval of an
    /// append: the first append not yet covered starts a timer (one per log at most), and
    /// the fsync when it fires covers every append made before it (an fdatasync of its own,
    /// not a shared round: see `rounds`). Only logs with unsynced appends cost anything,
    /// however many partitions a broker hosts. Outside a tokio runtime (synchronous tests)
    /// nothing is scheduled; `flush_all` does it by hand.
    fn schedule_interval_flush(this: &Arc<Inner>, policy: super::FlushPolicy) {
        let super::FlushPolicy::Interval(every) = policy else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if this.flush_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = this.clone();
        runtime.spawn(async move {
            shale_core::clock::sleep(every).await;
            // Appends from here on start the next timer; those before are covered below.
            inner.flush_due.store(false, Ordering::Release);
            // A few at a time across all logs: an interval fsync is not waited on.
            let permits = inner.resources.interval_syncs();
            let Ok(_permit) = permits.acquire().await else { return };
            let synced = tokio::task::spawn_blocking(move || inner.sync_active()).await;
            if let Ok(Err(e)) = synced {
                // A failed fsync stopped the log and was logged; a closed log needs none.
                tracing::debug!(error = %e, "interval flush did not complete");
            }
        });
    }

    /// A sealed segment's index from the shared cache (loaded or rebuilt on a miss).
    pub(super) fn sealed_index(
        &self,
        seg: &SealedSegment,
        interval: u64,
    ) -> Result<Arc<SegmentIndex>, LogError> {
        let path = segment_path(&self.dir, seg.base, LOG_SUFFIX);
        self.resources.index(&path, || load_sealed_index(self.disk(), &self.dir, seg, interval))
    }

    /// A sealed segment's max timestamp, from its metadata or its time index.
    pub(super) fn sealed_max_timestamp(
        &self,
        seg: &SealedSegment,
        interval: u64,
    ) -> Result<i64, LogError> {
        match seg.max_timestamp {
            Some(ts) => Ok(ts),
            None => Ok(self.sealed_index(seg, interval)?.max_timestamp().unwrap_or(NO_TIMESTAMP)),
        }
    }
}

impl PartitionLog {
    /// Creates the log in `dir` or recovers an existing one (see `recovery`).
    pub fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: SharedClock,
        resources: Arc<LogResources>,
    ) -> Result<Self, LogError> {
        let dir = dir.into();
        let recovered = recover(&dir, &config, clock.now_ms(), &resources)?;
        // Before any append here (recovery fsyncs what it writes itself), so that the
        // volume's handle sees every writeback error of the appends.
        let volume = resources.rounds().volume(resources.disk(), &dir);
        let sealed_bytes = recovered.sealed.values().map(|s| s.size).sum();
        let stored_point = recovered.stored_point;
        let state = State {
            config,
            sealed: recovered.sealed,
            active: recovered.active,
            epochs: recovered.epochs,
            sealed_bytes,
            generation: 0,
            closed: false,
            stored_point,
            failed: None,
        };
        let offsets = LogOffsets {
            log_start: state.log_start(),
            log_end: state.log_end(),
            durable_end: state.log_end(),
        };
        tracing::info!(dir = %dir.display(), log_start = offsets.log_start,
            log_end = offsets.log_end, segments = state.sealed.len() + 1,
            batches_validated = recovered.stats.batches_validated, "opened partition log");
        Ok(PartitionLog {
            inner: Arc::new(Inner {
                dir,
                clock,
                resources,
                durable: AtomicI64::new(state.log_end()),
                synced: watch::Sender::new((state.log_end(), false)),
                state: Mutex::new(state),
                flushing: AtomicBool::new(false),
                again: AtomicBool::new(false),
                volume,
                flush_due: AtomicBool::new(false),
                offsets: watch::Sender::new(offsets),
                listener: std::sync::OnceLock::new(),
                syncs: AtomicU64::new(0),
                recovery: recovered.stats,
                #[cfg(test)]
                sync_delay_ms: AtomicU64::new(0),
                #[cfg(test)]
                flusher_stop_delay_us: AtomicU64::new(0),
            }),
        })
    }

    /// Appends validated batches as the leader: stamps consecutive offsets and
    /// `leader_epoch` into `batches` in place, writes them, does not fsync.
    pub fn append(&self, batches: &mut [u8], leader_epoch: i32) -> Result<AppendInfo, LogError> {
        let inner = &*self.inner;
        let now = inner.clock.now_ms();
        let mut st = inner.lock()?;
        let (mut frames, records) = frame(batches, st.config.max_message_bytes)?;
        inner.prepare_segment(&mut st, batches.len() as u64, records, now)?;
        let base = st.log_end();
        let mut next = base;
        for (header, range) in &mut frames {
            stamp(&mut batches[range.clone()], next, leader_epoch);
            header.base_offset = next;
            header.partition_leader_epoch = leader_epoch;
            next = header.next_offset();
        }
        match st.epochs.latest() {
            Some(latest) if latest.epoch > leader_epoch => {
                tracing::warn!(dir = %inner.dir.display(), epoch = leader_epoch,
                    latest_epoch = latest.epoch, offset = base, "append with an older leader epoch");
            }
            _ => {
                if st.epochs.assign(leader_epoch, base) {
                    st.epochs.store(inner.disk(), &inner.dir)?;
                }
            }
        }
        let info = inner.write(&mut st, batches, &frames, now)?;
        Inner::schedule_interval_flush(&self.inner, st.config.flush);
        Ok(info)
    }

    /// Appends batches that already carry offsets and epochs (a follower copying its
    /// leader): the first must start at the log end and offsets must be continuous.
    pub fn append_replicated(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        let inner = &*self.inner;
        let now = inner.clock.now_ms();
        let mut st = inner.lock()?;
        // The leader accepted these batches under its limit at the time; a lower
        // `max.message.bytes` set since must not stop them from being copied.
        let (frames, records) = frame(batches, MAX_SEGMENT_BYTES as usize)?;
        let mut expected = st.log_end();
        if frames[0].0.base_offset != expected {
            return Err(st.out_of_range(frames[0].0.base_offset));
        }
        for (header, _) in &frames {
            if header.base_offset != expected {
                let got = header.base_offset;
                return Err(RecordError::Corrupt(format!(
                    "replicated batch at offset {got} does not continue at {expected}"
                ))
                .into());
            }
            expected = header.next_offset();
        }
        inner.prepare_segment(&mut st, batches.len() as u64, records, now)?;
        let mut changed = false;
        for (header, _) in &frames {
            changed |= st.epochs.assign(header.partition_leader_epoch, header.base_offset);
        }
        if changed {
            st.epochs.store(inner.disk(), &inner.dir)?;
        }
        let info = inner.write(&mut st, batches, &frames, now)?;
        Inner::schedule_interval_flush(&self.inner, st.config.flush);
        Ok(info)
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.inner.offsets.borrow().log_start
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.offsets.borrow().log_end
    }

    /// Why the log stopped taking writes after a failed fsync, if it did (fail-stop).
    pub fn failure(&self) -> Option<String> {
        self.inner.peek().failed.as_ref().map(|f| f.reason.clone())
    }

    /// Every offset below this is fsynced.
    pub fn durable_offset(&self) -> i64 {
        self.inner.offsets.borrow().durable_end
    }

    /// Current offsets, also published on [`subscribe`](Self::subscribe).
    pub fn offsets(&self) -> LogOffsets {
        *self.inner.offsets.borrow()
    }

    /// A watch of the offsets, updated after each append, flush, truncation and retention.
    pub fn subscribe(&self) -> watch::Receiver<LogOffsets> {
        self.inner.offsets.subscribe()
    }

    /// Sets what is called with the offsets after each append, flush, truncation and
    /// retention, in order, under the log's lock, on the thread that changed them: for
    /// state that must follow every change at once and cheaply (a partition's high
    /// watermark), where a watch would wake a task per append. It must be quick and must
    /// not call into this log. One listener per log; false if one was set already.
    pub fn on_offsets(&self, listener: OffsetsListener) -> bool {
        self.inner.listener.set(Listener(listener)).is_ok()
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.peek().size_bytes()
    }

    /// The disk the log's files live on.
    pub fn disk(&self) -> &dyn shale_core::disk::Disk {
        self.inner.disk()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.inner.peek().sealed.len() + 1
    }

    /// The current settings.
    pub fn config(&self) -> LogConfig {
        self.inner.peek().config.clone()
    }

    /// Replaces the settings; they apply from the next append or retention pass.
    pub fn set_config(&self, config: LogConfig) {
        self.inner.peek().config = config;
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The leader-epoch list, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.inner.peek().epochs.entries().to_vec()
    }

    /// The latest leader epoch entry: the epoch of the last batch and where it started.
    pub fn latest_epoch(&self) -> Option<EpochEntry> {
        self.inner.peek().epochs.entries().last().copied()
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch `<= epoch` and where it ends.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = self.inner.peek();
        st.epochs.end_offset_for(epoch, st.log_end())
    }

    /// Data-file fsyncs done by this log (group commits, rolls, close).
    pub fn sync_count(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// What recovery did when this log was opened.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.inner.recovery
    }

    /// Clean shutdown: fsync, write the active segment's indexes and a recovery point at
    /// the log end, so the next open re-validates nothing. Later appends fail with `Closed`.
    pub fn close(&self) -> Result<(), LogError> {
        let inner = &*self.inner;
        let mut st = inner.lock()?;
        if st.closed && st.failed.is_none() {
            return Ok(());
        }
        // A failed log writes no recovery point: it would vouch for bytes the disk may lack.
        // What is durable already needs no fsync; a broker with many idle partitions closes
        // them without one each.
        st.check_open()?;
        if inner.durable.load(Ordering::Acquire) < st.log_end() {
            inner.sync_segment(&mut st)?;
            inner.syncs.fetch_add(1, Ordering::Relaxed);
        }
        // An index without offset entries spares recovery nothing: it re-reads a segment
        // that small from its start instead.
        if st.active.builder.index.offset_entries() > 0 {
            st.active.write_index(inner.disk(), &inner.dir)?;
        }
        let point = st.active.end_point();
        if st.stored_point != Some(point) {
            point.store(inner.disk(), &inner.dir)?;
            st.stored_point = Some(point);
        }
        st.closed = true;
        inner.durable.fetch_max(st.log_end(), Ordering::AcqRel);
        inner.publish(&st);
        Ok(())
    }

    /// Closes the log without flushing and removes its directory.
    pub fn delete(self) -> Result<(), LogError> {
        let inner = &*self.inner;
        let mut st = inner.peek();
        st.closed = true;
        for base in st.sealed.keys().copied().chain([st.active.base]) {
            inner.resources.evict(&segment_path(&inner.dir, base, LOG_SUFFIX));
        }
        inner.disk().remove_dir_all(&inner.dir).map_err(|e| LogError::io(&inner.dir, e))?;
        tracing::info!(dir = %inner.dir.display(), "deleted partition log");
        Ok(())
    }
}
