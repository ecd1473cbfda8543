//! Cleaning a section of a log, batch by batch: mapping the dirty section's keys to their
//! latest offsets, then keeping, below the cleaning point, only the records that are their
//! key's latest, as Kafka's log cleaner does.
//!
//! A record below the cleaning point is kept when it has a key, no later record of that
//! key is in the map (the map covers the dirty section: a record of the clean section
//! whose key the dirty section does not hold stays), and it is not a tombstone whose
//! `delete.retention.ms` has passed (`Rules::tombstones_below`). A record without a key
//! is removed, as Kafka removes it. Offsets never change: a batch keeps its base offset and
//! `lastOffsetDelta`, so a cleaned log has gaps. A batch left with no record is dropped,
//! unless it is its producer's last batch in the log: then its header stays as an empty
//! batch (Kafka's `RETAIN_EMPTY`), so that the producer's id, epoch and last sequence
//! survive and its idempotent retries are still recognised. The records of aborted
//! transactions are removed and map no key, so an aborted value never hides a committed
//! one. A commit marker is removed, as Kafka's cleaner removes it, once none of its
//! transaction's records is left, `delete.retention.ms` has passed since the clean that
//! first covered it (the tombstones' horizon), and it is not its producer's last batch.
//! An abort marker goes by the same rules when the caller allows it (`Rules::abort_markers`)
//! and, as in Kafka's cleaner, only once a clean found none of its transaction's batches
//! left: the clean that removes an aborted transaction's records keeps its marker, the next
//! one may remove it. The caller's index of aborted transactions names the marker, and a
//! reader told of an aborted transaction skips its producer's batches until the abort
//! marker, so the caller forgets the transaction before the swap
//! ([`CleanHooks::forget_aborted`](super::CleanHooks::forget_aborted)): with its records
//! already gone, the index entry hides nothing. Other control batches stay whole.

use std::collections::{HashMap, HashSet};

use super::offset_map::OffsetMap;
use shale_core::record::batch::ATTR_TRANSACTIONAL;
use shale_core::record::compact::{Filtered, empty_batch, filter_batch, for_each_record};
use shale_core::record::control::{AbortedSet, Marker, MarkerKind, is_marker_header};
use shale_core::record::{BatchHeader, Limits, RecordError};

/// What decides a record's fate besides the offset map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    /// Tombstones below this offset are removed: `delete.retention.ms` has passed since the
    /// clean that first covered them.
    pub(crate) tombstones_below: i64,
    /// Base offsets of the batches that are their producer's last in the log.
    pub(crate) last_batches: HashSet<i64>,
    /// Aborted transactions: their batches are removed, as Kafka's cleaner discards them.
    pub(crate) aborted: AbortedSet,
    /// Whether abort markers may be removed too (see the module's notes).
    pub(crate) abort_markers: bool,
}

/// What a clean saw of transactions, batch by batch in offset order from the log start: per
/// producer, whether its current transaction (since its last marker) had a batch in the log
/// as the clean found it and whether it kept one, which tells whether the marker that ends
/// it may go.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    /// Per producer with a batch in its current transaction: whether one was kept.
    kept: HashMap<i64, bool>,
    /// Markers may be removed (the local cleaner). The remote compactor keeps them: it does
    /// not see a transaction's batches that are only local.
    removes: bool,
    /// Markers removed.
    pub(crate) removed: u64,
    /// The offsets of the abort markers removed, ascending.
    pub(crate) aborts: Vec<i64>,
}

impl Markers {
    /// A clean that removes commit markers whose transaction left nothing.
    pub(crate) fn removing() -> Markers {
        Markers { removes: true, ..Markers::default() }
    }

    /// A clean that keeps every marker.
    pub(crate) fn keeping() -> Markers {
        Markers::default()
    }

    /// A transactional data batch of `producer` was there, and was kept (whole, in part or
    /// empty) or not.
    fn data(&mut self, producer: i64, kept: bool) {
        *self.kept.entry(producer).or_default() |= kept;
    }

