//! Unit tests of a partition replica: produce, replication appends, producer state,
//! retention and its directory claim.

use super::*;
use bytes::Bytes;
use shale_core::acks::Acks;
use shale_core::record::{BatchBuilder, Compression, Record};
use std::time::Duration;

fn state(leader: i32, epoch: i32) -> PartitionState {
    PartitionState::new(vec![1, 2], leader, epoch, vec![1, 2])
}

fn producer_batch(seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None).with_producer(7, 0, seq);
    b.push(Record {
        key: None,
        value: Some(Bytes::from(format!("v{seq}"))),
        headers: vec![],
        timestamp_ms: 1,
    });
    b.build()
}

/// One batch of plain (non-idempotent) records with `values`.
fn plain_batch(values: impl IntoIterator<Item = String>) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for v in values {
        b.push(Record { key: None, value: Some(Bytes::from(v)), headers: vec![], timestamp_ms: 1 });
    }
    b.build()
}

/// Partition 0 of topic `t` on broker `broker_id`.
fn spec(broker_id: i32, state: PartitionState, config: TopicConfig) -> PartitionSpec {
    PartitionSpec {
        topic: "t".into(),
        topic_id: "id".into(),
        index: 0,
        broker_id,
        state,
        revision: 1,
        config: Arc::new(config),
        remote: None,
        stages: Arc::default(),
    }
}

/// Interval flushes and `min.insync.replicas=1`, so tests need no fsyncs or followers.
fn relaxed() -> TopicConfig {
    TopicConfig {
        flush_policy: FlushPolicyKind::Interval,
        min_insync_replicas: 1,
        ..TopicConfig::default()
    }
}

fn open_spec(dir: &Path, spec: PartitionSpec) -> Result<Partition, Error> {
    let resources = Arc::new(shale_storage::log::LogResources::default());
    Partition::open(dir, spec, shale_core::clock::system(), resources)
}

fn open(dir: &Path, broker_id: i32, state: PartitionState) -> Arc<Partition> {
    Arc::new(open_spec(dir, spec(broker_id, state, relaxed())).unwrap())
}

#[tokio::test]
async fn a_replicated_batch_is_a_duplicate_once_the_follower_leads() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 3));
    let batch = producer_batch(0);
    assert!(p.append_replicated(2, 3, &batch).unwrap());
    // Leadership moved on: a replicated append from the old epoch is refused.
    p.set_state(&state(1, 4), p.replication().revision() + 1);
    assert!(!p.append_replicated(2, 3, &producer_batch(1)).unwrap());
    assert_eq!(p.log().log_end_offset(), 1);
    // The client's retry of the replicated batch lands nowhere new.
    let again = p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!((again.base_offset, again.leader_epoch), (0, 4));
    assert_eq!(p.log().log_end_offset(), 1);
    let next = p.append(producer_batch(1), Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!(next.base_offset, 1);
}

#[tokio::test]
async fn a_broker_that_stopped_leading_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    p.set_state(&state(2, 2), p.replication().revision() + 1);
    let err = match p.append(producer_batch(1), Acks::Leader).await {
        Err(e) => e,
        Ok(_) => panic!("a follower appended a produce"),
    };
    assert_eq!(err.reason, "NOT_LEADER");
    assert_eq!(p.log().log_end_offset(), 1);
    // An older state never moves leadership back.
    p.set_state(&state(1, 1), p.replication().revision() + 1);
    assert_eq!(p.leadership(), (2, 2));
}

/// A follower's cut or reset runs only while the broker still follows the leader and
/// epoch its fetcher was started for: a fetcher of epoch 4 whose cut was under way when
/// this broker was elected at epoch 5 cut the log it then led (found by
/// `double_failover_keeps_offsets_consistent`, its followers never back in the ISR).
#[tokio::test]
async fn a_fetcher_of_an_earlier_epoch_cuts_nothing_once_this_broker_leads() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 4));
    assert!(p.append_replicated(2, 4, &producer_batch(0)).unwrap());
    p.set_state(&state(1, 5), p.replication().revision() + 1);
    assert_eq!(p.truncate_to(0, (2, 4)).unwrap(), None, "the leader's log was cut");
    assert!(!p.reset_to(10, (2, 4)).unwrap(), "the leader's log was reset");
    assert_eq!(p.log().log_end_offset(), 1);
    let next = p.append(producer_batch(1), Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!((next.base_offset, next.leader_epoch), (1, 5));
}

