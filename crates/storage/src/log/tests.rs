//! Behaviour tests of the partition log: append/read, rolls, recovery, group commit,
//! retention, truncation, shared resources.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::*;
use shale_core::clock::{Clock, ManualClock};
use shale_core::record::BatchHeader;
use shale_core::record::batch::{HEADER_LEN, write_crc};

const T0: i64 = 1_700_000_000_000;

/// A valid (framing + CRC) batch with `records` records, `payload` bytes after the header
/// and the given max timestamp. Records are opaque bytes to the log.
fn batch(records: i32, payload: usize, max_ts: i64) -> Vec<u8> {
    batch_with(records, payload, max_ts, payload)
}

/// [`batch`] whose payload bytes also depend on `seed`, so equal shapes differ in content.
pub(super) fn batch_with(records: i32, payload: usize, max_ts: i64, seed: usize) -> Vec<u8> {
    let len = HEADER_LEN + payload;
    let mut b = vec![0u8; len];
    b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, byte) in b[HEADER_LEN..].iter_mut().enumerate() {
        *byte = (i * 7).wrapping_add(seed) as u8;
    }
    write_crc(&mut b);
    b
}

fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 1000, index_interval_bytes: 200, ..LogConfig::default() }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    resources: Arc<LogResources>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            clock: Arc::new(ManualClock::new(T0)),
            resources: Arc::new(LogResources::default()),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("topic-0")
    }

    fn open(&self, config: LogConfig) -> PartitionLog {
        PartitionLog::open(self.path(), config, self.clock.clone(), self.resources.clone())
            .expect("open log")
    }

    /// Reopens with fresh caches, as after a process restart.
    fn reopen(&self, config: LogConfig) -> PartitionLog {
        let resources = Arc::new(LogResources::default());
        PartitionLog::open(self.path(), config, self.clock.clone(), resources).expect("reopen log")
    }

    fn segment_files(&self) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = fs::read_dir(self.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    }
}

/// Appends batches of the given (records, payload) shapes one per call; returns each
/// appended batch's stamped bytes.
fn fill(log: &PartitionLog, shapes: &[(i32, usize)], ts: i64) -> Vec<Vec<u8>> {
    shapes
        .iter()
        .map(|&(records, payload)| {
            let mut b = batch(records, payload, ts);
            log.append(&mut b, 1).expect("append");
            b
        })
        .collect()
}

/// Splits a read chunk into headers.
fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    shale_core::record::BatchFrames::new(bytes, usize::MAX).map(|r| r.expect("framed").0).collect()
}

/// Reads the whole log from `from` in chunks of `max_bytes`.
pub(super) fn read_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, max_bytes, i64::MAX).expect("read");
        assert!(!chunk.bytes.is_empty(), "no progress at {offset}");
        out.extend_from_slice(&chunk.bytes);
        offset = chunk.next_offset;
    }
    out
}

#[test]
fn append_stamps_consecutive_offsets_and_epoch_in_place() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default());
    let mut buf = [batch(2, 10, T0), batch(3, 0, T0 + 5), batch(1, 7, T0 - 3)].concat();
    let info = log.append(&mut buf, 7).expect("append");
    assert_eq!((info.base_offset, info.last_offset, info.log_end_offset), (0, 5, 6));
    assert_eq!((info.batch_count, info.bytes, info.max_timestamp), (3, buf.len(), T0 + 5));
    let hs = headers(&buf);
    assert_eq!(hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![0, 2, 5]);
    assert!(hs.iter().all(|h| h.partition_leader_epoch == 7));
    let info = log.append(&mut batch(4, 1, T0), 7).expect("append");
    assert_eq!((info.base_offset, info.log_end_offset), (6, 10));
    assert_eq!(log.read(0, usize::MAX, i64::MAX).expect("read").bytes.len(), buf.len() + 62);
}

#[test]
fn append_rejects_bad_framing_without_writing() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default());
    let mut torn = batch(1, 50, T0);
    torn.truncate(40);
    assert!(matches!(log.append(&mut torn, 0), Err(LogError::Record(_))));
    assert!(matches!(log.append(&mut [], 0), Err(LogError::Record(_))));
    let mut big = batch(1, 2 << 20, T0);
    assert!(matches!(log.append(&mut big, 0), Err(LogError::Record(_))));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn segment_file_holds_exactly_the_stamped_batches() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default());
    let written = fill(&log, &[(1, 3), (2, 9)], T0);
    let files = fx.segment_files();
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("00000000000000000000.log"));
    assert_eq!(fs::read(&files[0]).expect("read segment"), written.concat());
}

#[test]
fn reads_round_trip_across_segment_rolls() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let shapes: Vec<(i32, usize)> =
        (0..60).map(|i| (1 + i % 4, 40 + (i as usize * 37) % 300)).collect();
    let written = fill(&log, &shapes, T0);
    assert!(log.segment_count() > 10, "segments: {}", log.segment_count());
    assert_eq!(fx.segment_files().len(), log.segment_count());
    assert_eq!(read_all(&log, 0, 500), written.concat());
    assert_eq!(read_all(&log, 0, 1), written.concat());
    assert_eq!(log.size_bytes(), written.concat().len() as u64);
    // Every offset, including ones inside a batch, reads the batch containing it.
    let mut base = 0i64;
    for (b, &(records, _)) in written.iter().zip(&shapes) {
        for offset in base..base + i64::from(records) {
            let chunk = log.read(offset, 1, i64::MAX).expect("read");
            assert_eq!(&chunk.bytes[..], &b[..], "offset {offset}");
            assert_eq!(chunk.next_offset, base + i64::from(records));
        }
        base += i64::from(records);
    }
}

#[test]
fn read_respects_upper_bound_and_max_bytes() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default());
    // Batches at offsets 0..3, 3..6, 6..9, 9..12, 100 bytes each.
    let written = fill(&log, &[(3, 39); 4], T0);
    let chunk = log.read(0, 250, i64::MAX).expect("read");
    assert_eq!(headers(&chunk.bytes).len(), 2, "max_bytes 250 holds two 100-byte batches");
    assert_eq!(chunk.next_offset, 6);
    let chunk = log.read(4, 1, i64::MAX).expect("read");
    assert_eq!(&chunk.bytes[..], &written[1][..], "at least one batch");
    // The high watermark at 7 is inside the third batch: it must not be returned.
    let chunk = log.read(0, usize::MAX, 7).expect("read");
    assert_eq!(&chunk.bytes[..], &written[..2].concat()[..]);
    assert_eq!(chunk.next_offset, 6);
    let chunk = log.read(6, usize::MAX, 7).expect("read");
    assert!(chunk.bytes.is_empty());
    assert_eq!(chunk.next_offset, 6);
    assert!(log.read(9, usize::MAX, 9).expect("read").bytes.is_empty());
    assert_eq!(log.read(0, usize::MAX, 12).expect("read").bytes.len(), 400);
}

