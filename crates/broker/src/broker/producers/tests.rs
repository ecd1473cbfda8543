//! The producer state's rules: idempotence, transactions, truncation and snapshots.

use super::*;
use shale_core::record::batch::ATTR_CONTROL;

fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 49,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        records_count: records,
    }
}

#[test]
fn duplicates_are_recognised_and_gaps_refused() {
    let s = ProducerStates::default();
    let a = header(7, 0, 0, 3);
    assert_eq!(s.check(&a).unwrap(), Verdict::Append);
    s.record(&a, 100);
    let b = header(7, 0, 3, 2);
    assert_eq!(s.check(&b).unwrap(), Verdict::Append);
    s.record(&b, 103);
    match s.check(&a).unwrap() {
        Verdict::Duplicate(m) => assert_eq!((m.base_offset, m.last_offset), (100, 102)),
        v => panic!("{v:?}"),
    }
    let gap = header(7, 0, 9, 1);
    assert_eq!(s.check(&gap).unwrap_err().reason, "OUT_OF_ORDER_SEQUENCE");
    assert_eq!(s.check(&header(7, 0, 5, 1)).unwrap(), Verdict::Append);
    // A newer epoch starts over; an older one is fenced.
    s.record(&header(7, 1, 0, 1), 200);
    assert_eq!(s.check(&header(7, 0, 5, 1)).unwrap_err().reason, "INVALID_PRODUCER_EPOCH");
    // Truncation forgets what was cut.
    s.truncate(200);
    assert_eq!(s.check(&header(7, 1, 0, 1)).unwrap(), Verdict::Append);
}

/// As Kafka: a known producer's new epoch starts at sequence 0; a producer this
/// partition has no state for (never seen, or its batches expired) is accepted at any
/// sequence.
#[test]
fn a_new_epoch_starts_at_sequence_zero_and_unknown_producers_at_any() {
    let s = ProducerStates::default();
    assert_eq!(s.check(&header(9, 0, 42, 1)).unwrap(), Verdict::Append, "unknown producer");
    s.record(&header(7, 0, 0, 1), 10);
    let e = s.check(&header(7, 1, 5, 1)).unwrap_err();
    assert_eq!((&*e.reason, e.kind), ("OUT_OF_ORDER_SEQUENCE", ErrorKind::Invalid));
    assert_eq!(s.check(&header(7, 1, 0, 1)).unwrap(), Verdict::Append);
}

#[test]
fn a_snapshot_keeps_the_state_below_its_offset_and_refuses_damage() {
    let s = ProducerStates::default();
    s.record(&header(7, 2, 0, 3), 100);
    s.record(&header(7, 2, 3, 1), 103);
    s.record(&header(8, 0, 0, 1), 104);
    let bytes = s.encode_snapshot(104);
    let loaded = ProducerStates::default();
    assert_eq!(loaded.load_snapshot(&bytes), Ok(104));
    match loaded.check(&header(7, 2, 3, 1)).unwrap() {
        Verdict::Duplicate(m) => assert_eq!(m.base_offset, 103),
        v => panic!("{v:?}"),
    }
    // Producer 8's batch is at 104, not below the snapshot: replay brings it back.
    assert_eq!(loaded.check(&header(8, 0, 5, 1)).unwrap(), Verdict::Append);
    let mut bad = bytes.clone();
    bad[12] ^= 1;
    assert_eq!(ProducerStates::default().load_snapshot(&bad), Err("checksum mismatch".into()));
    assert!(ProducerStates::default().load_snapshot(&bytes[..10]).is_err());
    assert_eq!(snapshot_offset(&snapshot_name(104)), Some(104));
    assert_eq!(snapshot_offset("00000000000000000104.log"), None);
}

fn txn(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
    BatchHeader { attributes: ATTR_TRANSACTIONAL, ..header(pid, epoch, seq, records) }
}

fn marker_header(pid: i64, epoch: i16) -> BatchHeader {
    BatchHeader {
        attributes: ATTR_TRANSACTIONAL | ATTR_CONTROL,
        base_sequence: -1,
        ..header(pid, epoch, -1, 1)
    }
}

