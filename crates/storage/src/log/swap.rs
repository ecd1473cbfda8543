//! Swapping cleaned segments (the log cleaner's, `crate::clean`) in for the sealed segments
//! they replace, so that a crash or power cut at any step leaves either the old segments or
//! the new ones, never a mix. Here, in the log, because finishing or undoing a swap is part
//! of opening a log (`recovery` calls [`settle`] with the listing it makes of the segments).
//!
//! The commit point is a marker file, [`MARKER`], written atomically in the partition's
//! directory once the cleaned segments are durable beside their sources, each named after
//! its base offset with the suffix [`CLEANED`] (`clean::rewrite`): it
//! names the offsets replaced, `[from, to)`, and the cleaned segments' base offsets. Then
//! each cleaned file is renamed over its final name (replacing the source of the same base),
//! every other segment file of a base in `[from, to)` is removed, the directory is fsynced,
//! and the marker removed. At open, before any segment is read, [`settle`] finishes a swap
//! whose marker is there (every step is one it can redo: renames of files still named
//! `.cleaned`, removals of files still there) and removes the files of a clean that never
//! committed (`.cleaned` files with no marker).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{TMP_SUFFIX, read_optional, sync_dir, write_atomic};
use super::partition::PartitionLog;
use super::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, SealedSegment, TIME_INDEX_SUFFIX, file_name, parse_file_name,
    segment_path,
};
use super::{LogError, SealedRange};
use shale_core::disk::Disk;

/// A clean to swap into a live log ([`PartitionLog::swap_cleaned`]).
#[derive(Debug, Clone)]
pub(crate) struct Swap {
    /// The sealed segments cleaned, as the log listed them when the clean began.
    pub sources: Vec<SealedRange>,
    /// The cleaned segments written beside them, covering the same offsets.
    pub cleaned: Vec<CleanedSegment>,
    /// The clean's cleaning point: its offset map held the keys of every record below it.
    pub point: i64,
    /// When the clean began (its horizon for tombstones).
    pub time_ms: i64,
}

/// A cleaned segment written beside its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanedSegment {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: Option<i64>,
}

impl PartitionLog {
    /// Swaps a clean's segments in for its sources, if the log still holds those sources
    /// as they were (retention, a cut or a reset may have removed some meanwhile: then the
    /// clean's files are removed and this returns false). The log's marks are raised to
    /// the end of what is replaced first, durably: from then on, gaps there are
    /// compaction's, and replay leaves those offsets alone (`marks`). Readers of the log's
    /// sealed segments wait for the swap (the fence): none reads a file half old, half new.
    pub(crate) fn swap_cleaned(&self, swap: &Swap) -> Result<bool, LogError> {
        let inner = &*self.inner;
        let (Some(first), Some(last)) = (swap.sources.first(), swap.sources.last()) else {
            return Ok(false);
        };
        let (from, to) = (first.base, last.next_offset);
        let _fence = inner.fence_out();
        let unchanged = {
            let st = inner.lock()?;
            st.check_open()?;
            let held: Vec<SealedRange> = st
                .sealed
                .range(from..to)
                .map(|(_, s)| SealedRange {
                    base: s.base,
                    next_offset: s.next_offset,
                    size: s.size,
                })
                .collect();
            held == swap.sources && st.active.base >= to
        };
        let bases: Vec<i64> = swap.cleaned.iter().map(|c| c.base).collect();
        if !unchanged {
            discard_cleaned(inner.disk(), &inner.dir)?;
            return Ok(false);
        }
        let mut marks = inner.peek().marks.clone();
        marks.cleaned(to, swap.point.min(to), swap.time_ms);
        marks.store(inner.disk(), &inner.dir)?;
        inner.lock()?.marks = marks;
        swap_in(inner.disk(), &inner.dir, from, to, &bases)?;
        let mut st = inner.lock()?;
        for s in &swap.sources {
            inner.resources.evict(&segment_path(&inner.dir, s.base, LOG_SUFFIX));
            if let Some(seg) = st.sealed.remove(&s.base) {
                st.sealed_bytes -= seg.size;
            }
        }
        for c in &swap.cleaned {
            inner.resources.evict(&segment_path(&inner.dir, c.base, LOG_SUFFIX));
            let seg = SealedSegment {
                base: c.base,
                next_offset: c.next_offset,
                size: c.size,
                max_timestamp: c.max_timestamp,
            };
            st.sealed_bytes += seg.size;
            st.sealed.insert(seg.base, seg);
        }
        // Not a cut: the truncation generation stays (an fsync in flight still covers the
        // tail it was for), and readers were fenced out.
        inner.publish(&st);
        Ok(true)
    }
}

/// The suffix of a cleaned segment's files until they are swapped in.
pub(crate) const CLEANED: &str = ".cleaned";

/// The path of a cleaned segment's file with the given suffix.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("{}{CLEANED}", file_name(base, suffix)))
}

