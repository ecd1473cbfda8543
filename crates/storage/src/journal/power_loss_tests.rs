//! Power loss, simulated, on the journal alone: seeded rounds of frames of random sizes
//! are written into a small journal (so the ring is reused lap after lap), each round
//! fsynced or not, the trim point moved when the journal fills, and at a random point —
//! often in the middle of a round's write, its fsync or a header write — the disk stops
//! taking writes and crashes, tearing unsynced overwrites sector by sector. After every
//! crash the journal is reopened (a new generation) and scanned from its trim point:
//! - every frame of a fsynced round comes back, in order, byte for byte;
//! - what comes back is exactly a prefix of the frames written since the trim point: no
//!   frame of an earlier lap, no frame left beyond a tear by an earlier generation, no
//!   torn frame;
//! - writing goes on where the scan ended.
//!
//! Each seed runs twice: with the ring written by direct, durable writes of whole pages
//! (zeroing past each round's end, so rounds leave the journal's overwrite margin free),
//! and through the page cache then synced (a file system without `O_DIRECT`).
//!
//! `SHALE_POWER_LOSS_SEEDS=N` (default 60) scales it; `SHALE_POWER_LOSS_SEED=S` replays
//! one seed. A failure names its seed.

use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shale_core::disk::{Disk, SharedDisk, SimDisk, SimOptions};

use super::file::JournalFile;
use super::frame::Op;
use super::ring::{Found, scan};
use super::round::{Refused, Round};

const PATH: &str = "/v/journal";
const CAPACITY: u64 = 16 * 1024;

/// A frame as written: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    lsn: u64,
    stream: u32,
    payload: Vec<u8>,
    /// Its round was fsynced.
    acked: bool,
}

/// What the journal must hold, from its trim point on.
#[derive(Debug, Default)]
struct Model {
    trim: u64,
    frames: Vec<Written>,
    /// While a trim point is being written: the frames the previous one still covers.
    before_trim: Option<(u64, Vec<Written>)>,
}

struct Run {
    seed: u64,
    rng: StdRng,
    sim: Arc<SimDisk>,
    disk: SharedDisk,
    model: Model,
    /// Frames written so far, for unique payloads.
    written: u64,
}

