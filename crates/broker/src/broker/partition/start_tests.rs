//! Unit tests of a partition's log start (DeleteRecords) and lookups by time: the record
//! with the largest timestamp, reads below the start refused in the bucket too, and a
//! follower restarted at a start inside a batch.

use super::*;
use crate::broker::{ListedOffset, OffsetSpec, list_offsets_on};
use bytes::Bytes;
use shale_core::acks::Acks;
use shale_core::error::ErrorKind;
use shale_core::record::{BatchBuilder, Compression, Record};
use shale_meta::membership::Membership;
use shale_meta::topics::BrokerRecord;
use shale_meta::{EmbeddedStore, Keys, MetaStore};
use shale_storage::tier::uploader::Uploader;
use shale_storage::tier::{Bucket, Catalog, TierPartition, TierSettings};
use std::time::Duration;

/// One batch of records with these timestamps, each value `"{ts}"`.
fn batch_at(times: &[i64]) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for &ts in times {
        b.push(Record {
            key: None,
            value: Some(Bytes::from(format!("{ts:0200}"))),
            headers: vec![],
            timestamp_ms: ts,
        });
    }
    b.build()
}

/// Partition 0 of `t`, led by broker 1 alone, interval flushes (the high watermark is the
/// log end), with `config` on top.
fn alone(dir: &Path, config: TopicConfig, remote: Option<RemoteReader>) -> Arc<Partition> {
    let state = PartitionState::new(vec![1], 1, 1, vec![1]);
    let config =
        TopicConfig { flush_policy: FlushPolicyKind::Interval, min_insync_replicas: 1, ..config };
    let spec = PartitionSpec {
        topic: "t".into(),
        topic_id: "id".into(),
        index: 0,
        broker_id: 1,
        state,
        revision: 1,
        config: Arc::new(config),
        remote,
        stages: Arc::default(),
    };
    let resources = Arc::new(shale_storage::log::LogResources::default());
    Arc::new(Partition::open(dir, spec, shale_core::clock::system(), resources).unwrap())
}

async fn listed(p: &Partition, spec: OffsetSpec) -> (i64, i64) {
    let ListedOffset { offset, timestamp_ms, .. } =
        list_offsets_on(p, spec, Default::default()).await.unwrap();
    (offset, timestamp_ms)
}

