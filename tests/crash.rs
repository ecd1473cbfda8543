//! Crash safety: SIGKILL a `shale standalone` process while producers send with acks=1;
//! after a restart every acknowledged record is there exactly once, in order. And a torn
//! or garbage tail in the active segment is truncated by recovery.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/lazyfs.rs"]
mod lazyfs;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shale::acks::Acks;
use shale::client::producer::Delivery;
use shale::client::{Producer, ProducerConfig, ProducerRecord};

const PARTITIONS: u32 = 3;

type Acked = Arc<Mutex<BTreeMap<u32, Vec<String>>>>;

/// Sends unique values round-robin to every partition until aborted; records acks in order.
fn start_load(
    client: shale::client::Client,
    round: u32,
    acked: Acked,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    start_load_to(client, "crash", PARTITIONS, round, acked)
}

/// The same, to `partitions` partitions of `topic`.
fn start_load_to(
    client: shale::client::Client,
    topic: &'static str,
    partitions: u32,
    round: u32,
    acked: Acked,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let producer = Producer::new(
        client,
        ProducerConfig {
            acks: Acks::Leader,
            retries: 0,
            linger: Duration::from_millis(1),
            batch_size: 8 * 1024,
            max_in_flight: 5,
            ..ProducerConfig::default()
        },
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u32, String, Delivery)>(10_000);
    let sender = tokio::spawn(async move {
        for i in 0u64.. {
            for p in 0..partitions {
                let value = format!("r{round}-p{p}-{i:08}");
                match producer.send(ProducerRecord::new(topic, value.clone()).partition(p)).await {
                    Ok(d) => {
                        if tx.send((p, value, d)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }
    });
    let waiter = tokio::spawn(async move {
        let mut queue = VecDeque::new();
        while let Some(item) = rx.recv().await {
            queue.push_back(item);
            while let Some((p, value, d)) = queue.pop_front() {
                if d.await.is_ok() {
                    acked.lock().unwrap().entry(p).or_default().push(value);
                }
                if let Ok(next) = rx.try_recv() {
                    queue.push_back(next);
                }
            }
        }
    });
    (sender, waiter)
}

fn acked_count(acked: &Acked) -> usize {
    acked.lock().unwrap().values().map(Vec::len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_acks1_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Acked = Arc::default();
    let mut broker = common::BrokerProcess::start(dir.path());
    broker.client().admin().create_topic("crash", PARTITIONS, 0, BTreeMap::new()).await.unwrap();

    for round in 0..3 {
        let before = acked_count(&acked);
        let (sender, waiter) = start_load(broker.client(), round, acked.clone());
        common::wait_until(Duration::from_secs(60), "5000 new acks before the kill", || {
            let n = acked_count(&acked);
            async move { n >= before + 5000 }
        })
        .await;
        broker.kill();
        sender.abort();
        // Deliveries still pending fail once the connection is gone (retries = 0).
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("pending deliveries did not resolve within 60s of the kill")
            .ok();
        broker = common::BrokerProcess::start(dir.path());
    }

    let read = common::read_all(&broker.client(), "crash").await;
    let acked = acked.lock().unwrap().clone();
    let report = common::check(&acked, &read);
    println!("crash checker: {report:?}");
    assert!(report.acknowledged >= 15_000, "{report:?}");
    report.assert_kept();
    assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
}

/// Appends `bytes` to the newest segment file of a partition directory.
fn append_to_active_segment(dir: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let segments = common::segment_files(dir);
    let active = segments.last().expect("a segment exists");
    std::fs::OpenOptions::new().append(true).open(active).unwrap().write_all(bytes).unwrap();
}

#[tokio::test]
async fn garbage_and_torn_tail_are_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("torn", 1, 0, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..100 {
        producer.send(ProducerRecord::new("torn", format!("v{i}"))).await.unwrap();
    }
    producer.flush().await.unwrap();
    drop(producer);
    server.shutdown().await.unwrap();

    let pdir = dir.path().join("torn-0");
    for damage in [b"this is not a record batch at all".to_vec(), {
        // The first 40 bytes of a valid batch: a half-written append.
        let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
        b.push(shale::record::Record {
            key: None,
            value: Some("half".into()),
            headers: vec![],
            timestamp_ms: 5,
        });
        b.build()[..40].to_vec()
    }] {
        append_to_active_segment(&pdir, &damage);
        // SIGKILL-style restart: the recovery point does not cover the damage.
        let _ = std::fs::remove_file(pdir.join("recovery-point"));
        let server = common::start(common::settings(dir.path())).await;
        let client = common::client(&server);
        let read = common::read_all(&client, "torn").await;
        let values: Vec<_> = read[&0].iter().map(|r| r.value.clone().unwrap()).collect();
        assert!(values.len() >= 100, "{} records after recovery", values.len());
        assert_eq!(
            values[..100]
                .iter()
                .map(|v| String::from_utf8_lossy(v).to_string())
                .collect::<Vec<_>>(),
            (0..100).map(|i| format!("v{i}")).collect::<Vec<_>>()
        );
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let md =
            producer.send(ProducerRecord::new("torn", "appended")).await.unwrap().await.unwrap();
        assert_eq!(
            md.offset,
            values.len() as i64,
            "appends continue right after the recovered log"
        );
        let again = common::read_all(&client, "torn").await;
        assert_eq!(again[&0].last().unwrap().value.as_deref(), Some(&b"appended"[..]));
        drop(producer);
        server.shutdown().await.unwrap();
    }
}

/// A restarted broker may have lost what it had not fsynced: it acknowledges again only at
/// a newer leader epoch, never at the one its previous incarnation led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_acknowledges_only_at_a_newer_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::BrokerProcess::start(dir.path());
    broker.client().admin().create_topic("inc", 1, 0, BTreeMap::new()).await.unwrap();
    let ack = |client| async move {
        let producer = Producer::new(client, ProducerConfig::default());
        let delivery = producer.send(ProducerRecord::new("inc", "v")).await.unwrap();
        delivery.await.unwrap()
    };
    let before = ack(broker.client()).await;
    broker.kill();
    broker = common::BrokerProcess::start(dir.path());
    let after = ack(broker.client()).await;
    println!(
        "acked at epoch {} before the restart, {} after",
        before.leader_epoch, after.leader_epoch
    );
    assert!(
        after.leader_epoch > before.leader_epoch,
        "the restarted broker acknowledged at epoch {} (before: {})",
        after.leader_epoch,
        before.leader_epoch
    );
    assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
}

/// Power cuts of a standalone broker with a tiered topic on its default `file://` bucket.
/// The broker runs on the test-only tracking disk, so what it had not fsynced — local
/// segments, checkpoints, and the bucket's segment and manifest objects — dies with it
/// (`SHALE_POWER_LOSS_DISK=tracking-fsync-noop` makes segment fsync a no-op, which this
/// test must catch). Each seed cuts power five times under load; every acknowledged record
/// reads back once, in order, the older ones from the bucket.
/// Seeds: `SHALE_POWER_LOSS_STANDALONE_SEEDS=1,2,3` (the default);
/// `SHALE_POWER_LOSS_LAZYFS=<LazyFS build>` runs the broker on a LazyFS mount instead (the
/// soak in `docs/operations.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_of_a_standalone_broker_with_a_tiered_topic_lose_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    let seeds = common::seeds_from_env("SHALE_POWER_LOSS_STANDALONE_SEEDS", "1,2,3");
    let disk = std::env::var("SHALE_POWER_LOSS_DISK").unwrap_or_else(|_| "tracking".into());
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config, "[log]\nretention_check_interval_ms = 100").unwrap();
    writeln!(config, "[tier]\nupload_interval_ms = 100").unwrap();
    let config_path = config.path().to_string_lossy().to_string();
    let args = ["--config", config_path.as_str()];
    // With a LazyFS build (the soak), the broker runs on the real disk over a LazyFS mount.
    let lazy = lazyfs::home();
    let env: Vec<(&str, &str)> = match &lazy {
        Some(_) => vec![],
        None => vec![("SHALE_TEST_DISK", disk.as_str())],
    };
    for seed in seeds {
        match &lazy {
            Some(home) => {
                println!("standalone power cuts, seed {seed}, on LazyFS ({})", home.display())
            }
            None => println!("standalone power cuts, seed {seed}, on the {disk} disk"),
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mount = lazy.as_deref().map(lazyfs::LazyFs::mount);
        let temp = tempfile::tempdir().unwrap();
        let dir: &std::path::Path = mount.as_ref().map_or(temp.path(), |m| m.path());
        let acked: Acked = Arc::default();
        let mut broker = common::BrokerProcess::start_with_env(dir, &args, &env);
        let tiered = common::configs(&[
            ("remote.storage.enable", "true"),
            ("segment.bytes", "65536"),
            ("local.retention.bytes", "131072"),
        ]);
        broker.client().admin().create_topic("crash", PARTITIONS, 0, tiered).await.unwrap();
        for round in 0..5 {
            let before = acked_count(&acked);
            let want = before + rng.random_range(3000..9000);
            let (sender, waiter) = start_load(broker.client(), round, acked.clone());
            common::wait_until(Duration::from_secs(60), "acks before the power cut", || {
                let n = acked_count(&acked);
                async move { n >= want }
            })
            .await;
            // Cut once this round has tiered something, uploads and deliveries still in
            // flight (a broker that lost segments it never fsynced may tier nothing more:
            // cut it anyway). The load stops first so that a broker that never fsyncs and
            // acknowledges very fast does not pile up millions of records meanwhile.
            sender.abort();
            let (client, tiered) = (broker.client(), remote_segments(&broker.client()).await);
            let upload = async {
                while remote_segments(&client).await <= tiered {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), upload).await.is_err() {
                println!("  round {round}: no upload within 5 s; cutting power anyway");
            }
            broker.kill();
            if let Some(m) = &mount {
                m.power_cut();
            }
            tokio::time::timeout(Duration::from_secs(60), waiter)
                .await
                .expect("pending deliveries did not resolve within 60s of the cut")
                .ok();
            println!("  round {round}: power cut after {} acks", acked_count(&acked));
            broker = common::BrokerProcess::start_with_env(dir, &args, &env);
        }
        let client = broker.client();
        let remote = remote_segments(&client).await;
        let topic = client.admin().describe_topic("crash").await.unwrap();
        let local_start: i64 = topic.partitions.iter().map(|p| p.local_log_start_offset).sum();
        let read = common::read_all(&client, "crash").await;
        let acked = acked.lock().unwrap().clone();
        let report = common::check(&acked, &read);
        println!(
            "  seed {seed}: {report:?}; {remote} remote segments; local logs start {local_start} \
             records in (summed over partitions): those read back from the bucket"
        );
        report.assert_kept();
        assert!(local_start > 0, "nothing was read from the bucket: {remote} remote segments");
        assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
    }
}

/// Power cuts of a standalone broker writing to many partitions at once, so that the
/// journal's rounds carry many partitions each and replay spreads over them all. On the
/// tracking disk (or LazyFS, as above); each seed cuts power five times under load, and
/// every acknowledged record reads back once, in order.
/// Partitions: `SHALE_POWER_LOSS_PARTITIONS` (default 100); seeds:
/// `SHALE_POWER_LOSS_MANY_SEEDS=1` (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_of_a_broker_with_many_partitions_lose_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    let seeds = common::seeds_from_env("SHALE_POWER_LOSS_MANY_SEEDS", "1");
    let partitions: u32 = std::env::var("SHALE_POWER_LOSS_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let disk = std::env::var("SHALE_POWER_LOSS_DISK").unwrap_or_else(|_| "tracking".into());
    let lazy = lazyfs::home();
    // On LazyFS the cold-read cache's disk tier stays off: LazyFS (a47a5ba) aborts in its
    // truncate path ("Resource deadlock avoided") when that cache opens its files beside
    // 1,000 busy partitions.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[tier]\ncache_disk_bytes = 0\n").unwrap();
    let config_path = config.path().to_string_lossy().to_string();
    let env: Vec<(&str, &str)> = match &lazy {
        Some(_) => vec![("SHALE_CONFIG", config_path.as_str())],
        None => vec![("SHALE_TEST_DISK", disk.as_str())],
    };
    for seed in seeds {
        let on = lazy
            .as_ref()
            .map_or(format!("the {disk} disk"), |h| format!("LazyFS ({})", h.display()));
        println!("power cuts with {partitions} partitions, seed {seed}, on {on}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mount = lazy.as_deref().map(lazyfs::LazyFs::mount);
        let temp = tempfile::tempdir().unwrap();
        let dir: &std::path::Path = mount.as_ref().map_or(temp.path(), |m| m.path());
        let acked: Acked = Arc::default();
        let mut broker = common::BrokerProcess::start_with_env(dir, &[], &env);
        let admin = broker.client().admin();
        admin.create_topic("many", partitions, 0, BTreeMap::new()).await.unwrap();
        for round in 0..5 {
            let before = acked_count(&acked);
            let want = before + rng.random_range(3000..9000);
            let (sender, waiter) =
                start_load_to(broker.client(), "many", partitions, round, acked.clone());
            common::wait_until(Duration::from_secs(60), "acks before the power cut", || {
                let n = acked_count(&acked);
                async move { n >= want }
            })
            .await;
            broker.kill();
            if let Some(m) = &mount {
                m.power_cut();
            }
            sender.abort();
            tokio::time::timeout(Duration::from_secs(60), waiter)
                .await
                .expect("pending deliveries did not resolve within 60s of the cut")
                .ok();
            let restarting = shale_core::clock::monotonic_now();
            broker = common::BrokerProcess::start_with_env(dir, &[], &env);
            let client = broker.client();
            common::wait_until(Duration::from_secs(120), "every partition led again", || {
                let client = client.clone();
                async move { leaders(&client, "many").await == partitions as usize }
            })
            .await;
            println!(
                "  round {round}: power cut after {} acks; serving every partition {:.2} s \
                 after the restart began",
                acked_count(&acked),
                restarting.elapsed().as_secs_f64()
            );
        }
        let read = common::read_all(&broker.client(), "many").await;
        let acked = acked.lock().unwrap().clone();
        let report = common::check(&acked, &read);
        println!("  seed {seed}: {report:?}");
        assert!(report.acknowledged >= 15_000, "{report:?}");
        report.assert_kept();
        assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
    }
}

/// Partitions of `topic` with a leader, as the broker's metadata says.
async fn leaders(client: &shale::client::Client, topic: &str) -> usize {
    match client.admin().describe_topic(topic).await {
        Ok(t) => t
            .partitions
            .iter()
            .filter(|p| p.metadata.as_ref().is_some_and(|m| m.leader_id >= 0))
            .count(),
        Err(_) => 0,
    }
}

async fn remote_segments(client: &shale::client::Client) -> u64 {
    match client.admin().describe_topic("crash").await {
        Ok(t) => t.partitions.iter().map(|p| p.remote_segments).sum(),
        Err(_) => 0,
    }
}

/// Power cuts of a standalone broker while its cleaner compacts a topic (small segments,
/// a clean every few hundred milliseconds), on the tracking disk (or LazyFS, as above):
/// each seed cuts power five times under keyed load, and afterwards every key reads back
/// with its latest acknowledged value or a later one (a write not acknowledged may
/// survive), each value once, at increasing offsets, and nothing that was not written.
/// Seeds: `SHALE_POWER_LOSS_COMPACTED_SEEDS=1` (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_while_a_topic_is_compacted_lose_no_keys_latest_value() {
    use rand::{Rng, SeedableRng};
    let seeds = common::seeds_from_env("SHALE_POWER_LOSS_COMPACTED_SEEDS", "1");
    let disk = std::env::var("SHALE_POWER_LOSS_DISK").unwrap_or_else(|_| "tracking".into());
    let lazy = lazyfs::home();
    let config = tempfile::NamedTempFile::new().unwrap();
    let settings = "[log]\ncleaner_backoff_ms = 100\nretention_check_interval_ms = 100\n\
                    [tier]\ncache_disk_bytes = 0\n";
    std::fs::write(config.path(), settings).unwrap();
    let config_path = config.path().to_string_lossy().to_string();
    let mut env = vec![("SHALE_CONFIG", config_path.as_str())];
    if lazy.is_none() {
        env.push(("SHALE_TEST_DISK", disk.as_str()));
    }
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mount = lazy.as_deref().map(lazyfs::LazyFs::mount);
        let temp = tempfile::tempdir().unwrap();
        let dir: &std::path::Path = mount.as_ref().map_or(temp.path(), |m| m.path());
        let mut broker = common::BrokerProcess::start_with_env(dir, &[], &env);
        let configs: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", "16384"),
            ("segment.ms", "300"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        broker.client().admin().create_topic("kv", 1, 0, configs).await.unwrap();
        let acked: Latest = Arc::default();
        let mut next = 0u64;
        for round in 0..5 {
            // A first burst, acknowledged, and a clean of it; then a cut right after that
            // clean (odd rounds), or a second burst cut at a random acknowledgement while
            // the cleaner works on what rolls.
            send_keyed(&mut broker, &acked, round, &mut next, rng.random_range(2_000..4_000), None)
                .await;
            wait_for_clean(&broker).await;
            if round % 2 == 1 {
                // Right after a clean: its files must be durable already.
                broker.kill();
                if let Some(m) = &mount {
                    m.power_cut();
                }
                broker = common::BrokerProcess::start_with_env(dir, &[], &env);
                continue;
            }
            let count = rng.random_range(3_000..8_000u64);
            let cut = rng.random_range(count / 4..count);
            send_keyed(&mut broker, &acked, round, &mut next, count, Some((cut, mount.as_ref())))
                .await;
            broker = common::BrokerProcess::start_with_env(dir, &[], &env);
        }
        wait_for_clean(&broker).await;
        let read = common::read_all(&broker.client(), "kv").await.remove(&0).unwrap();
        let mut latest: BTreeMap<u64, u64> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut last = -1;
        for r in &read {
            assert!(r.offset > last, "seed {seed}: offset {} after {last}", r.offset);
            last = r.offset;
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            let key: u64 =
                std::str::from_utf8(&r.key.clone().unwrap()[1..]).unwrap().parse().unwrap();
            let i: u64 = value.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(kv_key(i), key, "seed {seed}: {value} under key {key}");
            assert!(seen.insert(value.clone()), "seed {seed}: {value} read twice");
            latest.insert(key, i);
        }
        for (key, (i, value)) in acked.lock().unwrap().iter() {
            let got = latest.get(key).copied();
            assert!(
                got.is_some_and(|g| g >= *i),
                "seed {seed}: key {key}'s latest acknowledged value {value} is gone (read {got:?})"
            );
        }
        println!(
            "  seed {seed}: {} keys acknowledged, {} of {next} records read back",
            acked.lock().unwrap().len(),
            read.len()
        );
        assert!(read.len() < next as usize / 2, "seed {seed}: the cleaner compacted the topic");
        assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
    }
}

/// Each acknowledged value of `power_cuts_while_...` by key: (index, value), the latest.
type Latest = Arc<Mutex<BTreeMap<u64, (u64, String)>>>;

/// The key of the `i`th value: 50 hot keys take three values in four, 3,000 cold ones the
/// fourth in turn, so the latest values of most keys lie in segments the cleaner rewrites.
fn kv_key(i: u64) -> u64 {
    if i.is_multiple_of(4) { 1_000 + (i / 4) % 3_000 } else { i % 50 }
}

/// Sends `count` keyed values (`r{round}-{i:08}` under key `k{kv_key(i)}`) and notes the
/// acknowledged ones; with `cut`, kills the broker (and cuts LazyFS's power) once that
/// many deliveries were awaited.
async fn send_keyed(
    broker: &mut common::BrokerProcess,
    acked: &Latest,
    round: u32,
    next: &mut u64,
    count: u64,
    mut cut: Option<(u64, Option<&lazyfs::LazyFs>)>,
) {
    let producer = Producer::new(
        broker.client(),
        ProducerConfig {
            acks: Acks::Leader,
            retries: 0,
            linger: Duration::from_millis(1),
            batch_size: 4 * 1024,
            ..ProducerConfig::default()
        },
    );
    let mut pending = Vec::new();
    for i in *next..*next + count {
        let (key, value) = (kv_key(i), format!("r{round}-{i:08}"));
        let record = ProducerRecord::new("kv", value.clone()).key(format!("k{key}"));
        if let Ok(d) = producer.send(record).await {
            pending.push((key, i, value, d));
        }
    }
    *next += count;
    for (n, (key, i, value, d)) in pending.into_iter().enumerate() {
        if let Some((_, mount)) = cut.filter(|(at, _)| n as u64 == *at) {
            broker.kill();
            if let Some(m) = mount {
                m.power_cut();
            }
            cut = None;
        }
        let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(60), d).await else {
            continue;
        };
        let mut a = acked.lock().unwrap();
        if a.get(&key).is_none_or(|(j, _)| *j < i) {
            a.insert(key, (i, value));
        }
    }
}

/// Waits (60 s at most) until the broker's cleaner has cleaned `kv` since it started.
async fn wait_for_clean(broker: &common::BrokerProcess) {
    let admin = broker.client().admin();
    common::wait_until(Duration::from_secs(60), "a clean of the compacted topic", || {
        let admin = admin.clone();
        async move {
            let Ok(d) = admin.describe_topic("kv").await else { return false };
            d.partitions[0].cleaning.is_some_and(|c| c.cleans > 0)
        }
    })
    .await;
}

/// Power cuts while a transactional producer (librdkafka over the Kafka listener) commits
/// and aborts transactions of 20 records over three partitions, three cuts per seed, on the
/// tracking disk (or LazyFS, as above): after the last restart a `read_committed` reader
/// finds every transaction whose commit was answered, whole and once, none that was
/// aborted, and any other (its commit in flight at the cut) whole or not at all; a
/// `read_uncommitted` reader sees aborted records, so they are in the log.
/// Seeds: `SHALE_POWER_LOSS_TXN_SEEDS` (default 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_during_transactions_lose_no_commit_and_show_no_abort() {
    use rand::{Rng, SeedableRng};
    let Some(python) = kafka::python() else { return };
    let seeds = common::seeds_from_env("SHALE_POWER_LOSS_TXN_SEEDS", "1");
    let disk = std::env::var("SHALE_POWER_LOSS_DISK").unwrap_or_else(|_| "tracking".into());
    let lazy = lazyfs::home();
    let env: Vec<(&str, &str)> = match &lazy {
        Some(_) => vec![],
        None => vec![("SHALE_TEST_DISK", disk.as_str())],
    };
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mount = lazy.as_deref().map(lazyfs::LazyFs::mount);
        let temp = tempfile::tempdir().unwrap();
        let dir: &std::path::Path = mount.as_ref().map_or(temp.path(), |m| m.path());
        let scratch = tempfile::tempdir().unwrap();
        let notes = scratch.path().join("txns.txt");
        let kafka_addr = format!("127.0.0.1:{}", common::free_port());
        let args = ["--kafka-listen", kafka_addr.as_str()];
        let mut broker = common::BrokerProcess::start_with_env(dir, &args, &env);
        broker
            .client()
            .admin()
            .create_topic("txn-crash", PARTITIONS, 0, Default::default())
            .await
            .unwrap();
        let noted = |prefix: &str| -> Vec<u64> {
            let text = std::fs::read_to_string(&notes).unwrap_or_default();
            text.lines().filter_map(|l| l.strip_prefix(prefix)?.parse().ok()).collect()
        };
        for round in 0..3 {
            let want = noted("committed ").len() + rng.random_range(20..60);
            let mut load = std::process::Command::new(&python)
                .arg(kafka::root().join("tests/kafka/eos.py"))
                .args(["txnload", &kafka_addr, "txn-crash", "crash-txn", notes.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let what = format!("{want} transactions committed before the cut");
            common::wait_until(Duration::from_secs(90), &what, || {
                let n = noted("committed ").len();
                async move { n >= want }
            })
            .await;
            broker.kill();
            if let Some(m) = &mount {
                m.power_cut();
            }
            let _ = load.kill();
            let _ = load.wait();
            println!(
                "  seed {seed} round {round}: power cut after {} commits",
                noted("committed ").len()
            );
            broker = common::BrokerProcess::start_with_env(dir, &args, &env);
        }
        let dump = |isolation: &'static str| {
            let cmd = kafka::python_script(
                &python,
                "eos.py",
                &["dump", &kafka_addr, "txn-crash", isolation],
            );
            tokio::task::spawn_blocking(move || {
                kafka::run(cmd, Duration::from_secs(110)).assert_ok("eos.py dump")
            })
        };
        // A commit decided before the cut may have its markers written only after the
        // restart, by the coordinator's sweep (every 10 s), and the cut producer's open
        // transaction holds the last stable offset until it times out (10 s): meanwhile a
        // read_committed reader sees such a transaction on the partitions whose marker is
        // written and not yet on the others, as with Kafka. Read again (60 s at most)
        // until no transaction is partial and every answered commit is there; then assert.
        let committed = noted("committed ");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let by_txn = loop {
            let committed_read = dump("read_committed").await.unwrap();
            assert_eq!(committed_read["complete"], true, "{committed_read}");
            let mut by_txn: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            for v in committed_read["values"].as_array().unwrap() {
                let v = v.as_str().unwrap();
                let mut parts = v.split('-');
                let (kind, n) = (parts.next().unwrap(), parts.next().unwrap().parse().unwrap());
                assert_eq!(kind, "c", "seed {seed}: an aborted record read committed: {v}");
                by_txn.entry(n).or_default().push(v.to_string());
            }
            let settled = by_txn.values().all(|vs| vs.len() >= 20)
                && committed.iter().all(|n| by_txn.contains_key(n));
            if settled || std::time::Instant::now() >= deadline {
                break by_txn;
            }
            println!(
                "  seed {seed}: a transaction not yet whole on every partition; reading again"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let uncommitted_read = dump("read_uncommitted").await.unwrap();
        for (n, vs) in &by_txn {
            let mut distinct = vs.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                (vs.len(), distinct.len()),
                (20, 20),
                "seed {seed}: transaction {n} not whole or not once"
            );
        }
        let lost: Vec<&u64> =
            committed.iter().filter(|n| !by_txn.contains_key(n)).take(5).collect();
        assert!(lost.is_empty(), "seed {seed}: commits answered, then lost: {lost:?}");
        let aborted = noted("aborted ");
        assert!(
            aborted.iter().all(|n| !by_txn.contains_key(n)),
            "seed {seed}: an aborted transaction read"
        );
        let uncommitted = uncommitted_read["values"].as_array().unwrap();
        let aborted_in_log =
            uncommitted.iter().filter(|v| v.as_str().unwrap().starts_with("a-")).count();
        assert!(aborted_in_log > 0, "seed {seed}: aborted records in the log");
        println!(
            "  seed {seed}: {} commits answered, {} transactions read committed, {} aborts answered, \
             {aborted_in_log} aborted records in the log",
            committed.len(),
            by_txn.len(),
            aborted.len()
        );
        assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
    }
}
