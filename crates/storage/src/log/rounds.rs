//! Fsync rounds shared by every log on a file system (`log.shared_fsync`, off by default),
//! and the few fsync loops that give logs fsyncing alone their turns (`flush_alone`).
//! A log with appends a `flush_until` caller waits for joins the queue; one loop, on a
//! blocking thread, takes everything queued as a round: fewer than `MIN_SHARED_SYNC` logs
//! of one file system get an `fdatasync` each, at once; more a single `syncfs(2)`, which
//! costs a fraction of an fsync per file (measured here: 100 files in 6 ms and 1 ms of
//! CPU, against 23 ms and 5 ms file by file).
//! A round covers what each log held when the round began; appends made meanwhile go in
//! the next round, which starts as soon as this one ends.
//!
//! Interval flushes (`flush.policy=interval`) stay one `fdatasync` per log: nobody waits
//! for them, and a `syncfs` raised everyone's median latency (measured at 1,000
//! partitions, 20,000 records/s: p50 6-10 ms with interval flushes in shared rounds, 3.4
//! ms with the same rounds doing an fdatasync per log, 1.6-2.7 ms before rounds).
//!
//! A failed `syncfs` cannot say which file failed, and the kernel reports a writeback error
//! to each open handle once. So with shared fsyncs, any failed fsync of a log marks its
//! [`Volume`] failed, and every log on it stops at its next append or fsync, as Kafka takes
//! a whole log directory offline on a disk error.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shale_core::disk::{Disk, FsHandle};

use super::LogError;
use crate::journal::Journal;

/// The fewest logs of one file system a round syncs with one `syncfs`; fewer get an
/// `fdatasync` each, at once. A `syncfs` also writes back every other dirty file there
/// (three brokers sharing this machine's disk, RF=3 at 50 MiB/s: p50 48-54 ms with it
/// for their rounds of two or three logs, 24-30 ms with fdatasyncs), and a few fdatasyncs
/// at once share the journal's commit.
const MIN_SHARED_SYNC: usize = 8;

/// The most fsync loops of logs that do not share rounds running at once (see
/// [`SyncRounds::flush_alone`]).
pub(super) const MAX_FSYNC_LOOPS: usize = 32;

/// What a round needs of a partition log (the log's own state stays in `partition`).
pub(super) trait RoundLog: Send + Sync + std::fmt::Debug {
    /// The volume the log's directory is on.
    fn volume(&self) -> &Arc<Volume>;
    /// Fsyncs the active segment up to the log end and advances the durable offset.
    fn sync_active(&self) -> Result<(), LogError>;
    /// One fsync turn of a log that fsyncs alone: whether it needs another.
    fn sync_turn(&self) -> bool;
    /// The end of a round the log was in: whether it goes in the next round too.
    fn flusher_done(&self) -> bool;
    /// The log's end and generation before an fsync that is to cover them.
    fn capture(&self) -> Option<(i64, u64)>;
    /// An fsync that began at `end` (at `generation`) succeeded.
    fn synced_to(&self, end: i64, generation: u64);
    /// An fsync covering the log failed.
    fn sync_failed(&self, e: LogError);
    /// Test hook: the delay set to force overlap with an fsync.
    #[cfg(test)]
    fn test_sync_delay(&self);
}

/// A log queued for a round.
pub(super) type Queued = Arc<dyn RoundLog>;

/// Fsyncs each log on its own, all at once (a failure stops that log; its waiters see it).
fn sync_each(logs: &[&Queued]) {
    let Some((first, rest)) = logs.split_first() else { return };
    std::thread::scope(|scope| {
        for log in rest {
            scope.spawn(|| {
                let _ = log.sync_active();
            });
        }
        let _ = first.sync_active();
    });
}

/// The file system a data directory is on, shared by the logs in that directory.
#[derive(Debug)]
pub(crate) struct Volume {
    /// The data directory (the logs' directories are in it).
    dir: PathBuf,
    /// The handle that syncs the file system, opened before any log here wrote; `None` when
    /// fsyncs are not shared (each log then fsyncs and fails on its own).
    fs: Option<FsHandle>,
    /// Why the file system failed an fsync, once it has.
    failed: Mutex<Option<String>>,
    /// Whether `failed` is set: what every append checks.
    has_failed: AtomicBool,
    /// The journal the logs here write into (`log.journal`), when there is one.
    pub(super) journal: Option<Arc<Journal>>,
}

impl Volume {
    /// A volume of its own for a log in `dir`, outside the broker's volumes: for a log
    /// being replayed from a journal, before the journal is open for writing.
    pub(super) fn alone(dir: &Path) -> Arc<Volume> {
        Arc::new(Volume::new(dir, None, None))
    }

    fn new(dir: &Path, fs: Option<FsHandle>, journal: Option<Arc<Journal>>) -> Volume {
        let (failed, has_failed) = (Mutex::new(None), AtomicBool::new(false));
        Volume { dir: dir.to_path_buf(), fs, failed, has_failed, journal }
    }

