//! One clean of one log, as Kafka's cleaner makes it: choose the cleanable range, map its
//! dirty section's keys, rewrite the sealed segments below the cleaning point, swap them
//! in.
//!
//! - **Cleanable**: sealed segments only (never the active one), from the log's start up to
//!   the first segment that reaches the caller's bound (the high watermark: nothing a
//!   follower might still cut is cleaned) or holds a record newer than
//!   `min.compaction.lag.ms`.
//! - **Dirty**: the cleanable segments from the last clean's cleaning point on
//!   (`marks::first_dirty`). A log is due when its dirty bytes are at least
//!   `min.cleanable.dirty.ratio` of its cleanable bytes, or when its oldest dirty record
//!   is older than `max.compaction.lag.ms`.
//! - **Cleaning point**: the end of the dirty section, or the first batch whose keys no
//!   longer fit the offset map; the segments from the log start through the one holding
//!   it are rewritten (grouped up to `segment.bytes`) and swapped in.

use std::collections::HashSet;

use super::offset_map::OffsetMap;
use super::rewrite::{Layout, Source, write_cleaned};
use super::section::{Markers, Rules, map_batch};
use crate::log::cleaned::{CleanView, Swap};
use crate::log::scan::{Scanned, Scanner, read_full_at};
use crate::log::segment::{LOG_SUFFIX, segment_path};
use crate::log::{LogError, PartitionLog};
use shale_core::disk::{Disk, OpenMode};
use shale_core::record::Limits;
use shale_core::record::control::AbortedSet;

/// A compacted topic's cleaning settings, by their Kafka names.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// `min.cleanable.dirty.ratio`: the dirty share of the cleanable bytes that makes a log
    /// due.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty record is older is due whatever
    /// its ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays after the clean that first
    /// covered it.
    pub delete_retention_ms: i64,
}

impl Default for CompactionConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        CompactionConfig {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

/// What one clean may clean and keep.
#[derive(Debug, Clone, Default)]
pub struct CleanRequest {
    /// Nothing at or past this offset is cleaned (the high watermark).
    pub upper_bound: i64,
    /// The clock now.
    pub now_ms: i64,
    /// The topic's settings.
    pub config: CompactionConfig,
    /// The base offsets of each producer's last batch in the log: kept, emptied if need
    /// be, so idempotent retries are still recognised.
    pub last_batches: HashSet<i64>,
    /// The aborted transactions below `upper_bound`: their records are removed and shadow
    /// nothing. (`upper_bound` must be at most the last stable offset, so every
    /// transaction below it is decided.)
    pub aborted: AbortedSet,
    /// Whether abort markers may be removed, as commit markers are, once their
    /// transaction's records are gone and their horizon has passed: the clean then tells
    /// [`CleanHooks::forget_aborted`] which before its swap. False where another copy of the
    /// log's records is read with this log's list of aborted transactions (a tiered
    /// topic's bucket).
    pub abort_markers: bool,
}

/// What a clean calls its caller back with.
pub trait CleanHooks {
    /// `bytes` of a batch were read: the cleaner's I/O budget waits here.
    fn pace(&mut self, bytes: u64);

    /// The clean removes the abort markers at `offsets` (ascending), whose transactions
    /// have no record left in the log: called before the swap, for the caller to forget
    /// those transactions from its index of aborted ones, durably. A reader told of an
    /// aborted transaction skips its producer's batches until the abort marker, so an
    /// index that outlived its marker would hide that producer's later, committed
    /// records; one that lost an entry whose marker stays hides nothing (no record of the
    /// transaction is left). An error stops the clean before the swap.
    fn forget_aborted(&mut self, offsets: &[i64]) -> Result<(), String>;
}

/// Hooks that only pace (tests, and cleans that remove no abort marker).
impl<F: FnMut(u64)> CleanHooks for F {
    fn pace(&mut self, bytes: u64) {
        self(bytes)
    }

    fn forget_aborted(&mut self, offsets: &[i64]) -> Result<(), String> {
        Err(format!(
            "abort markers at offsets {offsets:?} would be removed with no index to forget \
             them from"
        ))
    }
}

#[cfg(test)]
impl CleanRequest {
    /// A clean of everything below `upper_bound` at `now_ms`, due whatever the dirty ratio
    /// (tests).
    pub(crate) fn always(upper_bound: i64, now_ms: i64) -> CleanRequest {
        let config = CompactionConfig { min_cleanable_dirty_ratio: 0.0, ..Default::default() };
        CleanRequest {
            upper_bound,
            now_ms,
            config,
            last_batches: Default::default(),
            aborted: Default::default(),
            abort_markers: false,
        }
    }
}

/// A log's cleaning state (metrics, `shale topic describe`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DirtyState {
    /// Bytes of cleanable segments no clean has deduplicated.
    pub dirty_bytes: u64,
    /// Bytes of cleanable segments below the last cleaning point.
    pub clean_bytes: u64,
    /// `dirty / (dirty + clean)`; 0 with nothing cleanable.
    pub dirty_ratio: f64,
    /// The last clean's cleaning point (0: never cleaned).
    pub first_dirty: i64,
    /// Whether a clean is due now (ratio or max lag).
    pub due: bool,
}