async fn advance(p: &Partition, offset: i64) {
    let log = p.log().clone();
    tokio::task::spawn_blocking(move || log.advance_log_start(offset)).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_largest_timestamp_is_a_records_own_offset_and_skips_deleted_records() {
    let dir = tempfile::tempdir().unwrap();
    let p = alone(dir.path(), TopicConfig::default(), None);
    assert_eq!(listed(&p, OffsetSpec::MaxTimestamp).await, (-1, -1), "an empty partition");
    // Offsets 0..3, 3..5, 5..8: the largest timestamp, 50, first at 1, then at 6.
    for times in [&[10, 50, 20][..], &[30, 40], &[45, 50, 5]] {
        p.append(batch_at(times), Acks::Leader).await.unwrap().await.unwrap();
    }
    assert_eq!(listed(&p, OffsetSpec::MaxTimestamp).await, (1, 50));
    assert_eq!(listed(&p, OffsetSpec::Timestamp(41)).await, (1, 50));
    // The batch holding the new start keeps its deleted records on disk: they do not count.
    advance(&p, 2).await;
    assert_eq!(listed(&p, OffsetSpec::Earliest).await, (2, -1));
    assert_eq!(listed(&p, OffsetSpec::MaxTimestamp).await, (6, 50));
    assert_eq!(listed(&p, OffsetSpec::Timestamp(41)).await, (5, 45));
    assert_eq!(listed(&p, OffsetSpec::Timestamp(0)).await, (2, 20));
    advance(&p, 7).await;
    assert_eq!(listed(&p, OffsetSpec::MaxTimestamp).await, (7, 5));
    assert_eq!(listed(&p, OffsetSpec::Timestamp(41)).await, (-1, -1));
    let e = p.read(6, 1024).await.unwrap_err();
    assert_eq!((e.kind, e.details["log_start_offset"].as_str()), (ErrorKind::OutOfRange, "7"));
    assert!(!p.read(7, 1024).await.unwrap().bytes.is_empty());
    // Not tiered: the local start is the start, and nothing is in the bucket.
    assert_eq!(listed(&p, OffsetSpec::EarliestLocal).await, (7, -1));
    assert_eq!(listed(&p, OffsetSpec::LatestTiered).await, (-1, -1));
}

/// A follower that restarted its log at its leader's log start, which DeleteRecords put
/// inside a batch, gets that whole batch first: it starts its log at the batch rather than
/// refuse it for good (Kafka's UnexpectedAppendOffsetException).
#[tokio::test]
async fn a_follower_restarted_inside_a_batch_takes_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let state = PartitionState::new(vec![1, 2], 2, 1, vec![1, 2]);
    let spec = PartitionSpec {
        topic: "t".into(),
        topic_id: "id".into(),
        index: 0,
        broker_id: 1,
        state,
        revision: 1,
        config: Arc::new(TopicConfig::default()),
        remote: None,
        stages: Arc::default(),
    };
    let resources = Arc::new(shale_storage::log::LogResources::default());
    let p = Partition::open(dir.path(), spec, shale_core::clock::system(), resources).unwrap();
    assert!(p.reset_to(2, (2, 1)).unwrap());
    assert!(p.append_replicated(2, 1, &batch_at(&[1, 2, 3])).unwrap());
    assert_eq!((p.log().local_base_offset(), p.log().log_end_offset()), (0, 3));
    p.log().advance_log_start(2).unwrap();
    assert_eq!(p.log().log_start_offset(), 2);
    assert!(p.append_replicated(2, 1, &stamped(batch_at(&[4]), 3)).unwrap());
}

/// `batch` with its base offset set to `base` (as a leader stamps it).
fn stamped(batch: Bytes, base: i64) -> Bytes {
    let mut b = batch.to_vec();
    shale_core::record::batch::stamp(&mut b, base, 1);
    Bytes::from(b)
}

/// An uploader into a memory bucket and a reader of it.
async fn bucket() -> (Uploader, RemoteReader) {
    let clock = shale_core::clock::system();
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock.clone());
    let keys = Keys::new("c").unwrap();
    let record = BrokerRecord {
        id: 1,
        address: "127.0.0.1:1".into(),
        kafka_address: String::new(),
        registry_address: String::new(),
        rack: String::new(),
        started_ms: 0,
        incarnation: 1,
        draining: false,
    };
    let ttl = Duration::from_secs(60);
    let membership =
        Membership::join(meta.clone(), keys.clone(), record, ttl, clock.clone()).await.unwrap();
    let settings = TierSettings::default();
    let catalog =
        Arc::new(Catalog::new(Bucket::open("memory://", &settings).unwrap(), meta, keys, "c"));
    let reader = RemoteReader::open(catalog.clone(), &settings, None).await.unwrap();
    let uploader = Uploader::new(reader.clone(), settings.clone(), clock, membership);
    let reads = RemoteReader::open(catalog, &settings, None).await.unwrap();
    (uploader, reads)
}