/// The schema registry's writer appends only where the log it decided on ends, and only
/// at the epoch it leads at: a second writer with a stale view, or a deposed leader,
/// appends nothing.
#[tokio::test]
async fn an_append_at_an_expected_offset_lands_there_or_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    let at = |expected, epoch| {
        let p = p.clone();
        async move { p.append_at(plain_batch(["v".to_string()]), expected, epoch, Acks::Leader).await }
    };
    let first = at(0, 1).await.unwrap().await.unwrap();
    assert_eq!(first.base_offset, 0);
    // Another writer decided on the log as it was before that append: refused.
    let stale = at(0, 1).await.err().expect("an append at a stale offset");
    assert!(stale.message.contains("ends at offset 1, not 0"), "{}", stale.message);
    assert_eq!(p.log().log_end_offset(), 1);
    // At an epoch this broker does not lead at: refused.
    let wrong_epoch = at(1, 7).await.err().expect("an append at another epoch");
    assert_eq!(wrong_epoch.reason, "NOT_LEADER");
    // Deposed: refused too, at any offset.
    assert_eq!(at(1, 1).await.unwrap().await.unwrap().base_offset, 1);
    p.set_state(&state(2, 2), p.replication().revision() + 1);
    assert_eq!(at(2, 1).await.err().expect("a deposed leader's append").reason, "NOT_LEADER");
    assert_eq!(p.log().log_end_offset(), 2);
}

/// Before: producer state was rebuilt from the last 10,000 offsets only, so after a
/// restart the retry of a batch older than that was appended a second time.
#[tokio::test]
async fn producer_state_survives_a_restart_however_old_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig { segment_bytes: 64 * 1024, ..relaxed() };
    let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config.clone())).unwrap());
    let first = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    for chunk in 0..12 {
        let batch = plain_batch((0..1000).map(|i| format!("other-{chunk}-{i}")));
        p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
    }
    assert!(p.log().log_end_offset() > 10_001);
    assert!(p.log().segment_count() > 1);
    p.log().close().unwrap();
    drop(p);
    let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
    let again = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!(again.base_offset, first.base_offset, "the retry was appended a second time");
    let next = p.append(producer_batch(1), Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!(next.base_offset, p.log().log_end_offset() - 1, "the next batch follows");
}

/// Before: a log that never rolled has no producer snapshot, and its producer state was
/// rebuilt from the last 10,000 offsets only. With large batches that is a handful of
/// batches: a producer whose last batch was older was forgotten, and its retry after a
/// broker restart was written a second time (the cluster failover tests saw thousands of
/// duplicated records once batches grew to 256 KiB).
#[tokio::test]
async fn producer_state_of_a_log_that_never_rolled_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    let first = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    for chunk in 0..12 {
        let batch = plain_batch((0..1000).map(|i| format!("other-{chunk}-{i}")));
        p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
    }
    assert_eq!(p.log().segment_count(), 1, "no roll, so no snapshot");
    p.log().close().unwrap();
    drop(p);
    let p = open(dir.path(), 1, state(1, 1));
    let again = p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    assert_eq!(again.base_offset, first.base_offset, "the retry was appended a second time");
}

/// A truncation (a follower cut back to its leader's log) removes the snapshots past
/// the cut: once the log grows past them again with other batches, a stale one would
/// answer a retry of a batch that is gone as a duplicate, acknowledging nothing.
#[tokio::test]
async fn a_truncation_removes_the_producer_snapshots_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (p, before) = ten_batches_over_small_segments(dir.path()).await;
    p.set_state(&state(2, 2), p.replication().revision() + 1);
    assert_eq!(p.truncate_to(3, (2, 2)).unwrap(), Some(3));
    p.set_state(&state(1, 3), p.replication().revision() + 1);
    let (end, retry) = grow_past_then_retry_batch_3(dir.path(), p, &before).await;
    assert_eq!(retry, end, "a batch that was cut is written, not a duplicate");
}

