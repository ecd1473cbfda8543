//! `PartitionLog`: one partition's log: open, append, read, lookups, offsets watch, close.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use tokio::sync::watch;

use super::epoch::{EpochCache, EpochEntry};
use super::index::SegmentIndex;
use super::recovery::recover;
use super::segment::{
    ActiveSegment, LOG_SUFFIX, NO_TIMESTAMP, SealedSegment, load_sealed_index, segment_path,
};
use super::{LogConfig, LogError, LogOffsets, LogResources, RecoveryStats};
use shale_core::clock::SharedClock;

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
    /// The volume's journal and this log's stream in it, when the volume has one: appends
    /// are then durable once their round of the journal is.
    pub journal: Option<super::stream::Journaled>,
    /// Appends not yet written to the active segment (with a journal; see `buffer`).
    pub buffer: Mutex<super::buffer::SegmentBuffer>,
    /// Set while an interval flush is due (`FlushPolicy::Interval`; at most one per log).
    pub flush_due: AtomicBool,
    /// Held shared by whatever reads sealed segment files outside the partition lock (or
    /// removes them), and exclusively by a clean's swap, which renames new files over
    /// theirs: no reader pairs a file with an index of the other generation, and no cache
    /// keeps one (`swap`).
    pub fence: std::sync::RwLock<()>,
    /// Held by a clean for its whole run (`clean::pass`): [`PartitionLog::close`] takes it
    /// to return only once no clean of the log writes into its directory any more.
    pub cleaning: Mutex<()>,
    /// Set by [`PartitionLog::close`]: a clean under way gives up at its next step.
    pub closing: AtomicBool,
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
    /// The log start DeleteRecords set (`start.rs`; 0 when never set).
    pub start_floor: i64,
    /// Bytes were written to the active segment since its last fsync (with a journal,
    /// acknowledgements do not fsync it: a close must).
    pub unsynced: bool,
    /// Where compaction left gaps and how far it cleaned (`marks`).
    pub marks: super::marks::Marks,
}

/// Why and where a log stopped: what [`LogError::Failed`] reports on every later call.
#[derive(Debug, Clone)]
pub(super) struct FailStop {
    pub path: PathBuf,
    pub reason: String,
    pub durable: i64,
}

impl State {
    /// Base offset of the oldest segment: where the local bytes begin.
    pub(super) fn base_offset(&self) -> i64 {
        self.sealed.first_key_value().map_or(self.active.base, |(base, _)| *base)
    }

    /// First offset served: the oldest segment's base, or the floor DeleteRecords set when
    /// that is higher (bounded by the log end: a follower cut below its floor serves
    /// nothing until it has copied past it again).
    pub(super) fn log_start(&self) -> i64 {
        self.base_offset().max(self.start_floor.min(self.log_end()))
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

    /// The partition lock if it is free now, `None` if it is held (an append writing a
    /// full buffer or rolling holds it across file I/O): for a caller on a runtime's
    /// worker, which must not wait for the disk.
    pub(super) fn try_lock(&self) -> Result<Option<MutexGuard<'_, State>>, LogError> {
        match self.state.try_lock() {
            Ok(st) => Ok(Some(st)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Poisoned(_)) => Err(LogError::Closed),
        }
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
        let start_floor = st.start_floor;
        let offsets = LogOffsets { log_start: st.log_start(), log_end, durable_end, start_floor };
        // Receivers exist only while a follower's fetch waits for news: with none, the
        // offsets are stored without a wake-up (the watch's eight notifiers, locked one by
        // one, per append and per journal round). A receiver made later reads them first.
        self.offsets.send_if_modified(|now| {
            *now = offsets;
            self.offsets.receiver_count() > 0
        });
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
        self.settle_buffer(st)?;
        self.journal_caught_up(st)?;
        let r = self.volume_ok().and_then(|()| st.active.sync(&self.resources));
        if r.is_ok() {
            st.unsynced = false;
        }
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
        if self.volume.journal.as_ref().is_some_and(|j| j.failure().is_some()) {
            // The journal said why, once, for every log on the volume.
            tracing::debug!(dir = %self.dir.display(), durable_offset = durable, error = %e,
                "the partition log stops with its journal");
        } else {
            tracing::error!(dir = %self.dir.display(), durable_offset = durable, error = %e,
                "fsync failed; the partition log stops taking writes until it is reopened");
        }
        st.failed = Some(FailStop { path: self.dir.clone(), reason: e.to_string(), durable });
        self.publish(st);
        st.check_open()
    }