/// What one clean did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// The offsets rewritten, `[from, to)`.
    pub from: i64,
    pub to: i64,
    /// The cleaning point reached.
    pub point: i64,
    /// Bytes read: the dirty section mapped, and the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the sources replaced, and of their cleaned segments.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Segments replaced, and written.
    pub segments_before: usize,
    pub segments_after: usize,
    /// Whether the swap happened (false: the log changed under the clean, which is undone).
    pub swapped: bool,
    /// Transaction markers removed (their transactions left no record).
    pub markers_removed: u64,
    /// Milliseconds the clean took, map, rewrite and swap (paced reads included).
    pub millis: u64,
}

/// The cleanable segments of `view` under `req`: a prefix of its sealed segments.
fn cleanable<'a>(view: &'a CleanView, req: &CleanRequest) -> &'a [(Source, i64)] {
    let min_lag = req.config.min_compaction_lag_ms;
    let n = view
        .sealed
        .iter()
        .take_while(|(s, max_ts)| {
            s.next_offset <= req.upper_bound
                && (min_lag <= 0 || *max_ts <= req.now_ms.saturating_sub(min_lag))
        })
        .count();
    &view.sealed[..n]
}

/// How dirty `view` is under `req`, and whether a clean is due.
pub(crate) fn dirty_state(view: &CleanView, req: &CleanRequest) -> DirtyState {
    let first_dirty = view.marks.first_dirty();
    let segments = cleanable(view, req);
    let (mut dirty_bytes, mut clean_bytes, mut oldest_dirty) = (0, 0, None);
    for (s, max_ts) in segments {
        if s.next_offset > first_dirty {
            dirty_bytes += s.size;
            oldest_dirty.get_or_insert(*max_ts);
        } else {
            clean_bytes += s.size;
        }
    }
    let total = dirty_bytes + clean_bytes;
    let dirty_ratio = if total == 0 { 0.0 } else { dirty_bytes as f64 / total as f64 };
    let max_lag = req.config.max_compaction_lag_ms;
    let overdue = oldest_dirty.is_some_and(|ts| ts >= 0 && req.now_ms.saturating_sub(ts) > max_lag);
    let due = dirty_bytes > 0 && (dirty_ratio >= req.config.min_cleanable_dirty_ratio || overdue);
    DirtyState { dirty_bytes, clean_bytes, dirty_ratio, first_dirty, due }
}

impl PartitionLog {
    /// How dirty the log is under `req` (a blocking call: timestamps may load indexes).
    pub fn dirty_state(&self, req: &CleanRequest) -> Result<DirtyState, LogError> {
        Ok(dirty_state(&self.clean_view()?, req))
    }

    /// Cleans the log if a clean is due under `req`: `None` when none is, or nothing below
    /// the bound is dirty. `map` is the cleaner's offset map (cleared here), `hooks` are
    /// called with the bytes of each batch read (the I/O budget waits there) and with the
    /// abort markers removed, before the swap. A blocking call; one clean of a log at a
    /// time.
    pub fn clean(
        &self,
        req: &CleanRequest,
        map: &mut OffsetMap,
        hooks: &mut dyn CleanHooks,
    ) -> Result<Option<CleanStats>, LogError> {
        let started = shale_core::clock::monotonic_now();
        let _cleaning = self.cleaning();
        if self.closing() {
            return Ok(None);
        }
        let view = self.clean_view()?;
        if !dirty_state(&view, req).due {
            return Ok(None);
        }
        let mut stats = match self.clean_now(&view, req, map, hooks) {
            Ok(stats) => stats,
            Err(e) => {
                // Whatever the clean wrote goes (one clean of a log at a time: every
                // `.cleaned` file in its directory is this one's).
                crate::log::swap::discard_cleaned(self.disk(), &view.dir)?;
                // Given up for a close: nothing failed.
                if self.closing() {
                    return Ok(None);
                }
                // Retention or a cut removed a segment being read: the log changed under
                // the clean, which is not a failure; the next look starts again.
                if !self.still_holds(&view)? {
                    return Ok(Some(CleanStats::default()));
                }
                return Err(e);
            }
        };
        stats.millis = started.elapsed().as_millis() as u64;
        Ok(Some(stats))
    }

    /// Whether the log still holds every sealed segment of `view` as it was.
    fn still_holds(&self, view: &CleanView) -> Result<bool, LogError> {
        let now = self.clean_view()?;
        let held = |(s, _): &(Source, i64)| now.sealed.iter().any(|(n, _)| n == s);
        Ok(view.sealed.iter().all(held))
    }

