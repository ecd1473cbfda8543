//! The journal at work: appends framed into the open round, one writer thread writing and
//! syncing rounds (group commit), one checkpointer trimming the journal behind the segment
//! files (its code in `checkpoint`; the rules for both here).
//!
//! # Rules
//! - A partition pushes its frame after writing the same bytes to its segment file, under
//!   its own lock, so its frames are in its append order, and every frame before any
//!   position the writer hands out has already reached its segment file (page cache).
//! - The writer takes the whole open round, syncs the stream table if it holds new binds,
//!   writes the round and syncs the journal, and hands the round's partitions to the
//!   notifier thread, which tells each how far its log is durable, while the writer goes
//!   on with the next round. One sync per round, however many partitions wrote into it.
//!   Neither the writer nor the checkpointer ever waits for a partition's lock, so a
//!   partition may wait for a round while holding its own (a cut does: see
//!   `log/journaled.rs`).
//! - A checkpoint reads the open round's end `p`, syncs the file system (`syncfs`: every
//!   segment write made before `p` was handed out is durable), then stores `p` as the trim
//!   point in the journal's header. Frames before `p` are never needed again.
//! - On a file system that cannot be synced at once (FUSE: its `syncfs` does not reach the
//!   storage) the journal keeps the members that wrote segment bytes since the last
//!   checkpoint (a push, or a buffer written to its file), and a checkpoint fsyncs each
//!   one's active segment instead; a roll or a cut fsyncs the segments it leaves itself.
//! - A push that would pass the trim point by a lap waits for a checkpoint (it asks for
//!   one). Checkpoints are also asked for once the synced part passes `checkpoint_bytes`
//!   (at most half the journal): small and frequent, each `syncfs` finds little to write
//!   (the logs start their segments' writeback as they go), so the journal's fsyncs never
//!   queue behind a burst.
//! - A failed write or sync of the journal, or a failed checkpoint, fails the journal: every
//!   partition waiting on it and every later push is told, and the partitions stop taking
//!   writes (fail-stop), as after a failed fsync of a segment file.

// Keyed by a member's address and consulted per push: foldhash (hashbrown's default), not SipHash.
use hashbrown::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shale_core::clock::{Instant, monotonic_now};

use shale_core::disk::FsHandle;

use super::file::JournalFile;
use super::frame::{ALIGN, HEADER_LEN, Op};
use super::round::{Refused, Round};
use super::streams::StreamTable;

mod checkpoint;
pub(crate) use checkpoint::largest_copy;
mod rounds;

/// A partition log writing into the journal, told when its frames are durable.
pub(crate) trait Member: Send + Sync + std::fmt::Debug {
    /// The frames of this member up to its log's `end` (at its truncation `generation`)
    /// are durable.
    fn synced(&self, end: i64, generation: u64);
    /// [`synced`](Self::synced) if no lock it needs is held (an append of the member may
    /// hold one while it waits for the journal, for room, which needs rounds written): on
    /// the writer's thread, right after the round's sync, with no hand-off to the
    /// notifier. False, having done nothing, when a lock is busy.
    fn try_synced(&self, end: i64, generation: u64) -> bool;
    /// The journal failed for `reason`: nothing more of this member becomes durable.
    fn failed(&self, reason: &str);
    /// Writes the member's buffered segment bytes to its segment file (a checkpoint's
    /// `syncfs` is to cover them, so no writeback is started) and unregisters it (see
    /// [`Journal::unbuffered`]), unless that fails (a full disk, a failing file): the bytes
    /// then stay buffered, and the journal keeps their frames.
    fn write_buffer(&self) -> Result<(), String>;
    /// Fsyncs the member's active segment file (a checkpoint on a file system without
    /// `syncfs`); a segment removed since has nothing left to sync.
    fn sync_segment(&self) -> Result<(), String>;
    /// Copies the member's buffered bytes (which could not be written to its segment)
    /// into the open round as new frames, and moves its registration to the first (see
    /// [`Journal::push_copy`]): the journal keeps them without holding its trim point
    /// back. Takes the bytes copied from `budget`.
    fn copy_buffer(&self, budget: &mut u64) -> Result<Copied, String>;
}

