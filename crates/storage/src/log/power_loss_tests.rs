//! Power loss, simulated: a seeded workload of appends (with leader epoch changes), group
//! commits, rolls, retention, truncation, resets, clean closes and reopens runs on a
//! [`SimDisk`]; at random points, often in the middle of an operation, the disk stops
//! taking writes and crashes, keeping only what was made durable (and a torn prefix of the
//! rest). After every crash the log is reopened and checked against a model:
//! - every acknowledged offset (below a successful flush) reads back with its exact bytes;
//! - every batch the log holds is one that was written there, in order, without gaps;
//! - each batch's leader epoch agrees with the recovered epoch list;
//! - retention never took more than it was asked to, and the log takes appends again.
//!
//! `SHALE_POWER_LOSS_SEEDS=N` (default 60) and `SHALE_POWER_LOSS_STEPS=N` (default 150)
//! scale it; `SHALE_POWER_LOSS_SEED=S` replays one seed. A failure names its seed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use shale_core::clock::ManualClock;
use shale_core::disk::{Disk, SimDisk, SimOptions};
use shale_core::record::BatchFrames;

const T0: i64 = 1_700_000_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A valid batch whose payload bytes are derived from `tag`.
pub(super) fn batch(records: i32, payload: usize, ts: i64, tag: u64) -> Vec<u8> {
    super::tests::batch_with(records, payload, ts, (tag as usize).wrapping_mul(31))
}

/// What the log must hold.
#[derive(Debug, Default, Clone)]
pub(super) struct Model {
    /// Batches written at their base offsets (stamped bytes), acknowledged or not.
    pub(super) batches: BTreeMap<i64, Vec<u8>>,
    /// Every offset below this was acknowledged (fsynced).
    pub(super) acked_end: i64,
    /// The log start may not be above this (retention deleted up to here at most).
    pub(super) start_bound: i64,
    /// Nor below this (a log start that DeleteRecords set, once the call returned).
    pub(super) floor: i64,
    /// Where the log ends while it holds no batch (a cut below a log start that DeleteRecords
    /// put inside a batch empties it below that start).
    pub(super) empty_end: i64,
}

impl Model {
    pub(super) fn end(&self) -> i64 {
        self.batches.last_key_value().map_or(self.empty_end, |(_, b)| next_offset(b))
    }

    /// Drops batches at and after the one holding `offset`; the new end.
    pub(super) fn cut(&mut self, offset: i64) -> i64 {
        let base = self
            .batches
            .range(..=offset)
            .next_back()
            .filter(|(_, b)| next_offset(b) > offset)
            .map_or(offset, |(base, _)| *base);
        self.batches.retain(|b, _| *b < base);
        if self.batches.is_empty() {
            self.empty_end = base;
        }
        base
    }
}

pub(super) fn next_offset(b: &[u8]) -> i64 {
    let h = shale_core::record::BatchHeader::parse(b).expect("model batch parses");
    h.next_offset()
}

/// The state of one seeded run.
struct Run {
    seed: u64,
    rng: StdRng,
    disk: SimDisk,
    dir: PathBuf,
    clock: Arc<ManualClock>,
    config: LogConfig,
    log: Option<PartitionLog>,
    model: Model,
    /// A reset in flight when the disk froze: the log may come back reset or not.
    reset_pending: Option<i64>,
    epoch: i32,
    tag: u64,
    crashes: u64,
}

impl Run {
    fn new(seed: u64, options: SimOptions) -> Self {
        let disk = SimDisk::new(SimOptions { seed, torn_tails: true, torn_dirs: true, ..options });
        let dir = PathBuf::from("/data/t-0");
        let mut rng = StdRng::seed_from_u64(seed);
        let config = LogConfig {
            segment_bytes: rng.random_range(600..3000),
            index_interval_bytes: rng.random_range(64..512),
            retention_bytes: -1,
            retention_ms: -1,
            ..LogConfig::default()
        };
        Run {
            seed,
            rng,
            disk,
            dir,
            clock: Arc::new(ManualClock::new(T0)),
            config,
            log: None,
            model: Model::default(),
            reset_pending: None,
            epoch: 0,
            tag: 0,
            crashes: 0,
        }
    }