const COMMIT: Marker = Marker { kind: MarkerKind::Commit, coordinator_epoch: 3 };
const ABORT: Marker = Marker { kind: MarkerKind::Abort, coordinator_epoch: 3 };

/// The last stable offset stops at the oldest open transaction, and passes it once the
/// transaction's marker is below the high watermark, not before.
#[test]
fn the_last_stable_offset_waits_for_the_oldest_transaction_and_its_replicated_marker() {
    let s = ProducerStates::default();
    assert_eq!(s.last_stable_offset(0), 0);
    s.record(&header(1, 0, 0, 2), 0); // plain: 0..=1
    s.record(&txn(7, 0, 0, 3), 2); // producer 7's transaction: 2..=4
    s.record(&txn(8, 0, 0, 1), 5); // producer 8's: 5
    s.record(&txn(7, 0, 3, 1), 6); // 7 again: same transaction
    assert_eq!(s.last_stable_offset(7), 2);
    assert_eq!(s.open_transactions(), vec![(7, 2), (8, 5)]);
    let ended = s.record_marker(&marker_header(7, 0), &COMMIT, 7).unwrap();
    assert_eq!((ended.first_offset, ended.last_offset, ended.kind), (2, 7, MarkerKind::Commit));
    assert_eq!(s.last_stable_offset(7), 2, "the marker at 7 is not below the watermark yet");
    assert_eq!(s.last_stable_offset(8), 5, "producer 8's transaction is still open");
    assert!(s.record_marker(&marker_header(9, 0), &ABORT, 8).is_none(), "9 had none here");
    let ended = s.record_marker(&marker_header(8, 0), &ABORT, 9).unwrap();
    assert_eq!((ended.first_offset, ended.kind), (5, MarkerKind::Abort));
    assert_eq!(s.last_stable_offset(9), 5, "8's marker at 9 is not below the watermark");
    assert_eq!(s.last_stable_offset(10), 10);
    assert!(s.open_transactions().is_empty());
    // A new transaction of producer 7 starts at its next transactional batch.
    s.record(&txn(7, 0, 4, 1), 10);
    assert_eq!(s.last_stable_offset(11), 10);
}

/// While its transaction is open a producer may not write plain batches at the same epoch;
/// a marker from an older producer epoch or an older coordinator is refused.
#[test]
fn transactions_refuse_plain_writes_and_stale_markers() {
    let s = ProducerStates::default();
    s.record(&txn(7, 2, 0, 1), 0);
    let e = s.check(&header(7, 2, 1, 1)).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "{e}");
    assert_eq!(s.check(&txn(7, 2, 1, 1)).unwrap(), Verdict::Append);
    let e = s.check_marker(&marker_header(7, 1), &COMMIT, true).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidProducerEpoch, "{e}");
    // Transactions v2: the marker carries the bumped epoch.
    s.check_marker(&marker_header(7, 3), &COMMIT, true).unwrap();
    s.record_marker(&marker_header(7, 3), &COMMIT, 1).unwrap();
    let older = Marker { kind: MarkerKind::Abort, coordinator_epoch: 2 };
    let e = s.check_marker(&marker_header(7, 3), &older, true).unwrap_err();
    assert_eq!(e.reason, Reason::TransactionCoordinatorFenced, "{e}");
    assert_eq!(s.check(&txn(7, 2, 1, 1)).unwrap_err().reason, Reason::InvalidProducerEpoch);
    assert_eq!(s.check(&header(7, 3, 0, 1)).unwrap(), Verdict::Append, "plain at the new epoch");
}

/// A truncation undoes what was cut: transactions begun there vanish, and those whose
/// marker was cut are open again.
#[test]
fn truncation_reopens_transactions_whose_marker_was_cut() {
    let s = ProducerStates::default();
    s.record(&txn(7, 0, 0, 1), 0);
    s.record_marker(&marker_header(7, 0), &COMMIT, 1);
    s.record(&txn(8, 0, 0, 1), 2);
    s.truncate(1);
    assert_eq!(s.open_transactions(), vec![(7, 0)]);
    assert_eq!(s.last_stable_offset(5), 0);
    s.truncate(0);
    assert!(s.open_transactions().is_empty());
    assert_eq!(s.last_stable_offset(5), 5);
}