/// What [`Member::copy_buffer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copied {
    /// Nothing is buffered (any more).
    Empty,
    /// Copied; the copy ends at this position.
    To(u64),
    /// Not copied: more than the budget, no room, or a reset dropping the buffer.
    Held,
}

/// A member of the open round and how far its frames there go.
#[derive(Debug)]
struct Pending {
    member: Arc<dyn Member>,
    end: i64,
    generation: u64,
}

/// Sets [`Journal::told`] to its end when dropped: the writer stopped.
struct Stopped(Arc<Journal>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.told.send_replace(u64::MAX);
    }
}

/// Everything the journal's lock guards.
#[derive(Debug)]
struct Writer {
    open: Round,
    /// The buffer of the round last written, for the next round to take.
    spare: bytes::BytesMut,
    members: Vec<Pending>,
    /// Members' indexes in `members`, by address.
    index: HashMap<usize, usize>,
    /// Members whose segment bytes are buffered, not yet in their files, by address: the
    /// position of the first frame of those bytes (see `log::buffer`). No checkpoint trims
    /// past it.
    buffered: HashMap<usize, (Arc<dyn Member>, u64)>,
    /// Without a file-system sync: members that wrote segment bytes (a push, or a buffer
    /// written) since the last checkpoint took this set, by address.
    written: HashMap<usize, Arc<dyn Member>>,
    /// Set when a push waits for room: the next checkpoint writes every buffer below its
    /// point, so that it trims as far as it can.
    room_wanted: bool,
    /// The point the last checkpoint aimed at (the trim point may lag behind it, held by
    /// buffers): the next is due `checkpoint_bytes` past it.
    aimed: u64,
    /// The trim point in the journal's header.
    trim: u64,
    /// The end of the rounds written and synced.
    synced: u64,
    failed: Option<String>,
    closed: bool,
    checkpoint_asked: bool,
}

/// Counters of the journal's work, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Rounds written and synced.
    pub(crate) rounds: AtomicU64,
    /// Bytes of those rounds.
    pub(crate) bytes: AtomicU64,
    /// Partitions those rounds acknowledged (one per partition per round).
    pub(crate) round_members: AtomicU64,
    /// Nanoseconds spent writing and syncing rounds.
    pub(crate) sync_nanos: AtomicU64,
    /// Checkpoints that moved the trim point.
    pub(crate) checkpoints: AtomicU64,
    /// Nanoseconds spent in checkpoints.
    pub(crate) checkpoint_nanos: AtomicU64,
    /// Pushes that waited for a checkpoint to make room.
    pub(crate) room_waits: AtomicU64,
    /// Checkpoints that copied buffered bytes forward (a log's segment could not be
    /// written).
    pub(crate) copied: AtomicU64,
    /// Members a round told through the notifier: their logs were busy when it ended
    /// (the others are told on the writer's thread).
    pub(crate) handed_off: AtomicU64,
}

