//! Replay: opening a volume's journal after a restart, crash or power cut, and bringing
//! every partition's segment files up to what the journal holds, before any log of the
//! volume opens for service.
//!
//! # Rules
//! The frames from the trim point on are read back in journal order, up to the first that
//! is torn or was never written (`journal::ring`): a torn tail is dropped, never replayed.
//! Each stream's frames go to the partition directory the stream table names (frames of
//! a stream retired, or of a directory gone, are dropped). The log is opened as always —
//! recovery cuts a torn segment tail — and then, frame by frame:
//! - an append at `b`, when the log ends at `l`: below the log's first local offset, or
//!   with a later frame of the log cutting at or below `b`, it is skipped (a reset,
//!   retention or that cut removed it since; a cut's frame is durable before the cut is
//!   made, so a cut the segment files hold is always in the journal too, and may have
//!   taken the bytes before `b` with it). Else: at `l`, it is appended; below `l`, it is
//!   compared with what the log holds at `b` and skipped if equal, else the log is cut at
//!   `b` and it is appended; past `l` the log lost bytes the journal does not hold either,
//!   and the replay fails rather than leave a gap.
//!   An append below the log start DeleteRecords set is not read back (reads refuse it):
//!   it is skipped if the log holds it whole.
//! - a truncate at `t` cuts the log there if it ends past `t`; a reset to `s` empties the
//!   log to start at `s` unless it starts there already.
//!
//! Every step is one the log makes durable (cuts) or that the close at the end makes
//! durable (appends), so a crash during replay leaves a state the next replay starts from
//! again: frames already applied compare equal, and the journal is untouched until every
//! stream is replayed and closed. Only then does the writer go on, past the frames read
//! (`Journal::start` stores that point as the trim point).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::partition::PartitionLog;
use super::{LogConfig, LogError, LogResources};
use crate::journal::{Found, Op, Recovered};
use shale_core::clock::{Instant, SharedClock, monotonic_now};
use shale_core::record::batch::BatchHeader;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Frames read back from the journal.
    pub frames: u64,
    /// Bytes of those frames' batches.
    pub bytes: u64,
    /// Partition logs the frames went to.
    pub logs: u64,
    /// Frames whose batches the logs lacked (or held differently), appended.
    pub appended: u64,
    /// Cuts applied (truncations, resets, and cuts before an append that differed).
    pub cuts: u64,
    /// Frames of streams with no directory (retired, or deleted since).
    pub orphaned: u64,
    /// Milliseconds the replay took, the journal's scan included.
    pub millis: u64,
}

/// Replays `recovered`'s frames into the partition directories of `data_dir`.
pub(crate) fn replay(
    resources: &Arc<LogResources>,
    data_dir: &Path,
    recovered: &Recovered,
    clock: &SharedClock,
    started: Instant,
) -> Result<ReplayStats, LogError> {
    let mut stats = ReplayStats::default();
    let mut by_stream: BTreeMap<u32, Vec<&Found>> = BTreeMap::new();
    for f in &recovered.frames {
        stats.frames += 1;
        stats.bytes += f.payload.len() as u64;
        by_stream.entry(f.stream).or_default().push(f);
    }
    for (stream, frames) in by_stream {
        let dir = recovered.names.get(&stream).map(|name| data_dir.join(name));
        let Some(dir) = dir.filter(|d| resources.disk().metadata(d).is_ok()) else {
            stats.orphaned += frames.len() as u64;
            continue;
        };
        let log = PartitionLog::open_on(
            dir.clone(),
            LogConfig::default(),
            clock.clone(),
            resources.clone(),
            false,
        )?;
        // For each frame, what the log's later frames do (see `apply`).
        let mut later = vec![Later { cut: i64::MAX, append: i64::MAX }; frames.len()];
        for i in (0..frames.len().saturating_sub(1)).rev() {
            let next = frames[i + 1];
            let (cut, append) = match next.op {
                Op::Append => (i64::MAX, next.base_offset),
                Op::Truncate => (next.base_offset, i64::MAX),
                Op::Reset => (i64::MIN, i64::MAX),
            };
            later[i] =
                Later { cut: later[i + 1].cut.min(cut), append: later[i + 1].append.min(append) };
        }
        for (f, later) in frames.into_iter().zip(later) {
            apply(&log, f, later, &mut stats)?;
        }
        log.close()?;
        stats.logs += 1;
    }
    stats.millis = started.elapsed().as_millis() as u64;
    Ok(stats)
}

/// What the frames of a log after one of its frames do.
#[derive(Debug, Clone, Copy)]
struct Later {
    /// The lowest offset a later frame cuts at (`i64::MAX`: none does).
    cut: i64,
    /// The lowest base offset of a later append (`i64::MAX`: none).
    append: i64,
}

