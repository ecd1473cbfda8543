//! Opening a partition directory: find segments, trust what the recovery point covers,
//! re-validate every batch after it (framing, CRC-32C, magic, continuous offsets), and
//! truncate at the first torn or invalid batch.

use std::collections::BTreeMap;
use std::path::Path;

use super::checkpoint::{RecoveryPoint, TMP_SUFFIX, sync_dir};
use super::epoch::EpochCache;
use super::scan::{Scanned, Scanner, header_at};
use super::segment::{
    ActiveSegment, IndexBuilder, LOG_SUFFIX, SealedSegment, parse_file_name, read_index_files,
    segment_path, write_index_files,
};
use super::{LogConfig, LogError, LogResources, RecoveryStats};
use shale_core::disk::{Disk, OpenMode};

/// The state of a partition directory after recovery.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Sealed segments by base offset.
    pub sealed: BTreeMap<i64, SealedSegment>,
    /// The segment that takes appends.
    pub active: ActiveSegment,
    /// The leader-epoch list, consistent with the recovered log.
    pub epochs: EpochCache,
    /// What recovery did.
    pub stats: RecoveryStats,
    /// The recovery point on disk, when there is one: the end of what was recovered.
    pub stored_point: Option<RecoveryPoint>,
}

/// Where re-validation starts: a segment, a byte position in it, the offset expected
/// there, and the index state of the trusted bytes before it.
struct Start {
    seg: usize,
    pos: u64,
    offset: i64,
    builder: IndexBuilder,
}

/// One re-validated segment.
struct Scanned1 {
    base: i64,
    size: u64,
    next_offset: i64,
    builder: IndexBuilder,
}

/// Where the log first goes wrong: the segment (index into the bases), the byte position
/// in it, and why.
type Cut = (usize, u64, String);

/// What re-validation found: the segments it scanned (the last one possibly cut short),
/// the offset after the last valid batch, and where the log first goes wrong, if it does.
struct Rescan {
    scanned: Vec<Scanned1>,
    expected: i64,
    cut: Option<Cut>,
}

/// Creates or recovers the partition log in `dir`: trust what the recovery point covers,
/// re-validate the rest ([`rescan`]), cut the log at the first invalid batch
/// ([`truncate_tail`]), then rebuild the segment set, the epochs and the recovery point
/// ([`assemble`]). The order of these steps is the crash-safety argument: nothing is
/// deleted before it is known to be past the last valid batch, and the recovery point is
/// stored only after the data it vouches for is synced.
pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    resources: &LogResources,
    gaps_below: i64,
) -> Result<Recovered, LogError> {
    let disk = resources.disk();
    shale_core::disk::create_dir_durable(disk, dir)?;
    let bases = list_segments(disk, dir)?;
    let rp = RecoveryPoint::load(disk, dir)?;
    let loaded_epochs = EpochCache::load(disk, dir)?;
    if bases.is_empty() {
        return fresh(resources, dir, rp, loaded_epochs);
    }
    let mut stats = RecoveryStats::default();
    let mut sizes = Vec::with_capacity(bases.len());
    for &base in &bases {
        let path = segment_path(dir, base, LOG_SUFFIX);
        sizes.push(disk.metadata(&path).map_err(|e| LogError::io(&path, e))?.len);
    }
    // Without the epoch checkpoint the epochs must come from the batches: scan everything.
    let rp_trusted = if loaded_epochs.is_some() { rp } else { None };
    let start = start_point(disk, dir, &bases, &sizes, rp_trusted)?;
    // A scan from the very start rebuilds the epochs from the batches themselves.
    let mut epochs = match &loaded_epochs {
        Some(e) if start.seg > 0 || start.pos > 0 => e.clone(),
        _ => EpochCache::default(),
    };
    let start_seg = start.seg;
    tracing::debug!(dir = %dir.display(), segment = bases[start.seg], position = start.pos,
        offset = start.offset, "recovering partition log");
    let interval = config.index_interval_bytes as u64;
    let scan = Rules { interval, gaps_below };
    let found = rescan(disk, dir, &bases, &sizes, start, &scan, &mut epochs, &mut stats)?;
    if let Some(cut) = &found.cut {
        truncate_tail(resources, dir, &bases, &sizes, &found, cut, &mut stats)?;
    }
    let (sealed, mut active) =
        assemble(resources, dir, &bases, &sizes, start_seg, found.scanned, now_ms)?;
    epochs.truncate_from_end(active.next_offset);
    if loaded_epochs.as_ref() != Some(&epochs) {
        epochs.store(disk, dir)?;
    }
    let point = active.end_point();
    if rp != Some(point) {
        // Data found after the old recovery point may not have reached the disk yet.
        active.sync(resources)?;
        active.write_index(disk, dir)?;
        point.store(disk, dir)?;
    }
    Ok(Recovered { sealed, active, epochs, stats, stored_point: Some(point) })
}

