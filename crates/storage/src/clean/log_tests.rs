//! Cleaning live logs, against a model: random keys, values and tombstones, random segment
//! sizes, cleans at random points, power cuts at random steps of a clean (the journal's
//! frames of the cleaned bytes still in it), as Kafka's
//! `LogCleanerParameterizedIntegrationTest` checks a cleaned log against the last writes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{CleanRequest, CompactionConfig, OffsetMap};
use crate::log::journal_tests::{power_cut, try_journaled, wait_until};
use crate::log::{LogConfig, LogError, LogResources, PartitionLog};
use shale_core::clock::ManualClock;
use shale_core::disk::{Disk, SimDisk, SimOptions};
use shale_core::record::{BatchBuilder, Compression, Limits, Record, decode_batches};

const DATA: &str = "/data";
const T0: i64 = 1_700_000_000_000;

/// A record as the model holds it: key, and value (`None`: a tombstone).
type Written = (u16, Option<u32>);

/// Resources on `disk` with the journal of `/data` (16 MiB) open and replayed.
fn journaled(disk: &SimDisk) -> Result<Arc<LogResources>, LogError> {
    try_journaled(disk, 16 << 20).map(|(resources, _)| resources)
}

/// The log `t-0` with segments of `segment_bytes`.
fn open(resources: &Arc<LogResources>, segment_bytes: u64) -> PartitionLog {
    let config = LogConfig { segment_bytes, ..LogConfig::default() };
    let clock = Arc::new(ManualClock::new(T0));
    PartitionLog::open(format!("{DATA}/t-0"), config, clock, resources.clone()).expect("open")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Appends `records` as one batch and waits (bounded) until it is durable.
fn append(rt: &tokio::runtime::Runtime, log: &PartitionLog, records: &[Written]) -> i64 {
    let mut b = BatchBuilder::new(Compression::None);
    for (key, value) in records {
        b.push(Record {
            key: Some(Bytes::from(key.to_be_bytes().to_vec())),
            value: value.map(|v| Bytes::from(v.to_be_bytes().to_vec())),
            headers: vec![],
            timestamp_ms: T0,
        });
    }
    let mut batch = b.build().to_vec();
    let info = log.append(&mut batch, 0).expect("append");
    rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(20), log.flush_until(info.log_end_offset))
            .await
        {
            Ok(r) => r.expect("flush"),
            Err(_) => panic!("waited 20 s for offset {} to be durable", info.log_end_offset),
        }
    });
    info.base_offset
}

/// Every record the log serves from its start: (offset, key, value).
fn read_back(log: &PartitionLog) -> Vec<(i64, Written)> {
    let (mut offset, mut out) = (log.log_start_offset(), Vec::new());
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 16, i64::MAX).expect("read");
        assert!(chunk.next_offset > offset, "no progress reading at {offset}");
        for r in decode_batches(&chunk.bytes, &Limits::default()).expect("decode") {
            let key = u16::from_be_bytes(r.key.expect("keyed")[..].try_into().unwrap());
            let value = r.value.map(|v| u32::from_be_bytes(v[..].try_into().unwrap()));
            out.push((r.offset, (key, value)));
        }
        offset = chunk.next_offset;
    }
    out
}

/// What the log holds against what was written (`model`, by offset): no record the model
/// lacks, offsets increasing, every key's latest record (a tombstone may be gone once
/// tombstones may go), and every record from `kept_from` on.
fn check(
    seed: u64,
    got: &[(i64, Written)],
    model: &BTreeMap<i64, Written>,
    tombstones_go: bool,
    kept_from: i64,
    when: &str,
) {
    let mut last = -1;
    for (offset, record) in got {
        assert!(*offset > last, "seed {seed} {when}: offset {offset} after {last}");
        last = *offset;
        assert_eq!(model.get(offset), Some(record), "seed {seed} {when}: record at {offset}");
    }
    let held: HashMap<i64, &Written> = got.iter().map(|(o, r)| (*o, r)).collect();
    let mut latest: HashMap<u16, (i64, Option<u32>)> = HashMap::new();
    for (offset, (key, value)) in model {
        latest.insert(*key, (*offset, *value));
    }
    for (key, (offset, value)) in latest {
        if value.is_none() && tombstones_go {
            continue;
        }
        assert!(held.contains_key(&offset), "seed {seed} {when}: key {key}'s latest at {offset}");
    }
    for offset in model.range(kept_from..).map(|(o, _)| o) {
        assert!(held.contains_key(offset), "seed {seed} {when}: {offset}, above every clean");
    }
}