    /// Whether the control batch `batch` (of `header`) is removed under `rules`: a commit
    /// marker whose transaction kept no batch, an abort marker whose transaction had none
    /// left when the clean began, past the horizon, not its producer's last batch.
    fn removes_marker(&mut self, header: &BatchHeader, batch: &[u8], rules: &Rules) -> bool {
        let batches = self.kept.remove(&header.producer_id);
        let (seen, kept) = (batches.is_some(), batches.unwrap_or(false));
        if !self.removes
            || !is_marker_header(header)
            || header.base_offset >= rules.tombstones_below
            || rules.last_batches.contains(&header.base_offset)
        {
            return false;
        }
        let removed = match Marker::read(&bytes::Bytes::copy_from_slice(batch)).map(|m| m.kind) {
            Ok(MarkerKind::Commit) => !kept,
            Ok(MarkerKind::Abort) if rules.abort_markers && !seen => {
                self.aborts.push(header.base_offset);
                true
            }
            _ => false,
        };
        self.removed += u64::from(removed);
        removed
    }
}

/// Notes every keyed record of `batches` (whole batches in offset order, the dirty
/// section) in `map`. Returns the cleaning point: the offset after the last batch whose
/// keys all fit, so the end of the section unless the map filled first.
#[cfg(test)]
pub(crate) fn map_section<'a>(
    batches: impl IntoIterator<Item = &'a [u8]>,
    map: &mut OffsetMap,
    limits: &Limits,
    end: i64,
    aborted: &AbortedSet,
) -> Result<i64, RecordError> {
    for batch in batches {
        if !map_batch(batch, map, limits, aborted)? {
            return Ok(BatchHeader::parse(batch)?.base_offset);
        }
    }
    Ok(end)
}

/// Notes every keyed record of one batch of the dirty section in `map`; false when the map
/// filled before all of them fit (the cleaning point is then this batch's base offset).
/// Keys noted before it filled are later than any record below the batch: they still only
/// remove older records, as they should. Markers and `aborted` data note nothing: an
/// aborted record is no key's latest.
pub(crate) fn map_batch(
    batch: &[u8],
    map: &mut OffsetMap,
    limits: &Limits,
    aborted: &AbortedSet,
) -> Result<bool, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() || aborted.holds(&header) {
        return Ok(true);
    }
    let mut full = false;
    for_each_record(batch, limits, |record| {
        if let Some(key) = record.key {
            full |= !full && !map.put(key, record.offset);
        }
    })?;
    Ok(!full)
}

/// What cleaning did to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cleaned {
    /// Nothing removed: the batch as it was.
    Whole,
    /// The batch rebuilt around the records kept (or empty, for its producer's state).
    Part(Vec<u8>),
    /// Removed altogether.
    Gone,
}

/// Cleans one whole batch below the cleaning point against `map` under `rules`; `markers`
/// follows the transactions of the batches shown so far (from the log start, in order).
pub(crate) fn clean_batch(
    batch: &[u8],
    map: &OffsetMap,
    (rules, markers): (&Rules, &mut Markers),
    limits: &Limits,
) -> Result<Cleaned, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        return Ok(match markers.removes_marker(&header, batch, rules) {
            true => Cleaned::Gone,
            false => Cleaned::Whole,
        });
    }
    let cleaned = clean_data_batch(&header, batch, map, rules, limits)?;
    if header.attributes & ATTR_TRANSACTIONAL != 0 {
        markers.data(header.producer_id, cleaned != Cleaned::Gone);
    }
    Ok(cleaned)
}

