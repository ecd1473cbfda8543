use super::*;

const LIMITS: Limits = Limits { lock_ms: 1_000, delivery_limit: 3, max_in_flight: 10 };

fn batch(first: i64, last: i64) -> LogBatch {
    LogBatch { first, last, skip: false }
}

fn ack(first: i64, last: i64, types: &[Ack]) -> AckBatch {
    AckBatch { first, last, types: types.to_vec() }
}

/// How many records in flight are in `state`.
fn count(f: &InFlight, state: RecordState) -> usize {
    f.slots.iter().filter(|s| s.state == state).count()
}

fn member(name: &str) -> Arc<str> {
    Arc::from(name)
}

#[test]
fn members_share_a_partition_record_by_record() {
    let (a, b) = (member("a"), member("b"));
    let mut f = InFlight::new(0);
    let got_a = f.acquire(&a, &[batch(0, 4)], 2, 0, &LIMITS);
    assert_eq!(got_a, vec![Acquired { first: 0, last: 1, deliveries: 1 }]);
    // The next read starts past what a holds; b gets the rest of the batch.
    assert_eq!(f.next_read(&LIMITS), Some(2));
    let got_b = f.acquire(&b, &[batch(0, 4)], 10, 0, &LIMITS);
    assert_eq!(got_b, vec![Acquired { first: 2, last: 4, deliveries: 1 }]);
    assert_eq!(f.end(), 5);
    f.acknowledge("b", &[ack(2, 4, &[Ack::Accept])], &LIMITS).unwrap();
    // 0 and 1 are still a's: the start stays.
    assert_eq!(f.start(), 0);
    f.acknowledge("a", &[ack(0, 1, &[Ack::Accept])], &LIMITS).unwrap();
    assert_eq!((f.start(), f.end()), (5, 5));
}

#[test]
fn an_acknowledgement_of_records_not_held_changes_nothing() {
    let (a, b) = (member("a"), member("b"));
    let mut f = InFlight::new(10);
    f.acquire(&a, &[batch(10, 12)], 10, 0, &LIMITS);
    let e = f.acknowledge("b", &[ack(10, 12, &[Ack::Accept])], &LIMITS).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidRecordState);
    assert!(e.message.contains("offset 10"), "{}", e.message);
    // Part held, part not delivered yet: refused whole.
    let e = f.acknowledge("a", &[ack(11, 13, &[Ack::Accept])], &LIMITS).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidRecordState);
    assert_eq!(count(&f, RecordState::Acquired), 3);
    f.acknowledge("a", &[ack(10, 12, &[Ack::Accept])], &LIMITS).unwrap();
    // Twice: already acknowledged.
    let e = f.acknowledge("a", &[ack(12, 12, &[Ack::Accept])], &LIMITS).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidRecordState);
    assert!(f.acquire(&b, &[batch(10, 12)], 10, 0, &LIMITS).is_empty());
}

#[test]
fn per_offset_types_must_match_the_range() {
    let a = member("a");
    let mut f = InFlight::new(0);
    f.acquire(&a, &[batch(0, 2)], 10, 0, &LIMITS);
    let e = f.acknowledge("a", &[ack(0, 2, &[Ack::Accept, Ack::Accept])], &LIMITS).unwrap_err();
    assert!(e.message.contains("2 types"), "{}", e.message);
    assert!(f.acknowledge("a", &[ack(2, 0, &[Ack::Accept])], &LIMITS).is_err());
    assert!(Ack::from_code(4).is_err());
    let archived = f.acknowledge("a", &[ack(0, 2, &[Ack::Accept, Ack::Reject, Ack::Gap])], &LIMITS);
    assert_eq!(
        archived.unwrap(),
        vec![Archived { offset: 1, deliveries: 1, reason: ArchiveReason::Rejected }]
    );
    assert_eq!(f.start(), 3);
}

#[test]
fn released_and_lapsed_records_come_back_until_the_delivery_limit() {
    let (a, b) = (member("a"), member("b"));
    let mut f = InFlight::new(0);
    f.acquire(&a, &[batch(0, 1)], 10, 0, &LIMITS);
    // Released: at once available to anyone, delivery counted.
    f.acknowledge("a", &[ack(0, 0, &[Ack::Release])], &LIMITS).unwrap();
    assert_eq!(f.next_read(&LIMITS), Some(0));
    let got = f.acquire(&b, &[batch(0, 1)], 10, 5, &LIMITS);
    assert_eq!(got, vec![Acquired { first: 0, last: 0, deliveries: 2 }]);
    // The lock of b's lapses at 1_005, a's of offset 1 at 1_000.
    assert_eq!(f.next_deadline(), Some(1_000));
    assert_eq!(f.expire(999, &LIMITS).0, 0);
    assert_eq!(f.expire(1_005, &LIMITS).0, 2);
    let got = f.acquire(&a, &[batch(0, 1)], 10, 2_000, &LIMITS);
    assert_eq!(
        got,
        vec![
            Acquired { first: 0, last: 0, deliveries: 3 },
            Acquired { first: 1, last: 1, deliveries: 2 }
        ]
    );
    // Third delivery of offset 0 lapses: archived, with its count.
    let (_, archived) = f.expire(3_000, &LIMITS);
    assert_eq!(
        archived,
        vec![Archived { offset: 0, deliveries: 3, reason: ArchiveReason::DeliveryLimit }]
    );
    assert_eq!(f.start(), 1);
    // The lapsed acknowledgement of a stale holder is refused.
    assert!(f.acknowledge("a", &[ack(1, 1, &[Ack::Accept])], &LIMITS).is_err());
}