impl Run {
    fn new(seed: u64, no_direct: bool) -> Run {
        let options = SimOptions {
            seed,
            torn_tails: true,
            torn_overwrites: true,
            no_direct,
            ..Default::default()
        };
        let sim = Arc::new(SimDisk::new(options));
        sim.create_dir_all(Path::new("/v")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let disk: SharedDisk = sim.clone();
        Run {
            seed,
            rng: StdRng::seed_from_u64(seed),
            sim,
            disk,
            model: Model::default(),
            written: 0,
        }
    }

    fn payload(&mut self) -> Vec<u8> {
        self.written += 1;
        // Odd seeds write frames of one size, so that after a crash the new frames often
        // end exactly where a frame of the torn round starts (what generations are for).
        let len = match self.rng.random_range(0..10) {
            _ if self.seed % 2 == 1 => 88,
            0 => self.rng.random_range(2000..5000),
            _ => self.rng.random_range(0..700),
        };
        (0..len).map(|i| (self.written as usize * 131 + i * 7) as u8).collect()
    }

    /// Writes rounds until the disk freezes (an operation fails); returns how many rounds.
    fn write_until_frozen(&mut self, journal: JournalFile, mut next: u64) -> usize {
        let mut rounds = 0;
        loop {
            let h = journal.header();
            let mut round = Round::new(next, h.capacity, h.generation);
            let mut frames = Vec::new();
            for _ in 0..self.rng.random_range(1..6) {
                let payload = self.payload();
                let stream = self.rng.random_range(0..4);
                let margin = journal.overwrite_margin();
                match round.push_op(self.model.trim, margin, Op::Append, stream, 1, 0, &payload) {
                    Ok(lsn) => frames.push(Written { lsn, stream, payload, acked: false }),
                    Err(Refused::Full { .. }) => break,
                    Err(e) => panic!("seed {}: {e}", self.seed),
                }
            }
            if round.is_empty() {
                // Full: the partitions checkpoint (here: the journal is synced, so every
                // frame is acknowledged), and the trim point moves to the writer.
                if journal.sync().is_err() {
                    return rounds;
                }
                let old = std::mem::take(&mut self.model.frames);
                self.model.before_trim = Some((self.model.trim, old));
                if journal.set_trim(next).is_err() {
                    return rounds;
                }
                self.model.trim = next;
                self.model.before_trim = None;
                continue;
            }
            next = round.end();
            self.model.frames.extend(frames);
            if journal.write_at(round.start(), round.bytes()).is_err() {
                return rounds;
            }
            rounds += 1;
            if self.rng.random_bool(0.7) {
                if journal.sync().is_err() {
                    return rounds;
                }
                for f in &mut self.model.frames[..] {
                    f.acked = true;
                }
            }
        }
    }

    /// Crashes, reopens and checks the journal against the model; returns the journal and
    /// where writing goes on.
    fn crash_and_check(&mut self, crash: usize) -> (JournalFile, u64) {
        let seed = self.seed;
        self.sim.crash();
        let journal = JournalFile::open(&self.disk, Path::new(PATH), CAPACITY)
            .unwrap_or_else(|e| panic!("seed {seed}, crash {crash}: {e}"));
        let trim = journal.header().trim;
        let expected = match self.model.before_trim.take() {
            Some((old, frames)) if trim == old => frames,
            Some(_) | None => std::mem::take(&mut self.model.frames),
        };
        assert!(
            trim == self.model.trim || expected.iter().all(|f| f.acked),
            "seed {seed}, crash {crash}: trim point {trim}, model {}",
            self.model.trim
        );
        let mut found: Vec<Found> = Vec::new();
        let ended = scan(&journal, trim, |f| found.push(f))
            .unwrap_or_else(|e| panic!("seed {seed}, crash {crash}: scan: {e}"));
        let got: Vec<(u64, u32, &[u8])> =
            found.iter().map(|f| (f.lsn, f.stream, &f.payload[..])).collect();
        let want: Vec<(u64, u32, &[u8])> =
            expected.iter().map(|f| (f.lsn, f.stream, &f.payload[..])).collect();
        assert!(
            got.len() <= want.len() && got[..] == want[..got.len()],
            "seed {seed}, crash {crash}: read back {} frames, not a prefix of the {} written \
             since the trim point {trim} (ended: {ended:?})",
            got.len(),
            want.len()
        );
        let acked = expected.iter().filter(|f| f.acked).count();
        assert!(
            got.len() >= acked,
            "seed {seed}, crash {crash}: {acked} acknowledged frames, {} read back (ended: \
             {ended:?})",
            got.len()
        );
        self.model.trim = trim;
        self.model.frames =
            expected[..got.len()].iter().map(|f| Written { acked: true, ..f.clone() }).collect();
        (journal, ended.next)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn every_fsynced_frame_survives_power_loss_and_nothing_else_is_replayed() {
    let seeds: Vec<u64> = match std::env::var("SHALE_POWER_LOSS_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (0..env_u64("SHALE_POWER_LOSS_SEEDS", 60)).collect(),
    };
    let mut rounds = 0;
    for (seed, no_direct) in seeds.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let mut run = Run::new(seed, no_direct);
        let mut journal = JournalFile::open(&run.disk, Path::new(PATH), CAPACITY).unwrap();
        assert_eq!(journal.is_direct(), !no_direct);
        let mut next = 0;
        for crash in 0..12 {
            let ops = run.rng.random_range(1..60);
            run.sim.freeze_after(ops);
            rounds += run.write_until_frozen(journal, next);
            (journal, next) = run.crash_and_check(crash);
        }
    }
    assert!(rounds > 2000, "the runs wrote {rounds} rounds");
}
