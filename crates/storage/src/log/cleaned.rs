//! The log's side of a clean (`crate::clean`): the view a clean starts from, and swapping
//! its cleaned segments into the live log under the log's fence, with the marks raised
//! first. The files' own swap, and finishing or undoing one at open, are `swap`'s.

use super::partition::PartitionLog;
use super::segment::{LOG_SUFFIX, SealedSegment, segment_path};
use super::swap::{discard_cleaned, swap_in};
use super::{LogError, SealedRange};

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

    /// Held for a clean's whole run: [`close`](Self::close) waits for it.
    pub(crate) fn cleaning(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.cleaning.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether [`close`](Self::close) was called: a clean gives up.
    pub(crate) fn closing(&self) -> bool {
        self.inner.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `Closed` once [`close`](Self::close) was called: a clean's step between its own.
    pub(crate) fn check_not_closing(&self) -> Result<(), LogError> {
        match self.closing() {
            true => Err(LogError::Closed),
            false => Ok(()),
        }
    }
}
