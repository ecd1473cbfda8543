//! The producer state of one partition: idempotence and transactions.
//!
//! Idempotence: the last few batches of each producer (by sequence number), so a retried
//! batch is answered with its original offsets instead of being written twice, and a gap in
//! the sequence is refused until the missing batch arrives.
//!
//! Transactions: a producer's transactional batches here, from the first until the marker
//! (a control batch: commit or abort) that ends them, form its open transaction on this
//! partition. Until the marker is below the high watermark the transaction is *unstable*:
//! the last stable offset, below which `read_committed` readers may read, is the first
//! offset of the oldest unstable transaction, or the high watermark when there is none.
//! Aborted transactions stay in an index (producer, first and last offset) until the log
//! start passes them: a `read_committed` reader is told those its read overlaps, and skips
//! their batches, as Kafka's `.txnindex` serves.
//!
//! Leaders and followers keep the state as they append (the producer id, epoch and base
//! sequence travel in the batch header, a marker in its control record), so a new leader
//! after failover has it too. After a restart it comes from the newest snapshot (written
//! at each roll, `snapshot`) and the log after it.
//!
//! - `snapshot`: the snapshot files.
//! - `ids`: producer ids, allocated through the metadata store.

mod ids;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

// Consulted per batch: foldhash (hashbrown's default), not SipHash.
use hashbrown::HashMap;
use std::sync::Mutex;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::BatchHeader;
use shale_core::record::batch::ATTR_TRANSACTIONAL;
use shale_core::record::control::{AbortedTxn, Marker, MarkerKind, is_marker_header};

pub use ids::ProducerIds;
pub use snapshot::{SNAPSHOT_SUFFIX, snapshot_name, snapshot_offset, snapshot_without_aborted};

/// Batches remembered per producer and partition (Kafka's max in-flight for idempotence).
pub const REMEMBERED_BATCHES: usize = 5;

/// Where one batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// One producer's state here.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// The first offset of its open transaction here.
    txn_first: Option<i64>,
    /// The epoch of the coordinator that wrote its last marker here (-1: none yet).
    coordinator_epoch: i32,
    /// The largest timestamp of its last batch here (-1: none).
    last_timestamp: i64,
}

/// A producer first seen here: no batches, no transaction, no marker, no timestamp.
impl Default for Entry {
    fn default() -> Entry {
        Entry {
            epoch: 0,
            batches: VecDeque::new(),
            txn_first: None,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }
}

impl Entry {
    /// Whether the entry still says something (batches to dedup against, an open
    /// transaction, a coordinator epoch that fences older markers).
    fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.txn_first.is_none() && self.coordinator_epoch < 0
    }
}

/// A transaction not yet stable: open, or ended by a marker not yet below the high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unstable {
    producer_id: i64,
    /// The offset of the marker that ended it.
    marker: Option<i64>,
}

/// A transaction that a marker ended on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedTxn {
    /// Its producer.
    pub producer_id: i64,
    /// Its first offset here.
    pub first_offset: i64,
    /// The marker's offset: its last offset here.
    pub last_offset: i64,
    /// Committed or aborted.
    pub kind: MarkerKind,
}

/// One producer as a partition knows it (Kafka's DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The sequence of its last record here (-1: none remembered).
    pub last_sequence: i32,
    /// The offset of its last batch here (-1: none remembered).
    pub last_offset: i64,
    /// The epoch of the coordinator that wrote its last marker here (-1: none).
    pub coordinator_epoch: i32,
    /// The largest timestamp of its last batch here (-1: none).
    pub last_timestamp: i64,
    /// The first offset of its open transaction here (-1: none open).
    pub txn_start_offset: i64,
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New and in order: append it.
    Append,
    /// Seen before: answer with where it landed.
    Duplicate(BatchMeta),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    producers: HashMap<i64, Entry>,
    /// Unstable transactions by first offset.
    unstable: BTreeMap<i64, Unstable>,
    /// Aborted transactions by last offset (their marker's): (producer id, first offset).
    aborted: BTreeMap<i64, (i64, i64)>,
}

/// The producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    state: Mutex<State>,
    /// Transactions a coordinator confirmed include this partition, by producer: the epoch
    /// and the guard handed out then (KIP-890 part 1). Leaders only; never persisted.
    guards: Mutex<HashMap<i64, (i16, u64)>>,
    next_guard: std::sync::atomic::AtomicU64,
}