/// Applies one frame to `log` (see the module's rules), given what its later frames do.
fn apply(
    log: &PartitionLog,
    f: &Found,
    later: Later,
    stats: &mut ReplayStats,
) -> Result<(), LogError> {
    let end = log.log_end_offset();
    let local = log.local_base_offset();
    match f.op {
        Op::Truncate => {
            if f.base_offset < end && f.base_offset >= log.log_start_offset() {
                log.truncate_to(f.base_offset)?;
                stats.cuts += 1;
            }
        }
        Op::Reset => {
            if local != f.base_offset || end < f.base_offset {
                log.reset_to(f.base_offset)?;
                stats.cuts += 1;
            }
        }
        Op::Append => {
            let (mut b, mut payload) = (f.base_offset, &f.payload[..]);
            let cleaned = log.inner.peek().marks.cleaned_below;
            if b < cleaned {
                // The cleaner rewrote the log below `cleaned` after this frame was written
                // (from sealed segments, durable): what it holds there no longer compares
                // equal, and is the log's. Only batches from `cleaned` on are replayed.
                let (positions, _) = batch_positions(payload)?;
                let Some(&(base, pos)) = positions.iter().find(|(base, _)| *base >= cleaned) else {
                    return Ok(());
                };
                (b, payload) = (base, &payload[pos..]);
            }
            if b < local || later.cut <= b {
                // Removed since: by a reset or retention, or by a later cut (durable in the
                // segment files, perhaps with the bytes before `b`).
                return Ok(());
            }
            if b < log.log_start_offset() {
                // From below the log start DeleteRecords set: not read back (reads refuse
                // it); the log holds the frame's batches up to its end, and gets the rest.
                let (positions, next) = batch_positions(payload)?;
                if next <= end {
                    return Ok(());
                }
                let gaps_below = log.inner.peek().marks.gaps_below;
                let first = positions.iter().find(|(base, _)| *base >= end);
                let Some(&(_, pos)) = first.filter(|(base, _)| *base == end || *base <= gaps_below)
                else {
                    let e = std::io::Error::other(format!(
                        "the journal holds batches from offset {b}, below the log start {}, \
                         none of which starts at the log end {end}",
                        log.log_start_offset()
                    ));
                    return Err(LogError::io(log.dir(), e));
                };
                log.append_replicated(&payload[pos..])?;
                stats.appended += 1;
                return Ok(());
            }
            if b > end && b <= log.inner.peek().marks.gaps_below {
                // Batches that skip offsets, as a compacted leader's log does: the log said
                // so durably before appending them (`append_replicated`).
                check_base(payload, b, log)?;
                log.append_replicated(payload)?;
                stats.appended += 1;
                return Ok(());
            }
            if b > end && later.append <= end {
                // A checkpoint's copy of the log's buffered bytes follows (their segment
                // file failed writes; `Member::copy_buffer`), and its first frames were
                // trimmed: the copy brings these batches, from the log's end on.
                return Ok(());
            }
            if b > end {
                let e = std::io::Error::other(format!(
                    "the journal holds batches from offset {b} but the log ends at {end}: \
                     bytes between them are in neither"
                ));
                return Err(LogError::io(log.dir(), e));
            }
            if b < end {
                let held = log.read(b, payload.len(), end)?;
                if held.bytes.len() >= payload.len() && held.bytes[..payload.len()] == payload[..] {
                    return Ok(());
                }
                log.truncate_to(b)?;
                stats.cuts += 1;
                if log.log_end_offset() != b {
                    let e = std::io::Error::other(format!(
                        "the journal holds batches from offset {b}, inside a batch the log \
                         holds there ({} now ends the log)",
                        log.log_end_offset()
                    ));
                    return Err(LogError::io(log.dir(), e));
                }
            }
            check_base(payload, b, log)?;
            log.append_replicated(payload)?;
            stats.appended += 1;
        }
    }
    Ok(())
}

/// Each batch's base offset and position in a frame's payload, and the offset after them.
fn batch_positions(payload: &[u8]) -> Result<(Vec<(i64, usize)>, i64), LogError> {
    let mut positions = Vec::new();
    let mut next = None;
    for frame in shale_core::record::BatchFrames::new(payload, usize::MAX) {
        let (header, range) = frame.map_err(LogError::from)?;
        positions.push((header.base_offset, range.start));
        next = Some(header.next_offset());
    }
    let next = next.ok_or_else(|| {
        LogError::from(shale_core::record::RecordError::Corrupt("an empty journal frame".into()))
    })?;
    Ok((positions, next))
}

/// Checks that a frame's first batch starts where its header says (the CRC covered both,
/// so a mismatch is a bug in the writer, reported rather than appended).
fn check_base(payload: &[u8], base: i64, log: &PartitionLog) -> Result<(), LogError> {
    let header = BatchHeader::parse(payload).map_err(LogError::from)?;
    if header.base_offset != base {
        let e = std::io::Error::other(format!(
            "a journal frame of base offset {base} holds a batch of base offset {}",
            header.base_offset
        ));
        return Err(LogError::io(log.dir(), e));
    }
    Ok(())
}