    /// One clean of `view` (due or not).
    fn clean_now(
        &self,
        view: &CleanView,
        req: &CleanRequest,
        map: &mut OffsetMap,
        hooks: &mut dyn CleanHooks,
    ) -> Result<CleanStats, LogError> {
        // Once the log is closing the I/O budget is not waited for: the clean only runs to
        // its next step, where it gives up.
        let mut pace = |bytes: u64| {
            if !self.closing() {
                hooks.pace(bytes);
            }
        };
        let disk = self.disk();
        let first_dirty = view.marks.first_dirty();
        let segments: Vec<Source> = cleanable(view, req).iter().map(|(s, _)| *s).collect();
        map.clear();
        let mut stats = CleanStats::default();
        let mut point = first_dirty;
        for s in segments.iter().filter(|s| s.next_offset > first_dirty) {
            let (end, read) =
                map_segment(disk, view, (s, first_dirty), map, &req.aborted, &mut pace)?;
            stats.bytes_read += read;
            point = end;
            if end < s.next_offset {
                break;
            }
        }
        if point <= first_dirty {
            return Err(LogError::Corrupt {
                path: view.dir.clone(),
                offset: first_dirty,
                reason: format!(
                    "the cleaner's offset map ({} keys) cannot hold the keys of the batch at \
                     offset {first_dirty}: raise log.cleaner.dedupe.buffer.size",
                    map.capacity()
                ),
            });
        }
        self.check_not_closing()?;
        // Every segment from the log start through the one holding the cleaning point.
        let sources: Vec<Source> = segments.into_iter().take_while(|s| s.base < point).collect();
        let rules = Rules {
            tombstones_below: view
                .marks
                .tombstones_below(req.now_ms, req.config.delete_retention_ms)
                .min(point),
            last_batches: req.last_batches.clone(),
            aborted: req.aborted.clone(),
            abort_markers: req.abort_markers,
        };
        let layout =
            Layout { segment_bytes: view.segment_bytes, index_interval: view.index_interval };
        let mut read = 0u64;
        let mut counted = |n: u64| {
            read += n;
            pace(n)
        };
        let mut markers = Markers::removing();
        let cleaned = write_cleaned(
            disk,
            &view.dir,
            &sources,
            map,
            (&rules, &mut markers),
            &layout,
            &mut counted,
        )?;
        stats.bytes_read += read;
        stats.markers_removed = markers.removed;
        self.check_not_closing()?;
        if !markers.aborts.is_empty() {
            hooks.forget_aborted(&markers.aborts).map_err(|reason| {
                let why = format!(
                    "the clean cannot forget the aborted transactions whose markers it \
                     removes: {reason}"
                );
                LogError::io(&view.dir, std::io::Error::other(why))
            })?;
        }
        stats.from = sources.first().map_or(point, |s| s.base);
        stats.to = sources.last().map_or(point, |s| s.next_offset);
        stats.point = point;
        stats.bytes_before = sources.iter().map(|s| s.size).sum();
        stats.bytes_after = cleaned.iter().map(|c| c.size).sum();
        stats.segments_before = sources.len();
        stats.segments_after = cleaned.len();
        let swap = Swap { sources, cleaned, point, time_ms: req.now_ms };
        stats.swapped = self.swap_cleaned(&swap)?;
        Ok(stats)
    }
}

/// Maps the batches of `s` that end past `first_dirty` into `map`. Returns the offset
/// mapped up to (the segment's next offset when every key fit, else the base of the batch
/// that did not) and the bytes read.
fn map_segment(
    disk: &dyn Disk,
    view: &CleanView,
    (s, first_dirty): (&Source, i64),
    map: &mut OffsetMap,
    aborted: &AbortedSet,
    pace: &mut dyn FnMut(u64),
) -> Result<(i64, u64), LogError> {
    let path = segment_path(&view.dir, s.base, LOG_SUFFIX);
    let file = disk.open(&path, OpenMode::Read).map_err(|e| LogError::io(&path, e))?;
    let mut scanner = Scanner::new(&*file, &path, 0, s.size, true);
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    let mut read = 0u64;
    loop {
        let (header, pos) = match scanner.next_batch()? {
            Scanned::Batch { header, pos } => (header, pos),
            Scanned::End => return Ok((s.next_offset, read)),
            Scanned::Invalid { pos, reason } => {
                let reason = format!("a sealed segment's batch at byte {pos}: {reason}");
                return Err(LogError::Corrupt { path, offset: s.base, reason });
            }
        };
        if header.next_offset() <= first_dirty {
            continue;
        }
        let mut batch = vec![0u8; header.total_len()];
        read_full_at(&*file, &mut batch, pos).map_err(|e| LogError::io(&path, e))?;
        read += batch.len() as u64;
        pace(batch.len() as u64);
        if !map_batch(&batch, map, &limits, aborted)? {
            return Ok((header.base_offset, read));
        }
    }
}