#[test]
fn out_of_range_reads_carry_the_range_and_log_end_reads_empty() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default());
    fill(&log, &[(5, 10)], T0);
    let chunk = log.read(5, 100, i64::MAX).expect("read at log end");
    assert!(chunk.bytes.is_empty());
    assert_eq!(chunk.next_offset, 5);
    for bad in [-1, 6, 1000] {
        match log.read(bad, 100, i64::MAX) {
            Err(LogError::OffsetOutOfRange { offset, log_start: 0, log_end: 5 }) => {
                assert_eq!(offset, bad)
            }
            other => panic!("expected out of range for {bad}, got {other:?}"),
        }
    }
}

/// The linear-scan truth: (segment base, byte position) of the batch containing `offset`.
fn linear_position(dir: &Path, offset: i64) -> (i64, u64) {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    for f in files {
        let bytes = fs::read(&f).expect("read");
        for item in shale_core::record::BatchFrames::new(&bytes, usize::MAX) {
            let (h, r) = item.expect("framed");
            if h.base_offset <= offset && offset <= h.last_offset() {
                let name = f.file_stem().and_then(|s| s.to_str()).expect("name");
                return (name.parse().expect("base"), r.start as u64);
            }
        }
    }
    panic!("offset {offset} not found by linear scan");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn offsets_consecutive_readable_and_index_agrees_with_scan(
        shapes in prop::collection::vec((1i32..5, 0usize..400), 1..40),
        interval in 0usize..600,
    ) {
        let fx = Fixture::new();
        let config = LogConfig { segment_bytes: 900, index_interval_bytes: interval, ..LogConfig::default() };
        let log = fx.open(config.clone());
        let mut expected_base = 0i64;
        for &(records, payload) in &shapes {
            let info = log.append(&mut batch(records, payload, T0), 0).expect("append");
            prop_assert_eq!(info.base_offset, expected_base);
            expected_base += i64::from(records);
            prop_assert_eq!(info.log_end_offset, expected_base);
        }
        log.close().expect("close");
        let reopened = fx.reopen(config.clone());
        for log in [&log, &reopened] {
            for offset in 0..expected_base {
                let truth = linear_position(&fx.path(), offset);
                let (seg, pos) = log.index_position(offset);
                prop_assert_eq!(seg, truth.0);
                prop_assert!(pos <= truth.1);
                let chunk = log.read(offset, 0, i64::MAX).expect("read");
                let h = headers(&chunk.bytes);
                prop_assert_eq!(h.len(), 1);
                prop_assert!(h[0].base_offset <= offset && offset <= h[0].last_offset());
            }
        }
    }
}

#[test]
fn index_lookups_skip_most_of_a_segment() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig { index_interval_bytes: 1000, ..LogConfig::default() });
    fill(&log, &[(1, 439); 100], T0); // 500-byte batches: an entry every 2-3 batches
    let (_, pos) = log.index_position(90);
    let truth = linear_position(&fx.path(), 90).1;
    assert!(truth - pos <= 1000, "index position {pos} too far from {truth}");
}

// ---- recovery ----

/// Appends batches across a few segments and drops the log without closing (a crash).
fn crashed_log(fx: &Fixture) -> (Vec<Vec<u8>>, i64) {
    let log = fx.open(small_config());
    let written = fill(&log, &[(2, 150); 12], T0);
    let end = log.log_end_offset();
    assert!(log.segment_count() > 2);
    drop(log);
    (written, end)
}

fn active_segment(fx: &Fixture) -> std::path::PathBuf {
    fx.segment_files().pop().expect("a segment")
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).expect("open segment");
    f.write_all(bytes).expect("write");
}

fn assert_recovered(fx: &Fixture, written: &[Vec<u8>], end: i64, cut: u64) {
    let log = fx.reopen(small_config());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.recovery_stats().bytes_truncated, cut);
    assert_eq!(read_all(&log, 0, 300), written.concat());
    let info = log.append(&mut batch(3, 20, T0), 1).expect("append after recovery");
    assert_eq!(info.base_offset, end);
    assert_eq!(log.read(end, 10, i64::MAX).expect("read").next_offset, end + 3);
    log.close().expect("close");
    let again = fx.reopen(small_config());
    assert_eq!(again.log_end_offset(), end + 3);
    assert_eq!(again.recovery_stats().batches_validated, 0);
}

#[test]
fn recovery_truncates_garbage_after_the_last_batch() {
    // Shorter than a header, then a header-sized run with a bad magic byte.
    for garbage in [37, 500] {
        let fx = Fixture::new();
        let (written, end) = crashed_log(&fx);
        append_raw(&active_segment(&fx), &vec![0xAB; garbage]);
        assert_recovered(&fx, &written, end, garbage as u64);
    }
}

#[test]
fn partition_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<LogResources>();
}

#[test]
fn recovery_truncates_a_half_written_batch() {
    let fx = Fixture::new();
    let (written, end) = crashed_log(&fx);
    let mut half = batch(1, 200, T0);
    shale_core::record::batch::stamp(&mut half, end, 1);
    append_raw(&active_segment(&fx), &half[..130]);
    assert_recovered(&fx, &written, end, 130);
    // A torn header (shorter than 61 bytes) is cut too.
    let fx = Fixture::new();
    let (written, end) = crashed_log(&fx);
    append_raw(&active_segment(&fx), &half[..20]);
    assert_recovered(&fx, &written, end, 20);
}

#[test]
fn recovery_truncates_a_batch_with_a_bad_crc() {
    let fx = Fixture::new();
    let (written, end) = crashed_log(&fx);
    let path = active_segment(&fx);
    let mut bytes = fs::read(&path).expect("read");
    let last = written.last().expect("batches");
    let at = bytes.len() - 5; // inside the last batch's records
    bytes[at] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let (kept, last_records) = (&written[..written.len() - 1], 2);
    assert_recovered(&fx, kept, end - last_records, last.len() as u64);
}

#[test]
fn recovery_truncates_an_offset_gap() {
    let fx = Fixture::new();
    let (written, end) = crashed_log(&fx);
    let mut gap = batch(1, 10, T0);
    shale_core::record::batch::stamp(&mut gap, end + 5, 1);
    append_raw(&active_segment(&fx), &gap);
    assert_recovered(&fx, &written, end, gap.len() as u64);
}

#[test]
fn recovery_without_recovery_point_revalidates_all_and_drops_later_segments() {
    let fx = Fixture::new();
    let (written, _) = crashed_log(&fx);
    fs::remove_file(fx.path().join("recovery-point")).expect("remove recovery point");
    // Corrupt the second segment: everything from there on goes.
    let files = fx.segment_files();
    let mut bytes = fs::read(&files[1]).expect("read");
    bytes[HEADER_LEN + 3] ^= 1;
    fs::write(&files[1], &bytes).expect("write");
    let log = fx.reopen(small_config());
    let first_segment_batches = fs::read(&files[0]).expect("read").len() / written[0].len();
    assert_eq!(log.log_end_offset(), 2 * first_segment_batches as i64);
    assert_eq!(log.segment_count(), 2, "the cut segment stays, empty, as the active one");
    let stats = log.recovery_stats();
    assert_eq!(stats.batches_validated, first_segment_batches as u64);
    assert_eq!(stats.segments_deleted, files.len() - 2);
    assert_eq!(read_all(&log, 0, 1000), written[..first_segment_batches].concat());
    log.append(&mut batch(1, 1, T0), 1).expect("append");
}