    /// Whether the logs on this volume share fsync rounds (and failures).
    pub(super) fn shared(&self) -> bool {
        self.fs.is_some()
    }

    /// The error every fsync of a log here reports once the volume failed.
    pub(super) fn failure(&self) -> Option<LogError> {
        if let Some(reason) = self.journal.as_ref().and_then(|j| j.failure()) {
            let e = std::io::Error::other(format!(
                "the journal failed ({reason}); every partition log on this volume stops until \
                 the broker restarts"
            ));
            return Some(LogError::io(&self.dir, e));
        }
        if !self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let reason = failed.as_ref()?;
        let e = std::io::Error::other(format!(
            "an fsync on this file system failed ({reason}); every partition log on it \
             stops until the broker restarts"
        ));
        Some(LogError::io(&self.dir, e))
    }

    /// Marks the volume failed (with shared fsyncs only; the first reason stays).
    pub(super) fn fail(&self, e: &LogError) {
        if self.shared() {
            let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            failed.get_or_insert_with(|| e.to_string());
            self.has_failed.store(true, Ordering::Release);
        }
    }
}

/// The queue of logs waiting for an fsync and the loop that serves it, for all the logs of
/// one [`super::LogResources`].
#[derive(Debug)]
pub(crate) struct SyncRounds {
    /// Whether logs share rounds at all (`log.shared_fsync`).
    enabled: bool,
    queue: Mutex<Vec<Queued>>,
    /// Set while the loop runs (at most one).
    running: AtomicBool,
    /// Volumes by data directory.
    volumes: Mutex<HashMap<PathBuf, Arc<Volume>>>,
    /// Logs that fsync alone (rounds not shared) waiting for a turn, and the loops
    /// serving them.
    alone: Mutex<Alone>,
    /// Rounds that synced a whole file system, and the logs they covered.
    fs_rounds: AtomicU64,
    fs_round_logs: AtomicU64,
    /// Test only: fsyncs under way (those a test slowed down), and the most at once.
    #[cfg(test)]
    syncing: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    most_syncing: std::sync::atomic::AtomicUsize,
}

impl Drop for SyncRounds {
    fn drop(&mut self) {
        // The logs are gone: stop the journals' threads.
        for j in self.journals() {
            j.close();
        }
    }
}

/// The queue of logs that fsync alone, and how many loops serve it.
#[derive(Debug, Default)]
struct Alone {
    queue: VecDeque<Queued>,
    loops: usize,
}

/// Test only: counts an fsync under way while alive.
#[cfg(test)]
pub(super) struct CountedSync<'a>(&'a SyncRounds);

