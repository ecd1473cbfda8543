//! The remote compactor on a memory bucket, run by the uploader's pass as a broker runs it:
//! a cold read from offset 0 finds each key once, at its latest record and original
//! offset; the replaced objects stay until the scrubber's grace has passed; a map too small
//! for the dirty keys compacts in several passes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;

use super::*;
use crate::log::{LogConfig, LogResources, PartitionLog};
use crate::tier::manifest::Manifest;
use crate::tier::scrubber::{ScrubStats, Scrubber};
use crate::tier::uploader::Uploader;
use crate::tier::uploader::tests::{Fake, uploader};
use crate::tier::{Catalog, TierSettings};
use shale_core::clock::SharedClock;
use shale_core::record::{BatchBuilder, Compression, Record, decode_batches};
use shale_core::topic_config::{CleanupPolicy, TopicConfig};

/// One write: key, and value (`None`: a tombstone).
type Write = (u8, Option<u8>);

/// What was written: each offset's write.
#[derive(Default)]
struct Model {
    writes: BTreeMap<i64, Write>,
}

impl Model {
    /// Each key's latest write below `end`, with its offset.
    fn latest_below(&self, end: i64) -> BTreeMap<u8, (i64, Option<u8>)> {
        let mut latest = BTreeMap::new();
        for (offset, (key, value)) in self.writes.range(..end) {
            latest.insert(*key, (*offset, *value));
        }
        latest
    }
}

/// Appends `writes`, one 200-byte record a batch (four batches to a 1000-byte segment).
fn append(log: &PartitionLog, model: &mut Model, writes: &[Write], clock: &SharedClock) {
    for (key, value) in writes {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(Record {
            key: Some(Bytes::from(format!("key-{key}"))),
            value: value.map(|v| Bytes::from(vec![v; 200])),
            headers: vec![],
            timestamp_ms: clock.now_ms(),
        });
        let offset = log.log_end_offset();
        log.append(&mut b.build().to_vec(), 1).unwrap();
        model.writes.insert(offset, (*key, *value));
    }
}

/// `n` updates round-robin over `keys` keys, values counting up from `from`.
fn updates(n: usize, keys: u8, from: usize) -> Vec<Write> {
    (0..n).map(|i| ((i % keys as usize) as u8, Some(((from + i) % 251) as u8))).collect()
}

/// A compacted, tiered partition led at epoch 1 over a fresh log, and an uploader into a
/// memory bucket that compacts with an offset map of `map_keys` keys, at a dirty ratio of
/// `dirty_ratio`, records older than `min_lag_ms`, at most `max_replacements` a commit.
async fn setup(
    dir: &std::path::Path,
    map_keys: usize,
    dirty_ratio: f64,
    min_lag_ms: i64,
    max_replacements: usize,
) -> (Fake, Uploader, Arc<Catalog>, Arc<CompactionStats>) {
    let clock = shale_core::clock::system();
    let config = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
    let log = PartitionLog::open(dir.join("t-0"), config, clock, Arc::new(LogResources::default()));
    let topic = TopicConfig {
        remote_storage_enable: true,
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: 1000,
        min_cleanable_dirty_ratio: dirty_ratio,
        min_compaction_lag_ms: min_lag_ms,
        ..TopicConfig::default()
    };
    let p = Fake {
        log: Arc::new(log.unwrap()),
        epoch: Mutex::new(Some(1)),
        hw: AtomicI64::new(0),
        config: Arc::new(topic),
        pointer: Mutex::new(None),
    };
    let stats = Arc::new(CompactionStats::default());
    let mut compactor =
        RemoteCompactor::new(dir.join("spool"), map_keys * 32, stats.clone()).unwrap();
    compactor.max_replacements = max_replacements;
    let (uploader, catalog) = uploader(&shale_core::clock::system()).await;
    (p, uploader.with_compactor(Arc::new(compactor)), catalog, stats)
}

/// One uploader pass with everything written below the high watermark.
async fn pass(p: &Fake, uploader: &Uploader, catalog: &Catalog) -> Arc<Manifest> {
    p.hw.store(p.log.log_end_offset(), Ordering::Release);
    uploader.tier_partition(p).await.unwrap();
    catalog.current(&p.tier_ref()).await.unwrap().manifest
}

