//! The transaction rules, case by case against Kafka's coordinator.

use super::state::*;
use shale_core::error::Reason;

const ID: &str = "app-1";
const NOW: i64 = 1_000_000;

fn ask(timeout_ms: i32, expected: Option<(i64, i16)>) -> InitAsk {
    InitAsk { timeout_ms, expected, max_timeout_ms: 900_000, now_ms: NOW }
}

fn ready(outcome: InitOutcome) -> TxnRecord {
    match outcome {
        InitOutcome::Ready(r) => r,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn prepared(outcome: EndOutcome) -> TxnRecord {
    match outcome {
        EndOutcome::Prepare(r) => r,
        other => panic!("expected Prepare, got {other:?}"),
    }
}

/// A fresh transactional id at producer 7, epoch 0, with one partition in an open
/// transaction.
fn ongoing() -> TxnRecord {
    let r = ready(init_producer_id(ID, None, &ask(60_000, None), Some(7)).unwrap());
    add_to_txn(ID, Some(&r), (7, 0), &[("t".into(), 0)], &[], true, NOW).unwrap().unwrap()
}

fn end(producer_id: i64, epoch: i16, commit: bool, tv2: bool) -> EndAsk {
    EndAsk { producer_id, epoch, commit, tv2, now_ms: NOW + 1 }
}

#[test]
fn init_issues_an_id_then_bumps_its_epoch_and_checks_kip_360_expectations() {
    let r = ready(init_producer_id(ID, None, &ask(60_000, None), Some(7)).unwrap());
    assert_eq!((r.producer_id, r.producer_epoch, r.state), (7, 0, TxnState::Empty));
    let r = ready(init_producer_id(ID, Some(&r), &ask(60_000, None), None).unwrap());
    assert_eq!((r.producer_id, r.producer_epoch), (7, 1));
    // KIP-360: the producer names the epoch it had; a retry of that bump is answered as is.
    let bumped = ready(init_producer_id(ID, Some(&r), &ask(60_000, Some((7, 1))), None).unwrap());
    assert_eq!((bumped.producer_epoch, bumped.last_producer_epoch), (2, 1));
    let again =
        ready(init_producer_id(ID, Some(&bumped), &ask(60_000, Some((7, 1))), None).unwrap());
    assert_eq!(again, bumped, "a retry writes nothing new");
    let e = init_producer_id(ID, Some(&bumped), &ask(60_000, Some((7, 0))), None).unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced, "{e}");
    let e = init_producer_id(ID, Some(&bumped), &ask(60_000, Some((8, 2))), None).unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced, "another producer id: {e}");
    for bad in [0, -1, 900_001] {
        let e = init_producer_id(ID, None, &ask(bad, None), Some(7)).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidTransactionTimeout, "{bad}: {e}");
        assert!(e.message.contains(&bad.to_string()), "names the value: {e}");
    }
}

#[test]
fn adding_opens_a_transaction_once_and_checks_the_producer() {
    let r = ongoing();
    assert_eq!((r.state, r.started_ms), (TxnState::Ongoing, NOW));
    assert!(
        add_to_txn(ID, Some(&r), (7, 0), &[("t".into(), 0)], &[], true, NOW).unwrap().is_none()
    );
    let more =
        add_to_txn(ID, Some(&r), (7, 0), &[("u".into(), 3)], &["g".into()], true, NOW + 5).unwrap();
    let more = more.unwrap();
    assert_eq!(more.partition_list(), vec![("t".into(), 0), ("u".into(), 3)]);
    assert_eq!((more.started_ms, more.groups.len()), (NOW, 1), "the start stays");
    let e = add_to_txn(ID, Some(&r), (7, 1), &[], &[], true, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced);
    let e = add_to_txn(ID, Some(&r), (8, 0), &[], &[], true, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidProducerIdMapping);
    let e = add_to_txn(ID, None, (7, 0), &[], &[], true, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidProducerIdMapping, "unknown id");
    assert!(in_txn(ID, Some(&r), (7, 0), ("t", 0)).unwrap());
    assert!(!in_txn(ID, Some(&r), (7, 0), ("t", 1)).unwrap());
    let p = prepared(end_txn(ID, Some(&r), &end(7, 0, true, true), None).unwrap());
    let e = add_to_txn(ID, Some(&p), (7, 1), &[], &[], true, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::ConcurrentTransactions, "while its markers are written");
}