#[cfg(test)]
impl Drop for CountedSync<'_> {
    fn drop(&mut self) {
        self.0.syncing.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SyncRounds {
    pub(crate) fn new(enabled: bool) -> Self {
        SyncRounds {
            enabled,
            queue: Mutex::default(),
            running: AtomicBool::new(false),
            volumes: Mutex::default(),
            alone: Mutex::default(),
            fs_rounds: AtomicU64::new(0),
            fs_round_logs: AtomicU64::new(0),
            #[cfg(test)]
            syncing: Default::default(),
            #[cfg(test)]
            most_syncing: Default::default(),
        }
    }

    /// Test only: counts an fsync as under way until the guard drops.
    #[cfg(test)]
    pub(super) fn count_sync(&self) -> CountedSync<'_> {
        let now = self.syncing.fetch_add(1, Ordering::AcqRel) + 1;
        self.most_syncing.fetch_max(now, Ordering::AcqRel);
        CountedSync(self)
    }

    /// Test only: the most fsyncs counted under way at once.
    #[cfg(test)]
    pub(super) fn most_syncing(&self) -> usize {
        self.most_syncing.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The volume of the log in `log_dir`, opened with the first log in its data directory
    /// (before any of them writes). A disk that cannot sync a whole file system gets an
    /// unshared volume, and so do logs when shared fsyncs are off.
    pub(crate) fn volume(&self, disk: &dyn Disk, log_dir: &Path) -> Arc<Volume> {
        let dir = log_dir.parent().unwrap_or(log_dir).to_path_buf();
        let mut volumes = self.volumes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = volumes.get(&dir) {
            return v.clone();
        }
        let fs = match self.enabled {
            false => None,
            true => match disk.open_fs(&dir) {
                Ok(fs) => Some(fs),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e,
                        "cannot sync this file system at once; partition logs fsync one by one");
                    None
                }
            },
        };
        let v = Arc::new(Volume::new(&dir, fs, None));
        volumes.insert(dir, v.clone());
        v
    }

    /// Makes `journal` the journal of the logs in the data directory `dir`, before any of
    /// them opens; fails if one has.
    pub(super) fn add_journal(&self, dir: &Path, journal: Arc<Journal>) -> Result<(), LogError> {
        let mut volumes = self.volumes.lock().unwrap_or_else(PoisonError::into_inner);
        if volumes.contains_key(dir) {
            let e = std::io::Error::other("a partition log opened here before the journal");
            return Err(LogError::io(dir, e));
        }
        volumes.insert(dir.to_path_buf(), Arc::new(Volume::new(dir, None, Some(journal))));
        Ok(())
    }

    /// The journals of the volumes.
    pub(super) fn journals(&self) -> Vec<Arc<Journal>> {
        let volumes = self.volumes.lock().unwrap_or_else(PoisonError::into_inner);
        volumes.values().filter_map(|v| v.journal.clone()).collect()
    }

    /// Queues `log` (whose `flushing` flag the caller set) for the next round, and starts
    /// the loop unless it runs.
    pub(super) fn submit(self: &Arc<Self>, log: Queued) {
        self.queue().push(log);
        if !self.running.swap(true, Ordering::AcqRel) {
            let rounds = self.clone();
            tokio::task::spawn_blocking(move || rounds.run());
        }
    }

    /// Queues `log` (whose `flushing` flag the caller set), which fsyncs alone, for a turn
    /// in an fsync loop, starting a loop unless [`MAX_FSYNC_LOOPS`] run.
    ///
    /// A loop per log, as before, woke a blocking-pool thread for every fsync of every log:
    /// at 1,000 busy partitions those sleeps and wake-ups were about a third of the
    /// broker's CPU samples (docs/benchmarks.md). A few loops that take the logs in turn keep busy while logs
    /// wait, and a log that needs another fsync goes to the back of the queue, so busy
    /// logs cannot keep the others waiting.
    pub(super) fn flush_alone(self: &Arc<Self>, log: Queued) {
        let mut alone = self.alone();
        alone.queue.push_back(log);
        if alone.loops >= MAX_FSYNC_LOOPS {
            return;
        }
        alone.loops += 1;
        drop(alone);
        let rounds = self.clone();
        tokio::task::spawn_blocking(move || rounds.run_alone());
    }

    /// Gives queued logs fsync turns until the queue is empty.
    fn run_alone(&self) {
        loop {
            let log = {
                let mut alone = self.alone();
                match alone.queue.pop_front() {
                    Some(log) => log,
                    None => {
                        alone.loops -= 1;
                        return;
                    }
                }
            };
            if log.sync_turn() {
                self.alone().queue.push_back(log);
            }
        }
    }

    fn alone(&self) -> MutexGuard<'_, Alone> {
        self.alone.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs rounds until the queue is empty.
    fn run(&self) {
        loop {
            let logs = std::mem::take(&mut *self.queue());
            if logs.is_empty() {
                self.running.store(false, Ordering::Release);
                // A log queued between the take and the store relies on this loop: look
                // again, and carry on unless another loop took over.
                if self.queue().is_empty() || self.running.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            self.round(&logs);
            for log in logs {
                if log.flusher_done() {
                    self.queue().push(log);
                }
            }
        }
    }

    /// One round, per volume: few logs by an fdatasync each, many by one sync of it.
    fn round(&self, logs: &[Queued]) {
        let mut by_volume: Vec<&Queued> = logs.iter().collect();
        by_volume.sort_by_key(|log| Arc::as_ptr(log.volume()));
        for group in by_volume.chunk_by(|a, b| Arc::ptr_eq(a.volume(), b.volume())) {
            match group.len() < MIN_SHARED_SYNC {
                true => sync_each(group),
                false => self.sync_volume(group),
            }
        }
    }

    /// Makes every log of `group` (all on one volume) durable up to its end at the start,
    /// by one sync of the volume's file system.
    pub(super) fn sync_volume(&self, group: &[&Queued]) {
        let volume = group[0].volume();
        let Some(fs) = &volume.fs else {
            sync_each(group);
            return;
        };
        // Each log's end and generation now: the sync covers every byte written before it.
        let captured: Vec<_> =
            group.iter().filter_map(|log| Some((*log, log.capture()?))).collect();
        #[cfg(test)]
        if let Some((log, _)) = captured.first() {
            log.test_sync_delay();
        }
        let synced = match volume.failure() {
            Some(e) => Err(e),
            None if shale_core::failpoint::active("log.fsync_eio") => {
                Err(LogError::io(&volume.dir, std::io::Error::from_raw_os_error(5)))
            }
            None => fs.sync().map_err(|e| LogError::io(&volume.dir, e)),
        };
        match synced {
            Ok(()) => {
                self.fs_rounds.fetch_add(1, Ordering::Relaxed);
                self.fs_round_logs.fetch_add(captured.len() as u64, Ordering::Relaxed);
                for (log, (end, generation)) in captured {
                    log.synced_to(end, generation);
                }
            }
            Err(e) => {
                volume.fail(&e);
                for (log, _) in captured {
                    log.sync_failed(volume.failure().unwrap_or(LogError::Closed));
                }
            }
        }
    }

    /// Rounds that synced a whole file system.
    pub(crate) fn fs_rounds(&self) -> u64 {
        self.fs_rounds.load(Ordering::Relaxed)
    }

    /// Logs those rounds covered.
    pub(crate) fn fs_round_logs(&self) -> u64 {
        self.fs_round_logs.load(Ordering::Relaxed)
    }
}