/// A directory without segments (fresh, or whose segments were removed): one empty active
/// segment, never reusing offsets a recovery point says were written.
fn fresh(
    resources: &LogResources,
    dir: &Path,
    rp: Option<RecoveryPoint>,
    loaded_epochs: Option<EpochCache>,
) -> Result<Recovered, LogError> {
    let disk = resources.disk();
    let base = rp.map_or(0, |r| r.offset.max(0));
    let mut active = ActiveSegment::open(resources, dir, base, 0, IndexBuilder::new())?;
    active.next_offset = base;
    let point = active.end_point();
    // A brand-new log has nothing to make durable: losing the empty segment's entry in a
    // crash leaves a directory that opens the same way; the first append stores the
    // epochs, and the first close or roll the recovery point. A broker creating thousands
    // of partitions saves five fsyncs on each.
    let brand_new = rp.is_none() && loaded_epochs.is_none();
    let mut epochs = loaded_epochs.unwrap_or_default();
    let stored_point = match brand_new {
        true => None,
        false => {
            sync_dir(disk, dir)?;
            epochs.truncate_from_end(base);
            epochs.store(disk, dir)?;
            if rp != Some(point) {
                point.store(disk, dir)?;
            }
            Some(point)
        }
    };
    let stats = RecoveryStats::default();
    Ok(Recovered { sealed: BTreeMap::new(), active, epochs, stats, stored_point })
}

/// How re-validation judges and indexes batches.
struct Rules {
    /// `index.interval.bytes`.
    interval: u64,
    /// Offsets may skip ahead up to here (compaction's gaps, `marks`); past it they must
    /// continue exactly.
    gaps_below: i64,
}

impl Rules {
    /// Whether a batch or segment starting at `base` may follow what ends at `expected`.
    fn continues(&self, base: i64, expected: i64) -> bool {
        base == expected || (base > expected && base <= self.gaps_below)
    }
}