    fn open(&mut self) -> PartitionLog {
        let resources = Arc::new(LogResources::on_disk(Arc::new(self.disk.clone()), 16, 1 << 20));
        PartitionLog::open(&self.dir, self.config.clone(), self.clock.clone(), resources)
            .unwrap_or_else(|e| panic!("seed {}: reopening the log failed: {e}", self.seed))
    }

    fn log(&self) -> &PartitionLog {
        self.log.as_ref().expect("log is open")
    }

    /// An operation's error: a crash if the disk froze, a test failure otherwise.
    fn check<T>(&self, what: &str, r: Result<T, LogError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(_) if self.disk.is_frozen() => None,
            Err(e) => panic!("seed {}: {what} failed without a crash: {e}", self.seed),
        }
    }

    fn step(&mut self) -> bool {
        let choice = self.rng.random_range(0..100);
        if std::env::var("SHALE_POWER_LOSS_TRACE").is_ok() {
            let log = self.log();
            eprintln!(
                "op {choice} at {}..{} ops {}",
                log.log_start_offset(),
                log.log_end_offset(),
                self.disk.ops()
            );
        }
        match choice {
            0..=54 => self.append(),
            55..=69 => self.flush(),
            70..=77 => self.retention(),
            78..=85 => self.truncate(),
            86..=88 => self.reset(),
            89..=93 => self.close_and_reopen(),
            94..=96 => self.delete_records(),
            _ => {
                self.epoch += 1;
                true
            }
        }
    }

    fn append(&mut self) -> bool {
        let n = self.rng.random_range(1..4);
        let mut buf = Vec::new();
        let mut parts = Vec::new();
        for _ in 0..n {
            self.tag += 1;
            let records = self.rng.random_range(1..5);
            let payload = self.rng.random_range(0..400);
            let ts = T0 + self.tag as i64;
            let b = batch(records, payload, ts, self.tag);
            parts.push(b.len());
            buf.extend_from_slice(&b);
        }
        let epoch = self.epoch;
        let Some(info) = self.check("append", self.log().append(&mut buf, epoch)) else {
            return false;
        };
        let mut at = 0;
        let mut offset = info.base_offset;
        for len in parts {
            let b = buf[at..at + len].to_vec();
            let next = next_offset(&b);
            assert_eq!(
                shale_core::record::BatchHeader::parse(&b).expect("parse").base_offset,
                offset,
                "seed {}",
                self.seed
            );
            self.model.batches.insert(offset, b);
            offset = next;
            at += len;
        }
        true
    }

    fn flush(&mut self) -> bool {
        let end = self.log().log_end_offset();
        if self.check("flush", self.log().flush_all()).is_none() {
            return false;
        }
        let durable = self.log().durable_offset();
        assert!(
            durable >= end,
            "seed {}: flush returned with durable {durable} < {end}",
            self.seed
        );
        self.model.acked_end = self.model.acked_end.max(end);
        true
    }

    fn retention(&mut self) -> bool {
        let mut config = self.config.clone();
        let size = self.log().size_bytes();
        config.retention_bytes = self.rng.random_range(0..=size as i64);
        self.log().set_config(config);
        let r = self.log().apply_retention();
        self.log().set_config(self.config.clone());
        // Deleted batches stay in the model: a deletion that was not yet durable may undo.
        // The state, not the published offsets: a pass cut short deleted without publishing.
        let start = self.log().inner.peek().log_start();
        self.model.start_bound = self.model.start_bound.max(start);
        self.check("retention", r).is_some()
    }

    fn truncate(&mut self) -> bool {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        if end <= start {
            return true;
        }
        let offset = self.rng.random_range(start..end);
        let r = self.log().truncate_to(offset);
        let mut after = self.model.clone();
        let new_end = after.cut(offset);
        // Offsets past the cut are no longer owed, whether or not the cut survives.
        self.model.acked_end = self.model.acked_end.min(new_end);
        if self.check("truncate", r).is_none() {
            return false;
        }
        assert_eq!(self.log().log_end_offset(), new_end, "seed {}", self.seed);
        self.model = Model { acked_end: self.model.acked_end, ..after };
        true
    }

    fn reset(&mut self) -> bool {
        let offset = self.log().log_end_offset() + self.rng.random_range(0..50);
        if self.check("reset", self.log().reset_to(offset)).is_none() {
            self.reset_pending = Some(offset);
            return false;
        }
        let floor = self.model.floor;
        self.model = Model {
            batches: BTreeMap::new(),
            acked_end: offset,
            start_bound: offset,
            floor,
            empty_end: offset,
        };
        true
    }

    /// DeleteRecords up to an acknowledged offset, perhaps inside a batch.
    fn delete_records(&mut self) -> bool {
        let (start, durable) = (self.log().log_start_offset(), self.log().durable_offset());
        if durable <= start {
            return true;
        }
        let offset = self.rng.random_range(start..=durable);
        self.model.start_bound = self.model.start_bound.max(offset);
        if self.check("delete records", self.log().advance_log_start(offset)).is_none() {
            return false;
        }
        self.model.floor = self.model.floor.max(offset);
        assert_eq!(self.log().log_start_offset(), offset, "seed {}", self.seed);
        true
    }

    fn close_and_reopen(&mut self) -> bool {
        if self.check("close", self.log().close()).is_none() {
            return false;
        }
        self.model.acked_end = self.model.end();
        self.log = None;
        let resources = Arc::new(LogResources::on_disk(Arc::new(self.disk.clone()), 16, 1 << 20));
        let log = PartitionLog::open(&self.dir, self.config.clone(), self.clock.clone(), resources);
        // A power cut in the middle of the open: the crash reopens it.
        let Some(log) = self.check("reopen", log) else { return false };
        self.verify(&log, "clean reopen");
        self.log = Some(log);
        true
    }

    /// Power loss: drop the log (its handles die with the crash), keep only what was
    /// durable, reopen and check.
    fn crash(&mut self) {
        self.crashes += 1;
        self.log = None;
        self.disk.crash();
        let log = self.open();
        if let Some(offset) = self.reset_pending.take() {
            if log.log_start_offset() >= offset {
                let floor = self.model.floor;
                self.model = Model {
                    batches: BTreeMap::new(),
                    acked_end: offset,
                    start_bound: offset,
                    floor,
                    empty_end: offset,
                };
            } else {
                // A reset cut short: some removals of the old segments' files reached the
                // disk and others did not (a file system may keep directory changes without
                // an fsync: torn directories). The log keeps part of what it held, which
                // the reset was discarding anyway: none of it is owed, and what is there
                // must still be what was written.
                self.model.start_bound = self.model.start_bound.max(log.log_start_offset());
                self.model.acked_end = self.model.acked_end.min(log.log_end_offset());
            }
        }
        self.verify(&log, "crash");
        // Still appendable, and what recovery found is durable now.
        self.log = Some(log);
        self.model.acked_end = self.log().log_end_offset();
        assert!(self.append(), "seed {}: append after recovery failed", self.seed);
        assert!(self.flush(), "seed {}: flush after recovery failed", self.seed);
    }

    /// Checks the reopened log against the model, then adopts what it holds.
    fn verify(&mut self, log: &PartitionLog, after: &str) {
        self.model = verify_log(self.seed, &self.model, log, after);
    }

    /// Runs `steps` operations, arming a power cut at random points.
    fn run(mut self, steps: u64) -> u64 {
        self.log = Some(self.open());
        for _ in 0..steps {
            self.clock.advance(1);
            // Half the steps carry a power cut somewhere inside them.
            let armed = self.rng.random_bool(0.5);
            if armed {
                self.disk.freeze_after(self.rng.random_range(0..12));
            }
            let completed = self.step();
            if armed || !completed {
                self.disk.freeze_after(0);
                self.crash();
            }
        }
        self.crashes
    }
}

