//! Producer-state snapshots of a partition (`{offset:020}.snapshot`, as Kafka's): written
//! when the log rolls, loaded on open with the rest of the log replayed after them, and
//! removed past a truncation.

use super::Partition;
use crate::broker::producers::{snapshot_name, snapshot_offset, snapshot_without_aborted};

/// Producer-state snapshots kept per partition (the newest).
const SNAPSHOTS_KEPT: usize = 2;

impl Partition {
    /// Rebuilds producer state after open: from the newest readable snapshot within the
    /// log, then the batches after it; without one (a log that never rolled), from the
    /// log's start, as Kafka does. Scanning only a recent tail forgot producers whose last
    /// batch was older, and their retries were written twice.
    pub(super) fn rebuild_producer_state(&self) {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let mut from = start;
        // Snapshots past the end describe a tail that recovery cut (a power cut took it):
        // the log grows past them again with other batches, so they go now, as Kafka drops
        // them when it loads producer state.
        self.remove_snapshots(|o| o > end);
        let mut snapshots = self.snapshots();
        snapshots.retain(|o| (start..=end).contains(o));
        for offset in snapshots.into_iter().rev() {
            let path = self.dir.join(snapshot_name(offset));
            let loaded = shale_core::disk::read_optional(self.log.disk(), &path)
                .map_err(|e| e.source.to_string())
                .and_then(|b| b.ok_or_else(|| "gone".to_string()))
                .and_then(|b| self.producers.load_snapshot(&b));
            match loaded {
                Ok(_) => {
                    from = offset;
                    break;
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "unreadable producer-state snapshot; trying an older one"),
            }
        }
        let mut offset = from;
        while offset < end {
            let Ok(chunk) = self.log.read(offset, 1 << 20, end) else { return };
            if chunk.bytes.is_empty() {
                return;
            }
            for (header, range) in
                shale_core::record::BatchFrames::new(&chunk.bytes, usize::MAX).flatten()
            {
                self.producers.record_stored(&header, &chunk.bytes[range]);
            }
            offset = chunk.next_offset;
        }
    }

    /// Offsets of the producer-state snapshots in the partition directory, ascending.
    pub(super) fn snapshots(&self) -> Vec<i64> {
        let mut offsets: Vec<i64> = match self.log.disk().read_dir(&self.dir) {
            Ok(names) => names.iter().filter_map(|n| snapshot_offset(n)).collect(),
            Err(_) => vec![],
        };
        offsets.sort_unstable();
        offsets
    }

    /// Removes the snapshots `doomed` picks, durably: a stale snapshot that a power cut
    /// brought back would describe batches the log no longer holds.
    pub(super) fn remove_snapshots(&self, doomed: impl Fn(i64) -> bool) {
        let mut removed = false;
        for offset in self.snapshots().into_iter().filter(|o| doomed(*o)) {
            let path = self.dir.join(snapshot_name(offset));
            match self.log.disk().remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cannot remove a producer snapshot"),
            }
        }
        if removed && let Err(e) = shale_core::disk::sync_dir(self.log.disk(), &self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e.source,
                    "cannot fsync the directory after removing producer snapshots");
        }
    }

    /// After an append (under the append lock) that went to the segment at `base`: when
    /// the log rolled, snapshots the producer state as of the new segment's base
    /// (everything below it is fsynced by the roll), keeping the newest `SNAPSHOTS_KEPT`.
    /// A failure only costs a longer replay.
    pub(super) fn snapshot_if_rolled(&self, base: i64) {
        let previous = self.snapshot_base.swap(base, std::sync::atomic::Ordering::Relaxed);
        if base == previous || base <= 0 {
            return;
        }
        // Aborted transactions below the log start are read by no one: each roll drops them.
        self.producers.forget_before(self.log_start_offset());
        let bytes = self.producers.encode_snapshot(base);
        let name = snapshot_name(base);
        if let Err(e) = shale_core::disk::write_atomic(self.log.disk(), &self.dir, &name, &bytes) {
            tracing::warn!(path = %e.path.display(), error = %e.source,
                "cannot write a producer snapshot; a restart replays more of the log");
            return;
        }
        let all = self.snapshots();
        let keep_from = all.len().saturating_sub(SNAPSHOTS_KEPT);
        let oldest_kept = all.get(keep_from).copied().unwrap_or(i64::MIN);
        self.remove_snapshots(|o| o < oldest_kept);
    }

    /// Forgets the aborted transactions whose markers at `markers` a clean is about to
    /// remove, their records already gone: from the producer state, then from every
    /// snapshot file, durably, before the clean's swap. A snapshot that still named one
    /// after the marker went would, loaded after a restart, hide its producer's later
    /// committed records from read_committed readers (they skip its batches until an abort
    /// marker). Under the append lock, so that no roll writes or removes a snapshot
    /// meanwhile (a truncation's removed snapshot must not be written back).
    pub(crate) fn forget_aborted(&self, markers: &[i64]) -> Result<(), String> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.producers.forget_aborted(markers);
        for offset in self.snapshots() {
            let name = snapshot_name(offset);
            let path = self.dir.join(&name);
            let bytes = match shale_core::disk::read_optional(self.log.disk(), &path) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) => return Err(format!("reading {}: {}", path.display(), e.source)),
            };
            let rewritten = match snapshot_without_aborted(&bytes, markers) {
                Ok(rewritten) => rewritten,
                // Unreadable: no open loads it (it tries an older one), and neither is it
                // written back with the transactions named.
                Err(_) => continue,
            };
            if let Some(rewritten) = rewritten {
                shale_core::disk::write_atomic(self.log.disk(), &self.dir, &name, &rewritten)
                    .map_err(|e| format!("writing {}: {}", e.path.display(), e.source))?;
            }
        }
        Ok(())
    }
}