/// Ten producer batches over 300-byte segments, and the snapshots their rolls wrote.
async fn ten_batches_over_small_segments(dir: &Path) -> (Arc<Partition>, Vec<i64>) {
    let config = TopicConfig { segment_bytes: 300, ..relaxed() };
    let p = Arc::new(open_spec(dir, spec(1, state(1, 1), config)).unwrap());
    for seq in 0..10 {
        p.append(producer_batch(seq), Acks::Leader).await.unwrap().await.unwrap();
    }
    let before = p.snapshots();
    assert!(!before.is_empty(), "rolls wrote snapshots");
    (p, before)
}

/// One batch of other records (as from a new leader) takes the log past every snapshot in
/// `before`; then a restart and the producer's retry of batch 3. Returns the log end
/// before the retry and where the retry landed.
async fn grow_past_then_retry_batch_3(dir: &Path, p: Arc<Partition>, before: &[i64]) -> (i64, i64) {
    let config = TopicConfig { segment_bytes: 300, ..relaxed() };
    let last = *before.last().unwrap();
    let batch = plain_batch((0..=last).map(|i| format!("new-{i}")));
    p.append(batch, Acks::Leader).await.unwrap().await.unwrap();
    let end = p.log().log_end_offset();
    assert!(end > last);
    p.log().close().unwrap();
    drop(p);
    let p = Arc::new(open_spec(dir, spec(1, state(1, 1), config)).unwrap());
    let retry = p.append(producer_batch(3), Acks::Leader).await.unwrap().await.unwrap();
    (end, retry.base_offset)
}

/// Before: a log that came back shorter than its producer snapshots (a power cut takes
/// the unsynced tail; recovery cuts it) kept those snapshots. They were ignored while past
/// the end, but once the log grew past them again with other batches, the next open took
/// the stale one: a retry of a batch that is gone was answered as a duplicate,
/// acknowledging nothing, or one that is there was written twice.
#[tokio::test]
async fn a_log_recovered_shorter_than_its_producer_snapshots_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let (p, before) = ten_batches_over_small_segments(dir.path()).await;
    // What recovery does after a power cut: the log alone is cut, the snapshots stay.
    p.log().truncate_to(3).unwrap();
    p.log().close().unwrap();
    drop(p);
    let config = TopicConfig { segment_bytes: 300, ..relaxed() };
    let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
    let (end, retry) = grow_past_then_retry_batch_3(dir.path(), p, &before).await;
    assert_eq!(retry, end, "a batch the power cut took is written, not a duplicate");
}

/// Before: size retention deleted sealed segments the followers had not copied yet.
#[tokio::test]
async fn retention_never_deletes_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig { segment_bytes: 200, retention_bytes: 0, ..relaxed() };
    let p = Arc::new(open_spec(dir.path(), spec(1, state(1, 1), config)).unwrap());
    for seq in 0..20 {
        p.append(producer_batch(seq), Acks::Leader).await.unwrap().await.unwrap();
    }
    // Follower 2 is in the ISR but has fetched nothing: the high watermark stays at 0.
    assert_eq!(p.high_watermark(), 0);
    assert!(p.log().segment_count() > 3);
    p.apply_retention().await.unwrap();
    assert_eq!(p.log().log_start_offset(), 0, "nothing below the high watermark to delete");
}