fn clean_data_batch(
    header: &BatchHeader,
    batch: &[u8],
    map: &OffsetMap,
    rules: &Rules,
    limits: &Limits,
) -> Result<Cleaned, RecordError> {
    let aborted = rules.aborted.holds(header);
    let filtered = filter_batch(batch, limits, |record| {
        if aborted {
            return false;
        }
        let Some(key) = record.key else { return false };
        let latest = map.get(key).is_none_or(|latest| latest <= record.offset);
        latest && !(record.tombstone && record.offset < rules.tombstones_below)
    })?;
    Ok(match filtered {
        Filtered::Whole => Cleaned::Whole,
        Filtered::Part(bytes) => Cleaned::Part(bytes),
        Filtered::Nothing if header.producer_id >= 0 => {
            match rules.last_batches.contains(&header.base_offset) {
                true => Cleaned::Part(empty_batch(batch)?),
                false => Cleaned::Gone,
            }
        }
        Filtered::Nothing => Cleaned::Gone,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::clean::offset_map::ENTRY_BYTES;
    use shale_core::record::batch::stamp;
    use shale_core::record::{BatchBuilder, Compression, Record, decode_batches};

    /// One record of a test log: its key (none: keyless), value (none: a tombstone).
    type Write = (Option<u8>, Option<u8>);

    /// A log of batches of `writes`, from offset 0; producer `pid` writes the batches whose
    /// index is odd, so some producers' last batches fall below the cleaning point.
    fn log(batches: &[Vec<Write>], codec: Compression) -> Vec<Vec<u8>> {
        let mut next = 0;
        let mut out = Vec::new();
        for (i, writes) in batches.iter().enumerate() {
            let mut b = BatchBuilder::new(codec);
            if i % 2 == 1 {
                b = b.with_producer(7 + (i as i64 % 3), 0, next as i32);
            }
            for (k, v) in writes {
                b.push(Record {
                    key: k.map(|k| Bytes::from(vec![k])),
                    value: v.map(|v| Bytes::from(vec![v])),
                    headers: vec![],
                    timestamp_ms: 1_000 + next,
                });
            }
            let mut batch = b.build().to_vec();
            stamp(&mut batch, next, 0);
            next += writes.len() as i64;
            out.push(batch);
        }
        out
    }

    fn header(batch: &[u8]) -> BatchHeader {
        BatchHeader::parse(batch).unwrap()
    }

    /// Cleans `log` below the batch index `point`, mapping from the batch index `dirty`.
    fn clean(
        log: &[Vec<u8>],
        dirty: usize,
        point: usize,
        memory: usize,
        rules: &Rules,
    ) -> Vec<Vec<u8>> {
        clean_reporting(log, (dirty, point), memory, rules).0
    }

    /// [`clean`], with the offsets of the abort markers it removed.
    fn clean_reporting(
        log: &[Vec<u8>],
        (dirty, point): (usize, usize),
        memory: usize,
        rules: &Rules,
    ) -> (Vec<Vec<u8>>, Vec<i64>) {
        let end = log
            .get(point)
            .map_or_else(|| header(log.last().unwrap()).next_offset(), |b| header(b).base_offset);
        let mut map = OffsetMap::with_memory(memory);
        let limits = Limits::default();
        let batches = log[dirty..point].iter().map(Vec::as_slice);
        let mapped = map_section(batches, &mut map, &limits, end, &rules.aborted).unwrap();
        let mut out = Vec::new();
        let mut markers = Markers::removing();
        for batch in log {
            if header(batch).base_offset >= mapped {
                out.push(batch.clone());
                continue;
            }
            match clean_batch(batch, &map, (rules, &mut markers), &limits).unwrap() {
                Cleaned::Whole => out.push(batch.clone()),
                Cleaned::Part(b) => out.push(b),
                Cleaned::Gone => {}
            }
        }
        (out, markers.aborts)
    }

    /// A log from offset 0 of transactions of one record each, `(producer, key, end)`: the
    /// record (its value its offset) and the marker of `end` after it.
    fn txn_log(txns: &[(i64, u8, shale_core::record::control::MarkerKind)]) -> Vec<Vec<u8>> {
        let mut log = Vec::new();
        for (i, (pid, key, end)) in txns.iter().enumerate() {
            let offset = 2 * i as i64;
            let mut txn =
                BatchBuilder::new(Compression::None).with_producer(*pid, 0, 0).transactional();
            txn.push(Record {
                key: Some(Bytes::from(vec![*key])),
                value: Some(Bytes::from(vec![offset as u8])),
                headers: vec![],
                timestamp_ms: 1_000,
            });
            let mut txn = txn.build().to_vec();
            stamp(&mut txn, offset, 0);
            let marker = shale_core::record::control::Marker { kind: *end, coordinator_epoch: 0 };
            let mut marker = marker.batch(*pid, 0, 1_000).to_vec();
            stamp(&mut marker, offset + 1, 0);
            log.extend([txn, marker]);
        }
        log
    }

    /// The base offsets of the control batches of `log`.
    fn control(log: &[Vec<u8>]) -> Vec<i64> {
        log.iter().map(|b| header(b)).filter(|h| h.is_control()).map(|h| h.base_offset).collect()
    }

    fn last_batches(log: &[Vec<u8>]) -> HashSet<i64> {
        let mut last = HashMap::new();
        for b in log {
            let h = header(b);
            if h.producer_id >= 0 {
                last.insert(h.producer_id, h.base_offset);
            }
        }
        last.into_values().collect()
    }

    fn records(log: &[Vec<u8>]) -> Vec<shale_core::record::DecodedRecord> {
        let all: Vec<u8> = log.concat();
        decode_batches(&Bytes::from(all), &Limits::default()).unwrap()
    }

    fn writes() -> impl Strategy<Value = Vec<Vec<Write>>> {
        let write = (
            proptest::option::weighted(0.95, 0u8..12),
            proptest::option::weighted(0.85, any::<u8>()),
        );
        proptest::collection::vec(proptest::collection::vec(write, 1..6), 1..40)
    }

    proptest! {
        /// Against a model: after cleaning below a point, reading from offset 0 yields for
        /// every key its latest value below the point (none once its tombstone may go),
        /// everything from the point on unchanged, offsets strictly increasing and each the
        /// record's original offset, and every producer's last batch still there. Cleaning
        /// the result again changes nothing.
        #[test]
        fn cleaning_keeps_each_keys_latest_record_at_its_offset(
            batches in writes(),
            point_at in 0.0f64..=1.0,
            horizon_at in 0.0f64..=1.0,
            codec in prop_oneof![Just(Compression::None), Just(Compression::Zstd)],
        ) {
            let log = log(&batches, codec);
            let point = (log.len() as f64 * point_at) as usize;
            let all = records(&log);
            let end = log.get(point).map_or(i64::MAX, |b| header(b).base_offset);
            let tombstones_below = (all.len() as f64 * horizon_at) as i64;
            let rules = Rules { tombstones_below, last_batches: last_batches(&log), ..Rules::default() };
            let cleaned = clean(&log, 0, point, 1 << 20, &rules);

            // The model: below the point, each key's latest record, unless it is a
            // tombstone below the horizon; from the point on, everything.
            let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for r in all.iter().filter(|r| r.offset < end) {
                if let Some(k) = &r.key {
                    latest.insert(k.to_vec(), r.offset);
                }
            }
            let wanted: Vec<_> = all.iter().filter(|r| {
                r.offset >= end || r.key.as_ref().is_some_and(|k| {
                    latest[&k.to_vec()] == r.offset && !(r.value.is_none() && r.offset < tombstones_below)
                })
            }).cloned().collect();
            let got = records(&cleaned);
            prop_assert_eq!(&got, &wanted);
            prop_assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
            // The batches' offsets: each kept batch still ends where it ended.
            let ends: HashSet<(i64, i64)> = log.iter().map(|b| (header(b).base_offset, header(b).next_offset())).collect();
            prop_assert!(cleaned.iter().all(|b| ends.contains(&(header(b).base_offset, header(b).next_offset()))));
            // Every producer's last batch is there, with its producer fields.
            for base in &rules.last_batches {
                let before = log.iter().map(|b| header(b)).find(|h| h.base_offset == *base).unwrap();
                let after = cleaned.iter().map(|b| header(b)).find(|h| h.base_offset == *base);
                prop_assert!(after.is_some(), "producer {}'s last batch at {} was dropped", before.producer_id, base);
                let after = after.unwrap();
                prop_assert_eq!((after.producer_id, after.producer_epoch, after.base_sequence),
                    (before.producer_id, before.producer_epoch, before.base_sequence));
            }
            let again = clean(&cleaned, 0, cleaned.iter().position(|b| header(b).base_offset >= end).unwrap_or(cleaned.len()), 1 << 20, &rules);
            prop_assert_eq!(records(&again), got);
        }

        /// A map too small for the dirty section cleans less, never wrongly: what it keeps
        /// is a superset of the full clean's, and every key's latest record is there.
        #[test]
        fn a_small_map_cleans_less_but_never_removes_a_keys_latest_record(
            batches in writes(),
            keys in 1usize..6,
        ) {
            let log = log(&batches, Compression::None);
            let rules = Rules { tombstones_below: 0, last_batches: last_batches(&log), ..Rules::default() };
            let full = records(&clean(&log, 0, log.len(), 1 << 20, &rules));
            let small = records(&clean(&log, 0, log.len(), keys * ENTRY_BYTES, &rules));
            let small_offsets: HashSet<i64> = small.iter().map(|r| r.offset).collect();
            prop_assert!(full.iter().all(|r| small_offsets.contains(&r.offset)), "the small map removed a latest record");
            prop_assert!(small.len() >= full.len());
        }
    }

    #[test]
    fn the_cleaning_point_stops_at_the_batch_whose_keys_did_not_fit() {
        let log = log(
            &[
                vec![(Some(1), Some(1)), (Some(2), Some(2))],
                vec![(Some(1), Some(3))],
                vec![(Some(3), Some(4))],
            ],
            Compression::None,
        );
        let mut map = OffsetMap::with_memory(2 * ENTRY_BYTES);
        let batches = log.iter().map(Vec::as_slice);
        let point =
            map_section(batches, &mut map, &Limits::default(), 4, &Default::default()).unwrap();
        assert_eq!(point, 3, "key 3 (at offset 3) did not fit: cleaned up to it, not past");
        let mut map = OffsetMap::with_memory(3 * ENTRY_BYTES);
        let batches = log.iter().map(Vec::as_slice);
        assert_eq!(
            map_section(batches, &mut map, &Limits::default(), 4, &Default::default()).unwrap(),
            4
        );
    }

    #[test]
    fn a_clean_section_keeps_keys_the_dirty_section_lacks() {
        // Batches 0-1 were cleaned before; the dirty section (batch 2) updates key 1 only.
        let log = log(
            &[
                vec![(Some(1), Some(10)), (Some(2), Some(20))],
                vec![(Some(3), Some(30))],
                vec![(Some(1), Some(11))],
            ],
            Compression::None,
        );
        let cleaned = clean(&log, 2, 3, 1 << 20, &Rules::default());
        let got: Vec<(i64, Option<u8>)> =
            records(&cleaned).iter().map(|r| (r.offset, r.value.as_ref().map(|v| v[0]))).collect();
        assert_eq!(got, [(1, Some(20)), (2, Some(30)), (3, Some(11))]);
    }

    /// An aborted transaction's records neither shadow older values of their keys nor stay:
    /// key 1 keeps its committed value 10 though the aborted batch wrote 99 after it (and
    /// key 2, written only by the abort, is gone); the marker stays whole.
    #[test]
    fn aborted_records_are_removed_and_shadow_nothing() {
        use shale_core::record::control::{AbortedSet, AbortedTxn, Marker, MarkerKind};
        let mut log = log(&[vec![(Some(1), Some(10))]], Compression::None);
        let mut txn = BatchBuilder::new(Compression::None).with_producer(7, 0, 0).transactional();
        for (k, v) in [(1u8, 99u8), (2, 98)] {
            txn.push(Record {
                key: Some(Bytes::from(vec![k])),
                value: Some(Bytes::from(vec![v])),
                headers: vec![],
                timestamp_ms: 1_000,
            });
        }
        let mut txn = txn.build().to_vec();
        stamp(&mut txn, 1, 0);
        let mut marker =
            Marker { kind: MarkerKind::Abort, coordinator_epoch: 0 }.batch(7, 0, 1_000).to_vec();
        stamp(&mut marker, 3, 0);
        log.extend([txn, marker]);
        let aborted =
            AbortedSet::new([AbortedTxn { producer_id: 7, first_offset: 1, last_offset: 3 }]);
        let rules = Rules { aborted, ..Rules::default() };
        let cleaned = clean(&log, 0, 3, 1 << 20, &rules);
        let got: Vec<(i64, Option<u8>)> =
            records(&cleaned).iter().map(|r| (r.offset, r.value.as_ref().map(|v| v[0]))).collect();
        assert_eq!(got, [(0, Some(10))], "the committed value alone");
        assert_eq!(
            cleaned.len(),
            2,
            "the marker stays: {:?}",
            cleaned.iter().map(|b| header(b)).collect::<Vec<_>>()
        );
        assert!(header(&cleaned[1]).is_control());
    }

    /// Commit markers go once their transaction left nothing and the horizon has passed,
    /// unless they are their producer's last batch; a marker whose transaction kept a
    /// record, one above the horizon, and abort markers stay.
    #[test]
    fn a_commit_marker_goes_once_its_transaction_left_nothing_past_the_horizon() {
        use shale_core::record::control::MarkerKind::{Abort, Commit};
        let log = txn_log(&[
            // Producer 7 unless said. 0-1: key 1, overwritten at 8: its marker (1) may go.
            (7, 1, Commit),
            // 2-3: key 2, never overwritten: its record stays, so does its marker (3).
            (7, 2, Commit),
            // 4-5: producer 9 aborts key 3: its record goes, its abort marker (5) stays.
            (9, 3, Abort),
            // 6-7: key 4, overwritten at 10: its marker (7) may go.
            (7, 4, Commit),
            // 8-9 and 10-11: keys 1 and 4 again, kept (the latest), markers too.
            (7, 1, Commit),
            (7, 4, Commit),
            // 12-13: key 5, overwritten at 14, but its marker (13) is past the horizon (12).
            (7, 5, Commit),
            (7, 5, Commit),
        ]);
        let aborted = AbortedSet::new([shale_core::record::control::AbortedTxn {
            producer_id: 9,
            first_offset: 4,
            last_offset: 5,
        }]);
        let rules = Rules {
            tombstones_below: 12,
            last_batches: [5, 15].into(),
            aborted: aborted.clone(),
            abort_markers: false,
        };
        let cleaned = clean(&log, 0, log.len(), 1 << 20, &rules);
        assert_eq!(control(&cleaned), [3, 5, 9, 11, 13, 15], "the markers at 1 and 7 went");
        let again = clean(&cleaned, 0, cleaned.len(), 1 << 20, &rules);
        assert_eq!(again, cleaned, "a second clean changes nothing");
        // A producer's last batch stays, whatever it is.
        let last = Rules { last_batches: [5, 7, 15].into(), ..rules.clone() };
        assert_eq!(control(&clean(&log, 0, log.len(), 1 << 20, &last)), [3, 5, 7, 9, 11, 13, 15]);
        // Before the horizon passed: every marker stays.
        let early = Rules { tombstones_below: 0, ..rules };
        assert_eq!(control(&clean(&log, 0, log.len(), 1 << 20, &early)).len(), 8);
    }

    /// An abort marker goes, when the caller allows it, in the clean after the one that
    /// removed its transaction's records (that clean reports it, for the caller's index),
    /// past the horizon and unless it is its producer's last batch.
    #[test]
    fn an_abort_marker_goes_in_the_clean_after_the_one_that_removed_its_records() {
        use shale_core::record::control::AbortedTxn;
        use shale_core::record::control::MarkerKind::{Abort, Commit};
        // Producer 9 aborts at 0-1 and 4-5 (its last batch, 5, stays); producer 7
        // commits key 1 at 2-3 and again at 6-7 (the first commit's marker may go).
        let log = txn_log(&[(9, 3, Abort), (7, 1, Commit), (9, 4, Abort), (7, 1, Commit)]);
        let txn =
            |first, last| AbortedTxn { producer_id: 9, first_offset: first, last_offset: last };
        let rules = Rules {
            tombstones_below: 8,
            last_batches: [5, 7].into(),
            aborted: AbortedSet::new([txn(0, 1), txn(4, 5)]),
            abort_markers: true,
        };
        let (first, aborts) = clean_reporting(&log, (0, log.len()), 1 << 20, &rules);
        assert_eq!(control(&first), [1, 5, 7], "the records went, their abort markers stay");
        assert!(aborts.is_empty(), "{aborts:?}");
        assert_eq!(records(&first).len(), 1, "key 1's latest committed record alone");
        let (second, aborts) = clean_reporting(&first, (0, first.len()), 1 << 20, &rules);
        assert_eq!(control(&second), [5, 7], "the marker at 1 went, its producer's last stays");
        assert_eq!(aborts, [1], "and is reported");
        let (third, aborts) = clean_reporting(&second, (0, second.len()), 1 << 20, &rules);
        assert_eq!((third, aborts), (second, vec![]), "a third clean changes nothing");
        // Not allowed, or before the horizon: it stays.
        let kept = Rules { abort_markers: false, ..rules.clone() };
        assert_eq!(control(&clean(&first, 0, first.len(), 1 << 20, &kept)), [1, 5, 7]);
        let early = Rules { tombstones_below: 1, ..rules };
        assert_eq!(control(&clean(&first, 0, first.len(), 1 << 20, &early)), [1, 5, 7]);
    }
}