/// Every record of the remote log, read from offset 0 through the cold-read path, as
/// (offset, key, value).
async fn read_remote(catalog: &Arc<Catalog>, m: &Arc<Manifest>) -> Vec<(i64, u8, Option<u8>)> {
    let reader = RemoteReader::open(catalog.clone(), &TierSettings::default(), None).await.unwrap();
    let pref = PartitionRef { topic: "t".into(), topic_id: "id".into(), partition: 0 };
    let end = m.end_offset().unwrap_or(0);
    let (mut offset, mut out) = (m.start_offset().unwrap_or(0), Vec::new());
    while offset < end {
        let chunk = reader.read(&pref, m, offset, 1 << 20, end).await.unwrap();
        assert!(chunk.next_offset > offset, "the read moved on from {offset}");
        for r in decode_batches(&chunk.bytes, &Limits::default()).unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let key: u8 = key.strip_prefix("key-").unwrap().parse().unwrap();
            out.push((r.offset, key, r.value.map(|v| v[0])));
        }
        offset = chunk.next_offset;
    }
    out
}

/// The remote log holds each key written below its end once: its latest write, at its
/// original offset, in offset order.
async fn assert_compacted(catalog: &Arc<Catalog>, m: &Arc<Manifest>, model: &Model) {
    let read = read_remote(catalog, m).await;
    let end = m.end_offset().unwrap();
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase: {read:?}");
    let expected: Vec<_> =
        model.latest_below(end).into_iter().map(|(k, (o, v))| (o, k, v)).collect::<Vec<_>>();
    let mut got = read.clone();
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected, "each key once, at its latest write below {end}");
}

/// One scrubber pass with a grace of `grace_ms`; the names left in the partition's folder.
async fn scrub(catalog: &Arc<Catalog>, pref: &PartitionRef, grace_ms: u64) -> Vec<String> {
    let scrubber = Scrubber::new(catalog.clone(), 1, grace_ms);
    scrubber.pass(&ScrubStats::default(), std::slice::from_ref(pref), None).await.unwrap();
    let listed = catalog.bucket().list(&catalog.folder(pref)).await.unwrap();
    listed.iter().map(|o| o.location.filename().unwrap().to_string()).collect()
}

/// Records younger than `min.compaction.lag.ms` (1 s) tier but wait; the compaction
/// after keeps each key's latest record; the objects it replaced, uploaded more than the
/// scrubber's grace (1 s) before, stay for the grace after the compaction, then go.
#[tokio::test]
async fn a_compacted_remote_log_keeps_each_keys_latest_record_and_retires_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (p, uploader, catalog, stats) =
        setup(dir.path(), 1_000, 0.5, 1_000, MAX_REPLACEMENTS).await;
    let clock = shale_core::clock::system();
    let mut model = Model::default();
    let mut writes = updates(60, 5, 0);
    writes[57] = (2, None);
    append(&p.log, &mut model, &writes, &clock);

    let m = pass(&p, &uploader, &catalog).await;
    let uploaded: u64 = p.log.sealed_ranges().iter().map(|s| s.size).sum();
    assert_eq!((m.size_bytes(), stats.compactions.load(Relaxed)), (uploaded, 0), "too young");
    shale_core::clock::sleep(std::time::Duration::from_millis(1_200)).await;
    let m = pass(&p, &uploader, &catalog).await;
    assert_eq!(stats.compactions.load(Relaxed), 1, "compacted once old enough");
    assert_eq!(m.compacted.len(), 1, "{:?}", m.compacted);
    assert_eq!(m.compacted[0].0, m.end_offset().unwrap(), "deduplicated up to the remote end");
    assert!(m.size_bytes() * 4 < uploaded, "{} of {uploaded} bytes left", m.size_bytes());
    assert!(!m.retired.is_empty(), "the replaced segments are retired, not gone");
    assert_compacted(&catalog, &m, &model).await;
    // The replaced objects stay within the grace after the compaction, although they are
    // older than it: a reader of the old manifest still finds them. Then they go.
    let retired: Vec<String> = m.retired.iter().map(|r| names::log(&r.name)).collect();
    let listed = scrub(&catalog, &p.tier_ref(), 1_000).await;
    assert!(retired.iter().all(|r| listed.contains(r)), "kept within the grace: {listed:?}");
    shale_core::clock::sleep(std::time::Duration::from_millis(1_200)).await;
    let listed = scrub(&catalog, &p.tier_ref(), 1_000).await;
    assert!(!retired.iter().any(|r| listed.contains(r)), "removed after it: {listed:?}");
    let live: Vec<String> = m.segments.iter().map(|s| names::log(&s.name)).collect();
    assert!(live.iter().all(|s| listed.contains(s)), "the manifest's segments stay");

    // Nothing dirty: the next pass does not compact again.
    let again = pass(&p, &uploader, &catalog).await;
    assert_eq!((again.seq, stats.compactions.load(Relaxed)), (m.seq, 1));

    // More updates: uploaded and compacted with what the bucket holds; the earlier retired
    // entries, whose objects the scrubber removed, are forgotten.
    append(&p.log, &mut model, &updates(40, 5, 100), &clock);
    pass(&p, &uploader, &catalog).await;
    shale_core::clock::sleep(std::time::Duration::from_millis(1_200)).await;
    let m = pass(&p, &uploader, &catalog).await;
    assert_eq!(stats.compactions.load(Relaxed), 2);
    assert_compacted(&catalog, &m, &model).await;
    assert!(m.retired.iter().all(|r| r.seq == m.seq), "only this compaction's: {:?}", m.retired);
    assert!(stats.requests.load(Relaxed) > 0 && stats.bytes_read.load(Relaxed) > 0);
}

