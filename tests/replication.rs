//! Replication on a real etcd with three `shale serve` brokers: acks=all waits for the
//! in-sync replicas, replicas hold identical batches, a leader killed under load loses no
//! acknowledged record, and min.insync.replicas refuses writes it cannot honour.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/checker.rs"]
mod checker;
mod common;
use common::configs;
#[path = "common/etcd.rs"]
mod etcd_server;
#[path = "common/lazyfs.rs"]
mod lazyfs;
#[path = "common/load.rs"]
mod load;
#[path = "common/ownership.rs"]
mod ownership;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{BrokerProcess, wait_until};
use etcd_server::EtcdServer;
use load::{Load, PRODUCERS, Stop, start_load, wait_for_acks};
use shale::acks::Acks;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;
use shale::record::BatchFrames;

const TTL_SECS: u64 = 3;
/// Settings of the test clusters: quick ISR changes.
const TEST_CONFIG: &str = "[replication]\nlag_time_max_ms = 1500\nfetch_max_wait_ms = 200\n";

/// How a test cluster runs.
struct Opts<'a> {
    /// Each broker advertises a fault proxy and reaches etcd through another.
    proxied: bool,
    /// Extra environment of every broker process.
    env: &'a [(&'a str, &'a str)],
    /// Lease TTL (seconds).
    ttl: u64,
    /// The settings file.
    config: &'a str,
    /// A LazyFS build: each broker's data dir is a LazyFS mount.
    lazyfs: Option<&'a Path>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts { proxied: false, env: &[], ttl: TTL_SECS, config: TEST_CONFIG, lazyfs: None }
    }
}

/// Brokers stop before etcd, and before their LazyFS mounts (fields drop in order).
struct Cluster {
    brokers: Vec<Option<BrokerProcess>>,
    /// When set, each broker's data dir is a LazyFS mount (the power-loss soak).
    mounts: Vec<lazyfs::LazyFs>,
    /// When set, each broker advertises its proxy's address (clients and followers go
    /// through it).
    proxies: Vec<proxy::Proxy>,
    /// When set, each broker reaches etcd through its own proxy.
    etcd_proxies: Vec<proxy::Proxy>,
    ports: Vec<u16>,
    etcd: EtcdServer,
    dirs: Vec<tempfile::TempDir>,
    config: tempfile::NamedTempFile,
    name: String,
    /// Extra environment of every broker process (say, `SHALE_TEST_DISK`).
    env: Vec<(String, String)>,
    /// Lease TTL of the brokers.
    ttl: u64,
}

impl Cluster {
    fn start_with(n: usize, name: &str, proxied: bool) -> Cluster {
        Self::start_with_env(n, name, proxied, &[])
    }

    fn start_with_env(n: usize, name: &str, proxied: bool, env: &[(&str, &str)]) -> Cluster {
        Self::start_full(n, name, Opts { proxied, env, ..Opts::default() })
    }

    /// `n` brokers as `opts` say.
    fn start_full(n: usize, name: &str, opts: Opts) -> Cluster {
        let Opts { proxied, env, ttl, config: config_text, lazyfs } = opts;
        let etcd = EtcdServer::start();
        let mut config = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        write!(config, "{config_text}").unwrap();
        let mut c = Cluster {
            brokers: vec![],
            mounts: vec![],
            proxies: vec![],
            etcd_proxies: vec![],
            ports: vec![],
            etcd,
            dirs: vec![],
            config,
            name: name.into(),
            env: vec![],
            ttl,
        };
        for _ in 0..n {
            c.dirs.push(tempfile::tempdir().unwrap());
            if let Some(home) = lazyfs {
                c.mounts.push(lazyfs::LazyFs::mount(home));
            }
            let port = common::free_port();
            c.ports.push(port);
            if proxied {
                c.proxies.push(proxy::Proxy::start(([127, 0, 0, 1], port).into()));
                let etcd: std::net::SocketAddr =
                    c.etcd.endpoints()[0].trim_start_matches("http://").parse().unwrap();
                c.etcd_proxies.push(proxy::Proxy::start(etcd));
            }
        }
        c.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for i in 0..n {
            let b = c.spawn(i);
            c.brokers.push(Some(b));
        }
        c
    }