    /// The fence, shared: sealed segment files do not change while it is held.
    pub(super) fn fence_in(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.fence.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fence, shared, if no clean's swap holds it now (see [`try_lock`](Self::try_lock)).
    pub(super) fn try_fence_in(&self) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        match self.fence.try_read() {
            Ok(fence) => Some(fence),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(fence)) => Some(fence.into_inner()),
        }
    }

    /// The fence, exclusive: for a clean's swap.
    pub(super) fn fence_out(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.fence.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lowers the log's compaction marks to `offset`, durably, before a cut there: no gap
    /// is taken for compaction's in what is appended after it.
    pub(super) fn lower_marks(&self, st: &mut State, offset: i64) -> Result<(), LogError> {
        let mut marks = st.marks.clone();
        if marks.cut(offset) {
            marks.store(self.disk(), &self.dir)?;
            st.marks = marks;
        }
        Ok(())
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
        Self::open_on(dir.into(), config, clock, resources, true)
    }

    /// Opens the log in `dir`, on the broker's volume of its data directory (`shared`), or
    /// on a volume of its own, without a journal (a log being replayed from one).
    pub(super) fn open_on(
        dir: PathBuf,
        config: LogConfig,
        clock: SharedClock,
        resources: Arc<LogResources>,
        shared: bool,
    ) -> Result<Self, LogError> {
        let marks = super::marks::Marks::load(resources.disk(), &dir)?;
        let recovered = recover(&dir, &config, clock.now_ms(), &resources, marks.gaps_below)?;
        let start_floor = super::checkpoint::load_start(resources.disk(), &dir)?;
        // Before any append here (recovery fsyncs what it writes itself), so that the
        // volume's handle sees every writeback error of the appends.
        let volume = match shared {
            true => resources.rounds().volume(resources.disk(), &dir),
            false => super::rounds::Volume::alone(&dir),
        };
        // A directory that was created empty now gets a stream of its own.
        let fresh = recovered.stored_point.is_none();
        let journal = super::stream::Journaled::bind(&volume, &dir, fresh)?;
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
            start_floor,
            unsynced: false,
            marks,
        };
        let offsets = LogOffsets {
            log_start: state.log_start(),
            log_end: state.log_end(),
            durable_end: state.log_end(),
            start_floor,
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
                buffer: Mutex::new(super::buffer::SegmentBuffer::new(super::buffer::buffer_bytes(
                    journal.as_ref().map_or(0, |j| j.journal.capacity()),
                ))),
                journal,
                flush_due: AtomicBool::new(false),
                fence: std::sync::RwLock::new(()),
                cleaning: Mutex::new(()),
                closing: AtomicBool::new(false),
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

    /// How far the log's segment files lag behind the journal's checkpoints: the journal
    /// bytes from the oldest frame it still keeps for this log (acknowledged bytes not yet
    /// durable in the segment files) to its end; 0 without a journal or when the segment
    /// files hold everything. It stays under about a quarter of the journal plus a
    /// checkpoint's bytes, for a log whose segment file fails writes too (checkpoints copy
    /// its buffered bytes forward).
    pub fn journal_checkpoint_lag(&self) -> u64 {
        self.inner.checkpoint_lag()
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
        // A clean under way gives up at its next step and removes what it wrote; until it
        // has, its files come and go in the directory, which a new owner of the directory
        // (the broker started after this one, in the same process) must not see.
        inner.closing.store(true, Ordering::Release);
        drop(inner.cleaning.lock().unwrap_or_else(PoisonError::into_inner));
        let mut st = inner.lock()?;
        if st.closed && st.failed.is_none() {
            return Ok(());
        }
        // A failed log writes no recovery point: it would vouch for bytes the disk may lack.
        // What is durable already needs no fsync; a broker with many idle partitions closes
        // them without one each.
        st.check_open()?;
        if inner.durable.load(Ordering::Acquire) < st.log_end() || st.unsynced {
            inner.sync_segment(&mut st)?;
            inner.syncs.fetch_add(1, Ordering::Relaxed);
        }
        // A recovery point past the segment's start vouches for its index files too: they
        // are written with it, even without offset entries, lest files of an older layout
        // (left by a cut a crash interrupted) pass for this one's.
        let point = st.active.end_point();
        if st.stored_point != Some(point) {
            if st.active.size > 0 {
                st.active.write_index(inner.disk(), &inner.dir)?;
            }
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
        inner.discard_buffer();
        // Its frames in the journal are never to be replayed into a directory of this name.
        inner.retire_stream()?;
        for base in st.sealed.keys().copied().chain([st.active.base]) {
            inner.resources.evict(&segment_path(&inner.dir, base, LOG_SUFFIX));
        }
        inner.disk().remove_dir_all(&inner.dir).map_err(|e| LogError::io(&inner.dir, e))?;
        tracing::info!(dir = %inner.dir.display(), "deleted partition log");
        Ok(())
    }
}