/// Checks a reopened log against its model; returns the model of what it holds.
pub(super) fn verify_log(seed: u64, m: &Model, log: &PartitionLog, after: &str) -> Model {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(
        start <= m.start_bound.max(m.floor),
        "seed {seed}: after {after} the log starts at {start}, but retention only deleted \
         below {} (acked up to {})",
        m.start_bound,
        m.acked_end
    );
    assert!(
        start >= m.floor.min(end),
        "seed {seed}: after {after} the log starts at {start}, below the start {} that \
         DeleteRecords set",
        m.floor
    );
    assert!(
        end >= m.acked_end,
        "seed {seed}: after {after} the log ends at {end}: acknowledged offsets {end}..{} lost",
        m.acked_end
    );
    let epochs = log.leader_epochs();
    let mut offset = start;
    let mut held = BTreeMap::new();
    while offset < end {
        let chunk = log
            .read(offset, 1 << 16, i64::MAX)
            .unwrap_or_else(|e| panic!("seed {seed}: after {after} reading {offset}: {e}"));
        assert!(!chunk.bytes.is_empty(), "seed {seed}: no progress reading at {offset}");
        for frame in BatchFrames::new(&chunk.bytes, usize::MAX) {
            let (h, range) = frame.expect("framed");
            let bytes = &chunk.bytes[range];
            if h.base_offset < offset && h.next_offset() > offset && offset == start {
                // The batch holding a log start DeleteRecords put inside it.
                let want = m.batches.get(&h.base_offset);
                assert!(want.is_some_and(|w| w == bytes), "seed {seed}: the batch at {start}");
                held.insert(h.base_offset, bytes.to_vec());
                offset = h.next_offset();
                continue;
            }
            if h.base_offset < offset {
                continue;
            }
            assert_eq!(h.base_offset, offset, "seed {seed}: gap at {offset} after {after}");
            match m.batches.get(&h.base_offset) {
                Some(want) => assert!(
                    want == bytes,
                    "seed {seed}: after {after} the batch at {offset} has other bytes"
                ),
                None => panic!(
                    "seed {seed}: after {after} the log holds a batch at {offset} that was \
                     never written there (acked up to {})",
                    m.acked_end
                ),
            }
            let want_epoch =
                epochs.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch);
            assert_eq!(
                want_epoch,
                Some(h.partition_leader_epoch),
                "seed {seed}: after {after} the epoch list {epochs:?} disagrees with the \
                 batch at {offset}"
            );
            held.insert(h.base_offset, bytes.to_vec());
            offset = h.next_offset();
        }
    }
    // Each batch reads back from its own offset too: through the offset index, which a
    // stale index file (from before a cut) would send to the wrong position.
    for (base, want) in &held {
        let chunk = log
            .read((*base).max(start), 1, i64::MAX)
            .unwrap_or_else(|e| panic!("seed {seed}: after {after} reading {base} alone: {e}"));
        assert!(chunk.bytes.starts_with(want), "seed {seed}: after {after} reading {base} alone");
    }
    for (base, b) in m.batches.range(..m.acked_end) {
        if *base >= start && next_offset(b) <= m.acked_end {
            assert!(
                held.contains_key(base),
                "seed {seed}: after {after} the acknowledged batch at {base} is gone"
            );
        }
    }
    // A start that DeleteRecords was setting when the power went may have been kept.
    let floor = m.floor.max(log.start_floor());
    Model { batches: held, acked_end: end, start_bound: start, floor, empty_end: end }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SHALE_POWER_LOSS_SEED") {
        return vec![seed.parse().expect("SHALE_POWER_LOSS_SEED is a number")];
    }
    (0..env_u64("SHALE_POWER_LOSS_SEEDS", 60)).collect()
}