/// A snapshot keeps open and unstable transactions, and the coordinator epoch; a version 1
/// snapshot (before transactions) still loads.
#[test]
fn a_snapshot_keeps_transactions_and_loads_version_1() {
    let s = ProducerStates::default();
    s.record(&txn(8, 0, 0, 1), 0);
    s.record_marker(&marker_header(8, 0), &ABORT, 1);
    s.record(&txn(7, 0, 0, 1), 2);
    s.record(&txn(9, 0, 0, 1), 3);
    let loaded = ProducerStates::default();
    assert_eq!(loaded.load_snapshot(&s.encode_snapshot(3)), Ok(3));
    assert_eq!(loaded.open_transactions(), vec![(7, 2)], "9 began at the snapshot's offset");
    assert_eq!(loaded.last_stable_offset(1), 0, "8's marker at 1 is not below 1");
    assert_eq!(loaded.last_stable_offset(3), 2, "7's transaction is open");
    let older = Marker { kind: MarkerKind::Abort, coordinator_epoch: 1 };
    let e = loaded.check_marker(&marker_header(8, 0), &older, true).unwrap_err();
    assert_eq!(e.reason, Reason::TransactionCoordinatorFenced);
    loaded.record_marker(&marker_header(7, 0), &COMMIT, 4);
    assert_eq!(loaded.last_stable_offset(5), 5);
    // Version 1: header SHPS 1, offset, one producer (id 7, epoch 2, one batch), CRC.
    let mut v1 = b"SHPS\x01\0\0\0".to_vec();
    v1.extend_from_slice(&5i64.to_be_bytes());
    v1.extend_from_slice(&1u32.to_be_bytes());
    v1.extend_from_slice(&7i64.to_be_bytes());
    v1.extend_from_slice(&2i16.to_be_bytes());
    v1.push(1);
    for v in [0i32, 0] {
        v1.extend_from_slice(&v.to_be_bytes());
    }
    for v in [4i64, 4] {
        v1.extend_from_slice(&v.to_be_bytes());
    }
    let crc = crc32c::crc32c(&v1);
    v1.extend_from_slice(&crc.to_be_bytes());
    let old = ProducerStates::default();
    assert_eq!(old.load_snapshot(&v1), Ok(5));
    match old.check(&header(7, 2, 0, 1)).unwrap() {
        Verdict::Duplicate(m) => assert_eq!(m.base_offset, 4),
        v => panic!("{v:?}"),
    }
}

/// Transactions v2 (KIP-890, and KIP-1228's strict check): a transaction's markers carry
/// the epoch after its batches', so a marker at the epoch of the open transaction's batches
/// is a stale one of the transaction before (a late resend) and must not end this one.
#[test]
fn a_v2_marker_at_the_open_transactions_epoch_is_stale() {
    let s = ProducerStates::default();
    s.record(&txn(7, 1, 0, 1), 0);
    s.record_marker(&marker_header(7, 2), &COMMIT, 1); // its marker, bumped to 2
    s.record(&txn(7, 2, 0, 1), 2); // the next transaction, at epoch 2
    let e = s.check_marker(&marker_header(7, 2), &COMMIT, true).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidProducerEpoch, "{e}");
    s.check_marker(&marker_header(7, 3), &COMMIT, true).unwrap();
    // Transactions v1 keep the epoch: their marker has the batches' epoch.
    s.check_marker(&marker_header(7, 2), &COMMIT, false).unwrap();
    // With nothing open, a resend at the current epoch ends nothing and is harmless.
    s.record_marker(&marker_header(7, 3), &COMMIT, 3);
    s.check_marker(&marker_header(7, 3), &COMMIT, true).unwrap();
}