#[test]
fn clean_close_skips_revalidation_and_a_crash_revalidates_only_the_active_segment() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(1, 150); 20], T0);
    log.close().expect("close");
    assert!(matches!(log.append(&mut batch(1, 1, T0), 1), Err(LogError::Closed)));
    let log = fx.reopen(small_config());
    assert_eq!(log.recovery_stats(), RecoveryStats::default());
    assert_eq!(read_all(&log, 0, 700), written.concat());
    assert_eq!(log.append(&mut batch(1, 1, T0), 1).expect("append").base_offset, 20);
    drop(log); // crash: the recovery point from the last roll or close stays
    let active_batches =
        fs::read(active_segment(&fx)).expect("read").len() as u64 / written[0].len() as u64;
    let log = fx.reopen(small_config());
    let stats = log.recovery_stats();
    assert!(stats.batches_validated <= active_batches + 1, "{stats:?}");
    assert!(stats.batches_validated < 21);
    assert_eq!(log.log_end_offset(), 21);
}

#[test]
fn missing_or_corrupt_index_files_are_rebuilt() {
    let fx = Fixture::new();
    let config = LogConfig { index_interval_bytes: 100, ..small_config() };
    let log = fx.open(config.clone());
    let written = fill(&log, &[(1, 150); 20], T0);
    log.close().expect("close");
    let first = fx.path().join("00000000000000000000.index");
    let expected = fs::read(&first).expect("index exists");
    fs::remove_file(&first).expect("remove");
    let second = fx.segment_files()[1].with_extension("timeindex");
    fs::write(&second, b"SHTX\x09\0\0\0").expect("corrupt");
    let log = fx.reopen(config);
    assert_eq!(read_all(&log, 0, 100), written.concat());
    assert_eq!(fs::read(&first).expect("rebuilt"), expected);
    assert!(fs::read(&second).expect("rebuilt").starts_with(b"SHTX\x01"));
}

// ---- group commit ----

/// A multi-threaded runtime of `workers` threads, for tests where flushes run beside appends.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn concurrent_flushes_coalesce_into_few_fsyncs() {
    let rt = runtime(4);
    let fx = Fixture::new();
    let log = Arc::new(fx.open(LogConfig::default()));
    log.inner.sync_delay_ms.store(15, Ordering::Relaxed);
    let callers = 8 * 12;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let log = log.clone();
            tasks.push(shale_core::task::spawn_owned(async move {
                for _ in 0..12 {
                    let l = log.clone();
                    let info =
                        tokio::task::spawn_blocking(move || l.append(&mut batch(2, 100, T0), 1))
                            .await
                            .expect("join")
                            .expect("append");
                    log.flush_until(info.log_end_offset).await.expect("flush");
                    assert!(log.durable_offset() >= info.log_end_offset);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    assert_eq!(log.durable_offset(), log.log_end_offset());
    assert_eq!(log.log_end_offset(), 2 * callers);
    let syncs = log.sync_count();
    assert!(syncs <= callers as u64 / 3, "{syncs} fsyncs for {callers} callers");
}

#[test]
fn waiters_behind_one_fsync_are_all_covered_by_it() {
    let rt = runtime(2);
    let fx = Fixture::new();
    let log = Arc::new(fx.open(LogConfig::default()));
    for _ in 0..50 {
        log.append(&mut batch(1, 10, T0), 1).expect("append");
    }
    rt.block_on(async {
        let tasks: Vec<_> = (1..=50)
            .map(|o| {
                let log = log.clone();
                shale_core::task::spawn_owned(async move { log.flush_until(o).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("flush");
        }
        assert!(matches!(log.flush_until(51).await, Err(LogError::OffsetOutOfRange { .. })));
    });
    assert_eq!(log.sync_count(), 1);
    assert_eq!(log.durable_offset(), 50);
}

/// A follower fsyncs on the thread that appended; with shared rounds it leaves the fsync
/// to the round `flush_until` joins.
#[test]
fn flush_here_fsyncs_on_the_calling_thread_unless_rounds_are_shared() {
    for shared in [false, true] {
        let fx = Fixture {
            resources: Arc::new(LogResources::default().with_shared_fsync(shared)),
            ..Fixture::new()
        };
        let log = fx.open(LogConfig::default());
        log.append(&mut batch(3, 10, T0), 1).expect("append");
        log.flush_here().expect("flush here");
        let expected = if shared { (0, 0) } else { (3, 1) };
        assert_eq!((log.durable_offset(), log.sync_count()), expected, "shared {shared}");
    }
}

#[test]
fn rolls_fsync_sealed_segments_so_durability_stays_truthful() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    fill(&log, &[(1, 400); 3], T0); // the third append rolls
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.durable_offset(), 2, "the sealed segment was fsynced by the roll");
    log.flush_all().expect("flush");
    assert_eq!(log.durable_offset(), 3);
}

#[test]
fn offsets_watch_follows_appends_flushes_truncation_and_retention() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig { retention_bytes: 0, ..small_config() });
    let mut rx = log.subscribe();
    assert_eq!(
        *rx.borrow_and_update(),
        LogOffsets { log_start: 0, log_end: 0, durable_end: 0, start_floor: 0 }
    );
    fill(&log, &[(2, 400); 3], T0);
    assert!(rx.has_changed().expect("open"));
    assert_eq!(
        *rx.borrow_and_update(),
        LogOffsets { log_start: 0, log_end: 6, durable_end: 4, start_floor: 0 }
    );
    log.flush_all().expect("flush");
    assert_eq!(rx.borrow_and_update().durable_end, 6);
    log.truncate_to(5).expect("truncate");
    assert_eq!(
        *rx.borrow_and_update(),
        LogOffsets { log_start: 0, log_end: 4, durable_end: 4, start_floor: 0 }
    );
    log.apply_retention().expect("retention");
    assert_eq!(rx.borrow_and_update().log_start, 4);
}

// ---- retention ----

#[test]
fn time_retention_deletes_old_sealed_segments_and_rolls_aged_active_ones() {
    let fx = Fixture::new();
    let day = 24 * 3600 * 1000;
    let config = LogConfig { retention_ms: 2 * day, segment_ms: day, ..small_config() };
    let log = fx.open(config);
    for _ in 0..5 {
        fill(&log, &[(1, 400)], fx.clock.now_ms());
        fx.clock.advance(day / 2);
    }
    // Segments [0,1] [2,3] [4]; newest timestamps 2, 1 and 0.5 days old: none expired
    // (strictly older than retention_ms is), and the active one is younger than segment_ms.
    assert_eq!(log.segment_count(), 3);
    let out = log.apply_retention().expect("retention");
    assert_eq!((out.deleted_segments, out.rolled), (0, false));
    fx.clock.advance(day);
    let out = log.apply_retention().expect("retention");
    assert!(out.rolled, "the active segment passed segment_ms");
    assert_eq!(out.deleted_segments, 1, "{out:?}");
    assert_eq!(out.log_start_offset, 2);
    assert_eq!(log.segment_count(), 3, "[2,3] [4] and a new empty active segment");
    assert!(matches!(
        log.read(0, 10, i64::MAX),
        Err(LogError::OffsetOutOfRange { log_start: 2, .. })
    ));
    fx.clock.advance(10 * day);
    let out = log.apply_retention().expect("retention");
    assert_eq!(out.log_start_offset, log.log_end_offset(), "all sealed segments expired");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.read(5, 10, i64::MAX).expect("read at end").next_offset, 5);
    log.append(&mut batch(1, 1, fx.clock.now_ms()), 1).expect("append");
}

#[test]
fn size_retention_keeps_the_log_at_or_above_the_limit() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig { retention_bytes: 2000, ..small_config() });
    fill(&log, &[(1, 400); 20], T0); // ~461 bytes each, two per segment
    let before = log.size_bytes();
    let out = log.apply_retention().expect("retention");
    assert!(out.deleted_segments > 0);
    assert_eq!(before - out.deleted_bytes, log.size_bytes());
    assert!(log.size_bytes() >= 2000);
    assert!(log.size_bytes() < 2000 + 2 * 461 + 1, "size {}", log.size_bytes());
    assert_eq!(log.apply_retention().expect("again").deleted_segments, 0);
    assert_eq!(fx.segment_files().len(), log.segment_count());
    // Unlimited retention deletes nothing.
    log.set_config(LogConfig { retention_bytes: -1, retention_ms: -1, ..small_config() });
    assert_eq!(log.apply_retention().expect("none").deleted_segments, 0);
}