/// Transactions v2: each end bumps the epoch, the markers carry the new one, and a retry
/// at the old epoch is answered once complete.
#[test]
fn a_v2_commit_bumps_the_epoch_and_answers_its_retry() {
    let r = ongoing();
    let p = prepared(end_txn(ID, Some(&r), &end(7, 0, true, true), None).unwrap());
    assert_eq!(
        (p.state, p.marker_producer(), p.last_producer_epoch),
        (TxnState::PrepareCommit, (7, 1), 0)
    );
    assert_eq!(p.partition_list(), vec![("t".into(), 0)], "the markers' partitions");
    let e = end_txn(ID, Some(&p), &end(7, 0, true, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::ConcurrentTransactions, "a retry while the markers go out");
    let e = end_txn(ID, Some(&p), &end(7, 0, false, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState);
    let done = complete(&p, NOW + 2);
    assert_eq!((done.state, done.started_ms), (TxnState::CompleteCommit, -1));
    assert!(done.partitions.is_empty());
    assert_eq!(end_txn(ID, Some(&done), &end(7, 0, true, true), None).unwrap(), EndOutcome::Done);
    let e = end_txn(ID, Some(&done), &end(7, 0, false, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "abort after commit");
    let e = end_txn(ID, Some(&done), &end(7, 1, true, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "commit with nothing open");
    // An abort with nothing open bumps the epoch too (v2).
    let empty_abort = prepared(end_txn(ID, Some(&done), &end(7, 1, false, true), None).unwrap());
    assert_eq!(empty_abort.marker_producer(), (7, 2));
    assert!(empty_abort.partitions.is_empty(), "no markers to write");
    let e = end_txn(ID, Some(&done), &end(7, -1, false, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced);
}

/// Transactions v1 keep the epoch; a retry at the same epoch is answered once complete.
#[test]
fn a_v1_end_keeps_the_epoch() {
    let r = ongoing();
    let p = prepared(end_txn(ID, Some(&r), &end(7, 0, false, false), None).unwrap());
    assert_eq!((p.state, p.marker_producer()), (TxnState::PrepareAbort, (7, 0)));
    let done = complete(&p, NOW);
    assert_eq!(end_txn(ID, Some(&done), &end(7, 0, false, false), None).unwrap(), EndOutcome::Done);
    let e = end_txn(ID, Some(&done), &end(7, 0, true, false), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState);
    let fresh = ready(init_producer_id(ID, None, &ask(60_000, None), Some(7)).unwrap());
    let e = end_txn(ID, Some(&fresh), &end(7, 0, true, false), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "nothing open");
}

/// A new instance fences the old one: its open transaction is aborted at the next epoch,
/// the new instance retries until the abort completes, then gets the epoch after it.
#[test]
fn a_new_instance_aborts_the_open_transaction_and_fences_the_old_one() {
    let r = ongoing();
    let fence = match init_producer_id(ID, Some(&r), &ask(60_000, None), None).unwrap() {
        InitOutcome::Fence(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!((fence.state, fence.marker_producer()), (TxnState::PrepareAbort, (7, 1)));
    let e = init_producer_id(ID, Some(&fence), &ask(60_000, None), None).unwrap_err();
    assert_eq!(e.reason, Reason::ConcurrentTransactions);
    let aborted = complete(&fence, NOW);
    let new = ready(init_producer_id(ID, Some(&aborted), &ask(60_000, None), None).unwrap());
    assert_eq!((new.producer_id, new.producer_epoch), (7, 2));
    for (commit, tv2) in [(true, true), (false, false), (true, false)] {
        let e = end_txn(ID, Some(&new), &end(7, 0, commit, tv2), None).unwrap_err();
        assert_eq!(e.reason, Reason::ProducerFenced, "the zombie's end ({commit}, {tv2})");
    }
    let e = add_to_txn(ID, Some(&new), (7, 0), &[("t".into(), 0)], &[], true, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced, "the zombie's add");
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_at_the_next_epoch() {
    let r = ongoing();
    assert!(!r.timed_out(NOW + 60_000));
    assert!(r.timed_out(NOW + 60_001));
    let p = abort_timed_out(&r, NOW + 60_001, None).unwrap();
    assert_eq!((p.state, p.marker_producer()), (TxnState::PrepareAbort, (7, 1)));
    assert!(!p.timed_out(NOW + 1_000_000), "only open transactions time out");
    let done = complete(&p, NOW);
    let e = end_txn(ID, Some(&done), &end(7, 0, true, true), None).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "its commit comes too late");
}

/// At an exhausted epoch an end moves the producer to a new id at epoch 0 on completion;
/// the markers carry the old id at the last epoch, and a retry from the old id is answered.
#[test]
fn an_exhausted_epoch_moves_to_a_new_producer_id() {
    let mut r = ongoing();
    r.producer_epoch = EXHAUSTED_EPOCH;
    assert!(end_needs_new_id(Some(&r)));
    let p =
        prepared(end_txn(ID, Some(&r), &end(7, EXHAUSTED_EPOCH, true, true), Some(99)).unwrap());
    assert_eq!((p.marker_producer(), p.next_producer_id), ((7, i16::MAX), 99));
    let done = complete(&p, NOW);
    assert_eq!((done.producer_id, done.producer_epoch, done.prev_producer_id), (99, 0, 7));
    let retry = end(7, EXHAUSTED_EPOCH, true, true);
    assert_eq!(end_txn(ID, Some(&done), &retry, None).unwrap(), EndOutcome::Done);
    let e = end_txn(ID, Some(&r), &end(7, EXHAUSTED_EPOCH, true, true), None).unwrap_err();
    assert!(e.message.contains("not allocated"), "the caller must allocate: {e}");
}

#[test]
fn the_record_round_trips_through_json() {
    let r = ongoing();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<TxnRecord>(&json).unwrap(), r);
    assert!(json.contains("\"Ongoing\""), "{json}");
}