#[test]
fn acknowledged_offsets_survive_power_loss_at_every_step() {
    let steps = env_u64("SHALE_POWER_LOSS_STEPS", 150);
    let mut crashes = 0;
    for seed in seeds() {
        crashes += Run::new(seed, SimOptions::default()).run(steps);
    }
    eprintln!("partition log: {crashes} simulated power losses, every acknowledged offset kept");
    assert!(crashes > 0);
}

/// The suite can fail: with fsync a no-op, acknowledged offsets are lost.
#[test]
fn with_fsync_a_noop_power_loss_loses_acknowledged_offsets() {
    let lost = (0..10u64).any(|seed| {
        let run = Run::new(seed, SimOptions { fsync_noop: true, ..Default::default() });
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run(60))).is_err()
    });
    assert!(lost, "with fsync disabled the power-loss test must report lost offsets");
}

fn sim_log(disk: &SimDisk, config: LogConfig) -> PartitionLog {
    let resources = Arc::new(LogResources::on_disk(Arc::new(disk.clone()), 16, 1 << 20));
    PartitionLog::open("/data/t-0", config, Arc::new(ManualClock::new(T0)), resources)
        .expect("open log")
}

fn read_all(log: &PartitionLog) -> Vec<u8> {
    super::tests::read_all(log, log.log_start_offset(), 1 << 20)
}

