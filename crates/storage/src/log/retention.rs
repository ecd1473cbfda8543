//! Removing data: time and size retention of sealed segments, `truncate_to` for replica
//! truncation, and segment file removal.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use super::checkpoint::{RecoveryPoint, sync_dir};
use super::partition::PartitionLog;
use super::scan::header_at;
use super::segment::{
    ActiveSegment, IndexBuilder, LOG_SUFFIX, NO_TIMESTAMP, SealedSegment, remove_segment_files,
    segment_path,
};
use super::{LogError, LogResources, RetentionOutcome};

/// Where to cut a segment so that `offset` and everything after it go, with the index
/// state of what stays.
struct Cut {
    pos: u64,
    new_end: i64,
    builder: IndexBuilder,
}

/// Plans cutting `seg` at the batch containing `offset` (Kafka truncates whole batches,
/// so the new end may be below `offset`). Reads only; nothing changes yet.
fn plan_cut(
    resources: &LogResources,
    seg: &ActiveSegment,
    offset: i64,
    interval: u64,
) -> Result<Cut, LogError> {
    let file = seg.file(resources)?;
    let rel_of = |o: i64| (o - seg.base) as u32;
    let mut pos = u64::from(seg.builder.index.lookup(rel_of(offset)).pos);
    // The first batch reaching past `offset` goes, and all after it; in a compacted
    // segment it may start past `offset`, or none may (the end, then, is `offset`).
    let new_end = loop {
        if pos >= seg.size {
            break offset;
        }
        let header = header_at(&*file, &seg.path, pos, seg.size)?;
        if header.next_offset() > offset {
            break header.base_offset.min(offset);
        }
        pos += header.total_len() as u64;
    };
    let mut index = seg.builder.index.clone();
    index.truncate(rel_of(new_end), u32::try_from(pos).unwrap_or(u32::MAX));
    let from = index.last_offset_entry().unwrap_or_default();
    let mut builder = IndexBuilder {
        max_timestamp: index.max_timestamp().unwrap_or(NO_TIMESTAMP),
        index,
        bytes_since_entry: 0,
        last_rel: from.rel,
    };
    // Batches after the last kept index entry: their timestamps complete the max.
    let mut at = u64::from(from.pos);
    while at < pos {
        let header = header_at(&*file, &seg.path, at, pos)?;
        let len = header.total_len() as u64;
        builder.add(rel_of(header.base_offset), at, len, header.max_timestamp, interval);
        at += len;
    }
    Ok(Cut { pos, new_end, builder })
}

impl PartitionLog {
    /// Deletes whole sealed segments, oldest first, whose newest timestamp is older than
    /// `retention_ms`, or while the log stays at or above `retention_bytes` without them
    /// (Kafka's rule); advances the log start. Rolls an active segment past `segment_ms`
    /// first so that it can expire later. Never deletes the active segment.
    pub fn apply_retention(&self) -> Result<RetentionOutcome, LogError> {
        self.apply_retention_below(i64::MAX)
    }

    /// [`apply_retention`](Self::apply_retention), but never deleting a segment that holds
    /// offsets at or above `limit` (for a tiered partition: what is not in the bucket yet),
    /// unless it lies wholly below the log start DeleteRecords set.
    pub fn apply_retention_below(&self, limit: i64) -> Result<RetentionOutcome, LogError> {
        let inner = &*self.inner;
        let _fence = inner.fence_in();
        let now = inner.clock.now_ms();
        let (candidates, config, total, generation, rolled, floor) = {
            let mut st = inner.lock()?;
            st.check_open()?;
            let a = &st.active;
            let aged =
                a.first_append_ms.is_some_and(|t| now.saturating_sub(t) >= st.config.segment_ms);
            let rolled = !a.is_empty() && aged;
            if rolled {
                inner.roll(&mut st)?;
                inner.publish(&st);
            }
            let candidates: Vec<SealedSegment> = st.sealed.values().cloned().collect();
            (candidates, st.config.clone(), st.size_bytes(), st.generation, rolled, st.start_floor)
        };
        // Decide without the lock: time checks may load indexes from disk.
        let interval = config.index_interval_bytes as u64;
        let mut remaining = total;
        let mut doomed = Vec::new();
        let mut learned = Vec::new();
        for seg in &candidates {
            // Below the log start DeleteRecords set: deleted records, whatever the limit.
            if seg.next_offset <= floor {
                remaining -= seg.size;
                doomed.push(seg.base);
                continue;
            }
            let by_size = config.retention_bytes >= 0
                && remaining - seg.size >= config.retention_bytes as u64;
            let by_time = !by_size && config.retention_ms >= 0 && {
                let ts = self.segment_timestamp(seg, interval)?;
                learned.push((seg.base, ts));
                now.saturating_sub(ts) > config.retention_ms
            };
            if (!by_size && !by_time) || seg.next_offset > limit {
                break;
            }
            remaining -= seg.size;
            doomed.push(seg.base);
        }

        let mut st = inner.lock()?;
        for (base, ts) in learned {
            if let Some(seg) = st.sealed.get_mut(&base) {
                seg.max_timestamp.get_or_insert(ts);
            }
        }
        let mut outcome = RetentionOutcome { rolled, ..Default::default() };
        // A truncation meanwhile invalidates the plan; the next pass decides again.
        if st.generation == generation {
            for base in doomed {
                if st.sealed.first_key_value().map(|(b, _)| *b) != Some(base) {
                    break;
                }
                remove_segment_files(&inner.dir, base, &inner.resources)?;
                if let Some(seg) = st.sealed.remove(&base) {
                    st.sealed_bytes -= seg.size;
                    outcome.deleted_segments += 1;
                    outcome.deleted_bytes += seg.size;
                }
            }
        }
        outcome.log_start_offset = st.log_start();
        if outcome.deleted_segments > 0 {
            sync_dir(inner.disk(), &inner.dir)?;
            if st.epochs.truncate_from_start(outcome.log_start_offset) {
                st.epochs.store(inner.disk(), &inner.dir)?;
            }
            inner.publish(&st);
            tracing::info!(dir = %inner.dir.display(), log_start = outcome.log_start_offset,
                segments = outcome.deleted_segments, bytes = outcome.deleted_bytes,
                "retention deleted segments");
        }
        Ok(outcome)
    }