#[test]
fn retention_survives_reopen_with_timestamps_from_index_files() {
    let fx = Fixture::new();
    let config = LogConfig { retention_ms: 1000, ..small_config() };
    let log = fx.open(config.clone());
    fill(&log, &[(1, 400); 4], T0);
    fill(&log, &[(1, 400); 4], T0 + 5000);
    log.close().expect("close");
    fx.clock.set(T0 + 5500);
    let log = fx.reopen(config);
    let out = log.apply_retention().expect("retention");
    assert_eq!(out.log_start_offset, 4);
}

// ---- lookups ----

#[test]
fn offset_for_timestamp_finds_the_first_batch_reaching_the_time() {
    let fx = Fixture::new();
    let config = LogConfig { index_interval_bytes: 150, ..small_config() };
    let log = fx.open(config.clone());
    // Not monotonic, as CreateTime timestamps can be.
    let times = [10, 30, 20, 40, 35, 80, 50, 90, 60, 100, 95, 120];
    for &t in &times {
        log.append(&mut batch(2, 200, t), 1).expect("append");
    }
    let expect = |ts: i64| times.iter().position(|&t| t >= ts).map(|i| (2 * i as i64, times[i]));
    let check = |log: &PartitionLog| {
        for ts in 0..130 {
            assert_eq!(log.offset_for_timestamp(ts, 0).expect("lookup"), expect(ts), "ts {ts}");
        }
    };
    check(&log);
    log.close().expect("close");
    check(&fx.reopen(config));
}

/// Batches of two records at these times, one per append, three per segment (not
/// monotonic, as CreateTime timestamps can be).
const TIMES: [i64; 13] = [10, 30, 20, 40, 35, 80, 50, 90, 60, 100, 95, 120, 70];

#[test]
fn max_timestamp_is_the_largest_batch_timestamp_of_the_whole_batches_in_range() {
    let fx = Fixture::new();
    let config = LogConfig { index_interval_bytes: 150, ..small_config() };
    let log = fx.open(config.clone());
    for &t in &TIMES {
        log.append(&mut batch(2, 200, t), 1).expect("append");
    }
    assert!(log.segment_count() > 3, "sealed segments and an active one");
    // The largest timestamp of the batches that start at or after `from` and end at or
    // below `until`.
    let expect = |from: i64, until: i64| {
        (0..TIMES.len())
            .filter(|&i| 2 * i as i64 >= from && 2 * i as i64 + 2 <= until)
            .map(|i| TIMES[i])
            .max()
    };
    let check = |log: &PartitionLog| {
        for from in 0..27 {
            for until in [0, 1, 5, 6, 13, 22, 23, 25, 26, i64::MAX] {
                let got = log.max_timestamp(from, until).expect("lookup");
                assert_eq!(got, expect(from, until), "from {from} until {until}");
            }
        }
    };
    check(&log);
    log.close().expect("close");
    let log = fx.reopen(config);
    check(&log);
    // Below the log start nothing counts, even when asked for.
    log.advance_log_start(23).expect("advance");
    assert_eq!(log.max_timestamp(0, i64::MAX).expect("lookup"), Some(70));
}

// ---- the log start (DeleteRecords) ----

#[test]
fn a_new_log_start_refuses_reads_below_it_and_deletes_the_segments_wholly_below() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(3, 300); 10], T0); // two per segment: [0,6) .. [24,30)
    assert_eq!(log.segment_count(), 5);
    // 13 is inside the batch 12..15, in the segment [12,18).
    assert_eq!(log.advance_log_start(13).expect("advance"), 13);
    assert_eq!((log.log_start_offset(), log.local_base_offset()), (13, 12));
    assert_eq!(log.offsets().start_floor, 13);
    assert_eq!(log.segment_count(), 3, "[0,6) and [6,12) were wholly below 13");
    assert_eq!(fx.segment_files().len(), 3);
    let refused = log.read(12, 10, i64::MAX);
    assert!(
        matches!(refused, Err(LogError::OffsetOutOfRange { offset: 12, log_start: 13, .. })),
        "{refused:?}"
    );
    // The batch holding the start is served whole, as Kafka does: a consumer skips the
    // records before its fetch offset.
    assert_eq!(log.read(13, 1, i64::MAX).expect("read at the start").bytes, written[4]);
    assert_eq!(read_all(&log, 13, 1 << 20), written[4..].concat());
    assert_eq!(log.leader_epochs()[0].start_offset, 13, "epochs start at the log start");
}

#[test]
fn the_log_start_never_moves_backwards_nor_past_the_log_end() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    fill(&log, &[(3, 300); 10], T0);
    log.advance_log_start(13).expect("advance");
    assert_eq!(log.advance_log_start(7).expect("a lower start changes nothing"), 13);
    assert_eq!(log.log_start_offset(), 13);
    let past = log.advance_log_start(31);
    assert!(matches!(past, Err(LogError::OffsetOutOfRange { offset: 31, .. })), "{past:?}");
    assert_eq!(log.advance_log_start(30).expect("to the log end"), 30);
    assert_eq!(log.segment_count(), 1, "only the active segment is left");
    assert!(log.read(30, 10, i64::MAX).expect("at the end").bytes.is_empty());
    let more = fill(&log, &[(1, 10)], T0);
    assert_eq!(read_all(&log, 30, 1 << 20), more.concat(), "appends go on past it");
}