/// Below the cleaning point, no record is followed by another of its key before the point
/// (what a clean guarantees).
fn check_cleaned(seed: u64, got: &[(i64, Written)], point: i64) {
    let mut next_of: HashMap<u16, i64> = HashMap::new();
    for (offset, (key, _)) in got.iter().filter(|(o, _)| *o < point) {
        if let Some(previous) = next_of.insert(*key, *offset) {
            panic!("seed {seed}: key {key} at {previous} and {offset}, both below {point}");
        }
    }
}

fn seeds() -> u64 {
    std::env::var("SHALE_CLEAN_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

/// Cleans at random points of a run of random updates and tombstones, with a power cut at
/// a random step of one clean: after each clean, and after the log reopens from the cut
/// (the journal replayed over it), each key's latest record reads back at its offset,
/// nothing else appears, and the log below each cleaning point holds one record per key.
#[test]
fn a_compacted_log_keeps_every_keys_latest_through_cleans_and_power_cuts() {
    let rt = runtime();
    let (mut cut_during_clean, mut shrank) = (0, false);
    for seed in 0..seeds() {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk = SimDisk::new(SimOptions {
            seed,
            torn_tails: true,
            torn_dirs: true,
            ..Default::default()
        });
        let segment_bytes = rng.random_range(300..3_000);
        let resources = journaled(&disk).expect("journal");
        let log = open(&resources, segment_bytes);
        let keys = rng.random_range(3..40u16);
        let tombstones_go = rng.random_bool(0.5);
        let config = CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms: if tombstones_go { 0 } else { i64::MAX },
            ..CompactionConfig::default()
        };
        let mut map = OffsetMap::with_memory(rng.random_range(2..64) * 32);
        let mut model: BTreeMap<i64, Written> = BTreeMap::new();
        let mut now = T0;
        let cut_at = rng.random_range(0..12u32);
        let mut cleans = 0;
        for step in 0..400u32 {
            let n = rng.random_range(1..4);
            let records: Vec<Written> = (0..n)
                .map(|_| {
                    let value = (!rng.random_bool(0.2)).then_some(step);
                    (rng.random_range(0..keys), value)
                })
                .collect();
            let base = append(&rt, &log, &records);
            for (i, r) in records.into_iter().enumerate() {
                model.insert(base + i as i64, r);
            }
            if step % 30 != 29 {
                continue;
            }
            now += 1_000;
            let req = CleanRequest {
                upper_bound: log.log_end_offset(),
                now_ms: now,
                config: config.clone(),
                last_batches: Default::default(),
                aborted: Default::default(),
                abort_markers: false,
            };
            if cleans == cut_at {
                let steps = rng.random_range(0..40);
                disk.freeze_after(steps);
                let _ = log.clean(&req, &mut map, &mut |_: u64| {});
                cut_during_clean += u32::from(disk.is_frozen());
                let kept_from = log.log_end_offset();
                drop(log);
                let _ = resources.close_journals();
                drop(resources);
                disk.crash();
                let resources = journaled(&disk).expect("journal after the cut");
                let log = open(&resources, segment_bytes);
                let got = read_back(&log);
                check(seed, &got, &model, tombstones_go, kept_from, "after a cut in a clean");
                // The log cleans again after the cut, to the same guarantee.
                let stats =
                    log.clean(&req, &mut map, &mut |_: u64| {}).expect("clean after the cut");
                if let Some(stats) = stats {
                    let got = read_back(&log);
                    check(seed, &got, &model, tombstones_go, stats.to, "cleaned after a cut");
                    check_cleaned(seed, &got, stats.point);
                    shrank |= got.len() < model.len();
                }
                break;
            }
            cleans += 1;
            if let Some(stats) = log.clean(&req, &mut map, &mut |_: u64| {}).expect("clean") {
                assert!(stats.swapped, "seed {seed}: nothing changed the log meanwhile");
                let got = read_back(&log);
                check(seed, &got, &model, tombstones_go, stats.to, "after a clean");
                check_cleaned(seed, &got, stats.point);
                shrank |= got.len() < model.len();
            }
        }
    }
    assert!(cut_during_clean > 0, "some cuts fell inside a clean");
    assert!(shrank, "cleans removed records");
}

/// A log of `batches` one-record batches over `keys` keys (most of them key 0), cleaned once whole below its
/// active segment: the log, and what it reads back cleaned.
fn cleaned_log(
    rt: &tokio::runtime::Runtime,
    resources: &Arc<LogResources>,
    batches: u32,
    keys: u16,
) -> (PartitionLog, Vec<(i64, Written)>) {
    let log = open(resources, 600);
    for i in 0..batches {
        // Every third record updates one of the keys in turn, the others key 0: the clean
        // leaves gaps between the survivors.
        let key = if i % 3 == 0 { ((i / 3) % u32::from(keys)) as u16 } else { 0 };
        append(rt, &log, &[(key, Some(i))]);
    }
    let req = CleanRequest::always(log.log_end_offset(), T0);
    let stats = log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut |_: u64| {});
    let stats = stats.expect("clean").expect("a clean was due");
    assert!(stats.swapped && stats.bytes_after < stats.bytes_before, "{stats:?}");
    let got = read_back(&log);
    assert!(got.len() < batches as usize, "the clean removed records");
    (log, got)
}