/// An offset map of four keys over a log of five: each compaction stops where the map
/// filled (its cleaning point) and the next goes on from there, until every key is once.
#[tokio::test]
async fn a_map_smaller_than_the_key_set_compacts_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (p, uploader, catalog, stats) = setup(dir.path(), 4, 0.0, 0, MAX_REPLACEMENTS).await;
    let clock = shale_core::clock::system();
    let mut model = Model::default();
    append(&p.log, &mut model, &updates(60, 5, 0), &clock);
    let mut m = pass(&p, &uploader, &catalog).await;
    let first_point = m.compacted[0].0;
    assert!(first_point < m.end_offset().unwrap(), "the map filled at {first_point}");
    for _ in 0..30 {
        if m.compacted.last().map(|c| c.0) == m.end_offset() {
            break;
        }
        m = pass(&p, &uploader, &catalog).await;
    }
    assert_eq!(m.compacted.last().map(|c| c.0), m.end_offset(), "{:?}", m.compacted);
    assert!(stats.compactions.load(Relaxed) >= 2);
    assert_compacted(&catalog, &m, &model).await;
}

/// Segments that each lose one record and keep two make a replacement each; with at most
/// three replacements a commit, a compaction stops after the third at a segment boundary
/// (its cleaning point) and the next ones go on, until every key is once.
#[tokio::test]
async fn a_compaction_stops_at_the_replacements_one_commit_may_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (p, uploader, catalog, stats) = setup(dir.path(), 1_000, 0.0, 0, 3).await;
    let clock = shale_core::clock::system();
    let mut model = Model::default();
    // Segment i holds keys 3i (updated again at the end), 3i + 1 and 3i + 2.
    let mut writes: Vec<Write> = (0..30u8).map(|k| (k, Some(k))).collect();
    writes.extend((0..10u8).map(|i| (3 * i, Some(100 + i))));
    append(&p.log, &mut model, &writes, &clock);
    let mut m = pass(&p, &uploader, &catalog).await;
    let first = m.compacted[0].0;
    assert!(first < m.end_offset().unwrap(), "the first compaction stopped early, at {first}");
    assert!(m.retired.len() <= 3 * 2, "{:?}", m.retired);
    for _ in 0..10 {
        if m.compacted.last().map(|c| c.0) == m.end_offset() {
            break;
        }
        m = pass(&p, &uploader, &catalog).await;
    }
    assert_eq!(m.compacted.last().map(|c| c.0), m.end_offset(), "{:?}", m.compacted);
    assert!(stats.compactions.load(Relaxed) >= 3, "{stats:?}");
    assert_compacted(&catalog, &m, &model).await;
}

/// A compaction of a partition this broker no longer leads (a drain or a failover moved
/// it while the upload pass ran) stops before reading anything: no commit, no failure
/// counted.
#[tokio::test]
async fn a_compaction_stops_once_this_broker_no_longer_leads() {
    let dir = tempfile::tempdir().unwrap();
    let (p, uploader, catalog, stats) =
        setup(dir.path(), 1_000, 0.5, 1_000, MAX_REPLACEMENTS).await;
    let clock = shale_core::clock::system();
    append(&p.log, &mut Model::default(), &updates(30, 5, 0), &clock);
    let before = pass(&p, &uploader, &catalog).await;
    *p.epoch.lock().unwrap() = None;
    let compactor =
        RemoteCompactor::new(dir.path().join("spool2"), 1 << 20, stats.clone()).unwrap();
    let reader = RemoteReader::open(catalog.clone(), &TierSettings::default(), None).await.unwrap();
    let throttle = Throttle::new(0);
    let cx = Context { reader: &reader, throttle: &throttle, lease: 0, now_ms: i64::MAX / 2 };
    let current = catalog.current(&p.tier_ref()).await.unwrap();
    let e = compactor.compact(&cx, &p, current, 1).await.unwrap_err();
    assert!(e.message.contains("leadership moved"), "{e}");
    let after = catalog.current(&p.tier_ref()).await.unwrap().manifest;
    assert_eq!(after.seq, before.seq, "nothing committed");
    assert_eq!(stats.failures.load(Relaxed), 0, "no failure counted");
    assert_eq!(stats.bytes_read.load(Relaxed), 0, "nothing read");
}