    fn spawn(&self, i: usize) -> BrokerProcess {
        let id = (i + 1).to_string();
        let etcd = match self.etcd_proxies.get(i) {
            Some(p) => format!("http://{}", p.addr()),
            None => self.etcd.endpoints().join(","),
        };
        let ttl = self.ttl.to_string();
        let config = self.config.path().to_string_lossy().to_string();
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let advertise = match self.proxies.get(i) {
            Some(p) => p.addr().to_string(),
            None => listen.clone(),
        };
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        BrokerProcess::serve_on_with_env(
            self.data_dir(i),
            &listen,
            &[
                "--advertise",
                &advertise,
                "--config",
                &config,
                "--id",
                &id,
                "--etcd",
                &etcd,
                "--cluster",
                &self.name,
                "--lease-ttl-secs",
                &ttl,
            ],
            &env,
        )
    }

    /// Broker `i`'s data dir (on its LazyFS mount when there are mounts).
    fn data_dir(&self, i: usize) -> &Path {
        match self.mounts.get(i) {
            Some(m) => m.path(),
            None => self.dirs[i].path(),
        }
    }

    /// A client bootstrapping from every broker, so it outlives any one of them.
    fn client(&self) -> Client {
        let all: Vec<String> = match self.proxies.is_empty() {
            true => self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            false => self.proxies.iter().map(|p| p.addr().to_string()).collect(),
        };
        Client::new(&all.join(",")).unwrap()
    }

    fn kill(&mut self, id: i32) {
        if let Some(mut b) = self.brokers[id as usize - 1].take() {
            b.kill();
        }
    }

    fn restart(&mut self, id: i32) {
        let b = self.spawn(id as usize - 1);
        self.brokers[id as usize - 1] = Some(b);
    }

    /// SIGTERMs every running broker and waits for its clean exit: every log is closed and
    /// its segment files fsynced, so the files hold what the brokers held (with the journal
    /// they are fsynced by checkpoints and closes, not before each acknowledgement).
    fn stop_all(&mut self) {
        for (i, b) in self.brokers.iter_mut().enumerate() {
            if let Some(mut b) = b.take() {
                assert!(b.terminate(), "broker {} did not stop cleanly", i + 1);
            }
        }
    }
}

async fn state(client: &Client, topic: &str, partition: u32) -> pb::PartitionMetadata {
    let md = client.admin().metadata(&[topic.to_string()]).await.unwrap();
    md.topics[0].partitions.iter().find(|p| p.partition == partition).unwrap().clone()
}

async fn wait_for_isr(client: &Client, topic: &str, partition: u32, want: usize, what: &str) {
    wait_until(Duration::from_secs(30), what, || {
        let client = client.clone();
        let topic = topic.to_string();
        async move {
            let Ok(md) = client.admin().metadata(&[topic]).await else { return false };
            md.topics[0]
                .partitions
                .iter()
                .any(|p| p.partition == partition && p.isr.len() == want && p.leader_id > 0)
        }
    })
    .await;
}

/// Three brokers (optionally behind fault proxies) and a one-partition topic with three
/// replicas and `min.insync.replicas=2`.
async fn rf3_topic(cluster: &str, topic: &str, proxied: bool) -> (Cluster, Client) {
    let c = Cluster::start_with(3, cluster, proxied);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    client
        .admin()
        .create_topic(topic, 1, 3, configs(&[("min.insync.replicas", "2")]))
        .await
        .unwrap();
    (c, client)
}

