//! The write path of a partition log: leader appends (offsets and epoch stamped in place),
//! replicated appends (a follower copying its leader's batches as they are), segment rolls,
//! and the timer that fsyncs within `flush.ms` under `FlushPolicy::Interval`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::checkpoint::sync_dir;
use super::config::MAX_SEGMENT_BYTES;
use super::partition::{Inner, PartitionLog, State};
use super::scan::{Frame, frame};
use super::segment::{ActiveSegment, IndexBuilder, SealedSegment};
use super::{AppendInfo, LogError};
use shale_core::record::RecordError;
use shale_core::record::batch::stamp;

impl Inner {
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

    /// Writes framed, stamped batches to the active segment (or its buffer) and publishes
    /// the new end; says whether bytes wait in the buffer.
    fn write(
        &self,
        st: &mut State,
        buf: &[u8],
        frames: &[Frame],
        now: i64,
    ) -> Result<(AppendInfo, bool), LogError> {
        self.resources.activity().note_write();
        let interval = st.config.index_interval_bytes as u64;
        let buffering = self.buffering(st);
        let buffered = {
            let mut b = self.buffer();
            let appended = match buffering {
                true => st.active.append(&self.resources, buf, frames, interval, now, Some(&mut b)),
                // A buffer left from before the flush policy changed goes first.
                false => b.write(&self.resources, true).and_then(|()| {
                    st.active.append(&self.resources, buf, frames, interval, now, None)
                }),
            };
            self.unbuffered(&b);
            appended?;
            b.note_written(&st.active.path);
            !b.is_empty()
        };
        st.unsynced = true;
        self.start_writeback(st);
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
        Ok((info, buffered))
    }

    /// Under `FlushPolicy::Interval`, makes sure an fsync comes within the interval of an
    /// append: the first append not yet covered starts a timer (one per log at most), and
    /// the fsync when it fires covers every append made before it (an fdatasync of its own,
    /// not a shared round: see `rounds`). Only logs with unsynced appends cost anything,
    /// however many partitions a broker hosts. Outside a tokio runtime (synchronous tests)
    /// nothing is scheduled; `flush_all` does it by hand.
    fn schedule_interval_flush(this: &Arc<Inner>, policy: super::FlushPolicy) {
        let super::FlushPolicy::Interval(every) = policy else { return };
        if this.journal.is_some() {
            // The journal's next round makes the append durable: no timer is needed.
            return;
        }
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
}

impl PartitionLog {
    /// Appends validated batches as the leader: stamps consecutive offsets and
    /// `leader_epoch` into `batches` in place, writes them, does not fsync.
    pub fn append(&self, batches: &mut [u8], leader_epoch: i32) -> Result<AppendInfo, LogError> {
        let inner = &*self.inner;
        let now = inner.clock.now_ms();
        let mut st = inner.lock()?;
        let (mut frames, records) = frame(batches, st.config.max_message_bytes)?;
        inner.journal_fits(&frames)?;
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
        let (info, buffered) = inner.write(&mut st, batches, &frames, now)?;
        Inner::journal_append(&self.inner, &mut st, batches, &frames, buffered)?;
        Inner::schedule_interval_flush(&self.inner, st.config.flush);
        Ok(info)
    }

    /// Appends batches that already carry offsets and epochs (a follower copying its
    /// leader): offsets must increase from the log end on. They continue exactly, except
    /// where the leader's log was compacted: batches that skip offsets raise the log's
    /// `gaps_below` mark durably first (`marks`), so that recovery takes the gaps for
    /// compaction's, not for lost bytes.
    pub fn append_replicated(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        let inner = &*self.inner;
        let now = inner.clock.now_ms();
        let mut st = inner.lock()?;
        // The leader accepted these batches under its limit at the time; a lower
        // `max.message.bytes` set since must not stop them from being copied.
        let (frames, records) = frame(batches, MAX_SEGMENT_BYTES as usize)?;
        let mut expected = st.log_end();
        if frames[0].0.base_offset < expected {
            return Err(st.out_of_range(frames[0].0.base_offset));
        }
        let mut last_gap = None;
        for (header, _) in &frames {
            if header.base_offset < expected {
                let got = header.base_offset;
                return Err(RecordError::Corrupt(format!(
                    "replicated batch at offset {got} does not continue at {expected}"
                ))
                .into());
            }
            if header.base_offset > expected {
                last_gap = Some(header.base_offset);
            }
            expected = header.next_offset();
        }
        if let Some(gap) = last_gap.filter(|g| *g > st.marks.gaps_below) {
            let mut marks = st.marks.clone();
            marks.gaps_below = gap;
            marks.store(inner.disk(), &inner.dir)?;
            st.marks = marks;
        }
        inner.journal_fits(&frames)?;
        inner.prepare_segment(&mut st, batches.len() as u64, records, now)?;
        let mut changed = false;
        for (header, _) in &frames {
            changed |= st.epochs.assign(header.partition_leader_epoch, header.base_offset);
        }
        if changed {
            st.epochs.store(inner.disk(), &inner.dir)?;
        }
        let (info, buffered) = inner.write(&mut st, batches, &frames, now)?;
        Inner::journal_append(&self.inner, &mut st, batches, &frames, buffered)?;
        Inner::schedule_interval_flush(&self.inner, st.config.flush);
        Ok(info)
    }
}