/// A volume's open journal.
#[derive(Debug)]
pub(crate) struct Journal {
    file: JournalFile,
    streams: StreamTable,
    /// Syncs the file system of the segment files; `None` where it cannot be synced at
    /// once: checkpoints then fsync the segments written since the last one.
    fs: Option<FsHandle>,
    capacity: u64,
    /// Bytes synced past the trim point that start a checkpoint.
    checkpoint_bytes: u64,
    generation: u32,
    state: Mutex<Writer>,
    /// Wakes the writer: frames to write, or the journal closes.
    work: Condvar,
    /// Wakes pushes waiting for room and callers waiting for a round
    /// ([`wait_synced`](Self::wait_synced)): the trim point moved, a round was synced, or
    /// the journal failed.
    progress: Condvar,
    /// Wakes the checkpointer.
    checkpoint: Condvar,
    /// Held through a checkpoint, so two never store trim points out of order: where the
    /// last one aimed (its share of the buffers to write goes by the bytes since).
    checkpointing: Mutex<u64>,
    /// Member lists the notifier is done with, for the writer's next rounds.
    spare_members: Mutex<Vec<Vec<Pending>>>,
    /// Test only: while set, the writer takes no round.
    #[cfg(test)]
    pub(crate) hold: std::sync::atomic::AtomicBool,
    /// Test only: waits in `wait_synced` that found their frames not yet synced.
    #[cfg(test)]
    pub(crate) waits: AtomicU64,
    /// When the checkpointer last said that segment buffers could not be written (it says
    /// so at most every [`ROOM_WARNING`]).
    stuck_warned: Mutex<Option<Instant>>,
    /// Whether the journal failed: what every append checks, without the lock.
    has_failed: std::sync::atomic::AtomicBool,
    /// Bytes the open round may still grow by before a push waits for room (as of the
    /// last push or checkpoint): read without the lock by [`has_room`](Self::has_room).
    free: AtomicU64,
    /// Set (under the lock) while the writer waits for frames: only then does a push wake
    /// it. While it paces its rounds (`round_interval`) nothing does.
    idle: std::sync::atomic::AtomicBool,
    /// The least time between the starts of two rounds (group commit under load: a round
    /// found waiting sooner waits out the rest, unless it holds [`ROUND_BYTES`] already).
    round_interval: Duration,
    /// The writer and the checkpointer, joined by [`close`](Journal::close).
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The end of the rounds whose members the writer has told on its own thread (those
    /// it handed to the notifier may not be told yet): one wake-up a round for a request
    /// waiting on all its appends ([`told`](Self::told)), where a wait per partition took
    /// one each. `u64::MAX` once the writer stopped (failed or closed).
    told: tokio::sync::watch::Sender<u64>,
    pub(crate) stats: Stats,
}

/// Why a push or a wait failed: the journal failed (or closed), for this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Failed(pub(crate) String);

/// Bytes in the open round that start it at once, paced or not.
const ROUND_BYTES: usize = 1 << 20;

/// How long a push waits for room before it says so in the log (and waits on).
pub(super) const ROOM_WARNING: Duration = Duration::from_secs(10);

impl Journal {
    /// Starts the journal in `file` at position `next` (where the last scan ended, with
    /// everything before it replayed and durable): stores `next` as the trim point, then
    /// starts the writer and the checkpointer.
    pub(crate) fn start(
        file: JournalFile,
        streams: StreamTable,
        fs: Option<FsHandle>,
        next: u64,
        (checkpoint_bytes, round_interval): (u64, Duration),
    ) -> Result<Arc<Journal>, Failed> {
        file.set_trim(next).map_err(|e| Failed(e.to_string()))?;
        let header = file.header();
        let (capacity, generation) = (header.capacity, header.generation);
        let journal = Arc::new(Journal {
            file,
            streams,
            fs,
            capacity,
            checkpoint_bytes: checkpoint_bytes.clamp(1, capacity / 2),
            generation,
            state: Mutex::new(Writer {
                open: Round::new(next, capacity, generation),
                spare: bytes::BytesMut::new(),
                members: Vec::new(),
                buffered: HashMap::new(),
                written: HashMap::new(),
                room_wanted: false,
                aimed: next,
                index: HashMap::new(),
                trim: next,
                synced: next,
                failed: None,
                closed: false,
                checkpoint_asked: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            checkpoint: Condvar::new(),
            checkpointing: Mutex::new(0),
            spare_members: Mutex::new(Vec::new()),
            #[cfg(test)]
            hold: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            waits: AtomicU64::new(0),
            stuck_warned: Mutex::new(None),
            has_failed: std::sync::atomic::AtomicBool::new(false),
            free: AtomicU64::new(0),
            idle: std::sync::atomic::AtomicBool::new(false),
            round_interval,
            threads: Mutex::new(Vec::new()),
            told: tokio::sync::watch::Sender::new(next),
            stats: Stats::default(),
        });
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(run)
                .map_err(|e| Failed(format!("cannot start the journal's thread {name}: {e}")))
        };
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Pending>>();
        let (j, k, n) = (journal.clone(), journal.clone(), journal.clone());
        let threads = vec![
            spawn(
                "shale-journal",
                Box::new(move || {
                    // However the writer ends (failed, closed, a panic), nobody waits on
                    // `told` for a round it will not write.
                    let writer = Stopped(j);
                    writer.0.write_rounds(tx)
                }),
            )?,
            // Ends when the writer does (it drops the sender).
            spawn(
                "shale-journal-acks",
                Box::new(move || {
                    for mut members in rx {
                        for p in members.drain(..) {
                            p.member.synced(p.end, p.generation);
                        }
                        n.give_back(members);
                    }
                }),
            )?,
            spawn("shale-checkpoint", Box::new(move || k.checkpoints()))?,
        ];
        *journal.threads.lock().unwrap_or_else(PoisonError::into_inner) = threads;
        journal.note_free(&journal.lock());
        Ok(journal)
    }

    /// Gives a round's emptied list of members back to the writer, for a round to come
    /// (no list allocated per round, none grown by the pushes).
    fn give_back(&self, members: Vec<Pending>) {
        debug_assert!(members.is_empty());
        self.spare_members.lock().unwrap_or_else(PoisonError::into_inner).push(members);
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream table.
    pub(crate) fn streams(&self) -> &StreamTable {
        &self.streams
    }

    /// The journal file's path.
    pub(crate) fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    /// The most payload bytes one frame takes (a larger append is split into frames at
    /// batch boundaries; a larger batch is refused before it is written): half of the ring
    /// less the room pushes leave for copies, so that such a frame fits in an empty journal
    /// wherever its end is, even when it skips the rest of a lap.
    pub(crate) fn max_payload(&self) -> usize {
        let half = (self.capacity - self.copy_reserve()) / 2 / ALIGN * ALIGN;
        half as usize - HEADER_LEN
    }

    /// Whether the ring is written with direct, durable writes (else through the page
    /// cache, then synced).
    pub(crate) fn is_direct(&self) -> bool {
        self.file.is_direct()
    }

    /// The journal's ring size in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes between the trim point and the end of the rounds synced.
    pub(crate) fn occupancy(&self) -> u64 {
        let w = self.lock();
        w.synced.saturating_sub(w.trim)
    }

    /// Why the journal failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        if !self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        self.lock().failed.clone()
    }

    /// Puts the frame of `op` on `stream` into the open round, waiting for room if the
    /// journal is full; `member`'s log (if one is to be told) ends at `end` (at
    /// `generation`) after it. Returns
    /// the position after the frame: it is durable once [`wait_synced`](Self::wait_synced)
    /// of it returns, and `member` is told. `buffered`: the member's segment holds the
    /// frame's bytes only in its buffer; unless it is registered as buffered already, it
    /// is, from this frame on.
    #[allow(clippy::too_many_arguments, reason = "a frame's fields and its member")]
    pub(crate) fn push(
        self: &Arc<Self>,
        op: Op,
        stream: u32,
        epoch: i32,
        base_offset: i64,
        payload: &[u8],
        member: Option<&Arc<dyn Member>>,
        end: i64,
        generation: u64,
        buffered: bool,
    ) -> Result<u64, Failed> {
        let mut w = self.lock();
        let mut waiting: Option<Instant> = None;
        let frame_at;
        loop {
            if let Some(reason) = &w.failed {
                return Err(Failed(reason.clone()));
            }
            if w.closed {
                return Err(Failed(format!("the journal {} is closed", self.path().display())));
            }
            let trim = w.trim;
            let reserve = self.copy_reserve();
            match w.open.push_op(trim, reserve, op, stream, epoch, base_offset, payload) {
                Ok(at) => {
                    frame_at = at;
                    break;
                }
                Err(Refused::TooLarge { .. }) => unreachable!("callers split appends into frames"),
                Err(Refused::Full { .. }) => {
                    let since = *waiting.get_or_insert_with(|| {
                        self.stats.room_waits.fetch_add(1, Ordering::Relaxed);
                        monotonic_now()
                    });
                    w.checkpoint_asked = true;
                    w.room_wanted = true;
                    self.checkpoint.notify_one();
                    // Frames whose wake-up a request defers (`kicks`) must be synced to be
                    // trimmed.
                    self.kick();
                    let (next, timed_out) = self
                        .progress
                        .wait_timeout(w, ROOM_WARNING)
                        .unwrap_or_else(PoisonError::into_inner);
                    w = next;
                    if timed_out.timed_out() {
                        tracing::warn!(journal = %self.path().display(),
                            waited_ms = since.elapsed().as_millis() as u64,
                            "the journal is full and no checkpoint has made room yet; \
                             appends wait");
                    }
                }
            }
        }
        if let Some(member) = member {
            let key = Arc::as_ptr(member) as *const () as usize;
            if buffered && !w.buffered.contains_key(&key) {
                w.buffered.insert(key, (member.clone(), frame_at));
            }
            if self.fs.is_none() {
                w.written.entry(key).or_insert_with(|| member.clone());
            }
            match w.index.get(&key) {
                Some(&i) => {
                    let p = &mut w.members[i];
                    (p.end, p.generation) = (end, generation);
                }
                None => {
                    let i = w.members.len();
                    w.members.push(Pending { member: member.clone(), end, generation });
                    w.index.insert(key, i);
                }
            }
        }
        let at = w.open.end();
        self.note_free(&w);
        drop(w);
        if !super::kicks::defer(self, at) {
            self.kick();
        }
        Ok(at)
    }

    /// Resolves once the writer has synced the frames before `at` and told the members of
    /// their rounds on its own thread, or stopped. A member it handed to the notifier may
    /// not be told yet: a waiter checks its own partitions after this, and waits for
    /// those as it would have.
    pub(crate) async fn told(&self, at: u64) {
        if *self.told.borrow() >= at {
            return;
        }
        // They may be pushes whose wake-up a request defers (`kicks`).
        self.kick();
        let mut told = self.told.subscribe();
        // The sender lives as long as `self`: an error cannot happen while it is borrowed.
        let _ = told.wait_for(|t| *t >= at).await;
    }

    /// Test only: whether the writer is held.
    fn held(&self) -> bool {
        #[cfg(test)]
        {
            self.hold.load(Ordering::Acquire)
        }
        #[cfg(not(test))]
        {
            false
        }
    }

    /// Test only: holds the writer (it takes no round) or lets it go on.
    #[cfg(test)]
    pub(crate) fn set_hold(&self, hold: bool) {
        self.hold.store(hold, Ordering::Release);
        let _w = self.lock();
        self.work.notify_all();
    }

    /// Test only: whether the writer waits for frames (a push would have to wake it).
    #[cfg(test)]
    pub(crate) fn writer_waits_for_frames(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// Waits until every frame before `lsn` is durable.
    pub(crate) fn wait_synced(&self, lsn: u64) -> Result<(), Failed> {
        let mut w = self.lock();
        if w.synced < lsn {
            // They may be pushes whose wake-up a request defers (`kicks`).
            self.kick();
        }
        loop {
            if let Some(reason) = &w.failed {
                return Err(Failed(reason.clone()));
            }
            if w.synced >= lsn {
                return Ok(());
            }
            #[cfg(test)]
            self.waits.fetch_add(1, Ordering::AcqRel);
            w = self.progress.wait(w).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the writer (once the open round is written) and the checkpointer, and waits
    /// for them; later pushes fail.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.checkpoint.notify_all();
        self.progress.notify_all();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }

    /// Fails the journal: every waiter and every later push is told why, and so is every
    /// member of the open round.
    fn fail(&self, reason: String) {
        tracing::error!(journal = %self.path().display(), %reason,
            "the journal failed; every partition log on its volume stops taking writes");
        let members = {
            let mut w = self.lock();
            w.failed.get_or_insert(reason.clone());
            self.has_failed.store(true, Ordering::Release);
            w.index.clear();
            std::mem::take(&mut w.members)
        };
        self.work.notify_all();
        self.progress.notify_all();
        self.checkpoint.notify_all();
        for p in members {
            p.member.failed(&reason);
        }
    }
}