/// Before: a `partition.metadata` that did not parse made the broker delete the whole
/// partition directory, acknowledged segments included.
#[tokio::test]
async fn damaged_partition_metadata_fails_the_partition_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    p.append(producer_batch(0), Acks::Leader).await.unwrap().await.unwrap();
    p.log().close().unwrap();
    drop(p);
    let part_dir = dir.path().join("t-0");
    let meta = part_dir.join(METADATA_FILE);
    let segments = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .count()
    };
    for (damage, why) in [(Some(&b"{not json"[..]), "not valid"), (None, "missing")] {
        match damage {
            Some(bytes) => std::fs::write(&meta, bytes).unwrap(),
            None => std::fs::remove_file(&meta).unwrap(),
        }
        let err = match open_spec(dir.path(), spec(1, state(1, 1), TopicConfig::default())) {
            Err(e) => e,
            Ok(_) => panic!("opened a partition whose metadata is {why}"),
        };
        assert_eq!(err.reason, "CORRUPT_PARTITION_METADATA");
        assert!(err.message.contains(&meta.display().to_string()), "{}", err.message);
        assert!(err.message.contains(why), "{}", err.message);
        assert_eq!(segments(&part_dir), 1, "the segment is still there");
    }
}

/// Before: a new leader's high watermark, learnt as a follower, can lag its log until the
/// followers fetch from it. A fetch told to stop at the end stopped there, so a reader
/// right after a failover missed acknowledged records (the replication test's "lost").
#[tokio::test]
async fn a_fetch_to_the_end_waits_for_a_new_leaders_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 1));
    let values = (0..3).map(|i| format!("v{i}"));
    assert!(p.append_replicated(2, 1, &plain_batch(values)).unwrap());
    // Broker 1 leads from epoch 2 with three records it never learnt were committed.
    p.set_state(&state(1, 2), p.replication().revision() + 1);
    assert_eq!(p.high_watermark(), 0);
    let (_tx, closed) = tokio::sync::watch::channel(false);
    let want = crate::broker::fetch::ReadWant {
        partition: p.clone(),
        offset: 0,
        max_bytes: 1 << 20,
        isolation: Default::default(),
    };
    let wait = crate::broker::fetch::WaitFor {
        max_bytes: 1 << 20,
        min_bytes: 1,
        max_wait: None,
        answer_at_end: true,
    };
    let wants = [Ok(want)];
    let read = crate::broker::fetch::long_poll(&wants, &wait, closed);
    tokio::pin!(read);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut read).await;
    assert!(early.is_err(), "the read answered before the high watermark was known: {early:?}");
    // Follower 2 fetches at the leader's log end: the high watermark is known again.
    p.replication().follower_fetched(2, 0, 3, 3);
    let chunk = read.await.pop().expect("a chunk").unwrap();
    assert_eq!((chunk.next_offset, chunk.high_watermark), (3, 3));
    assert!(chunk.at_end, "the read is at the known end");
}

/// Kafka answers ListOffsets with OFFSET_NOT_AVAILABLE while a new leader's high watermark
/// is below the start of its epoch; here the answer waits for it, within a bound.
#[tokio::test]
async fn the_latest_offset_waits_for_a_new_leaders_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 1));
    assert!(p.append_replicated(2, 1, &plain_batch(["a".to_string()])).unwrap());
    p.set_state(&state(1, 2), p.replication().revision() + 1);
    let unknown = p.settled_high_watermark(Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(unknown.kind, shale_core::error::ErrorKind::Unavailable, "{unknown}");
    assert!(unknown.to_string().contains("t-0"), "names the partition: {unknown}");
    // The answer waits while follower 2 fetches at the leader's log end.
    let (answer, ()) = tokio::join!(p.settled_high_watermark(Duration::from_secs(30)), async {
        tokio::task::yield_now().await;
        p.replication().follower_fetched(2, 0, 1, 1);
    });
    assert_eq!(answer.unwrap(), 1);
}

/// Partition 0 of `t` on broker 1, leading at epoch 1, with `flush.policy=always`.
fn always_leader(dir: &Path) -> Arc<Partition> {
    let config = TopicConfig { flush_policy: FlushPolicyKind::Always, ..relaxed() };
    Arc::new(open_spec(dir, spec(1, state(1, 1), config)).unwrap())
}

/// Broker 1 stops leading (broker 2 leads at epoch 2) and cuts its whole log as a follower;
/// with `refill`, broker 2's record then fills offset 0 again.
fn lose_leadership_and_cut(p: &Partition, refill: bool) {
    p.set_state(&state(2, 2), p.replication().revision() + 1);
    assert_eq!(p.truncate_to(0, (2, 2)).unwrap(), Some(0));
    if refill {
        assert!(p.append_replicated(2, 2, &plain_batch(["theirs".to_string()])).unwrap());
    }
}