/// DeleteRecords' new log start is on disk when the call returns: a power cut right after
/// keeps it, and one in the middle of storing it leaves the old start or the new one.
#[test]
fn a_new_log_start_survives_power_loss() {
    let config = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
    for ops in 0..16 {
        let disk = SimDisk::new(SimOptions {
            seed: ops,
            torn_tails: true,
            torn_dirs: true,
            ..Default::default()
        });
        let log = sim_log(&disk, config.clone());
        for tag in 0..10 {
            log.append(&mut batch(3, 300, T0, tag), 0).expect("append");
        }
        log.flush_all().expect("flush");
        log.advance_log_start(7).expect("advance");
        disk.freeze_after(ops);
        let moved = log.advance_log_start(20).is_ok();
        drop(log);
        disk.crash();
        let log = sim_log(&disk, config.clone());
        let start = log.log_start_offset();
        assert!(start == 7 || start == 20, "after {ops} ops the log starts at {start}");
        assert!(!moved || start == 20, "after {ops} ops: advanced, then lost in a power cut");
        let below = log.read(start - 1, 10, i64::MAX);
        assert!(matches!(below, Err(LogError::OffsetOutOfRange { .. })), "{below:?}");
    }
}

/// Before: a failed fsync returned an error, but the next flush fsynced again, succeeded
/// (the kernel had dropped the dirty pages) and acknowledged offsets that a power loss
/// then took away.
#[test]
fn a_failed_fsync_stops_the_log_and_nothing_after_it_is_acknowledged() {
    let disk = SimDisk::new(SimOptions::default());
    let log = sim_log(&disk, LogConfig::default());
    let mut a = batch(2, 100, T0, 1);
    log.append(&mut a, 0).expect("append a");
    log.flush_all().expect("flush a");
    let acked = log.durable_offset();
    assert_eq!(acked, 2);

    log.append(&mut batch(2, 100, T0, 2), 0).expect("append b");
    disk.fail_next_syncs(1);
    let err = log.flush_all().expect_err("the fsync fails");
    assert!(matches!(err, LogError::Failed { durable: 2, .. }), "{err}");

    // Fail-stop: no write, flush or clean close succeeds, and nothing more is durable.
    let err = log.append(&mut batch(1, 10, T0, 3), 0).expect_err("append after failure");
    assert!(matches!(err, LogError::Failed { .. }), "{err}");
    assert!(matches!(log.flush_all(), Err(LogError::Failed { .. })));
    assert!(matches!(log.close(), Err(LogError::Failed { .. })));
    assert_eq!(log.durable_offset(), acked);
    let status = shale_core::Error::from(err);
    assert_eq!(status.kind, shale_core::ErrorKind::Unavailable);
    assert_eq!(status.reason, "LOG_FAILED");

    drop(log);
    disk.crash();
    let log = sim_log(&disk, LogConfig::default());
    assert_eq!(log.log_end_offset(), 2, "the dropped batch is cut off by recovery");
    assert_eq!(read_all(&log), a);
    log.append(&mut batch(1, 10, T0, 4), 0).expect("a reopened log takes writes");
}