/// Removes every cleaned file in `dir`: those of a clean that failed before its swap (a
/// log is cleaned by one clean at a time, so they are all its files). Once a swap's
/// marker is there, nothing is removed: its files are the swap's to finish (at the next
/// open, if not before).
pub(crate) fn discard_cleaned(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    if names.iter().any(|n| n == MARKER) {
        return Ok(());
    }
    for name in names.iter().filter(|n| n.contains(CLEANED)) {
        let file = dir.join(name);
        match disk.remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LogError::io(&file, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The swap marker's file name in a partition's directory.
pub(crate) const MARKER: &str = "clean.swap";

/// What a committed swap replaces and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    /// The first offset replaced: the first source's base.
    from: i64,
    /// The offset after the last replaced: the next segment's base.
    to: i64,
    /// The cleaned segments' base offsets.
    bases: Vec<i64>,
}

/// Swaps the cleaned segments of base offsets `bases` (durable beside their sources) in
/// for the segments of the log in `dir` whose bases are in `[from, to)`. Once this returns
/// the new segments are the log's; if it fails or the machine stops part way, [`settle`]
/// decides at the next open (the old segments if the marker is not durable, else the new).
pub(crate) fn swap_in(
    disk: &dyn Disk,
    dir: &Path,
    from: i64,
    to: i64,
    bases: &[i64],
) -> Result<(), LogError> {
    let marker = Marker { from, to, bases: bases.to_vec() };
    let bytes =
        serde_json::to_vec(&marker).map_err(|e| LogError::io(dir, std::io::Error::other(e)))?;
    write_atomic(disk, dir, MARKER, &bytes)?;
    complete(disk, dir, &marker)
}

/// At open, before any segment is read (`names`: the directory's entries, as the caller
/// listed them): finishes a committed swap, or removes the files of a clean that never
/// committed, and a marker cut short before its rename. Says whether the directory changed
/// (the caller lists it again). A directory with no clean in it costs nothing more than
/// the listing.
pub(crate) fn settle(disk: &dyn Disk, dir: &Path, names: &[String]) -> Result<bool, LogError> {
    let path = dir.join(MARKER);
    let found = match names.iter().any(|n| n == MARKER) {
        true => read_optional(disk, &path)?,
        false => None,
    };
    if let Some(bytes) = found {
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
            path: path.clone(),
            offset: -1,
            reason: format!("the clean's swap marker does not parse: {e}"),
        })?;
        tracing::info!(dir = %dir.display(), from = marker.from, to = marker.to,
            "finishing a cleaned segments' swap a stop interrupted");
        complete(disk, dir, &marker)?;
        return Ok(true);
    }
    let marker_tmp = format!("{MARKER}{TMP_SUFFIX}");
    let mut removed = false;
    // `.cleaned` files, the temporary files of their indexes (`.cleaned.tmp`), a marker
    // cut short.
    for name in names.iter().filter(|n| n.contains(CLEANED) || **n == marker_tmp) {
        let file = dir.join(name);
        disk.remove_file(&file).map_err(|e| LogError::io(&file, e))?;
        removed = true;
    }
    if removed {
        sync_dir(disk, dir)?;
    }
    Ok(removed)
}

/// [`settle`] with the directory listed here (tests).
#[cfg(test)]
pub(crate) fn recover(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    settle(disk, dir, &names).map(|_| ())
}

/// The steps after the commit point, each one redone safely.
fn complete(disk: &dyn Disk, dir: &Path, marker: &Marker) -> Result<(), LogError> {
    for &base in &marker.bases {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let cleaned = cleaned_path(dir, base, suffix);
            if disk.metadata(&cleaned).is_ok() {
                let target = segment_path(dir, base, suffix);
                disk.rename(&cleaned, &target).map_err(|e| LogError::io(&target, e))?;
            }
        }
    }
    let keep: HashSet<i64> = marker.bases.iter().copied().collect();
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for name in names {
        let Some((base, _)) = parse_file_name(&name) else { continue };
        if base >= marker.from && base < marker.to && !keep.contains(&base) {
            let file = dir.join(&name);
            disk.remove_file(&file).map_err(|e| LogError::io(&file, e))?;
        }
    }
    sync_dir(disk, dir)?;
    let path = dir.join(MARKER);
    disk.remove_file(&path).map_err(|e| LogError::io(&path, e))?;
    sync_dir(disk, dir)
}

/// What a clean starts from: the log's sealed segments with their newest timestamps, its
/// marks and settings ([`PartitionLog::clean_view`]).
#[derive(Debug, Clone)]
pub(crate) struct CleanView {
    pub dir: std::path::PathBuf,
    /// Sealed segments, oldest first, each with its largest timestamp.
    pub sealed: Vec<(SealedRange, i64)>,
    pub marks: super::marks::Marks,
    pub segment_bytes: u64,
    pub index_interval: u64,
}

impl PartitionLog {
    /// The log as a clean starts from it (timestamps may load indexes: a blocking call).
    pub(crate) fn clean_view(&self) -> Result<CleanView, LogError> {
        let inner = &*self.inner;
        let _fence = inner.fence_in();
        let (segments, marks, config) = {
            let st = inner.lock()?;
            st.check_open()?;
            let segments: Vec<SealedSegment> = st.sealed.values().cloned().collect();
            (segments, st.marks.clone(), st.config.clone())
        };
        let interval = config.index_interval_bytes as u64;
        let mut sealed = Vec::with_capacity(segments.len());
        for s in &segments {
            let range = SealedRange { base: s.base, next_offset: s.next_offset, size: s.size };
            sealed.push((range, inner.sealed_max_timestamp(s, interval)?));
        }
        Ok(CleanView {
            dir: inner.dir.clone(),
            sealed,
            marks,
            segment_bytes: config.segment_bytes,
            index_interval: interval,
        })
    }
}