/// The produce was refused as retriable, naming the cut: the idempotent producer resends
/// it to the new leader.
fn assert_cut(result: Result<Produced, Error>) {
    let err = result.expect_err("a write cut from the log was acknowledged");
    assert_eq!(err.kind, shale_core::error::ErrorKind::NotLeader, "{err}");
    assert!(err.to_string().contains("t-0"), "names the partition: {err}");
}

/// Before: a produce whose records were cut from the log before their fsync (this broker
/// lost leadership and truncated as a follower) failed with OFFSET_OUT_OF_RANGE, which a
/// client takes as final: the groups cluster test's producer gave up on a record. And
/// once the new leader's records filled the offsets again (`refill`), the fsync covered
/// them and the cut write was acknowledged: a record reported written that no replica
/// holds.
#[tokio::test]
async fn a_write_cut_before_its_fsync_is_refused_as_retriable() {
    for refill in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let p = always_leader(dir.path());
        let ack = p.append(plain_batch(["ours".to_string()]), Acks::Leader).await.unwrap();
        lose_leadership_and_cut(&p, refill);
        assert_cut(ack.await);
    }
}

/// The same for `acks=all`: the high watermark this broker learns as a follower covers the
/// new leader's records, not ours; and with nothing refilled the wait ends at once rather
/// than at the replication timeout.
#[tokio::test]
async fn an_acks_all_write_cut_from_the_log_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    let replaced = p.append(plain_batch(["ours".to_string()]), Acks::All).await.unwrap();
    lose_leadership_and_cut(&p, true);
    p.replication().follower_hw(1, 1);
    assert_cut(replaced.await);

    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    let waiting = p.append(plain_batch(["ours".to_string()]), Acks::All).await.unwrap();
    let waiting = shale_core::task::spawn_owned(waiting);
    tokio::task::yield_now().await;
    lose_leadership_and_cut(&p, false);
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    assert_cut(ended.expect("the ack still waited for a high watermark after the cut").unwrap());
}

/// `batch` with its base offset set (as the leader stamps it before replicating).
fn at(offset: i64, batch: Bytes) -> Bytes {
    let mut b = bytes::BytesMut::from(batch);
    shale_core::record::batch::stamp(&mut b, offset, 1);
    b.freeze()
}

/// One `read_committed` or `read_uncommitted` read of `p` from `offset`: the next offset.
async fn read_to(
    p: &Arc<Partition>,
    offset: i64,
    isolation: crate::broker::fetch::Isolation,
) -> i64 {
    read_chunk(p, offset, isolation).await.next_offset
}

/// One read of `p` from `offset`, as a fetch makes it.
async fn read_chunk(
    p: &Arc<Partition>,
    offset: i64,
    isolation: crate::broker::fetch::Isolation,
) -> crate::broker::fetch::FetchChunk {
    let (_tx, closed) = tokio::sync::watch::channel(false);
    let want = crate::broker::fetch::ReadWant {
        partition: p.clone(),
        offset,
        max_bytes: 1 << 20,
        isolation,
    };
    let wait = crate::broker::fetch::WaitFor {
        max_bytes: 1 << 20,
        min_bytes: 0,
        max_wait: Some(Duration::ZERO),
        answer_at_end: false,
    };
    let mut read = crate::broker::fetch::long_poll(&[Ok(want)], &wait, closed).await;
    read.pop().unwrap().unwrap()
}