/// A clean whose swap is done survives a power cut while the journal still holds the
/// frames of the bytes it rewrote: replay leaves the cleaned segments alone (below the
/// marks' `cleaned_below`) rather than cutting the log where they differ from the frames
/// and appending the old bytes again.
#[test]
fn a_clean_survives_a_power_cut_and_the_journals_replay() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions { seed: 7, ..Default::default() });
    let resources = journaled(&disk).expect("journal");
    let (log, cleaned) = cleaned_log(&rt, &resources, 200, 5);
    drop(log);
    power_cut(&disk, resources);
    let resources = journaled(&disk).expect("journal after the cut");
    let log = open(&resources, 600);
    assert_eq!(read_back(&log), cleaned, "the cleaned log, as it was before the cut");
}

/// A cleaned log whose epoch checkpoint is lost is re-validated from its first byte: the
/// gaps compaction left pass (below the marks' `gaps_below`), and nothing is cut.
#[test]
fn a_compacted_log_reopens_whole_when_recovery_scans_it_all() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions::default());
    let resources = journaled(&disk).expect("journal");
    let (log, cleaned) = cleaned_log(&rt, &resources, 200, 5);
    log.close().expect("close");
    drop(log);
    let epochs = Path::new(DATA).join("t-0").join("leader-epoch-checkpoint");
    disk.remove_file(&epochs).expect("remove the epoch checkpoint");
    let log = open(&resources, 600);
    assert!(log.recovery_stats().batches_validated > 0, "recovery scanned the log");
    assert_eq!(log.recovery_stats().bytes_truncated, 0, "recovery cut nothing");
    assert_eq!(read_back(&log), cleaned);
}