/// Re-validates from `start` to the end, stopping at the first invalid batch (torn,
/// failing its CRC, or not continuing the offsets, gaps compaction made aside), rebuilding
/// indexes and epochs as it goes.
#[allow(clippy::too_many_arguments, reason = "the recovery state, passed down one step")]
fn rescan(
    disk: &dyn Disk,
    dir: &Path,
    bases: &[i64],
    sizes: &[u64],
    start: Start,
    rules: &Rules,
    epochs: &mut EpochCache,
    stats: &mut RecoveryStats,
) -> Result<Rescan, LogError> {
    let mut scanned: Vec<Scanned1> = Vec::new();
    let mut expected = start.offset;
    let mut cut: Option<Cut> = None;
    let start_seg = start.seg;
    let mut start = Some(start);
    for i in start_seg..bases.len() {
        let base = bases[i];
        let (pos, mut builder) = match start.take() {
            Some(s) => (s.pos, s.builder),
            None if !rules.continues(base, expected) => {
                cut = Some((i, 0, format!("segment base {base} does not continue at {expected}")));
                break;
            }
            None => (0, IndexBuilder::new()),
        };
        let path = segment_path(dir, base, LOG_SUFFIX);
        let file = disk.open(&path, OpenMode::Read).map_err(|e| LogError::io(&path, e))?;
        let mut scanner = Scanner::new(&*file, &path, pos, sizes[i], true);
        let mut valid_end = sizes[i];
        loop {
            match scanner.next_batch()? {
                Scanned::Batch { header, pos } => {
                    let rel = header.base_offset - base;
                    let reason = if !rules.continues(header.base_offset, expected) {
                        Some(format!(
                            "batch offset {} where {expected} was expected",
                            header.base_offset
                        ))
                    } else if header.last_offset() - base > i64::from(u32::MAX) {
                        Some("batch offset too far from the segment base".to_string())
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        cut = Some((i, pos, reason));
                        valid_end = pos;
                        break;
                    }
                    let len = header.total_len() as u64;
                    builder.add(rel as u32, pos, len, header.max_timestamp, rules.interval);
                    epochs.assign(header.partition_leader_epoch, header.base_offset);
                    expected = header.next_offset();
                    stats.batches_validated += 1;
                    stats.bytes_validated += len;
                }
                Scanned::End => break,
                Scanned::Invalid { pos, reason } => {
                    cut = Some((i, pos, reason));
                    valid_end = pos;
                    break;
                }
            }
        }
        scanned.push(Scanned1 { base, size: valid_end, next_offset: expected, builder });
        if cut.is_some() {
            break;
        }
    }
    Ok(Rescan { scanned, expected, cut })
}

/// Truncates the invalid tail: cuts the segment it starts in, deletes every later one.
fn truncate_tail(
    resources: &LogResources,
    dir: &Path,
    bases: &[i64],
    sizes: &[u64],
    found: &Rescan,
    (i, pos, reason): &Cut,
    stats: &mut RecoveryStats,
) -> Result<(), LogError> {
    let (i, pos) = (*i, *pos);
    let disk = resources.disk();
    let segment_gap = found.scanned.last().is_none_or(|s| s.base != bases[i]);
    let first_deleted = if segment_gap { i } else { i + 1 };
    let mut truncated = sizes[first_deleted..].iter().sum::<u64>();
    if !segment_gap {
        let path = segment_path(dir, bases[i], LOG_SUFFIX);
        let file =
            disk.open(&path, OpenMode::ReadWriteCreate).map_err(|e| LogError::io(&path, e))?;
        file.set_len(pos).map_err(|e| LogError::io(&path, e))?;
        file.sync_all().map_err(|e| LogError::io(&path, e))?;
        truncated += sizes[i] - pos;
    }
    for &base in &bases[first_deleted..] {
        super::segment::remove_segment_files(dir, base, resources)?;
    }
    sync_dir(disk, dir)?;
    stats.bytes_truncated = truncated;
    stats.segments_deleted = bases.len() - first_deleted;
    tracing::warn!(path = %segment_path(dir, bases[i], LOG_SUFFIX).display(),
        offset = found.expected, position = pos, bytes_truncated = truncated,
        segments_deleted = stats.segments_deleted, %reason,
        "truncated invalid log tail during recovery");
    Ok(())
}