/// A `read_committed` read stops at the first offset of an open transaction, and at that
/// of a decided one until its marker is below the high watermark; `read_uncommitted` reads
/// to the high watermark. Followers keep the transactions they replicate, so the state is
/// there once one leads.
#[tokio::test]
async fn read_committed_stops_at_the_last_stable_offset() {
    use crate::broker::fetch::Isolation::{ReadCommitted, ReadUncommitted};
    use shale_core::record::control::{Marker, MarkerKind};
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 1));
    let mut txn = BatchBuilder::new(Compression::None).with_producer(7, 0, 0).transactional();
    for v in ["t0", "t1"] {
        txn.push(Record {
            key: None,
            value: Some(Bytes::from(v)),
            headers: vec![],
            timestamp_ms: 1,
        });
    }
    let commit = Marker { kind: MarkerKind::Commit, coordinator_epoch: 0 }.batch(7, 0, 1);
    // As a follower: plain 0-1, producer 7's transaction 2-3, plain 4, its commit at 5,
    // plain 6.
    for (offset, batch) in [
        (0, plain_batch(["a".to_string(), "b".to_string()])),
        (2, txn.build()),
        (4, plain_batch(["c".to_string()])),
        (5, commit),
        (6, plain_batch(["d".to_string()])),
    ] {
        assert!(p.append_replicated(2, 1, &at(offset, batch)).unwrap());
    }
    // Broker 1 leads from epoch 2; follower 2 has the log up to 5 (the marker not yet).
    p.set_state(&state(1, 2), p.replication().revision() + 1);
    p.replication().follower_fetched(2, 0, 5, 5);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (5, 2));
    assert_eq!(read_to(&p, 0, ReadUncommitted).await, 5);
    assert_eq!(read_to(&p, 0, ReadCommitted).await, 2, "stops at the transaction");
    assert_eq!(read_to(&p, 2, ReadCommitted).await, 2, "nothing readable at the LSO");
    // The follower copies the marker and the rest: the transaction is stable.
    p.replication().follower_fetched(2, 0, 7, 7);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (7, 7));
    assert_eq!(read_to(&p, 2, ReadCommitted).await, 7);
}

/// The leader appends a coordinator's marker: it ends the producer's transaction and the
/// last stable offset passes it once replicated; a marker from an older producer epoch or
/// an older coordinator is refused and nothing is written.
#[tokio::test]
async fn a_leader_appends_markers_and_refuses_stale_ones() {
    use shale_core::record::control::{Marker, MarkerKind};
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 1));
    let mut txn = BatchBuilder::new(Compression::None).with_producer(7, 3, 0).transactional();
    txn.push(Record { key: None, value: Some(Bytes::from("t")), headers: vec![], timestamp_ms: 1 });
    assert!(p.append_replicated(2, 1, &at(0, txn.build())).unwrap());
    p.set_state(&state(1, 2), p.replication().revision() + 1);
    p.replication().follower_fetched(2, 0, 1, 1);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (1, 0));
    let commit = Marker { kind: MarkerKind::Commit, coordinator_epoch: 5 };
    // Transactions v2: the marker carries the bumped epoch 4.
    let ack = p.append_marker((7, 4), commit, true, Acks::Leader).await.unwrap();
    let produced = ack.await.unwrap();
    assert_eq!(produced.base_offset, 1);
    p.replication().follower_fetched(2, 0, 2, 2);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (2, 2));
    let e = p.append_marker((7, 3), commit, true, Acks::Leader).await.err().unwrap();
    assert_eq!(e.reason, shale_core::error::Reason::InvalidProducerEpoch, "{e}");
    let older = Marker { kind: MarkerKind::Abort, coordinator_epoch: 4 };
    let e = p.append_marker((7, 4), older, true, Acks::Leader).await.err().unwrap();
    assert_eq!(e.reason, shale_core::error::Reason::TransactionCoordinatorFenced, "{e}");
    assert_eq!(p.log().log_end_offset(), 2, "nothing written for the refused markers");
}

/// The leader appends a transactional batch that opens a transaction only with the
/// coordinator's guard, and the transaction then holds the last stable offset back.
#[tokio::test]
async fn a_leader_opens_a_transaction_only_with_a_guard() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(1, 1));
    let batch = || {
        let mut b = BatchBuilder::new(Compression::None).with_producer(7, 0, 0).transactional();
        b.push(Record {
            key: None,
            value: Some(Bytes::from("t")),
            headers: vec![],
            timestamp_ms: 1,
        });
        b.build()
    };
    let refused = p.append_guarded(batch(), Acks::Leader, None).await.err().unwrap();
    assert_eq!(refused.reason, shale_core::error::Reason::InvalidTxnState, "{refused}");
    assert_eq!(p.log().log_end_offset(), 0, "nothing written");
    let guard = p.producers().verified(7, 0);
    let produced = p.append_guarded(batch(), Acks::Leader, Some(guard)).await.unwrap();
    assert_eq!(produced.await.unwrap().base_offset, 0);
    assert_eq!(p.producers().open_transactions(), vec![(7, 0)]);
    p.replication().follower_fetched(2, 0, 1, 1);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (1, 0), "held at the transaction");
}