#[test]
fn the_log_start_survives_a_restart() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(3, 300); 10], T0);
    log.advance_log_start(13).expect("advance");
    drop(log); // no clean close: the start was durable when the call returned
    let log = fx.reopen(small_config());
    assert_eq!((log.log_start_offset(), log.start_floor()), (13, 13));
    assert!(matches!(log.read(12, 10, i64::MAX), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&log, 13, 1 << 20), written[4..].concat());
    assert_eq!(log.advance_log_start(7).expect("never backwards"), 13);
    log.close().expect("close");
    assert_eq!(fx.reopen(small_config()).log_start_offset(), 13);
}

#[test]
fn a_corrupt_log_start_file_fails_the_open_rather_than_serve_deleted_records() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    fill(&log, &[(3, 300); 4], T0);
    log.advance_log_start(4).expect("advance");
    drop(log);
    let path = fx.path().join("log-start-offset");
    let mut bytes = fs::read(&path).expect("read");
    bytes[10] ^= 1;
    fs::write(&path, bytes).expect("write");
    let resources = Arc::new(LogResources::default());
    let e = PartitionLog::open(fx.path(), small_config(), fx.clock.clone(), resources)
        .expect_err("a corrupt log start is not ignored");
    assert!(e.to_string().contains("log-start-offset"), "{e}");
}

#[test]
fn retention_deletes_segments_that_fall_below_the_log_start_later() {
    let fx = Fixture::new();
    let config = LogConfig { retention_bytes: -1, retention_ms: -1, ..small_config() };
    let log = fx.open(config);
    fill(&log, &[(3, 300); 10], T0);
    // Everything the active segment [24,30) holds is below 30, but it stays until sealed.
    log.advance_log_start(30).expect("advance");
    assert_eq!(log.segment_count(), 1);
    fill(&log, &[(3, 300); 2], T0);
    assert_eq!(log.segment_count(), 2, "[24,30) sealed, [30,36) active");
    // Even below a tiered partition's limit (nothing of it in the bucket): deleted records
    // are not kept for the uploader.
    let out = log.apply_retention_below(i64::MIN).expect("retention");
    assert_eq!((out.deleted_segments, out.log_start_offset), (1, 30), "{out:?}");
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn lookups_by_time_skip_records_below_the_log_start() {
    let fx = Fixture::new();
    let config = LogConfig { index_interval_bytes: 150, ..small_config() };
    let log = fx.open(config);
    for &t in &TIMES {
        log.append(&mut batch(2, 200, t), 1).expect("append");
    }
    // The first batch ending after `from` (and after the log start) whose time reaches ts:
    // the one holding the start is found too, whole (the caller looks at its records).
    let expect = |ts: i64, from: i64| {
        (0..TIMES.len())
            .find(|&i| 2 * i as i64 + 2 > from && TIMES[i] >= ts)
            .map(|i| (2 * i as i64, TIMES[i]))
    };
    for from in [0, 7, 9, 20] {
        for ts in 0..130 {
            let got = log.offset_for_timestamp(ts, from).expect("lookup");
            assert_eq!(got, expect(ts, from), "ts {ts} from {from}");
        }
    }
    log.advance_log_start(9).expect("advance");
    for ts in 0..130 {
        let got = log.offset_for_timestamp(ts, 0).expect("lookup");
        assert_eq!(got, expect(ts, 9), "ts {ts} below the log start");
    }
}

// ---- truncation ----

#[test]
fn truncate_to_drops_the_tail_from_the_containing_batch() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(3, 300); 10], T0); // 361-byte batches, two per segment
    let segments = log.segment_count();
    log.truncate_to(29).expect("truncate inside the active segment");
    assert_eq!(log.log_end_offset(), 27);
    log.truncate_to(13).expect("truncate into a sealed segment");
    assert_eq!(log.log_end_offset(), 12, "offset 13 is inside batch 12..15");
    assert!(log.segment_count() < segments);
    assert_eq!(fx.segment_files().len(), log.segment_count());
    assert_eq!(log.durable_offset(), 12);
    assert_eq!(read_all(&log, 0, 1), written[..4].concat());
    assert!(matches!(
        log.read(13, 1, i64::MAX),
        Err(LogError::OffsetOutOfRange { log_end: 12, .. })
    ));
    log.truncate_to(100).expect("past the end is a no-op");
    let info = log.append(&mut batch(1, 10, T0), 2).expect("append");
    assert_eq!(info.base_offset, 12);
    assert_eq!(
        log.leader_epochs(),
        vec![EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 2, start_offset: 12 }]
    );
    log.truncate_to(12).expect("truncate the new epoch away");
    assert_eq!(log.leader_epochs(), vec![EpochEntry { epoch: 1, start_offset: 0 }]);
    drop(log); // no clean close: the truncation must have been made durable by itself
    let log = fx.reopen(small_config());
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(read_all(&log, 0, 1), written[..4].concat());
    assert_eq!(log.leader_epochs(), vec![EpochEntry { epoch: 1, start_offset: 0 }]);
}

#[test]
fn truncate_below_log_start_is_out_of_range() {
    let fx = Fixture::new();
    let log = fx.open(LogConfig { retention_bytes: 0, ..small_config() });
    fill(&log, &[(1, 400); 5], T0);
    log.apply_retention().expect("retention");
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(log.truncate_to(start - 1), Err(LogError::OffsetOutOfRange { .. })));
    log.truncate_to(start).expect("truncate everything");
    assert_eq!(log.log_end_offset(), start);
}

// ---- epochs and replication ----

#[test]
fn leader_epochs_are_checkpointed_and_survive_reopen() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    log.append(&mut batch(2, 10, T0), 1).expect("append");
    log.append(&mut batch(2, 10, T0), 1).expect("append");
    log.append(&mut batch(2, 10, T0), 3).expect("append");
    log.append(&mut batch(2, 10, T0), 2).expect("a stale epoch is recorded in the batch only");
    let expected =
        vec![EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 4 }];
    assert_eq!(log.leader_epochs(), expected);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(5), Some((3, 8)));
    drop(log);
    let log = fx.reopen(small_config());
    assert_eq!(log.leader_epochs(), expected);
    // Without the checkpoint, recovery rebuilds it from the batches.
    drop(log);
    fs::remove_file(fx.path().join("leader-epoch-checkpoint")).expect("remove");
    let log = fx.reopen(small_config());
    assert_eq!(log.leader_epochs(), expected);
}