/// Where a volume's journal is and how large (`log.journal.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// The directory of the journal file (`journal`, and `journal.streams` beside it):
    /// the data directory itself unless the operator gives the journal a disk of its own.
    pub dir: std::path::PathBuf,
    /// Bytes of the journal's ring (a multiple of 4096, at least [`MIN_JOURNAL_BYTES`]);
    /// an existing journal keeps the size it was created with.
    pub bytes: u64,
    /// Bytes written since the last checkpoint that start the next (at most half the ring).
    pub checkpoint_bytes: u64,
    /// The least time between the starts of two rounds (one write and fdatasync each):
    /// under load, the frames that come meanwhile share the next round. Zero takes a
    /// round as soon as the last one is synced.
    pub round_interval: std::time::Duration,
}

/// The smallest journal: eight of the largest frames a default `max.message.bytes` makes.
pub const MIN_JOURNAL_BYTES: u64 = 16 << 20;

/// What a volume's journal did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JournalStats {
    /// Rounds written and synced.
    pub rounds: u64,
    /// Bytes of those rounds.
    pub bytes: u64,
    /// Partitions acknowledged by those rounds (one per partition per round).
    pub round_partitions: u64,
    /// Seconds spent writing and syncing rounds.
    pub sync_seconds: f64,
    /// Checkpoints that moved the trim point.
    pub checkpoints: u64,
    /// Seconds spent in checkpoints.
    pub checkpoint_seconds: f64,
    /// Appends that waited for a checkpoint to make room.
    pub room_waits: u64,
    /// Checkpoints that copied a log's buffered bytes forward in the journal, its
    /// segment file failing writes.
    pub copies: u64,
    /// Bytes the journal holds that a checkpoint has not trimmed.
    pub occupancy: u64,
    /// Bytes of the ring.
    pub capacity: u64,
}

impl LogResources {
    /// Opens the journal of the partition logs in `data_dir` (creating it if missing),
    /// replays what it holds into their segment files, and makes every log opened in
    /// `data_dir` from then on write into it. Call it before any log there opens.
    pub fn open_journal(
        self: &Arc<Self>,
        data_dir: &Path,
        settings: &JournalSettings,
        clock: &SharedClock,
    ) -> Result<ReplayStats, LogError> {
        let started = monotonic_now();
        let disk = self.disk_handle();
        let path = settings.dir.join("journal");
        for dir in [data_dir, settings.dir.as_path()] {
            shale_core::disk::create_dir_durable(&*disk, dir)?;
        }
        let failed = |e: crate::journal::JournalError| {
            LogError::io(&path, std::io::Error::other(e.to_string()))
        };
        let recovered = crate::journal::recover(&disk, &path, settings.bytes).map_err(failed)?;
        if let crate::journal::frame::Invalid::Checksum = recovered.why {
            tracing::warn!(journal = %path.display(), position = recovered.next,
                "the journal ends in a torn frame: it is dropped, never replayed");
        }
        let stats = replay(self, data_dir, &recovered, clock, started)?;
        let fs = match disk.open_fs(data_dir) {
            Ok(fs) => Some(fs),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                tracing::warn!(dir = %data_dir.display(), error = %e,
                    "journal checkpoints fsync the segment files one by one");
                None
            }
            Err(e) => return Err(LogError::io(data_dir, e)),
        };
        let table = crate::journal::streams_path(&path);
        let streams = crate::journal::streams::StreamTable::create(&disk, &table)
            .map_err(|e| LogError::io(&table, e))?;
        let next = recovered.next;
        let journal = crate::journal::Journal::start(
            recovered.file,
            streams,
            fs,
            next,
            (settings.checkpoint_bytes, settings.round_interval),
        )
        .map_err(|e| LogError::io(&path, std::io::Error::other(e.0)))?;
        let writes = if journal.is_direct() { "direct" } else { "page cache" };
        self.rounds().add_journal(data_dir, journal)?;
        tracing::info!(journal = %path.display(), writes, frames = stats.frames, bytes = stats.bytes,
            logs = stats.logs, appended = stats.appended, cuts = stats.cuts,
            orphaned = stats.orphaned, millis = stats.millis, "journal replayed and open");
        Ok(stats)
    }

    /// Checkpoints every journal (a clean shutdown, once the logs are closed: the next
    /// start then replays nothing) and stops their threads.
    pub fn close_journals(&self) -> Result<(), LogError> {
        let mut result = Ok(());
        for j in self.rounds().journals() {
            if let Err(e) = j.checkpoint_now() {
                result = Err(LogError::io(j.path(), std::io::Error::other(e.0)));
            }
            j.close();
        }
        result
    }

    /// What the journals did, summed, if there is one.
    pub fn journal_stats(&self) -> Option<JournalStats> {
        let journals = self.rounds().journals();
        if journals.is_empty() {
            return None;
        }
        let mut t = JournalStats::default();
        for j in journals {
            let s = &j.stats;
            let get =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            t.rounds += get(&s.rounds);
            t.bytes += get(&s.bytes);
            t.round_partitions += get(&s.round_members);
            t.sync_seconds += get(&s.sync_nanos) as f64 / 1e9;
            t.checkpoints += get(&s.checkpoints);
            t.checkpoint_seconds += get(&s.checkpoint_nanos) as f64 / 1e9;
            t.room_waits += get(&s.room_waits);
            t.copies += get(&s.copied);
            t.occupancy += j.occupancy();
            t.capacity += j.capacity();
        }
        Some(t)
    }
}