    /// A sealed segment's newest timestamp; Kafka's fallback to the file's modification
    /// time when its batches carry no timestamps.
    fn segment_timestamp(&self, seg: &SealedSegment, interval: u64) -> Result<i64, LogError> {
        let ts = self.inner.sealed_max_timestamp(seg, interval)?;
        if ts >= 0 {
            return Ok(ts);
        }
        let path = segment_path(&self.inner.dir, seg.base, LOG_SUFFIX);
        let modified =
            self.inner.disk().metadata(&path).map_err(|e| LogError::io(&path, e))?.modified;
        Ok(modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
    }

    /// Drops everything at and after `offset` (from the start of the batch holding it), for
    /// a follower diverging from its leader. The cut is fsynced and the recovery point,
    /// indexes and epoch list are rewritten before returning. A no-op at or past the end.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let inner = &*self.inner;
        let _fence = inner.fence_in();
        let dir = &inner.dir;
        let mut st = inner.lock()?;
        st.check_open()?;
        if offset >= st.log_end() {
            return Ok(());
        }
        if offset < st.log_start() {
            return Err(st.out_of_range(offset));
        }
        inner.settle_buffer(&mut st)?;
        inner.journal_cut(&mut st, crate::journal::Op::Truncate, offset)?;
        st.generation += 1;
        inner.lower_marks(&mut st, offset)?;
        let interval = st.config.index_interval_bytes as u64;
        let now = inner.clock.now_ms();
        // The recovery point on disk may vouch for bytes this cut removes (a sealed segment
        // below it, or a position past the cut). Lower it to the start of the segment being
        // cut first, so a power loss in the middle re-validates that segment from its start
        // instead of trusting stale indexes and offsets that are gone.
        let cut_base = if offset < st.active.base {
            st.sealed.range(..=offset).next_back().map_or(offset, |(b, _)| *b)
        } else {
            st.active.base
        };
        RecoveryPoint {
            offset: cut_base,
            segment_base: cut_base,
            position: 0,
            max_timestamp: NO_TIMESTAMP,
        }
        .store(inner.disk(), dir)?;
        st.stored_point = None;

        if offset < st.active.base {
            // The sealed segment holding `offset` takes appends again; later ones go.
            let seg = st.sealed.range(..=offset).next_back().map(|(_, s)| s.clone());
            let seg = seg.ok_or_else(|| st.out_of_range(offset))?;
            let index = inner.sealed_index(&seg, interval)?;
            let builder = IndexBuilder { index: (*index).clone(), ..IndexBuilder::new() };
            let mut reopened =
                ActiveSegment::open(&inner.resources, dir, seg.base, seg.size, builder)?;
            reopened.next_offset = seg.next_offset;
            reopened.first_append_ms = Some(now);
            let old = std::mem::replace(&mut st.active, reopened);
            let later: Vec<i64> = st.sealed.range(seg.base..).map(|(b, _)| *b).collect();
            for base in later {
                if let Some(s) = st.sealed.remove(&base) {
                    st.sealed_bytes -= s.size;
                }
                if base != seg.base {
                    warn_remove(dir, base, &inner.resources);
                }
            }
            inner.resources.evict(&st.active.path);
            warn_remove(dir, old.base, &inner.resources);
        }

        let cut = plan_cut(&inner.resources, &st.active, offset, interval)?;
        let a = &st.active;
        a.file(&inner.resources)?.set_len(cut.pos).map_err(|e| LogError::io(&a.path, e))?;
        inner.sync_segment(&mut st)?;
        let a = &mut st.active;
        a.size = cut.pos;
        a.next_offset = cut.new_end;
        a.builder = cut.builder;
        if a.size == 0 {
            a.first_append_ms = None;
        }
        a.write_index(inner.disk(), dir)?;
        // Storing the point also fsyncs the directory, making the removals durable.
        a.end_point().store(inner.disk(), dir)?;
        st.stored_point = Some(st.active.end_point());
        // The fsync above made everything below the new end durable.
        inner.durable.store(cut.new_end, Ordering::Release);
        if st.epochs.truncate_from_end(cut.new_end) {
            st.epochs.store(inner.disk(), dir)?;
        }
        inner.publish(&st);
        tracing::info!(dir = %dir.display(), offset, log_end = cut.new_end, "truncated log");
        Ok(())
    }
}

/// Removes a dropped segment's files; a failure only leaves files that recovery removes
/// (their offsets no longer continue the log).
fn warn_remove(dir: &Path, base: i64, resources: &LogResources) {
    if let Err(e) = remove_segment_files(dir, base, resources) {
        tracing::warn!(dir = %dir.display(), offset = base, error = %e, "could not remove truncated segment");
    }
}