/// A full disk refuses the append with ENOSPC naming the segment, keeps every acknowledged
/// offset, and takes writes again once space returns, without a restart.
#[test]
fn a_full_disk_refuses_appends_and_recovers_when_space_returns() {
    let disk = SimDisk::new(SimOptions::default());
    let config = LogConfig { segment_bytes: 2000, ..LogConfig::default() };
    let log = sim_log(&disk, config.clone());
    let mut acked = fill_until_refused(&disk, &log, |log, _| log.flush_all().expect("flush"), true);

    disk.set_capacity(None);
    let mut b = batch(1, 300, T0, 1000);
    log.append(&mut b, 0).expect("space returned");
    log.flush_all().expect("flush");
    acked.extend_from_slice(&b);
    assert_eq!(read_all(&log), acked);
    drop(log);
    disk.crash();
    assert_eq!(read_all(&sim_log(&disk, config)), acked, "and all of it survives a crash");
}

/// Leaves `disk` 5,000 bytes of room and appends 300-byte batches to `log`, each made
/// durable by `ack`, until the disk refuses one; checks the refusal names the segment and
/// the lack of space, and that every acknowledged batch reads back. Returns their bytes.
pub(super) fn fill_until_refused(
    disk: &SimDisk,
    log: &PartitionLog,
    ack: impl Fn(&PartitionLog, AppendInfo),
    read_when_full: bool,
) -> Vec<u8> {
    disk.set_capacity(Some(disk.used_bytes() + 5000));
    let mut acked = Vec::new();
    for tag in 0..100 {
        let mut b = batch(1, 300, T0, tag);
        match log.append(&mut b, 0) {
            Ok(info) => {
                ack(log, info);
                acked.extend_from_slice(&b);
            }
            Err(err) => {
                assert!(err.to_string().contains("/data/t-0/"), "{err}");
                assert!(err.to_string().to_lowercase().contains("space"), "{err}");
                if read_when_full {
                    assert_eq!(read_all(log), acked, "every acknowledged batch is intact");
                }
                return acked;
            }
        }
    }
    panic!("the disk never filled up");
}

// ---- fsync rounds shared by the logs on one file system ----

/// `n` logs in `/data` on `disk`, sharing one set of resources (and so fsync rounds).
fn sim_logs(disk: &SimDisk, n: usize) -> Vec<Arc<PartitionLog>> {
    let resources = Arc::new(LogResources::on_disk(Arc::new(disk.clone()), 64, 1 << 20));
    disk.create_dir_all(std::path::Path::new("/data")).expect("data dir");
    disk.sync_dir(std::path::Path::new("/")).expect("data dir durable");
    (0..n)
        .map(|i| {
            let clock = Arc::new(ManualClock::new(T0));
            let dir = format!("/data/t-{i}");
            let log = PartitionLog::open(dir, LogConfig::default(), clock, resources.clone());
            Arc::new(log.expect("open log"))
        })
        .collect()
}

/// Appends to every log from its own task and waits for each append's fsync, several
/// rounds over; returns what each log had acknowledged and the resources' shared fsyncs
/// and the logs they covered.
fn flush_together(logs: &[Arc<PartitionLog>], rounds: u64) -> (Vec<Vec<u8>>, u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The first fsync takes long enough for the other logs to queue behind it.
    logs[0].inner.sync_delay_ms.store(20, std::sync::atomic::Ordering::Relaxed);
    let acked = rt.block_on(async {
        let tasks: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let log = log.clone();
                shale_core::task::spawn_owned(async move {
                    let mut acked = Vec::new();
                    for r in 0..rounds {
                        let mut b = batch(2, 100, T0, i as u64 * 1000 + r);
                        let info = log.append(&mut b, 0).expect("append");
                        log.flush_until(info.log_end_offset).await.expect("flush");
                        acked.extend_from_slice(&b);
                    }
                    acked
                })
            })
            .collect();
        let mut acked = Vec::new();
        for t in tasks {
            acked.push(t.await.expect("task"));
        }
        acked
    });
    let resources = &logs[0].inner.resources;
    (acked, resources.shared_fsyncs(), resources.shared_fsync_logs())
}