/// DeleteRecords into what is only in the bucket: reads below the new start are refused
/// there too, the batch holding it is served from the bucket, and the lookups start there.
#[tokio::test]
async fn a_log_start_in_the_bucket_refuses_the_remote_reads_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let (uploader, reader) = bucket().await;
    let config = TopicConfig {
        remote_storage_enable: true,
        segment_bytes: 1000,
        local_retention_bytes: 0,
        // The timestamps are from 1970: time retention would empty the bucket.
        retention_ms: -1,
        retention_bytes: -1,
        ..TopicConfig::default()
    };
    let p = alone(dir.path(), config, Some(reader));
    // 20 batches of two records (about 480 bytes each: two per segment), at 100, 101, ...
    for i in 0..20 {
        p.append(batch_at(&[100 + 2 * i, 101 + 2 * i]), Acks::Leader).await.unwrap().await.unwrap();
    }
    uploader.tier_partition(&*p).await.unwrap();
    let tiered = p.tier_pointer().expect("tiered").end_offset;
    p.apply_retention().await.unwrap();
    let local = p.log().log_start_offset();
    assert!(local >= 20 && local == tiered, "local log from {local}, tiered up to {tiered}");
    assert_eq!(listed(&p, OffsetSpec::Earliest).await, (0, -1), "the bucket from 0");

    advance(&p, 7).await; // inside the batch 6..8, in the bucket only
    assert_eq!(p.log_start_offset(), 7);
    let e = p.read(6, 1024).await.unwrap_err();
    assert_eq!((e.kind, e.details["log_start_offset"].as_str()), (ErrorKind::OutOfRange, "7"));
    let chunk = p.read(7, 1).await.unwrap();
    let first = shale_core::record::BatchFrames::new(&chunk.bytes, usize::MAX).next();
    assert_eq!(first.unwrap().unwrap().0.base_offset, 6, "the batch holding 7, from the bucket");
    assert_eq!(listed(&p, OffsetSpec::Earliest).await, (7, -1));
    assert_eq!(listed(&p, OffsetSpec::EarliestLocal).await, (local, -1));
    assert_eq!(listed(&p, OffsetSpec::LatestTiered).await, (tiered - 1, -1));
    assert_eq!(listed(&p, OffsetSpec::Timestamp(0)).await, (7, 107), "not the deleted 6");
    assert_eq!(listed(&p, OffsetSpec::MaxTimestamp).await, (39, 139));
}

/// An aborted transaction that is in the bucket only stays hidden from `read_committed`
/// reads after the replica's log is reset (a follower restarting at its leader's log
/// start, which clears its producer state): the manifest's list is learned again.
#[tokio::test]
async fn an_aborted_transaction_in_the_bucket_stays_known_after_a_reset() {
    use shale_core::record::control::{Marker, MarkerKind};
    let dir = tempfile::tempdir().unwrap();
    let (uploader, reader) = bucket().await;
    let config = TopicConfig {
        remote_storage_enable: true,
        segment_bytes: 1000,
        local_retention_bytes: 0,
        retention_ms: -1,
        retention_bytes: -1,
        ..TopicConfig::default()
    };
    let p = alone(dir.path(), config, Some(reader));
    let mut txn = BatchBuilder::new(Compression::None).with_producer(7, 0, 0).transactional();
    txn.push(Record { key: None, value: Some(Bytes::from("t")), headers: vec![], timestamp_ms: 1 });
    let guard = p.producers().verified(7, 0);
    p.append_guarded(txn.build(), Acks::Leader, Some(guard)).await.unwrap().await.unwrap();
    let abort = Marker { kind: MarkerKind::Abort, coordinator_epoch: 0 };
    p.append_marker((7, 0), abort, false, Acks::Leader).await.unwrap().await.unwrap();
    for i in 0..20 {
        p.append(batch_at(&[100 + 2 * i, 101 + 2 * i]), Acks::Leader).await.unwrap().await.unwrap();
    }
    uploader.tier_partition(&*p).await.unwrap();
    p.apply_retention().await.unwrap();
    assert!(p.log().log_start_offset() > 1, "the transaction is in the bucket only");
    assert_eq!(p.aborted_for_read(0, 10).await.unwrap(), vec![(7, 0)]);
    let end = p.log().log_end_offset();
    let follower = PartitionState::new(vec![1, 2], 2, 2, vec![1, 2]);
    p.set_state(&follower, p.replication().revision() + 1);
    assert!(p.reset_to(end, (2, 2)).unwrap());
    assert_eq!(p.aborted_for_read(0, 10).await.unwrap(), vec![(7, 0)], "after the reset");
}