#[test]
fn replicated_appends_keep_offsets_and_require_continuity() {
    let fx = Fixture::new();
    let leader = fx.open(small_config());
    fill(&leader, &[(2, 100); 6], T0);
    let bytes = read_all(&leader, 0, 10_000);
    let other = Fixture::new();
    let follower = other.open(small_config());
    let info = follower.append_replicated(&bytes).expect("replicate");
    assert_eq!((info.base_offset, info.log_end_offset), (0, 12));
    assert_eq!(read_all(&follower, 0, 10_000), bytes);
    assert!(matches!(
        follower.append_replicated(&bytes),
        Err(LogError::OffsetOutOfRange { offset: 0, log_end: 12, .. })
    ));
    assert_eq!(follower.leader_epochs(), vec![EpochEntry { epoch: 1, start_offset: 0 }]);
}

/// Before: a follower framed replicated batches with its own `max.message.bytes`, so
/// lowering the topic's limit stopped replication of batches the leader had accepted.
#[test]
fn replication_copies_batches_accepted_before_max_message_bytes_was_lowered() {
    let fx = Fixture::new();
    let leader = fx.open(LogConfig::default());
    fill(&leader, &[(1, 5000), (1, 5000)], T0);
    let bytes = read_all(&leader, 0, 100_000);
    let other = Fixture::new();
    let follower = other.open(LogConfig { max_message_bytes: 1000, ..LogConfig::default() });
    follower.append_replicated(&bytes).expect("replicated despite the lower limit");
    assert_eq!(read_all(&follower, 0, 100_000), bytes);
    // The limit still holds for new produce on this log.
    assert!(follower.append(&mut batch(1, 5000, T0), 1).is_err());
}

// ---- shared resources ----

#[test]
fn tiny_handle_cache_still_serves_every_sealed_segment() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(1, 400); 40], T0); // two batches per segment: 19 sealed
    log.close().expect("close");
    let resources = Arc::new(LogResources::new(2, 300));
    let log = PartitionLog::open(fx.path(), small_config(), fx.clock.clone(), resources.clone())
        .expect("reopen");
    assert_eq!(read_all(&log, 0, 1), written.concat());
    assert!(resources.open_handles() <= 2, "evictions applied");
    let first_round = resources.segment_opens();
    assert!(first_round >= 19);
    assert_eq!(read_all(&log, 0, 1), written.concat());
    let (opens, loads) = (resources.segment_opens(), resources.index_loads());
    assert!(opens >= first_round + 17, "evicted handles were reopened: {opens} opens");
    assert!(loads > 19, "evicted indexes were reloaded: {loads} loads");
    assert!(resources.open_handles() <= 2);
}

/// The real disk, counting the files open through it and refusing opens past a limit
/// with `EMFILE`, as a process at its `ulimit -n` is refused.
#[derive(Debug, Default)]
struct LimitedDisk {
    counts: Arc<OpenCounts>,
}

#[derive(Debug, Default)]
struct OpenCounts {
    open: Arc<std::sync::atomic::AtomicU64>,
    most: std::sync::atomic::AtomicU64,
    /// Opens past this many open files fail (0: no limit).
    limit: std::sync::atomic::AtomicU64,
}

impl shale_core::disk::Disk for LimitedDisk {
    fn open(
        &self,
        path: &Path,
        mode: shale_core::disk::OpenMode,
    ) -> std::io::Result<shale_core::disk::FileHandle> {
        let c = &self.counts;
        let limit = c.limit.load(Ordering::SeqCst);
        if limit > 0 && c.open.load(Ordering::SeqCst) >= limit {
            return Err(std::io::Error::from_raw_os_error(24));
        }
        let file = shale_core::disk::CountedFile::wrap(
            shale_core::disk::RealDisk.open(path, mode)?,
            &c.open,
        );
        c.most.fetch_max(c.open.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(file)
    }
    /// None: a journal here writes through the page cache, counted by `open`.
    fn open_direct(&self, path: &Path) -> std::io::Result<shale_core::disk::FileHandle> {
        let why = format!("{}: the limited disk counts buffered opens only", path.display());
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, why))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        shale_core::disk::RealDisk.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        shale_core::disk::RealDisk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        shale_core::disk::RealDisk.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        shale_core::disk::RealDisk.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        shale_core::disk::RealDisk.sync_dir(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        shale_core::disk::RealDisk.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> std::io::Result<shale_core::disk::FileMeta> {
        shale_core::disk::RealDisk.metadata(path)
    }
}

/// `n` partition logs in `root`, sharing resources over a [`LimitedDisk`] that caches at
/// most `cached` segment files.
fn many_logs(
    root: &Path,
    n: usize,
    cached: u64,
    clock: &Arc<ManualClock>,
) -> (Arc<OpenCounts>, Arc<LogResources>, Vec<PartitionLog>) {
    let disk = LimitedDisk::default();
    let counts = disk.counts.clone();
    let resources = Arc::new(LogResources::on_disk(Arc::new(disk), cached, 1 << 20));
    let logs = (0..n)
        .map(|i| {
            let dir = root.join(format!("t-{i}"));
            PartitionLog::open(dir, small_config(), clock.clone(), resources.clone()).expect("open")
        })
        .collect();
    (counts, resources, logs)
}

#[test]
fn many_partitions_keep_no_more_files_open_than_the_cache_holds() {
    // Active segments included: a broker's open files are bounded by the cache, not by its
    // partition count.
    let root = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (counts, resources, logs) = many_logs(root.path(), 200, 16, &clock);
    let mut written = vec![Vec::new(); logs.len()];
    for round in 0..4 {
        for (log, w) in logs.iter().zip(&mut written) {
            let mut b = batch_with(2, 300, T0, round);
            log.append(&mut b, 1).expect("append");
            log.flush_all().expect("fsync");
            w.push(b);
        }
    }
    for (log, w) in logs.iter().zip(&written) {
        assert_eq!(read_all(log, 0, 1), w.concat(), "{:?} reads back", log.dir());
        assert_eq!(log.offset_for_timestamp(T0, 0).expect("lookup"), Some((0, T0)));
    }
    let most = counts.most.load(Ordering::SeqCst);
    // A hard bound: files in use by an operation count too (a timestamp lookup keeps the
    // active segment's handle while it opens a sealed segment and reads its index).
    assert!(most <= 16, "{most} files were open at once for 200 partitions");
    assert!(resources.open_handles() <= 16);
    for log in &logs {
        log.close().expect("close");
    }
    drop(logs);
    let cached = resources.open_handles();
    assert_eq!(counts.open.load(Ordering::SeqCst), cached, "closed logs hold no file");
}

#[test]
fn operations_at_once_stay_within_the_bound_and_all_complete() {
    // Eight threads append, fsync, read and look up timestamps across 40 partitions whose
    // logs may keep 8 files open: the opens past the bound wait for a place (closing idle
    // cached files first) instead of going over it, and none waits for good.
    let root = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (counts, resources, logs) = many_logs(root.path(), 40, 8, &clock);
    counts.most.store(0, Ordering::SeqCst);
    let logs = Arc::new(logs);
    let written: Vec<_> = (0..8)
        .map(|t| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for round in 0..6 {
                    for i in (t..logs.len()).step_by(8) {
                        let mut b = batch_with(2, 300, T0, round * 100 + i);
                        logs[i].append(&mut b, 1).expect("append");
                        logs[i].flush_all().expect("fsync");
                        logs[(i + 3) % logs.len()].offset_for_timestamp(T0, 0).expect("lookup");
                        mine.push((i, b));
                    }
                }
                mine
            })
        })
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    for (i, log) in logs.iter().enumerate() {
        let mine: Vec<u8> =
            written.iter().filter(|(j, _)| *j == i).flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(read_all(log, 0, 1), mine, "{:?} reads back", log.dir());
    }
    let most = counts.most.load(Ordering::SeqCst);
    assert!(most <= 8, "{most} files were open at once; the bound is 8");
    assert!(resources.open_files() <= 8);
}