/// A coordinator's confirmation that a producer's transaction includes the partition, good
/// until the producer's next marker there: what lets a transactional batch open the
/// producer's transaction on the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnGuard(u64);

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta)
}

fn is_transactional(header: &BatchHeader) -> bool {
    header.attributes & ATTR_TRANSACTIONAL != 0
}

fn fenced_epoch(header: &BatchHeader, epoch: i16) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::InvalidProducerEpoch,
        format!(
            "producer {} epoch {} is older than epoch {epoch} already seen; a newer instance \
             of this producer exists",
            header.producer_id, header.producer_epoch
        ),
    )
}

impl ProducerStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a producer batch against what this partition has seen from its producer.
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, Error> {
        let state = self.lock();
        let Some(entry) = state.producers.get(&header.producer_id) else {
            return Ok(Verdict::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(fenced_epoch(header, entry.epoch));
        }
        if header.producer_epoch == entry.epoch
            && entry.txn_first.is_some()
            && !is_transactional(header)
        {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidTxnState,
                format!(
                    "producer {} sent a non-transactional batch while its transaction is open \
                     here (since offset {}); the batch was not written",
                    header.producer_id,
                    entry.txn_first.unwrap_or(-1)
                ),
            ));
        }
        if header.producer_epoch > entry.epoch {
            // As Kafka: a new epoch of a known producer starts at sequence 0. Retrying
            // cannot fix it, so it is not retriable.
            if header.base_sequence != 0 {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::OutOfOrderSequence,
                    format!(
                        "producer {} starts epoch {} at sequence {}, but a new epoch starts at \
                         sequence 0; the batch was not written",
                        header.producer_id, header.producer_epoch, header.base_sequence
                    ),
                ));
            }
            return Ok(Verdict::Append);
        }
        let last = last_seq(header);
        if let Some(meta) =
            entry.batches.iter().find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return Ok(Verdict::Duplicate(*meta));
        }
        let expected = entry.batches.back().map_or(0, |b| b.last_seq.wrapping_add(1));
        if header.base_sequence != expected {
            return Err(Error::new(
                ErrorKind::Unavailable,
                Reason::OutOfOrderSequence,
                format!(
                    "producer {} sent sequence {} but {expected} comes next; the batch was \
                     not written (an earlier one is missing: retry in order)",
                    header.producer_id, header.base_sequence
                ),
            ));
        }
        Ok(Verdict::Append)
    }

    /// Checks a marker for the producer in `header` before a leader appends it: refused
    /// from an older epoch of the producer (`INVALID_PRODUCER_EPOCH`) or of the coordinator
    /// than already seen here (`TRANSACTION_COORDINATOR_FENCED`). In transactions v2
    /// (`tv2`) a transaction's markers carry the epoch after its batches': one at the epoch
    /// of the open transaction's batches is a late resend for the transaction before, and
    /// is refused too (`INVALID_PRODUCER_EPOCH`; Kafka's KIP-1228).
    pub fn check_marker(
        &self,
        header: &BatchHeader,
        marker: &Marker,
        tv2: bool,
    ) -> Result<(), Error> {
        let state = self.lock();
        let Some(entry) = state.producers.get(&header.producer_id) else { return Ok(()) };
        if header.producer_epoch < entry.epoch {
            return Err(fenced_epoch(header, entry.epoch));
        }
        if tv2 && entry.txn_first.is_some() && header.producer_epoch == entry.epoch {
            return Err(Error::new(
                ErrorKind::Fenced,
                Reason::InvalidProducerEpoch,
                format!(
                    "a marker for producer {} at epoch {}, the epoch of its open transaction's \
                     batches: a transactions-v2 marker carries the next epoch, so this one is \
                     a late one for an earlier transaction",
                    header.producer_id, header.producer_epoch
                ),
            ));
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(Error::new(
                ErrorKind::Fenced,
                Reason::TransactionCoordinatorFenced,
                format!(
                    "a marker for producer {} from coordinator epoch {}, older than epoch {} \
                     that already wrote here",
                    header.producer_id, marker.coordinator_epoch, entry.coordinator_epoch
                ),
            ));
        }
        Ok(())
    }

    /// Records that the coordinator confirmed (or just added) the partition in
    /// `producer_id`'s transaction at `epoch`; the guard the append presents.
    pub fn verified(&self, producer_id: i64, epoch: i16) -> TxnGuard {
        let guard = self.next_guard.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        guards.insert(producer_id, (epoch, guard));
        TxnGuard(guard)
    }

    /// Checks that a transactional batch may be appended by a leader: it continues its
    /// producer's transaction open here at its epoch, or it opens one with a `guard` that is
    /// still good (no marker of the producer came since the coordinator confirmed).
    /// `INVALID_TXN_STATE` otherwise: a batch late from a transaction that ended, or never
    /// verified, would open a transaction that nothing ends.
    pub fn check_txn_start(
        &self,
        header: &BatchHeader,
        guard: Option<TxnGuard>,
    ) -> Result<(), Error> {
        if !is_transactional(header) {
            return Ok(());
        }
        let open = {
            let state = self.lock();
            state
                .producers
                .get(&header.producer_id)
                .is_some_and(|e| e.txn_first.is_some() && e.epoch == header.producer_epoch)
        };
        let guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let guarded = guard.is_some_and(|TxnGuard(g)| {
            guards.get(&header.producer_id) == Some(&(header.producer_epoch, g))
        });
        if header.producer_id >= 0 && (open || guarded) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Invalid,
            Reason::InvalidTxnState,
            format!(
                "producer {} sent a transactional batch at epoch {}, but its transaction \
                 coordinator has not confirmed this partition in an open transaction (or \
                 that transaction has ended here since); the batch was not written",
                header.producer_id, header.producer_epoch
            ),
        ))
    }

    /// The base offset of each producer's last batch here: a clean keeps those (emptied if
    /// need be), so the producer's state survives it.
    pub fn last_batches(&self) -> std::collections::HashSet<i64> {
        let state = self.lock();
        state.producers.values().filter_map(|e| e.batches.back().map(|b| b.base_offset)).collect()
    }

    /// Remembers a data batch appended at `base_offset` (leader or follower): its place for
    /// idempotence, and the start of its producer's transaction here when it is the first
    /// transactional batch since the last marker.
    pub fn record(&self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        let mut state = self.lock();
        let State { producers, unstable, .. } = &mut *state;
        let entry = at_epoch(producers, header);
        entry.last_timestamp = header.max_timestamp;
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset,
            last_offset: base_offset + header.last_offset_delta as i64,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        if is_transactional(header) && entry.txn_first.is_none() {
            entry.txn_first = Some(base_offset);
            unstable
                .insert(base_offset, Unstable { producer_id: header.producer_id, marker: None });
        }
    }

    /// Remembers a batch as stored (`header` and its bytes, at the header's base offset):
    /// a data batch as [`record`](Self::record) does, a marker as
    /// [`record_marker`](Self::record_marker) does. What a marker ended, if anything.
    pub fn record_stored(&self, header: &BatchHeader, batch: &[u8]) -> Option<EndedTxn> {
        if !is_marker_header(header) {
            self.record(header, header.base_offset);
            return None;
        }
        match Marker::read(&bytes::Bytes::copy_from_slice(batch)) {
            Ok(marker) => self.record_marker(header, &marker, header.base_offset),
            Err(e) => {
                // Stored batches passed their CRC: a marker that does not read is one this
                // build does not know; it ends the transaction as an abort would not, so
                // it is reported and the transaction stays open.
                tracing::warn!(producer = header.producer_id, offset = header.base_offset,
                    error = %e, "a control batch that is not a transaction marker");
                None
            }
        }
    }

    /// Remembers a marker appended at `offset` (leader or follower): it ends its producer's
    /// open transaction here, if any (a marker for a partition the transaction never wrote to
    /// ends nothing), and moves the producer to the marker's epoch.
    pub fn record_marker(
        &self,
        header: &BatchHeader,
        marker: &Marker,
        offset: i64,
    ) -> Option<EndedTxn> {
        self.guards.lock().unwrap_or_else(|p| p.into_inner()).remove(&header.producer_id);
        let mut state = self.lock();
        let State { producers, unstable, aborted } = &mut *state;
        let entry = at_epoch(producers, header);
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        let first = entry.txn_first.take()?;
        if let Some(u) = unstable.get_mut(&first) {
            u.marker = Some(offset);
        }
        if marker.kind == MarkerKind::Abort {
            aborted.insert(offset, (header.producer_id, first));
        }
        Some(EndedTxn {
            producer_id: header.producer_id,
            first_offset: first,
            last_offset: offset,
            kind: marker.kind,
        })
    }

    /// The last stable offset under `high_watermark`: the first offset of the oldest
    /// transaction that is open or whose marker is not yet below the high watermark, or the
    /// high watermark. Forgets the transactions that became stable.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let mut state = self.lock();
        while let Some((&first, u)) = state.unstable.first_key_value() {
            match u.marker {
                Some(m) if m < high_watermark => {
                    state.unstable.remove(&first);
                }
                _ => return first.min(high_watermark),
            }
        }
        high_watermark
    }

    /// The aborted transactions a read from `from` below `upper` overlaps (those ending at
    /// or after `from` and starting below `upper`), as (producer id, first offset) in the
    /// order they ended: what Kafka's fetch answers a `read_committed` reader, which skips
    /// each one's batches from its first offset until its abort marker.
    pub fn aborted_between(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        let txns = self.aborted_in(from, upper);
        txns.into_iter().map(|t| (t.producer_id, t.first_offset)).collect()
    }

    /// [`aborted_between`](Self::aborted_between), each with its marker's offset.
    pub fn aborted_in(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let state = self.lock();
        state
            .aborted
            .range(from..)
            .filter(|(_, (_, first))| *first < upper)
            .map(|(last, (producer_id, first))| AbortedTxn {
                producer_id: *producer_id,
                first_offset: *first,
                last_offset: *last,
            })
            .collect()
    }

    /// Adds aborted transactions learned elsewhere (the bucket's list for the remote log):
    /// those already known change nothing.
    pub fn learn_aborted(&self, txns: impl IntoIterator<Item = AbortedTxn>) {
        let mut state = self.lock();
        for t in txns {
            state.aborted.insert(t.last_offset, (t.producer_id, t.first_offset));
        }
    }

    /// Forgets the aborted transactions whose markers are at `markers`: the cleaner removes
    /// those markers, their transactions' records already gone.
    pub fn forget_aborted(&self, markers: &[i64]) {
        let mut state = self.lock();
        for m in markers {
            state.aborted.remove(m);
        }
    }

    /// Forgets aborted transactions that end below `log_start` (no read reaches them).
    pub fn forget_before(&self, log_start: i64) {
        let mut state = self.lock();
        state.aborted = state.aborted.split_off(&log_start);
    }

    /// Every producer this partition keeps state for, by producer id.
    pub fn describe(&self) -> Vec<ProducerInfo> {
        let state = self.lock();
        let mut out: Vec<ProducerInfo> = state
            .producers
            .iter()
            .map(|(id, e)| ProducerInfo {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_offset: e.batches.back().map_or(-1, |b| b.last_offset),
                coordinator_epoch: e.coordinator_epoch,
                last_timestamp: e.last_timestamp,
                txn_start_offset: e.txn_first.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The open transactions here: producer id and first offset, oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        let state = self.lock();
        let mut open: Vec<(i64, i64)> = state
            .producers
            .iter()
            .filter_map(|(id, e)| e.txn_first.map(|first| (*id, first)))
            .collect();
        open.sort_by_key(|(_, first)| *first);
        open
    }

    /// Forgets what is at or after `offset` (the log was truncated there): batches, the
    /// transactions that began there, and the markers that ended others there (those
    /// transactions are open again).
    pub fn truncate(&self, offset: i64) {
        forget_from(&mut self.lock(), offset);
    }
}

/// The entry of `header`'s producer, moved to the header's epoch (a new epoch forgets the
/// batches of the one before).
fn at_epoch<'a>(producers: &'a mut HashMap<i64, Entry>, header: &BatchHeader) -> &'a mut Entry {
    let entry = producers.entry(header.producer_id).or_default();
    if header.producer_epoch != entry.epoch {
        entry.epoch = header.producer_epoch;
        entry.batches.clear();
    }
    entry
}

/// Undoes in `state` what batches and markers at or after `offset` did.
fn forget_from(state: &mut State, offset: i64) {
    let State { producers, unstable, aborted } = state;
    unstable.retain(|first, _| *first < offset);
    aborted.retain(|last, _| *last < offset);
    for entry in producers.values_mut() {
        entry.batches.retain(|b| b.last_offset < offset);
        if entry.txn_first.is_some_and(|first| first >= offset) {
            entry.txn_first = None;
        }
    }
    for (first, u) in unstable.iter_mut() {
        if u.marker.is_some_and(|m| m >= offset) {
            u.marker = None;
            if let Some(entry) = producers.get_mut(&u.producer_id) {
                entry.txn_first = Some(*first);
            }
        }
    }
    producers.retain(|_, e| !e.is_empty());
}