#[test]
fn a_member_that_goes_gives_back_only_its_own() {
    let (a, b) = (member("a"), member("b"));
    let mut f = InFlight::new(0);
    f.acquire(&a, &[batch(0, 1)], 10, 0, &LIMITS);
    f.acquire(&b, &[batch(2, 3)], 10, 0, &LIMITS);
    assert_eq!(f.release_member("a", &LIMITS).0, 2);
    assert_eq!((count(&f, RecordState::Available), count(&f, RecordState::Acquired)), (2, 2));
}

#[test]
fn the_window_bounds_records_in_flight() {
    let a = member("a");
    let limits = Limits { max_in_flight: 4, ..LIMITS };
    let mut f = InFlight::new(0);
    let got = f.acquire(&a, &[batch(0, 9)], 100, 0, &limits);
    assert_eq!(got, vec![Acquired { first: 0, last: 3, deliveries: 1 }]);
    assert_eq!(f.next_read(&limits), None, "full window, nothing available");
    f.acknowledge("a", &[ack(0, 1, &[Ack::Accept])], &limits).unwrap();
    assert_eq!(f.next_read(&limits), Some(4));
}

#[test]
fn skipped_batches_are_archived_not_delivered() {
    let a = member("a");
    let mut f = InFlight::new(0);
    let batches = [batch(0, 1), LogBatch { first: 2, last: 2, skip: true }, batch(3, 3)];
    let got = f.acquire(&a, &batches, 10, 0, &LIMITS);
    assert_eq!(
        got,
        vec![
            Acquired { first: 0, last: 1, deliveries: 1 },
            Acquired { first: 3, last: 3, deliveries: 1 }
        ]
    );
    f.acknowledge("a", &[ack(0, 1, &[Ack::Accept])], &LIMITS).unwrap();
    assert_eq!(f.start(), 3, "the marker at 2 is done");
}

#[test]
fn stored_state_round_trips_and_locks_do_not_survive_it() {
    let (a, b) = (member("a"), member("b"));
    let mut f = InFlight::new(100);
    f.acquire(&a, &[batch(100, 105)], 10, 0, &LIMITS);
    f.acknowledge("a", &[ack(101, 101, &[Ack::Accept])], &LIMITS).unwrap();
    f.acknowledge("a", &[ack(102, 102, &[Ack::Release])], &LIMITS).unwrap();
    f.acknowledge("a", &[ack(103, 103, &[Ack::Reject])], &LIMITS).unwrap();
    let runs = f.to_runs();
    let back = InFlight::from_runs(100, &runs).unwrap();
    assert_eq!((back.start(), back.end()), (100, 106));
    assert_eq!(back.state_at(100), (RecordState::Available, 1));
    assert_eq!(back.state_at(101), (RecordState::Acknowledged, 1));
    assert_eq!(back.state_at(103), (RecordState::Archived, 1));
    // The acknowledged record is never delivered again; the one a held comes back.
    let mut back = back;
    let got = back.acquire(&b, &[batch(100, 105)], 10, 0, &LIMITS);
    assert_eq!(
        got,
        vec![
            Acquired { first: 100, last: 100, deliveries: 2 },
            Acquired { first: 102, last: 102, deliveries: 2 },
            Acquired { first: 104, last: 105, deliveries: 2 }
        ]
    );
    let gap = [Run { first: 7, last: 8, state: RecordState::Available, deliveries: 1 }];
    assert!(InFlight::from_runs(100, &gap).is_err());
}

#[test]
fn records_the_log_dropped_are_done() {
    let a = member("a");
    let mut f = InFlight::new(0);
    f.acquire(&a, &[batch(0, 5)], 10, 0, &LIMITS);
    assert!(f.skip_to(3));
    assert_eq!((f.start(), f.end()), (3, 6));
    assert!(f.skip_to(50));
    assert_eq!((f.start(), f.end()), (50, 50));
    assert!(!f.skip_to(10));
}

#[test]
fn a_request_of_several_batches_is_applied_whole_or_not_at_all() {
    let a = member("a");
    let mut f = InFlight::new(0);
    f.acquire(&a, &[batch(0, 5)], 10, 0, &LIMITS);
    // The second batch names an offset never delivered: the first is not applied either.
    let e = f.acknowledge("a", &[ack(0, 1, &[Ack::Accept]), ack(5, 6, &[Ack::Accept])], &LIMITS);
    assert_eq!(e.unwrap_err().reason, Reason::InvalidRecordState);
    assert_eq!(count(&f, RecordState::Acquired), 6);
    // Overlapping batches are refused, naming both.
    let e = f.acknowledge("a", &[ack(0, 2, &[Ack::Accept]), ack(2, 3, &[Ack::Reject])], &LIMITS);
    assert!(e.unwrap_err().message.contains("0..=2 and 2..=3 overlap"));
    assert_eq!(count(&f, RecordState::Acquired), 6);
    f.acknowledge("a", &[ack(2, 5, &[Ack::Accept]), ack(0, 1, &[Ack::Accept])], &LIMITS).unwrap();
    assert_eq!(f.start(), 6);
}