/// Under `read_committed`, ListOffsets' latest is the last stable offset, and a record
/// found by time (or the largest timestamp) at or past it is not there yet (-1).
#[tokio::test]
async fn list_offsets_under_read_committed_ends_at_the_last_stable_offset() {
    use crate::broker::fetch::Isolation::{ReadCommitted, ReadUncommitted};
    use crate::broker::{OffsetSpec, list_offsets_on};
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1, state(2, 1));
    let mut b = BatchBuilder::new(Compression::None);
    b.push(Record { key: None, value: Some(Bytes::from("a")), headers: vec![], timestamp_ms: 10 });
    assert!(p.append_replicated(2, 1, &at(0, b.build())).unwrap());
    let mut txn = BatchBuilder::new(Compression::None).with_producer(7, 0, 0).transactional();
    txn.push(Record {
        key: None,
        value: Some(Bytes::from("t")),
        headers: vec![],
        timestamp_ms: 20,
    });
    assert!(p.append_replicated(2, 1, &at(1, txn.build())).unwrap());
    p.set_state(&state(1, 2), p.replication().revision() + 1);
    p.replication().follower_fetched(2, 0, 2, 2);
    let found = |spec, isolation| {
        let p = p.clone();
        async move {
            let l = list_offsets_on(&p, spec, isolation).await.unwrap();
            (l.offset, l.timestamp_ms)
        }
    };
    assert_eq!(found(OffsetSpec::Latest, ReadUncommitted).await, (2, -1));
    assert_eq!(found(OffsetSpec::Latest, ReadCommitted).await, (1, -1));
    assert_eq!(found(OffsetSpec::Timestamp(15), ReadUncommitted).await, (1, 20));
    assert_eq!(found(OffsetSpec::Timestamp(15), ReadCommitted).await, (-1, -1));
    assert_eq!(found(OffsetSpec::Timestamp(5), ReadCommitted).await, (0, 10));
    assert_eq!(found(OffsetSpec::MaxTimestamp, ReadCommitted).await, (-1, -1));
    assert_eq!(found(OffsetSpec::MaxTimestamp, ReadUncommitted).await, (1, 20));
}

/// A `read_committed` read is told the aborted transactions its batches overlap (producer
/// and first offset), so the reader skips them; `read_uncommitted` is told none. The index
/// survives a restart, whether it comes from a snapshot or from replaying the log.
#[tokio::test]
async fn a_read_committed_read_is_told_the_aborted_transactions_it_overlaps() {
    use crate::broker::fetch::Isolation::{ReadCommitted, ReadUncommitted};
    use shale_core::record::control::{Marker, MarkerKind};
    let dir = tempfile::tempdir().unwrap();
    let txn = |pid: i64| {
        let mut b = BatchBuilder::new(Compression::None).with_producer(pid, 0, 0).transactional();
        b.push(Record {
            key: None,
            value: Some(Bytes::from("t")),
            headers: vec![],
            timestamp_ms: 1,
        });
        b.build()
    };
    let marker = |pid: i64, kind| Marker { kind, coordinator_epoch: 0 }.batch(pid, 0, 1);
    {
        let p = open(dir.path(), 1, state(2, 1));
        // 7 at 0 aborted at 3; 8 at 1 committed at 2; plain 4; 9 at 5 aborted at 6.
        for (offset, batch) in [
            (0, txn(7)),
            (1, txn(8)),
            (2, marker(8, MarkerKind::Commit)),
            (3, marker(7, MarkerKind::Abort)),
            (4, plain_batch(["p".to_string()])),
            (5, txn(9)),
            (6, marker(9, MarkerKind::Abort)),
        ] {
            assert!(p.append_replicated(2, 1, &at(offset, batch)).unwrap());
        }
        p.set_state(&state(1, 2), p.replication().revision() + 1);
        p.replication().follower_fetched(2, 0, 7, 7);
        let chunk = read_chunk(&p, 0, ReadCommitted).await;
        assert_eq!((chunk.next_offset, chunk.aborted), (7, vec![(7, 0), (9, 5)]));
        assert_eq!(read_chunk(&p, 4, ReadCommitted).await.aborted, vec![(9, 5)]);
        assert!(read_chunk(&p, 0, ReadUncommitted).await.aborted.is_empty());
    }
    let p = open(dir.path(), 1, state(1, 2));
    p.replication().follower_fetched(2, 0, 7, 7);
    let chunk = read_chunk(&p, 1, ReadCommitted).await;
    assert_eq!(chunk.aborted, vec![(7, 0), (9, 5)], "after a restart");
}