/// A follower copies its leader's compacted log, gaps and all, and the copy survives a
/// power cut (recovery re-validates its active segment, gaps in it; the journal replays
/// the appends the segment file lacks).
#[test]
fn a_follower_copies_a_compacted_log_and_keeps_it_through_a_power_cut() {
    let rt = runtime();
    let leader_disk = SimDisk::new(SimOptions::default());
    let leader_resources = journaled(&leader_disk).expect("journal");
    let (leader, cleaned) = cleaned_log(&rt, &leader_resources, 200, 5);
    let disk = SimDisk::new(SimOptions { seed: 3, torn_tails: true, ..Default::default() });
    let resources = journaled(&disk).expect("follower's journal");
    // Large segments: what it copies stays in its active segment, re-validated at open.
    let follower = open(&resources, 1 << 20);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let chunk = leader.read(offset, 300, i64::MAX).expect("leader read");
        let info = follower.append_replicated(&chunk.bytes).expect("replicated append");
        rt.block_on(follower.flush_until(info.log_end_offset)).expect("flush");
        offset = chunk.next_offset;
    }
    assert_eq!(read_back(&follower), cleaned);
    drop(follower);
    power_cut(&disk, resources);
    let resources = journaled(&disk).expect("follower's journal after the cut");
    let follower = open(&resources, 1 << 20);
    assert_eq!(read_back(&follower), cleaned, "the copy after the cut");
}

/// A cut into a cleaned segment (a follower's truncation) makes it the active segment
/// again, gaps and all, and appends after the cut continue from it; the log reopens the
/// same after a power cut (the journal's frames of the bytes the clean rewrote, below the
/// cut, left alone).
#[test]
fn a_cut_into_a_cleaned_segment_then_appends_reopen_after_a_power_cut() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions { seed: 11, torn_tails: true, ..Default::default() });
    let resources = journaled(&disk).expect("journal");
    let (log, cleaned) = cleaned_log(&rt, &resources, 200, 5);
    // Into the middle of the cleaned range, at an offset the clean removed.
    let held: Vec<i64> = cleaned.iter().map(|(o, _)| *o).collect();
    let cut = (held[0]..held[held.len() - 1]).find(|o| !held.contains(o)).expect("a gap");
    log.truncate_to(cut).expect("cut");
    assert_eq!(log.log_end_offset(), cut);
    let after = append(&rt, &log, &[(9, Some(9_999))]);
    assert_eq!(after, cut, "appends go on from the cut");
    let mut want: Vec<_> = cleaned.iter().filter(|(o, _)| *o < cut).cloned().collect();
    want.push((cut, (9, Some(9_999))));
    assert_eq!(read_back(&log), want);
    drop(log);
    power_cut(&disk, resources);
    let resources = journaled(&disk).expect("journal after the cut");
    let log = open(&resources, 600);
    assert_eq!(read_back(&log), want, "after the power cut");
}