/// KIP-890 part 1: a transactional batch opens its producer's transaction on a partition
/// only with a guard from the coordinator's confirmation, and a marker of the producer in
/// between spoils the guard (the batch would be a late one of the transaction just ended).
#[test]
fn a_transaction_opens_only_with_a_guard_no_marker_spoiled() {
    let s = ProducerStates::default();
    let e = s.check_txn_start(&txn(7, 0, 0, 1), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "{e}");
    s.check_txn_start(&header(7, 0, 0, 1), None).unwrap();
    let guard = s.verified(7, 0);
    s.check_txn_start(&txn(7, 0, 0, 1), Some(guard)).unwrap();
    let e = s.check_txn_start(&txn(7, 1, 0, 1), Some(guard)).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "a guard is for its epoch");
    s.record(&txn(7, 0, 0, 1), 0);
    s.check_txn_start(&txn(7, 0, 1, 1), None).unwrap();
    // The transaction ends here; the guard given before is spoiled.
    s.record_marker(&marker_header(7, 0), &COMMIT, 1);
    let e = s.check_txn_start(&txn(7, 0, 1, 1), Some(guard)).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "late batch of the ended transaction");
    let again = s.verified(7, 0);
    s.check_txn_start(&txn(7, 0, 1, 1), Some(again)).unwrap();
}

/// An abort marker leaves an entry in the aborted index (its producer, first and last
/// offset); a commit does not. A read from `from` below `upper` gets each aborted
/// transaction that overlaps it, as Kafka's fetch lists them for `read_committed` readers.
#[test]
fn aborted_transactions_are_indexed_for_the_reads_they_overlap() {
    let s = ProducerStates::default();
    s.record(&txn(7, 0, 0, 2), 0); // 7: 0..=1, aborted at 4
    s.record(&txn(8, 0, 0, 1), 2); // 8: 2, committed at 3
    s.record_marker(&marker_header(8, 0), &COMMIT, 3);
    s.record_marker(&marker_header(7, 0), &ABORT, 4);
    s.record(&txn(9, 0, 0, 1), 5); // 9: 5, aborted at 6
    s.record_marker(&marker_header(9, 0), &ABORT, 6);
    assert_eq!(s.aborted_between(0, 7), vec![(7, 0), (9, 5)]);
    assert_eq!(s.aborted_between(2, 5), vec![(7, 0)], "7 ends at 4, within; 9 starts at 5");
    assert_eq!(s.aborted_between(5, 6), vec![(9, 5)]);
    assert_eq!(s.aborted_between(7, 9), vec![], "everything ended before 7");
    // A marker for a producer with nothing open here ends nothing: no entry.
    s.record_marker(&marker_header(10, 0), &ABORT, 7);
    assert_eq!(s.aborted_between(7, 9), vec![]);
    // The log start passing an entry's last offset drops it.
    s.forget_before(5);
    assert_eq!(s.aborted_between(0, 7), vec![(9, 5)]);
}

/// Truncation drops the entries of aborts it cut (the transaction is open again), and a
/// snapshot keeps the entries below its offset; a version 2 snapshot loads with none.
#[test]
fn the_aborted_index_follows_truncation_and_snapshots() {
    let s = ProducerStates::default();
    s.record(&txn(7, 0, 0, 1), 0);
    s.record_marker(&marker_header(7, 0), &ABORT, 1);
    s.record(&txn(8, 0, 0, 1), 2);
    s.record_marker(&marker_header(8, 0), &ABORT, 3);
    let loaded = ProducerStates::default();
    assert_eq!(loaded.load_snapshot(&s.encode_snapshot(3)), Ok(3));
    assert_eq!(loaded.aborted_between(0, 9), vec![(7, 0)], "8's marker is at the offset");
    assert_eq!(loaded.open_transactions(), vec![(8, 2)]);
    s.truncate(3);
    assert_eq!(s.aborted_between(0, 9), vec![(7, 0)]);
    assert_eq!(s.open_transactions(), vec![(8, 2)], "its abort was cut");
    // Version 2 (no index): header SHPS 2, offset, no producers, no unstable, CRC.
    let mut v2 = b"SHPS\x02\0\0\0".to_vec();
    v2.extend_from_slice(&9i64.to_be_bytes());
    v2.extend_from_slice(&0u32.to_be_bytes());
    v2.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32c::crc32c(&v2);
    v2.extend_from_slice(&crc.to_be_bytes());
    let old = ProducerStates::default();
    assert_eq!(old.load_snapshot(&v2), Ok(9));
    assert_eq!(old.aborted_between(0, 9), vec![]);
}