#[test]
fn a_descriptor_limit_below_the_cache_sheds_cached_files_and_keeps_serving() {
    // The process may open 24 files; the cache would hold 64. Running out, the log closes
    // its cached files and carries on with fewer open.
    let root = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (counts, resources, logs) = many_logs(root.path(), 80, 64, &clock);
    counts.limit.store(24, Ordering::SeqCst);
    counts.most.store(0, Ordering::SeqCst);
    for (i, log) in logs.iter().enumerate() {
        let mut b = batch_with(1, 200, T0, i);
        log.append(&mut b, 1).expect("append within the descriptor limit");
        log.flush_all().expect("fsync");
        assert_eq!(read_all(log, 0, 1), b);
    }
    assert!(resources.descriptor_sheds() > 0, "the limit was reached and files were shed");
    assert!(counts.most.load(Ordering::SeqCst) <= 24);
}

#[test]
fn no_descriptor_left_is_a_precise_retriable_error_until_one_is_free() {
    let root = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (counts, resources, logs) = many_logs(root.path(), 3, 16, &clock);
    for log in &logs {
        log.append(&mut batch(1, 100, T0), 1).expect("append");
    }
    // Something else holds the one descriptor the process may have, and the log's handle
    // is not cached.
    let other = root.path().join("held");
    let held = resources.disk().open(&other, shale_core::disk::OpenMode::ReadWriteCreate);
    let segment = logs[2].dir().join("00000000000000000000.log");
    resources.evict(&segment);
    counts.limit.store(1, Ordering::SeqCst);
    let e = logs[2].append(&mut batch(1, 100, T0), 1).expect_err("no descriptor to open");
    assert!(matches!(&e, LogError::OutOfFiles { path, .. } if *path == segment), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("too many open files") && msg.contains("log.fd_cache_capacity"), "{msg}");
    let public = shale_core::error::Error::from(e);
    assert!(public.kind.is_retriable(), "{public:?}");
    assert_eq!(public.reason, "TOO_MANY_OPEN_FILES");
    // Once descriptors are free again, the same log serves.
    drop(held);
    counts.limit.store(0, Ordering::SeqCst);
    logs[2].append(&mut batch(1, 100, T0), 1).expect("append once descriptors are free");
}

#[test]
fn every_file_in_use_is_a_precise_retriable_error_until_one_is_given_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (_, resources, logs) = many_logs(root.path(), 2, 16, &clock);
    logs[1].append(&mut batch(1, 100, T0), 1).expect("append");
    let segment = logs[1].dir().join("00000000000000000000.log");
    // Nothing idle in the cache to close...
    resources.evict(&segment);
    resources.evict(&logs[0].dir().join("00000000000000000000.log"));
    // ...and operations in flight hold every place the logs have.
    let held: Vec<_> = (resources.open_files()..16)
        .map(|i| {
            let path = root.path().join(format!("held-{i}"));
            resources.disk().open(&path, shale_core::disk::OpenMode::ReadWriteCreate).expect("open")
        })
        .collect();
    assert_eq!(resources.open_files(), 16);
    let e = logs[1].append(&mut batch(1, 100, T0), 1).expect_err("no place to open the segment");
    assert!(matches!(&e, LogError::FilesInUse { path, capacity: 16 } if *path == segment), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("log.fd_cache_capacity") && msg.contains("in use"), "{msg}");
    let public = shale_core::error::Error::from(e);
    assert!(public.kind.is_retriable(), "{public:?}");
    assert_eq!(public.reason, "TOO_MANY_OPEN_FILES");
    drop(held);
    logs[1].append(&mut batch(1, 100, T0), 1).expect("append once places are free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_log_fsyncs_once_within_the_interval_of_its_appends() {
    let fx = Fixture::new();
    let every = std::time::Duration::from_millis(200);
    let config = LogConfig { flush: FlushPolicy::Interval(every), ..small_config() };
    let log = Arc::new(fx.open(config));
    let syncs = log.sync_count();
    for i in 0..5 {
        let l = log.clone();
        tokio::task::spawn_blocking(move || l.append(&mut batch_with(1, 50, T0, i), 1))
            .await
            .expect("task")
            .expect("append");
    }
    assert_eq!(log.durable_offset(), 0, "acknowledged before the fsync");
    let mut offsets = log.subscribe();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        offsets.wait_for(|o| o.durable_end == 5),
    )
    .await
    .expect("the interval flush within 10 s")
    .expect("watch open");
    assert_eq!(log.sync_count(), syncs + 1, "one fsync covers the appends of one interval");
}

#[test]
fn closing_a_durable_log_costs_no_fsync_and_an_unchanged_one_writes_nothing() {
    // A broker with 100,000 partitions closes them all at shutdown: what is durable
    // already needs no fsync, and a log unchanged since it opened needs no write.
    let fx = Fixture::new();
    let log = fx.open(small_config());
    let written = fill(&log, &[(1, 100)], T0);
    log.flush_all().expect("fsync");
    let syncs = log.sync_count();
    log.close().expect("close");
    assert_eq!(log.sync_count(), syncs, "no fsync for durable data");
    let point = fx.path().join("recovery-point");
    let stored = fs::read(&point).expect("recovery point");
    let reopened = fx.reopen(small_config());
    assert_eq!(read_all(&reopened, 0, 1), written.concat());
    fs::remove_file(&point).expect("remove");
    reopened.close().expect("close unchanged");
    assert!(!point.exists(), "an unchanged log rewrote its recovery point");
    fs::write(&point, &stored).expect("restore");
    let again = fx.reopen(small_config());
    assert_eq!(read_all(&again, 0, 1), written.concat());
    again.append(&mut batch(1, 100, T0), 1).expect("append");
    again.close().expect("close");
    assert_ne!(fs::read(&point).expect("recovery point"), stored, "a changed log stores its end");
    assert_eq!(fx.reopen(small_config()).log_end_offset(), 2);
}

#[test]
fn delete_removes_the_directory() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    fill(&log, &[(1, 400); 4], T0);
    log.delete().expect("delete");
    assert!(!fx.path().exists());
}