/// Readers going through the log while cleans swap segments under them: every read is a
/// consistent view (records of the log at their offsets, increasing), never a file of one
/// clean read with the index of another.
#[test]
fn reads_during_swaps_see_whole_segments() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions::default());
    let resources = journaled(&disk).expect("journal");
    let log = Arc::new(open(&resources, 400));
    // What was written, by offset; held across each append and its note, so a reader
    // that finds a record finds it here too.
    let model = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let write = |r: Written| {
        let mut m = model.lock().unwrap();
        m.insert(append(&rt, &log, &[r]), r);
    };
    for i in 0..300u32 {
        write(((i % 7) as u16, Some(i)));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop, model) = (log.clone(), stop.clone(), model.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let got = read_back(&log);
                let model = model.lock().unwrap();
                let mut last = -1;
                for (offset, record) in &got {
                    assert!(*offset > last, "offset {offset} after {last} during swaps");
                    assert_eq!(model.get(offset), Some(record), "record at {offset}");
                    last = *offset;
                }
                reads += 1;
            }
            reads
        })
    };
    let mut map = OffsetMap::with_memory(1 << 20);
    let mut swaps = 0;
    for round in 0..40u32 {
        write(((round % 7) as u16, Some(10_000 + round)));
        for _ in 0..10 {
            write((100, Some(round)));
        }
        let req = CleanRequest::always(log.log_end_offset(), T0);
        if let Some(stats) = log.clean(&req, &mut map, &mut |_: u64| {}).expect("clean") {
            swaps += u32::from(stats.swapped);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw consistent reads");
    assert!(swaps > 10 && reads > 0, "{swaps} swaps, {reads} reads");
}

/// A clean that fails part way (its segment file's writes refused, as on a full disk)
/// leaves no cleaned file behind and changes nothing the log serves; the next clean,
/// once writes go through again, cleans.
#[test]
fn a_clean_that_fails_leaves_nothing_behind() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions::default());
    let resources = journaled(&disk).expect("journal");
    let log = open(&resources, 600);
    for i in 0..200u32 {
        append(&rt, &log, &[((i % 5) as u16, Some(i))]);
    }
    let before = read_back(&log);
    let req = CleanRequest::always(log.log_end_offset(), T0);
    let dir = Path::new(DATA).join("t-0");
    disk.fail_writes_under(Some(&dir));
    let failed = log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut |_: u64| {});
    assert!(failed.is_err(), "the clean's writes were refused: {failed:?}");
    disk.fail_writes_under(None);
    let names = disk.read_dir(&dir).expect("list");
    assert!(names.iter().all(|n| !n.contains(".cleaned")), "left behind: {names:?}");
    assert_eq!(read_back(&log), before);
    let stats = log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut |_: u64| {});
    assert!(stats.expect("clean").expect("due").swapped);
    assert!(read_back(&log).len() < before.len());
}

/// Hooks that note the abort markers a clean reports, and refuse them when told to.
struct Forgets {
    told: Vec<Vec<i64>>,
    refuse: bool,
}

impl super::CleanHooks for Forgets {
    fn pace(&mut self, _: u64) {}

    fn forget_aborted(&mut self, offsets: &[i64]) -> Result<(), String> {
        self.told.push(offsets.to_vec());
        match self.refuse {
            true => Err("refused".into()),
            false => Ok(()),
        }
    }
}

/// The base offsets of the log's control batches, as stored.
fn control_batches(log: &PartitionLog) -> Vec<i64> {
    let (mut offset, mut out) = (log.log_start_offset(), Vec::new());
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 16, i64::MAX).expect("read");
        for frame in shale_core::record::BatchFrames::new(&chunk.bytes, usize::MAX) {
            let (header, _) = frame.expect("frame");
            if header.is_control() {
                out.push(header.base_offset);
            }
        }
        offset = chunk.next_offset;
    }
    out
}