/// (offset, crc) of every batch in a replica's partition directory, in order.
/// Every batch in a partition directory as (base offset, CRC-32C of all its bytes, header
/// included), so equal lists mean byte-identical batches at the same offsets.
fn batches_on_disk(dir: &Path) -> Vec<(i64, u32)> {
    let segments = common::segment_files(dir);
    let mut out = vec![];
    for s in segments {
        let bytes = std::fs::read(&s).unwrap();
        for frame in BatchFrames::new(&bytes, usize::MAX) {
            let (h, range) = frame.unwrap();
            out.push((h.base_offset, crc32c::crc32c(&bytes[range])));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_replicates_and_a_killed_leader_loses_nothing_acknowledged() {
    let (mut c, client) = rf3_topic("repl", "r", false).await;
    let first = state(&client, "r", 0).await;
    assert_eq!(first.replicas.len(), 3);
    assert_eq!(first.isr.len(), 3, "every replica starts in sync");

    let producer = Producer::new(
        client.clone(),
        ProducerConfig { acks: Acks::All, linger: Duration::from_millis(2), ..Default::default() },
    );
    let mut acked = Vec::new();
    for round in 0..2 {
        let mut pending = Vec::new();
        for i in 0..3000 {
            let v = format!("r{round}-{i:05}");
            pending.push((
                v.clone(),
                producer.send(ProducerRecord::new("r", v).partition(0)).await.unwrap(),
            ));
        }
        producer.flush().await.unwrap();
        let mut errors = BTreeMap::new();
        for (v, d) in pending {
            match d.await {
                Ok(_) => acked.push(v),
                Err(e) => *errors.entry(e.reason.to_string()).or_insert(0) += 1,
            }
        }
        println!("round {round}: {} acked so far; failures by reason {errors:?}", acked.len());
        if round == 0 {
            // Kill the leader: an in-sync follower takes over with every acknowledged record.
            let leader = state(&client, "r", 0).await.leader_id;
            c.kill(leader);
            let client = c.client();
            wait_until(Duration::from_secs(30), "a new leader", || {
                let client = client.clone();
                async move {
                    client.invalidate("r");
                    let s = state(&client, "r", 0).await;
                    s.leader_id > 0 && s.leader_id != leader
                }
            })
            .await;
            c.restart(leader);
        }
    }
    drop(producer);
    let client = c.client();
    wait_for_isr(&client, "r", 0, 3, "the restarted broker back in the ISR").await;
    client.invalidate("r");
    let read = common::read_all(&client, "r").await;
    let report = common::check(&BTreeMap::from([(0u32, acked.clone())]), &read);
    println!("replication checker: {report:?}");
    if report.lost > 0 {
        // Tell a reader that stopped early from a log that lost records.
        let read_again = common::read_all(&c.client(), "r").await;
        let again = common::check(&BTreeMap::from([(0u32, acked.clone())]), &read_again);
        let ends: Vec<_> = (0..c.dirs.len())
            .map(|i| batches_on_disk(&c.data_dir(i).join("r-0")).last().copied())
            .collect();
        println!(
            "after a loss: first read {} records, second read {} ({again:?}); \
             last batch on each replica {ends:?}; partition {:?}",
            read[&0].len(),
            read_again[&0].len(),
            state(&client, "r", 0).await
        );
    }
    assert!(report.acknowledged >= 5000, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.reordered, 0, "{report:?}");
    assert_eq!(report.offset_errors, 0, "{report:?}");

    let batches = assert_replicas_identical(&mut c, &client, "r").await;
    assert!(!batches.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_insync_replicas_acks_all_writes_are_refused() {
    let (mut c, client) = rf3_topic("minisr", "m", false).await;
    let s = state(&client, "m", 0).await;
    let leader = s.leader_id;
    let followers: Vec<i32> = s.replicas.iter().copied().filter(|r| *r != leader).collect();
    let produce = |client: Client| async move {
        let batch = {
            let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
            b.push(shale::record::Record {
                key: None,
                value: Some("x".into()),
                headers: vec![],
                timestamp_ms: 1,
            });
            b.build()
        };
        client
            .on_leader("m", 0, |mut log| {
                let batch = batch.clone();
                async move {
                    log.produce(pb::ProduceRequest {
                        topic: "m".into(),
                        partition: 0,
                        acks: pb::Acks::All as i32,
                        payload: Some(pb::produce_request::Payload::Batches(batch)),
                        correlation_id: 0,
                        timeout_ms: 0,
                        transactional_id: String::new(),
                    })
                    .await
                }
            })
            .await
    };
    produce(client.clone()).await.unwrap();
    for f in &followers {
        c.kill(*f);
    }
    let client = c.client();
    wait_for_isr(&client, "m", 0, 1, "the ISR to shrink to the leader").await;
    let mut acks = 0;
    let mut refused = 0;
    for _ in 0..20 {
        match produce(client.clone()).await {
            Ok(_) => acks += 1,
            Err(e) => {
                assert!(e.reason.starts_with("NOT_ENOUGH_REPLICAS"), "{e:?}");
                refused += 1;
            }
        }
    }
    println!(
        "min ISR: {acks} acks, {refused} refusals while the ISR was below min.insync.replicas"
    );
    assert_eq!(acks, 0, "acknowledged writes while the ISR was below min.insync.replicas");
    for f in &followers {
        c.restart(*f);
    }
    wait_for_isr(&client, "m", 0, 3, "the followers back in the ISR").await;
    produce(client.clone()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_leader_kills_under_load_lose_and_duplicate_nothing() {
    let (mut c, client) = rf3_topic("bounce", "b", false).await;

    let load = start_load(client.clone(), "b", ProducerConfig::default());
    let mut failovers = Vec::new();
    for round in 0..5 {
        wait_for_acks(&load, 500).await;
        let leader = state(&client, "b", 0).await.leader_id;
        let killed_at = std::time::Instant::now();
        c.kill(leader);
        wait_until(Duration::from_secs(60), "a new leader", || {
            let client = client.clone();
            async move {
                let s = state(&client, "b", 0).await;
                s.leader_id > 0 && s.leader_id != leader
            }
        })
        .await;
        failovers.push(killed_at.elapsed());
        println!(
            "round {round}: killed leader {leader}; new leader after {:?}",
            killed_at.elapsed()
        );
        c.restart(leader);
        wait_for_isr(&client, "b", 0, 3, "the killed broker back in the ISR").await;
        // Preferred-leader rebalancing: leadership returns to the first replica once it is
        // back in sync, so the next round kills a settled leader.
        let preferred = state(&client, "b", 0).await.replicas[0];
        wait_until(Duration::from_secs(30), "leadership back on the preferred replica", || {
            let client = client.clone();
            async move { state(&client, "b", 0).await.leader_id == preferred }
        })
        .await;
    }
    let report = finish_and_check(&mut c, &client, "b", load).await;
    failovers.sort();
    println!(
        "leader bounce: failover p50 {:?} max {:?}",
        failovers[failovers.len() / 2],
        failovers.last().unwrap()
    );
    report.assert_clean();
}

async fn new_leader(client: &Client, topic: &str, old: i32) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = state(client, topic, 0).await;
        if s.leader_id > 0 && s.leader_id != old {
            return s.leader_id;
        }
        assert!(std::time::Instant::now() < deadline, "no new leader for {topic} within 60s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the replicas of partition 0 of `topic` hold the same batches (same offsets,
/// same bytes) below the high watermark, in their files once every broker stopped cleanly;
/// returns them.
async fn assert_replicas_identical(
    c: &mut Cluster,
    client: &Client,
    topic: &str,
) -> Vec<(i64, u32)> {
    let hw = client
        .admin()
        .list_offsets(topic, 0, pb::list_offsets_request::Spec::Latest(true))
        .await
        .unwrap()
        .high_watermark;
    c.stop_all();
    let replicas: Vec<Vec<(i64, u32)>> = (0..c.dirs.len())
        .map(|i| {
            batches_on_disk(&c.data_dir(i).join(format!("{topic}-0")))
                .into_iter()
                .filter(|(o, _)| *o < hw)
                .collect()
        })
        .collect();
    for (i, r) in replicas.iter().enumerate().skip(1) {
        assert_eq!(
            replicas[0],
            *r,
            "replicas 1 and {} of {topic} differ below the high watermark {hw}",
            i + 1
        );
    }
    replicas.into_iter().next().unwrap_or_default()
}

/// Stops the load, waits for every replica to be in sync, reads the topic back and checks it
/// against the produce log (lost, duplicated, reordered, offsets, stale-epoch acks), and
/// asserts the replicas hold identical batches below the high watermark.
async fn finish_and_check(
    c: &mut Cluster,
    client: &Client,
    topic: &str,
    load: Load,
) -> checker::Report {
    load.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.task.await.unwrap();
    wait_for_isr(client, topic, 0, 3, "every replica back in the ISR").await;
    // With every replica in sync, leadership settles on the preferred replica; read from it.
    wait_until(Duration::from_secs(30), "leadership on the preferred replica", || {
        let client = client.clone();
        async move {
            client.invalidate(topic);
            let s = state(&client, topic, 0).await;
            s.replicas.first() == Some(&s.leader_id)
        }
    })
    .await;
    // A leader elected late learns the high watermark from its followers' next fetches;
    // every acknowledged offset must become readable, and soon.
    let acked_end = load.log.acked_end(0);
    wait_until(Duration::from_secs(30), "the high watermark to cover every ack", || {
        let client = client.clone();
        async move {
            let latest = client
                .admin()
                .list_offsets(topic, 0, pb::list_offsets_request::Spec::Latest(true))
                .await;
            if latest.is_err() {
                client.invalidate(topic);
            }
            latest.is_ok_and(|o| o.high_watermark >= acked_end)
        }
    })
    .await;
    client.invalidate(topic);
    let read = checker::from_records(&common::read_all(client, topic).await);
    let report = checker::check(&load.log, &read);
    println!("{topic}: {sent} sent by {PRODUCERS} producers; {report}");
    assert_replicas_identical(c, client, topic).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_failover_keeps_offsets_consistent() {
    let (mut c, client) = rf3_topic("double", "d", false).await;
    let load = start_load(client.clone(), "d", ProducerConfig::default());
    for round in 0..2 {
        wait_for_acks(&load, 500).await;
        let a = state(&client, "d", 0).await.leader_id;
        c.kill(a);
        let b = new_leader(&client, "d", a).await;
        // The new leader dies right after its election, before it has settled in.
        c.kill(b);
        let survivor = new_leader(&client, "d", b).await;
        println!("round {round}: killed {a} then {b}; {survivor} leads");
        c.restart(a);
        c.restart(b);
        wait_for_isr(&client, "d", 0, 3, "both back in the ISR").await;
    }
    wait_for_acks(&load, 500).await;
    finish_and_check(&mut c, &client, "d", load).await.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_network_neither_duplicates_nor_reorders() {
    let (mut c, client) = rf3_topic("flaky", "f", true).await;
    // Producer-to-leader and follower-to-leader traffic both cross the proxies.
    for p in &c.proxies {
        p.set(proxy::Mode::Delay {
            min: Duration::from_millis(50),
            max: Duration::from_millis(500),
        });
        // 1% of forwarded chunks end in a connection reset (the acceptance's rate).
        p.set_reset_probability(0.01);
    }
    let config = ProducerConfig {
        max_in_flight: 5,
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let load = start_load(client.clone(), "f", config);
    wait_for_acks(&load, 2000).await;
    let proxies = &c.proxies;
    wait_until(Duration::from_secs(90), "at least 5 injected connection resets", || {
        let resets: u64 = proxies.iter().map(|p| p.stats().resets).sum();
        async move { resets >= 5 }
    })
    .await;
    for p in &c.proxies {
        p.set(proxy::Mode::Pass);
        p.set_reset_probability(0.0);
    }
    let resets: u64 = c.proxies.iter().map(|p| p.stats().resets).sum();
    let report = finish_and_check(&mut c, &client, "f", load).await;
    println!("flaky network: {resets} connection resets injected");
    assert!(resets > 0, "the test injected no resets");
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_followers_or_from_etcd_never_makes_two_leaders() {
    let (mut c, client) = rf3_topic("cut", "x", true).await;
    let load = start_load(client.clone(), "x", ProducerConfig::default());
    wait_for_acks(&load, 500).await;

    // The leader loses its followers (and clients) but keeps etcd: it stays leader, the ISR
    // shrinks to it, and it recovers when the network does.
    let leader = state(&client, "x", 0).await.leader_id;
    let cut = &c.proxies[leader as usize - 1];
    cut.set(proxy::Mode::Blackhole);
    wait_for_isr(&client, "x", 0, 1, "the ISR to shrink to the cut-off leader").await;
    let acks_while_cut = load.log.acknowledged();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&client, "x", 0).await.leader_id, leader, "leadership must not move");
    cut.set(proxy::Mode::Pass);
    wait_for_isr(&client, "x", 0, 3, "the followers back in the ISR").await;
    wait_for_acks(&load, 500).await;
    println!("cut from followers: {acks_while_cut} acks before the ISR shrank; resumed after");

    // The leader loses etcd but keeps its followers and clients: it stops acknowledging
    // before its lease can expire, and only then does another replica lead.
    let leader = state(&client, "x", 0).await.leader_id;
    c.etcd_proxies[leader as usize - 1].set(proxy::Mode::Blackhole);
    let next = new_leader(&client, "x", leader).await;
    println!("cut from etcd: leader {leader} replaced by {next}");
    wait_for_acks(&load, 500).await;
    c.etcd_proxies[leader as usize - 1].set(proxy::Mode::Pass);

    // Two leaders acknowledging at once would show as acks from an older epoch after a
    // newer one had acknowledged, as lost records, or as offsets holding two values.
    let report = finish_and_check(&mut c, &client, "x", load).await;
    assert!(report.acknowledged > 1500, "{report}");
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_and_acknowledges_nothing_at_its_old_epoch() {
    let (c, client) = rf3_topic("frozen", "z", false).await;
    let s = state(&client, "z", 0).await;
    let (leader, epoch) = (s.leader_id, s.leader_epoch);
    let zombie = c.brokers[leader as usize - 1].as_ref().unwrap();
    let log = client.log_rpc(&zombie.addr).unwrap();
    // Requests go straight to the frozen leader, before, during and after the freeze.
    let stop: Stop = Default::default();
    let (acks, sender) = common::send_directly(log, "z", 0, stop.clone());
    wait_until(Duration::from_secs(10), "acks before the freeze", || {
        let n = acks.lock().unwrap().len();
        async move { n >= 5 }
    })
    .await;
    let frozen = std::time::Instant::now();
    zombie.signal("STOP");
    let next = new_leader(&client, "z", leader).await;
    zombie.signal("CONT");
    // Keep sending to the thawed broker until it refuses writes as a non-leader; the sender
    // then waits for every call that queued up while it was frozen.
    let direct = client.log_rpc(&zombie.addr).unwrap();
    wait_until(Duration::from_secs(30), "the thawed leader to refuse writes", || {
        let mut direct = direct.clone();
        async move {
            let answer = direct.produce(common::produce_req("z", 0, "probe")).await;
            answer.is_err_and(|s| s.code() == tonic::Code::FailedPrecondition)
        }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.unwrap();
    let acks = acks.lock().unwrap();
    let stale = acks.iter().filter(|(sent, _, e)| *sent > frozen && *e <= epoch).count();
    println!(
        "frozen leader {leader} replaced by {next}; {} acks in all, {stale} at the stale epoch",
        acks.len()
    );
    assert_eq!(stale, 0, "the frozen leader acknowledged writes at its old epoch");
}

/// Power cuts under acks=all load. Every broker runs on the test-only tracking disk, so what
/// it had not fsynced dies with it (`SHALE_POWER_LOSS_DISK=tracking-fsync-noop` makes fsync
/// a no-op, which this test must catch). Each seed runs rounds that cut the leader, the
/// leader and a follower at once, or all three, with writes in flight, then restart them.
/// Nothing acknowledged is lost or duplicated, offsets hold one value each, and the
/// replicas are byte-identical below the high watermark.
/// Seeds: `SHALE_POWER_LOSS_CLUSTER_SEEDS=1,2,3` (the default); rounds:
/// `SHALE_POWER_LOSS_ROUNDS=5`; `SHALE_POWER_LOSS_LAZYFS=<LazyFS build>` runs the brokers
/// on LazyFS mounts instead (the soak in `docs/operations.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_of_the_leader_two_brokers_or_all_three_lose_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    let seeds = common::seeds_from_env("SHALE_POWER_LOSS_CLUSTER_SEEDS", "1,2,3");
    let rounds: usize = std::env::var("SHALE_POWER_LOSS_ROUNDS")
        .map_or(5, |r| r.parse().expect("SHALE_POWER_LOSS_ROUNDS: a number"));
    let disk = std::env::var("SHALE_POWER_LOSS_DISK").unwrap_or_else(|_| "tracking".into());
    // With a LazyFS build (the soak), the brokers run on the real disk over LazyFS mounts.
    let lazy = lazyfs::home();
    let on = match &lazy {
        Some(home) => format!("LazyFS ({})", home.display()),
        None => format!("the {disk} disk"),
    };
    for seed in seeds {
        println!(
            "power cuts, seed {seed}, on {on} (replay: SHALE_POWER_LOSS_CLUSTER_SEEDS={seed})"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let env = [("SHALE_TEST_DISK", disk.as_str())];
        let opts = match &lazy {
            Some(home) => Opts { lazyfs: Some(home), ..Opts::default() },
            None => Opts { env: &env, ..Opts::default() },
        };
        let mut c = Cluster::start_full(3, &format!("power{seed}"), opts);
        let client = c.client();
        common::wait_for_broker_count(&client, 3).await;
        let cfg = configs(&[("min.insync.replicas", "2")]);
        client.admin().create_topic("p", 1, 3, cfg).await.unwrap();
        let load = start_load(client.clone(), "p", ProducerConfig::default());
        for round in 0..rounds {
            wait_for_acks(&load, rng.random_range(200..800)).await;
            let s = state(&client, "p", 0).await;
            let leader = s.leader_id;
            let victims = match round % 3 {
                0 => vec![leader],
                1 => {
                    let followers: Vec<i32> =
                        s.replicas.iter().copied().filter(|r| *r != leader).collect();
                    vec![leader, followers[rng.random_range(0..followers.len())]]
                }
                _ => vec![1, 2, 3],
            };
            for v in &victims {
                c.kill(*v);
                if let Some(m) = c.mounts.get(*v as usize - 1) {
                    m.power_cut();
                }
            }
            println!(
                "  round {round}: power cut on brokers {victims:?} (leader {leader}) after {} acks",
                load.log.acknowledged()
            );
            for v in &victims {
                c.restart(*v);
            }
            wait_for_isr(&client, "p", 0, 3, "every replica back in the ISR").await;
        }
        let report = finish_and_check(&mut c, &client, "p", load).await;
        println!("  seed {seed}: {report}");
        report.assert_clean();
    }
}

/// A leader whose process is gone (SIGKILL) is replaced at once, not after its lease TTL:
/// with 30 s leases, a new leader takes over while the dead broker's registration is still
/// in the store, and no acknowledged record is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_before_its_lease_expires() {
    let mut c = Cluster::start_full(3, "gone", Opts { ttl: 30, ..Opts::default() });
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let cfg = configs(&[("min.insync.replicas", "2")]);
    client.admin().create_topic("g", 1, 3, cfg).await.unwrap();
    wait_for_isr(&client, "g", 0, 3, "every replica in the ISR").await;
    let load = start_load(client.clone(), "g", ProducerConfig::default());
    wait_for_acks(&load, 300).await;
    let leader = state(&client, "g", 0).await.leader_id;
    c.kill(leader);
    let next = new_leader(&client, "g", leader).await;
    let md = client.admin().metadata(&[]).await.unwrap();
    assert!(
        md.brokers.iter().any(|b| b.id == leader),
        "broker {leader}'s 30 s lease had already expired when {next} took over"
    );
    wait_for_acks(&load, 300).await;
    load.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.task.await.unwrap();
    client.invalidate("g");
    let read = checker::from_records(&common::read_all(&client, "g").await);
    let report = checker::check(&load.log, &read);
    println!("killed leader {leader} replaced by {next} under a live lease; {sent} sent; {report}");
    report.assert_clean();
}

/// Leader kills at default settings (10 s leases): a one-partition RF=3 topic under acks=all
/// load, `SHALE_FAILOVER_KILLS` (3 in CI) SIGKILLs of its leader, each restarted; nothing
/// acknowledged is lost or duplicated. Prints the time from each kill to the first
/// acknowledgement from the next leader (p50/p99/max). With `SHALE_FAILOVER_QUIET_SECS`
/// set, then runs that long with two busy threads hogging the cores and counts leader
/// changes nobody caused (false failovers). `scripts/bench-failover.sh` is the benchmark:
/// 20 kills and 60 quiet seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kills_at_default_settings_fail_over_and_lose_nothing() {
    failovers_at_default_settings("KILL").await;
}

/// The same with the leader frozen (SIGSTOP: a paused VM, a stalled disk), which keeps its
/// connections open and answers nothing: its heartbeats stop, it is fenced after the
/// heartbeat timeout (500 ms) and its partition moves; each is woken (SIGCONT) once the
/// next leader acknowledged, acknowledges nothing at its old epoch (the checker's
/// stale-epoch acks) and rejoins the ISR before the next round. Before heartbeats a frozen
/// leader held its partition for its whole 10 s lease. `SHALE_FAILOVER_PAUSES` (3 in CI)
/// sets the rounds; `scripts/bench-failover.sh stop` runs 20 and the quiet minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_leaders_at_default_settings_are_replaced_quickly_and_lose_nothing() {
    failovers_at_default_settings("STOP").await;
}

/// Rounds of `signal` (KILL: then restarted; STOP: then woken) sent to the leader of a
/// one-partition RF=3 topic under acks=all load, on a 3-broker cluster at default settings.
async fn failovers_at_default_settings(signal: &str) {
    let var = if signal == "KILL" { "SHALE_FAILOVER_KILLS" } else { "SHALE_FAILOVER_PAUSES" };
    let rounds: usize = std::env::var(var).map_or(3, |v| v.parse().expect("a number"));
    let quiet: u64 =
        std::env::var("SHALE_FAILOVER_QUIET_SECS").map_or(0, |v| v.parse().expect("a number"));
    let ttl = shale::settings::Settings::default().cluster.lease_ttl_secs;
    let name = format!("failover-{}", signal.to_lowercase());
    let mut c = Cluster::start_full(3, &name, Opts { ttl, config: "", ..Opts::default() });
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let cfg = configs(&[("min.insync.replicas", "2")]);
    client.admin().create_topic("f", 1, 3, cfg).await.unwrap();
    let load = start_load(client.clone(), "f", ProducerConfig::default());
    let mut times = Vec::new();
    for round in 0..rounds {
        // Settled: the ISR full again and leadership back on the preferred replica (it
        // returns there once the last round's broker rejoined), so the signal hits the
        // leader, not a broker about to hand leadership back.
        wait_until(Duration::from_secs(60), "a full ISR led by the preferred replica", || {
            let client = client.clone();
            async move {
                let s = state(&client, "f", 0).await;
                s.isr.len() == 3 && s.replicas.first() == Some(&s.leader_id)
            }
        })
        .await;
        wait_for_acks(&load, 300).await;
        let s = state(&client, "f", 0).await;
        let hit = std::time::Instant::now();
        match signal {
            "KILL" => c.kill(s.leader_id),
            _ => c.brokers[s.leader_id as usize - 1].as_ref().unwrap().signal(signal),
        }
        wait_until(Duration::from_secs(60), "an ack from the next leader", || {
            let acked = load.log.max_acked_epoch();
            async move { acked > Some(s.leader_epoch) }
        })
        .await;
        let took = hit.elapsed();
        times.push(took);
        println!(
            "{signal} {round}: leader {} (epoch {}) -> next ack after {took:?}",
            s.leader_id, s.leader_epoch
        );
        match signal {
            "KILL" => c.restart(s.leader_id),
            _ => c.brokers[s.leader_id as usize - 1].as_ref().unwrap().signal("CONT"),
        }
    }
    wait_for_isr(&client, "f", 0, 3, "every replica in the ISR").await;
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "failover over {rounds} leader {signal}s (signal -> next ack): p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        times.last().unwrap()
    );
    if quiet > 0 {
        // Leadership returns to the preferred replica after the last round: not a failure.
        wait_until(Duration::from_secs(30), "leadership on the preferred replica", || {
            let client = client.clone();
            async move {
                let s = state(&client, "f", 0).await;
                s.replicas.first() == Some(&s.leader_id)
            }
        })
        .await;
        let before = state(&client, "f", 0).await.leader_epoch;
        let stop: Stop = Default::default();
        let hogs: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    x
                })
            })
            .collect();
        let acked = load.log.acknowledged();
        // The measurement window itself, not a synchronisation.
        tokio::time::sleep(Duration::from_secs(quiet)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in hogs {
            h.join().unwrap();
        }
        let after = state(&client, "f", 0).await.leader_epoch;
        println!(
            "false failovers in {quiet} s of load with two busy threads: {} ({} acks meanwhile)",
            after - before,
            load.log.acknowledged() - acked
        );
    }
    finish_and_check(&mut c, &client, "f", load).await.assert_clean();
}

/// A group member polling in a task (it owns nothing it does not poll for), recording its
/// ownership; stopped by `stop`.
fn group_member(
    client: Client,
    group: &str,
    topic: &str,
    stop: Stop,
) -> (ownership::Ownership, tokio::task::JoinHandle<()>) {
    let mut config = shale::client::GroupConfig::new(group, &[topic]);
    config.session_timeout = Duration::from_secs(3);
    let owned: ownership::Ownership = Default::default();
    let recorded = owned.clone();
    let task = tokio::spawn(async move {
        let mut consumer = shale::client::GroupConsumer::subscribe(client, config).unwrap();
        consumer.set_listener(Box::new(ownership::Recorder(recorded)));
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // Errors (a coordinator that refuses, a broker cut off) are retried by polling.
            let _ = consumer.poll(Duration::from_millis(100)).await;
        }
    });
    (owned, task)
}

/// A group's coordinator cut off from etcd stops confirming assignments before another
/// broker can take the group over and hand its members' partitions to others: a member
/// that reaches only the cut-off coordinator drops its partitions before another member
/// gets them, so no partition has two owners at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_cut_off_from_etcd_never_lets_a_partition_have_two_owners() {
    let c = Cluster::start_with(3, "gcut", true);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    client.admin().create_topic("g", 4, 3, BTreeMap::new()).await.unwrap();
    let md = client.admin().metadata(&[]).await.unwrap();
    let brokers: Vec<(i32, String)> =
        md.brokers.iter().map(|b| (b.id, b.address.clone())).collect();
    let (coordinator, address) = shale::groups::coordinator_of("cut", &brokers).unwrap();
    let elsewhere = &brokers.iter().find(|(id, _)| *id != coordinator).unwrap().1;
    let stop: Stop = Default::default();
    // m1 knows only the coordinator's address; m2 reaches it through another broker.
    let (m1, t1) = group_member(Client::new(&address).unwrap(), "cut", "g", stop.clone());
    let (m2, t2) = group_member(Client::new(elsewhere).unwrap(), "cut", "g", stop.clone());
    wait_until(Duration::from_secs(30), "two members with two partitions each", || {
        let n = (ownership::owned_now(&m1).len(), ownership::owned_now(&m2).len());
        async move { n == (2, 2) }
    })
    .await;
    c.etcd_proxies[coordinator as usize - 1].set(proxy::Mode::Blackhole);
    wait_until(Duration::from_secs(60), "m2 owning every partition", || {
        let n = ownership::owned_now(&m2).len();
        async move { n == 4 }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let end = std::time::Instant::now();
    t1.abort();
    t2.abort();
    println!(
        "coordinator {coordinator} cut off from etcd; m1 owns {:?}",
        ownership::owned_now(&m1)
    );
    ownership::assert_no_two_owners(&[("m1", &m1), ("m2", &m2)], end);
}
