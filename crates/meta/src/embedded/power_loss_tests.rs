//! Power loss, simulated, for the embedded metadata store: seeded puts, deletes,
//! transactions and snapshots on a [`SimDisk`], with the power cut at random points (often
//! inside a WAL append or a snapshot). After each crash the store reopens and every
//! acknowledged write must be there: the value of each key's last acknowledged put, no
//! key whose delete was acknowledged, and a revision no lower than any acknowledged one.
//! Writes in flight at the cut may or may not have happened, as a whole.
//!
//! `SHALE_POWER_LOSS_SEEDS` (default 40), `SHALE_POWER_LOSS_STEPS` (default 150) and
//! `SHALE_POWER_LOSS_SEED` scale or replay it, as for the partition log.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{EmbeddedOptions, EmbeddedStore};
use crate::{MetaStore, Revision};
use shale_core::clock;
use shale_core::disk::{SimDisk, SimOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn open(disk: &SimDisk) -> Arc<EmbeddedStore> {
    let options = EmbeddedOptions {
        disk: Arc::new(disk.clone()),
        snapshot_wal_bytes: 2048,
        ..EmbeddedOptions::default()
    };
    EmbeddedStore::open_with(Path::new("/data/meta"), clock::system(), options)
        .expect("the store reopens after a crash")
}

/// What a key may hold after a crash: its acknowledged value, or an in-flight one.
#[derive(Debug, Default, Clone)]
struct Expect {
    acked: Option<Bytes>,
    in_flight: Vec<Option<Bytes>>,
}

async fn run(seed: u64, steps: u64, options: SimOptions) -> u64 {
    let disk = SimDisk::new(SimOptions { seed, torn_tails: true, ..options });
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = open(&disk);
    let mut model: BTreeMap<String, Expect> = BTreeMap::new();
    let mut acked_revision: Revision = 0;
    let mut crashes = 0;
    for step in 0..steps {
        let armed = rng.random_bool(0.4);
        if armed {
            disk.freeze_after(rng.random_range(0..8));
        }
        let key = format!("/k{}", rng.random_range(0..12));
        let entry = model.entry(key.clone()).or_default();
        let failed = if rng.random_range(0..5) == 0 {
            entry.in_flight.push(None);
            match store.delete(&key).await {
                Ok(_) => {
                    entry.acked = None;
                    entry.in_flight.clear();
                    false
                }
                Err(_) => true,
            }
        } else {
            let value =
                Bytes::from(format!("{seed}-{step}-{}", "v".repeat(rng.random_range(0..200))));
            entry.in_flight.push(Some(value.clone()));
            match store.put(&key, value.clone(), None).await {
                Ok(rev) => {
                    acked_revision = acked_revision.max(rev);
                    entry.acked = Some(value);
                    entry.in_flight.clear();
                    false
                }
                Err(_) => true,
            }
        };
        assert!(!failed || disk.is_frozen(), "seed {seed}: a write failed without a crash");
        if armed || failed {
            crashes += 1;
            disk.freeze_after(0);
            drop(store);
            disk.crash();
            store = open(&disk);
            let all = store.range("").await.expect("range");
            assert!(
                all.revision >= acked_revision,
                "seed {seed}: revision {} went back below the acknowledged {acked_revision}",
                all.revision
            );
            let got: BTreeMap<String, Bytes> =
                all.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
            for (key, want) in &mut model {
                let have = got.get(key).cloned();
                let ok = have == want.acked || want.in_flight.contains(&have);
                assert!(
                    ok,
                    "seed {seed}: after a crash {key} holds {have:?}, acknowledged {:?}",
                    want.acked
                );
                *want = Expect { acked: have, in_flight: Vec::new() };
            }
            acked_revision = all.revision;
        }
    }
    crashes
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SHALE_POWER_LOSS_SEED") {
        return vec![seed.parse().expect("SHALE_POWER_LOSS_SEED is a number")];
    }
    (0..env_u64("SHALE_POWER_LOSS_SEEDS", 40)).collect()
}

#[tokio::test]
async fn acknowledged_metadata_writes_survive_power_loss() {
    let steps = env_u64("SHALE_POWER_LOSS_STEPS", 150);
    let mut crashes = 0;
    for seed in seeds() {
        crashes += run(seed, steps, SimOptions::default()).await;
    }
    eprintln!("embedded store: {crashes} simulated power losses, every acknowledged write kept");
    assert!(crashes > 0);
}

/// The suite can fail: with fsync a no-op, acknowledged writes are lost.
#[tokio::test]
async fn with_fsync_a_noop_power_loss_loses_acknowledged_metadata() {
    let mut lost = false;
    for seed in 0..10u64 {
        let r = shale_core::task::spawn_owned(run(
            seed,
            60,
            SimOptions { fsync_noop: true, ..Default::default() },
        ));
        lost |= r.await.is_err();
    }
    assert!(lost, "with fsync disabled the power-loss test must report lost writes");
}