/// An abort marker goes in a clean after the one that removed its transaction's records,
/// and only once the caller forgot the transaction (told before the swap): a caller that
/// cannot forget it stops the clean, and the marker stays.
#[test]
fn an_abort_marker_goes_only_once_its_transaction_is_forgotten() {
    use shale_core::record::control::{AbortedSet, AbortedTxn, Marker, MarkerKind};
    let rt = runtime();
    let disk = SimDisk::new(SimOptions::default());
    let resources = journaled(&disk).expect("journal");
    let log = open(&resources, 600);
    let mut txn = BatchBuilder::new(Compression::None).with_producer(9, 0, 0).transactional();
    txn.push(Record {
        key: Some(Bytes::from_static(&[0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 9])),
        headers: vec![],
        timestamp_ms: T0,
    });
    log.append(&mut txn.build().to_vec(), 0).expect("append");
    let mut marker =
        Marker { kind: MarkerKind::Abort, coordinator_epoch: 0 }.batch(9, 0, T0).to_vec();
    log.append(&mut marker, 0).expect("append");
    let fill = |from: u32| {
        for i in from..from + 40 {
            append(&rt, &log, &[((i % 3) as u16 + 2, Some(i))]);
        }
    };
    fill(0);
    let aborted = AbortedSet::new([AbortedTxn { producer_id: 9, first_offset: 0, last_offset: 1 }]);
    let config = CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 0,
        ..Default::default()
    };
    let req = |now| CleanRequest {
        upper_bound: log.log_end_offset(),
        now_ms: now,
        config: config.clone(),
        last_batches: Default::default(),
        aborted: aborted.clone(),
        abort_markers: true,
    };
    let mut map = OffsetMap::with_memory(1 << 20);
    let mut hooks = Forgets { told: vec![], refuse: false };
    log.clean(&req(T0), &mut map, &mut hooks).expect("clean").expect("due");
    assert_eq!(control_batches(&log), [1], "the first clean keeps the marker");
    assert!(hooks.told.is_empty(), "{:?}", hooks.told);
    assert!(read_back(&log).iter().all(|(o, _)| *o != 0), "the aborted record went");
    fill(40);
    hooks.refuse = true;
    let refused = log.clean(&req(T0 + 1), &mut map, &mut hooks);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(hooks.told, [vec![1]]);
    assert_eq!(control_batches(&log), [1], "not forgotten: the marker stays");
    hooks.refuse = false;
    let stats = log.clean(&req(T0 + 2), &mut map, &mut hooks).expect("clean").expect("due");
    assert!(stats.swapped && stats.markers_removed == 1, "{stats:?}");
    assert_eq!(hooks.told, [vec![1], vec![1]]);
    assert!(control_batches(&log).is_empty(), "forgotten, then removed");
}

/// A log closed while a clean of it runs returns from `close` only once the clean is over,
/// and no cleaned file is left: a broker stopped in a process and the next one started
/// there on the same directory never see a clean's files come and go under their open
/// (seen as "partition cannot be opened: …index.cleaned: No such file").
#[test]
fn close_waits_for_a_clean_under_way_which_leaves_nothing_behind() {
    let rt = runtime();
    let disk = SimDisk::new(SimOptions::default());
    let resources = journaled(&disk).expect("journal");
    let log = Arc::new(open(&resources, 600));
    for i in 0..200u32 {
        append(&rt, &log, &[((i % 5) as u16, Some(i))]);
    }
    let before = read_back(&log);
    let dir = Path::new(DATA).join("t-0");
    let cleaned_files = {
        let (disk, dir) = (disk.clone(), dir.clone());
        move || -> Vec<String> {
            let names = disk.read_dir(&dir).expect("list");
            names.into_iter().filter(|n| n.contains(".cleaned")).collect()
        }
    };
    let (started, clean_started) = std::sync::mpsc::channel();
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let cleaner = {
        let (log, cleaned_files) = (log.clone(), cleaned_files.clone());
        std::thread::spawn(move || {
            let req = CleanRequest::always(log.log_end_offset(), T0);
            let mut paused = false;
            // The clean stops once it has written cleaned files, until the close is
            // under way.
            let mut pace = |_: u64| {
                if !paused && !cleaned_files().is_empty() {
                    paused = true;
                    started.send(()).expect("the test waits");
                    wait_for_go.recv().expect("the test says go");
                }
            };
            log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut pace)
        })
    };
    clean_started.recv_timeout(Duration::from_secs(20)).expect("the clean wrote files");
    let closer = {
        let (log, cleaned_files) = (log.clone(), cleaned_files.clone());
        std::thread::spawn(move || {
            log.close().expect("close");
            cleaned_files()
        })
    };
    wait_until(20, "close to begin", || log.closing());
    go.send(()).expect("the clean waits");
    let at_close = closer.join().expect("close");
    assert!(at_close.is_empty(), "close returned with the clean's files there: {at_close:?}");
    let cleaned = cleaner.join().expect("clean");
    assert!(matches!(cleaned, Ok(None)), "the clean gave up for the close: {cleaned:?}");
    assert_eq!(cleaned_files(), Vec::<String>::new(), "left behind");
    drop(log);
    let log = open(&resources, 600);
    assert_eq!(read_back(&log), before, "the log reopens as it was");
}