/// The segment set after recovery: segments before the start point are trusted as they
/// are; of the re-validated ones, the last stays active (even if it was sealed before a
/// cut: it simply takes appends again) and the others are sealed with their rebuilt,
/// synced indexes.
fn assemble(
    resources: &LogResources,
    dir: &Path,
    bases: &[i64],
    sizes: &[u64],
    start_seg: usize,
    mut scanned: Vec<Scanned1>,
    now_ms: i64,
) -> Result<(BTreeMap<i64, SealedSegment>, ActiveSegment), LogError> {
    let disk = resources.disk();
    let mut sealed = BTreeMap::new();
    for i in 0..start_seg {
        let seg = SealedSegment {
            base: bases[i],
            next_offset: bases[i + 1],
            size: sizes[i],
            max_timestamp: None,
        };
        sealed.insert(seg.base, seg);
    }
    let last = scanned.pop().expect("the start segment is always scanned");
    for (i, mut seg) in scanned.into_iter().enumerate() {
        // A compacted segment may end before the next one begins.
        let next_offset = bases[start_seg + i + 1];
        seg.builder.finish();
        write_index_files(disk, dir, seg.base, &seg.builder.index)?;
        sync_data(disk, dir, seg.base)?;
        let path = segment_path(dir, seg.base, LOG_SUFFIX);
        let max_timestamp = Some(seg.builder.max_timestamp);
        resources.adopt_index(&path, seg.builder.index);
        let s = SealedSegment { base: seg.base, next_offset, size: seg.size, max_timestamp };
        sealed.insert(s.base, s);
    }
    let mut active = ActiveSegment::open(resources, dir, last.base, last.size, last.builder)?;
    active.next_offset = last.next_offset;
    if active.size > 0 {
        let first = header_at(&*active.file(resources)?, &active.path, 0, active.size)?;
        // Kafka's rule: a reopened segment's age counts from its first batch's timestamp.
        let ts = if first.max_timestamp >= 0 { first.max_timestamp.min(now_ms) } else { now_ms };
        active.first_append_ms = Some(ts);
    }
    Ok((sealed, active))
}

/// Fsyncs a segment's data file.
fn sync_data(disk: &dyn Disk, dir: &Path, base: i64) -> Result<(), LogError> {
    let path = segment_path(dir, base, LOG_SUFFIX);
    disk.open(&path, OpenMode::Read).and_then(|f| f.sync_data()).map_err(|e| LogError::io(&path, e))
}

/// Chooses where re-validation starts: at the recovery point when it matches a segment
/// and that segment's index files, else at the start of the segment holding it, else at
/// the start of the log.
fn start_point(
    disk: &dyn Disk,
    dir: &Path,
    bases: &[i64],
    sizes: &[u64],
    rp: Option<RecoveryPoint>,
) -> Result<Start, LogError> {
    let from_scratch =
        |seg: usize| Start { seg, pos: 0, offset: bases[seg], builder: IndexBuilder::new() };
    let Some(rp) = rp else { return Ok(from_scratch(0)) };
    let holding = bases.partition_point(|&b| b <= rp.offset);
    if holding == 0 {
        return Ok(from_scratch(0));
    }
    let seg = holding - 1;
    if bases[seg] != rp.segment_base || rp.position > sizes[seg] || rp.offset < bases[seg] {
        tracing::warn!(dir = %dir.display(), offset = rp.offset, "recovery point does not match the segments; re-validating its segment");
        return Ok(from_scratch(seg));
    }
    if rp.position == 0 {
        return Ok(from_scratch(seg));
    }
    let rel_limit = (rp.offset - rp.segment_base) as u64;
    let Some(index) = read_index_files(disk, dir, rp.segment_base, rel_limit, rp.position)? else {
        return Ok(from_scratch(seg));
    };
    let last_entry_pos = index.last_offset_entry().map_or(0, |e| u64::from(e.pos));
    let builder = IndexBuilder {
        index,
        bytes_since_entry: rp.position - last_entry_pos,
        max_timestamp: rp.max_timestamp,
        // Any offset below the recovery point works for the final time entry: every batch
        // up to it has a timestamp <= the segment max.
        last_rel: (rel_limit.saturating_sub(1)) as u32,
    };
    Ok(Start { seg, pos: rp.position, offset: rp.offset, builder })
}

/// Base offsets of the segment files in `dir`, sorted; first finishes a clean's swap a
/// stop interrupted, or undoes a clean that never committed (`swap::settle`), then removes
/// leftover temporary files and index files whose segment is gone.
fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let mut names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    if super::swap::settle(disk, dir, &names)? {
        names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    for name in names {
        let path = dir.join(&name);
        if name.ends_with(TMP_SUFFIX) {
            disk.remove_file(&path).map_err(|e| LogError::io(&path, e))?;
            continue;
        }
        match parse_file_name(&name) {
            Some((base, LOG_SUFFIX)) => logs.push(base),
            Some((base, _)) => indexes.push((base, path)),
            None => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            disk.remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        }
    }
    Ok(logs)
}