/// Before: every log fsynced its own file, 1,000 fdatasyncs a round at 1,000 partitions.
/// Now logs waiting together share one sync of the file system, and what they were told
/// is durable survives a power cut.
#[test]
fn logs_flushed_together_share_one_file_system_sync_and_survive_power_loss() {
    let disk = SimDisk::new(SimOptions::default());
    let logs = sim_logs(&disk, 16);
    let (acked, shared, covered) = flush_together(&logs, 5);
    assert!(shared >= 1, "no round synced the file system for several logs");
    assert!(covered >= 8 * shared, "{covered} logs over {shared} shared fsyncs");
    drop(logs);
    disk.crash();
    for (i, log) in sim_logs(&disk, 16).iter().enumerate() {
        assert_eq!(read_all(log), acked[i], "log {i} lost acknowledged batches");
    }
}

/// The test above can fail: with fsync a no-op, the shared rounds acknowledge batches a
/// power cut takes away.
#[test]
fn with_fsync_a_noop_shared_rounds_lose_acknowledged_batches() {
    let disk = SimDisk::new(SimOptions { fsync_noop: true, ..Default::default() });
    let logs = sim_logs(&disk, 16);
    let (acked, shared, _) = flush_together(&logs, 5);
    assert!(shared >= 1);
    drop(logs);
    disk.crash();
    let reopened = sim_logs(&disk, 16);
    assert!((0..16).any(|i| read_all(&reopened[i]) != acked[i]), "nothing was lost");
}

/// A failed sync of the file system cannot say which file failed, and the kernel reports
/// it once: every log on the file system stops, including one the failing round did not
/// cover, whose own fsync would then succeed over lost bytes; it takes no append either.
#[test]
fn a_failed_shared_fsync_stops_every_log_on_the_file_system() {
    let disk = SimDisk::new(SimOptions::default());
    let logs = sim_logs(&disk, 3);
    let mut acked = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let mut b = batch(2, 100, T0, i as u64);
        log.append(&mut b, 0).expect("append");
        log.flush_all().expect("flush");
        acked.push(b);
        log.append(&mut batch(1, 50, T0, 10 + i as u64), 0).expect("append, not flushed");
    }
    disk.fail_next_syncs(1);
    let rounds = logs[0].inner.resources.rounds().clone();
    let (a, b): (super::rounds::Queued, super::rounds::Queued) =
        (logs[0].inner.clone(), logs[1].inner.clone());
    rounds.sync_volume(&[&a, &b]);
    for log in &logs[..2] {
        let err = log.flush_all().expect_err("the round failed");
        assert!(matches!(err, LogError::Failed { durable: 2, .. }), "{err}");
    }
    let err = logs[2].append(&mut batch(1, 50, T0, 20), 0).expect_err("no more appends");
    assert!(err.to_string().contains("an fsync on this file system failed"), "{err}");
    let err = logs[2].flush_all().expect_err("a log outside the round stops too");
    assert!(matches!(err, LogError::Failed { durable: 2, .. }), "{err}");
    assert!(err.to_string().contains("an fsync on this file system failed"), "{err}");
    assert!(logs.iter().all(|log| log.durable_offset() == 2));
    drop(logs);
    disk.crash();
    for (i, log) in sim_logs(&disk, 3).iter().enumerate() {
        // What was not acknowledged may survive too (only one file's sync failed).
        assert!(read_all(log).starts_with(&acked[i]), "log {i} lost acknowledged batches");
    }
}