/// A request of many partitions waits for its journal rounds (the marks `append_all`
/// returns) only when one of its acknowledgements waits for an fsync: at
/// `flush.policy=interval` it is answered without waiting for a round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_its_journal_rounds_only_when_an_ack_waits_for_an_fsync() {
    use shale_storage::log::{JournalSettings, LogResources, MIN_JOURNAL_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let resources = Arc::new(LogResources::default());
    let settings = JournalSettings {
        dir: dir.path().to_path_buf(),
        bytes: MIN_JOURNAL_BYTES,
        checkpoint_bytes: MIN_JOURNAL_BYTES / 4,
        round_interval: Duration::ZERO,
    };
    let clock = shale_core::clock::system();
    resources.open_journal(dir.path(), &settings, &clock).unwrap();
    let alone = PartitionState::new(vec![1], 1, 1, vec![1]);
    let always = TopicConfig { flush_policy: FlushPolicyKind::Always, ..relaxed() };
    for (name, config, waits) in [("interval", relaxed(), false), ("always", always, true)] {
        let partitions: Vec<Arc<Partition>> = (0..3)
            .map(|index| {
                let spec = PartitionSpec {
                    topic: name.into(),
                    index,
                    ..spec(1, alone.clone(), config.clone())
                };
                Arc::new(
                    Partition::open(dir.path(), spec, clock.clone(), resources.clone()).unwrap(),
                )
            })
            .collect();
        let (acks, marks) = append_all(async {
            let mut acks = Vec::new();
            for p in &partitions {
                acks.push(p.append(plain_batch(["v".to_string()]), Acks::All).await.unwrap());
            }
            acks
        })
        .await;
        assert_eq!(
            marks.is_empty(),
            !waits,
            "{name}: the request's marks are {}",
            if marks.is_empty() { "empty" } else { "not empty" }
        );
        let answered = async {
            marks.told().await;
            futures::future::try_join_all(acks).await
        };
        let acked = tokio::time::timeout(Duration::from_secs(20), answered).await;
        let acked = acked.unwrap_or_else(|_| panic!("{name}: waited 20 s for the answers"));
        assert_eq!(acked.unwrap().len(), 3, "{name}: every partition acknowledged");
    }
}

/// `append_all` wraps a request's appends without growing their future by more than its
/// own state: the future is built, boxed and moved per request (a ProduceMany message,
/// a Kafka Produce), so each byte of it is copied per request. Nested `async move`
/// wrappers each held the future twice (their argument, then the awaited value):
/// a gRPC message's appends, 3,584 bytes, became a future of 29,016, copied per message.
#[test]
fn append_all_adds_little_to_the_future_it_wraps() {
    let appends = async {
        let state = [7u8; 4096];
        tokio::task::yield_now().await;
        state.iter().map(|&b| u64::from(b)).sum::<u64>()
    };
    let inner = std::mem::size_of_val(&appends);
    let wrapped = append_all(appends);
    let outer = std::mem::size_of_val(&wrapped);
    assert!(outer <= inner + 256, "append_all made a future of {inner} bytes one of {outer} bytes");
}