/// A log reset to a later offset (a replica restarted at the tiered end) keeps no epochs of
/// the data it dropped, yet a stale follower still truncates against it once it leads:
/// OffsetForLeaderEpoch answers an epoch older than the log's first with that first start.
/// (With no epoch at all, the follower's fetch past the leader's end is answered
/// OFFSET_OUT_OF_RANGE with the leader's log end, and it cuts there.) This case was
/// suspected; the test shows it holds, so the reset keeps no extra entry.
#[test]
fn a_reset_log_still_tells_a_stale_follower_where_to_truncate() {
    let fx = Fixture::new();
    let log = fx.open(small_config());
    log.append(&mut batch(5, 10, T0), 3).expect("append");
    log.reset_to(100).expect("reset");
    assert!(log.leader_epochs().is_empty());
    assert_eq!(log.end_offset_for_epoch(3), None, "nothing to answer with: the fetch decides");
    log.append(&mut batch(2, 10, T0), 7).expect("append as the new leader");
    // A follower whose last batch is from epoch 3 (or 5, never seen here) cuts at 100.
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 100)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 100)));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 102)));
}

#[test]
fn appends_racing_the_flusher_going_idle_are_always_flushed() {
    // A log stops being flushed once its end is durable; an append that finds it still
    // being flushed relies on that. The hook holds the flusher between its last check and
    // its stop, so appends land there: without its second look, their waiters would wait
    // forever. Both flushers: shared rounds, and the turns of logs that fsync alone.
    for shared in [true, false] {
        appends_racing_the_flusher_going_idle_are_flushed(shared);
    }
}

fn appends_racing_the_flusher_going_idle_are_flushed(shared: bool) {
    let rt = runtime(2);
    let fx = Fixture::new();
    let resources = Arc::new(LogResources::default().with_shared_fsync(shared));
    let log = PartitionLog::open(fx.path(), LogConfig::default(), fx.clock.clone(), resources)
        .expect("open log");
    let log = Arc::new(log);
    log.inner.flusher_stop_delay_us.store(300, Ordering::Relaxed);
    rt.block_on(async {
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let log = log.clone();
                shale_core::task::spawn_owned(async move {
                    for _ in 0..300 {
                        let info = log.append(&mut batch(1, 10, T0), 1).expect("append");
                        let flushed = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            log.flush_until(info.log_end_offset),
                        )
                        .await;
                        assert!(
                            matches!(flushed, Ok(Ok(()))),
                            "flush to {} did not finish within 10 s: {flushed:?}",
                            info.log_end_offset
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
    });
    assert_eq!(log.durable_offset(), 900);
}

#[test]
fn logs_that_fsync_alone_take_turns_in_a_bounded_number_of_loops() {
    // With shared rounds off every log fsyncs on its own. A broker of 1,000 busy partitions
    // then had 1,000 fsync loops each waking a pool thread; at most MAX_FSYNC_LOOPS run at
    // once, and every log still gets its turn.
    let rt = runtime(2);
    let fx = Fixture::new();
    let resources = Arc::new(LogResources::default().with_shared_fsync(false));
    let logs: Vec<Arc<PartitionLog>> = (0..3 * super::rounds::MAX_FSYNC_LOOPS)
        .map(|i| {
            let path = fx.dir.path().join(format!("topic-{i}"));
            let log =
                PartitionLog::open(path, LogConfig::default(), fx.clock.clone(), resources.clone())
                    .expect("open log");
            log.inner.sync_delay_ms.store(50, Ordering::Relaxed);
            Arc::new(log)
        })
        .collect();
    rt.block_on(async {
        let waiters: Vec<_> = logs
            .iter()
            .map(|log| {
                let log = log.clone();
                shale_core::task::spawn_owned(async move {
                    let info = log.append(&mut batch(1, 10, T0), 1).expect("append");
                    let flushed = tokio::time::timeout(
                        std::time::Duration::from_secs(30),
                        log.flush_until(info.log_end_offset),
                    )
                    .await;
                    assert!(matches!(flushed, Ok(Ok(()))), "flush within 30 s: {flushed:?}");
                })
            })
            .collect();
        for w in waiters {
            w.await.expect("waiter");
        }
    });
    let most = resources.rounds().most_syncing();
    assert!(
        (2..=super::rounds::MAX_FSYNC_LOOPS).contains(&most),
        "{most} fsyncs at once, expected 2 to {}",
        super::rounds::MAX_FSYNC_LOOPS
    );
    assert!(logs.iter().all(|log| log.durable_offset() == 1), "every log got its fsync");
}

#[test]
fn a_closed_log_answers_its_flush_waiters_at_once() {
    let rt = runtime(2);
    let fx = Fixture::new();
    let log = Arc::new(fx.open(LogConfig::default()));
    for _ in 0..10 {
        log.append(&mut batch(1, 10, T0), 1).expect("append");
    }
    log.close().expect("close");
    rt.block_on(async {
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), log.flush_until(11)).await;
        assert!(matches!(r, Ok(Err(LogError::Closed))), "{r:?}");
    });
}

/// A clean's swap is not a cut: an fsync in flight across it still makes the appends it
/// covers durable. Before, the swap bumped the truncation generation, the fsync's end was
/// dropped, and acknowledgements waited for the next append (a producer waiting on them
/// sent none: it timed out).
#[test]
fn an_fsync_in_flight_across_a_clean_still_acknowledges() {
    use crate::clean::{CleanRequest, OffsetMap};
    let rt = runtime(2);
    let fx = Fixture::new();
    let log = Arc::new(fx.open(small_config()));
    let keyed = |i: u8| {
        let mut b = shale_core::record::BatchBuilder::new(shale_core::record::Compression::None);
        b.push(shale_core::record::Record {
            key: Some(bytes::Bytes::from(vec![i % 3])),
            value: Some(bytes::Bytes::from(vec![i; 200])),
            headers: vec![],
            timestamp_ms: T0,
        });
        b.build().to_vec()
    };
    for i in 0..24 {
        log.append(&mut keyed(i), 1).expect("append");
    }
    rt.block_on(log.flush_until(log.log_end_offset())).expect("flush");
    assert!(log.segment_count() > 3, "sealed segments to clean");
    log.inner.sync_delay_ms.store(300, Ordering::Relaxed);
    let end = log.append(&mut keyed(99), 1).expect("append").log_end_offset;
    let flushing = {
        let log = log.clone();
        std::thread::spawn(move || {
            let rt = runtime(1);
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), log.flush_until(end)).await
            })
        })
    };
    // Into the fsync's sleep: the swap lands while it is in flight.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let req = CleanRequest::always(log.log_end_offset(), T0);
    let stats = log.clean(&req, &mut OffsetMap::with_memory(1 << 20), &mut |_: u64| {});
    assert!(stats.expect("clean").expect("due").swapped);
    let flushed = flushing.join().expect("the flushing thread");
    flushed.expect("the fsync in flight acknowledged within 10 s").expect("flush");
}
