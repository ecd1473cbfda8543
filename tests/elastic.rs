//! An elastic cluster on a real etcd, with `shale serve` processes on 127.0.0.1: partitions
//! move to new replica sets under an acks=all load and through the loss of the controller
//! and of the target broker, a move is cancelled, a topic's replication factor changes, and
//! a cluster grows by a broker, rebalances and shrinks by decommissioning one, with the
//! checker finding nothing lost, duplicated or misplaced.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/checker.rs"]
mod checker;
#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/load.rs"]
mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{Cluster, wait_for_brokers};
use common::{shale_cli, wait_until};
use load::{Load, start_load_on, wait_for_acks};
use shale::client::{
    Client, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use shale::proto::pb;

/// Quick ISR changes, and the move throttle given.
fn config(dir: &std::path::Path, throttle: u64) -> String {
    let path = dir.join("shale.toml");
    std::fs::write(
        &path,
        format!(
            "[replication]\nlag_time_max_ms = 1500\nfetch_max_wait_ms = 200\n\
             move_throttle_bytes_per_sec = {throttle}\nmax_moves = 4\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().to_string()
}

async fn partition(client: &Client, topic: &str, p: u32) -> pb::PartitionMetadata {
    let md = client.admin().metadata(&[topic.to_string()]).await.unwrap();
    md.topics[0].partitions.iter().find(|m| m.partition == p).cloned().unwrap()
}

/// Waits (bounded) until no reassignment is pending or in progress.
async fn wait_for_moves_done(client: &Client, what: &str) {
    wait_until(Duration::from_secs(120), what, || {
        let client = client.clone();
        async move { client.admin().list_reassignments().await.is_ok_and(|m| m.is_empty()) }
    })
    .await;
}

/// Waits (bounded) until partition `p` of `topic` has exactly `replicas`, all in sync.
async fn wait_for_replicas(client: &Client, topic: &str, p: u32, replicas: &[i32]) {
    let want: BTreeSet<i32> = replicas.iter().copied().collect();
    let what = format!("{topic}/{p} on replicas {replicas:?}, all in sync");
    wait_until(Duration::from_secs(120), &what, || {
        let (client, want) = (client.clone(), want.clone());
        async move {
            let Ok(md) = client.admin().metadata(&[topic.to_string()]).await else {
                return false;
            };
            let m = md.topics[0].partitions.iter().find(|m| m.partition == p).cloned().unwrap();
            let (r, isr): (BTreeSet<i32>, BTreeSet<i32>) =
                (m.replicas.iter().copied().collect(), m.isr.iter().copied().collect());
            r == want && isr == want && m.leader_id > 0
        }
    })
    .await;
}

/// Writes `n` records of `size` bytes to partition 0 of `topic`, acks=all.
async fn fill(client: &Client, topic: &str, n: usize, size: usize) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let mut v = format!("fill-{i:08}-").into_bytes();
        v.resize(size, b'x');
        pending.push(producer.send(ProducerRecord::new(topic, v).partition(0)).await.unwrap());
    }
    producer.flush().await.unwrap();
    for d in pending {
        d.await.unwrap();
    }
}

/// Stops the load and checks every acknowledged record was read back exactly once, at
/// its acknowledged offset, and that no delivery failed for good.
async fn finish(client: &Client, topic: &str, load: Load) -> checker::Report {
    let errors = load.errors.clone();
    let log = load.log.clone();
    let sent = load.stop().await;
    client.invalidate(topic);
    let mut records = common::read_all(client, topic).await;
    // What `fill` wrote before the load is not the load's.
    for r in records.values_mut() {
        r.retain(|r| !r.value.as_ref().is_some_and(|v| v.starts_with(b"fill-")));
    }
    let read = checker::from_records(&records);
    let report = checker::check(&log, &read);
    println!("{topic}: {sent} sent; {report}");
    report.assert_clean();
    assert_eq!(errors.load(Ordering::Relaxed), 0, "a delivery failed for good");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_completes_through_controller_and_target_loss_and_can_be_cancelled() {
    let conf_dir = tempfile::tempdir().unwrap();
    // 4 MiB/s: a few MiB of tail take a second or more to copy, long enough to kill
    // brokers mid-move.
    let conf = config(conf_dir.path(), 4 << 20);
    let mut c = Cluster::start(4, "moves", &["--config", &conf]);
    let client = c.client();
    wait_for_brokers(&client, &[1, 2, 3, 4]).await;
    client.admin().create_topic("m", 1, 2, BTreeMap::new()).await.unwrap();
    fill(&client, "m", 1500, 8 << 10).await; // 12 MiB
    let load = start_load_on(client.clone(), "m", 1, ProducerConfig::default());
    wait_for_acks(&load, 300).await;

    // 1. Kill the controller mid-move; the move keeps one replica and gains one, neither
    //    of them the controller, so the move itself waits for no restart.
    let before = partition(&client, "m", 0).await;
    let controller = client.admin().describe_cluster().await.unwrap().controller_id;
    let kept = *before.replicas.iter().find(|r| **r != controller).unwrap();
    let gained = (1..=4).find(|b| !before.replicas.contains(b) && *b != controller).unwrap();
    let target = vec![kept, gained];
    let out = shale_cli(
        &c.addr(0),
        &["partition", "reassign", "m", "0", "--replicas", &format!("{},{}", target[0], target[1])],
    );
    assert!(out.contains("is moving to replicas"), "{out}");
    wait_until(Duration::from_secs(30), "the move to start copying", || {
        let client = client.clone();
        async move {
            let moves = client.admin().list_reassignments().await.unwrap_or_default();
            moves.iter().any(|m| m.joining.iter().any(|j| j.copied_bytes > 0))
        }
    })
    .await;
    let status = shale_cli(&c.addr(0), &["cluster", "rebalance", "--status"]);
    assert!(status.contains("m/0") && status.contains("copied"), "{status}");
    println!("killing controller {controller} mid-move:\n{status}");
    let killed = controller;
    c.kill(killed as usize - 1);
    wait_for_replicas(&client, "m", 0, &target).await;
    c.restart(killed as usize - 1);
    wait_for_brokers(&client, &[1, 2, 3, 4]).await;

    // 2. Kill the target broker mid-copy: it comes back and finishes the move.
    let before = partition(&client, "m", 0).await;
    let spare: Vec<i32> = (1..=4).filter(|b| !before.replicas.contains(b)).collect();
    let target = vec![before.replicas[0], spare[0]];
    client
        .admin()
        .reassign_partitions(
            vec![pb::Reassignment { topic: "m".into(), partition: 0, replicas: target.clone() }],
            false,
        )
        .await
        .unwrap();
    let joining = target[1];
    wait_until(Duration::from_secs(30), "the target to start copying", || {
        let client = client.clone();
        async move {
            let moves = client.admin().list_reassignments().await.unwrap_or_default();
            moves
                .iter()
                .any(|m| m.joining.iter().any(|j| j.broker_id == joining && j.copied_bytes > 0))
        }
    })
    .await;
    c.kill(joining as usize - 1);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the copy stall a little
    c.restart(joining as usize - 1);
    wait_for_replicas(&client, "m", 0, &target).await;

    // 3. Cancel a move mid-copy: the partition goes back to its replicas from before.
    let before = partition(&client, "m", 0).await;
    let spare: Vec<i32> = (1..=4).filter(|b| !before.replicas.contains(b)).collect();
    let target = format!("{},{}", spare[0], spare[1]);
    shale_cli(&c.addr(0), &["partition", "reassign", "m", "0", "--replicas", &target]);
    wait_until(Duration::from_secs(30), "the cancelled move to start copying", || {
        let client = client.clone();
        async move {
            let moves = client.admin().list_reassignments().await.unwrap_or_default();
            moves.iter().any(|m| !m.adding.is_empty())
        }
    })
    .await;
    let out = shale_cli(&c.addr(0), &["partition", "reassign", "m", "0", "--cancel"]);
    assert!(out.contains("going back"), "{out}");
    wait_for_moves_done(&client, "the cancelled move to be undone").await;
    wait_for_replicas(&client, "m", 0, &before.replicas).await;
    let err = client
        .admin()
        .reassign_partitions(
            vec![pb::Reassignment { topic: "m".into(), partition: 0, replicas: vec![] }],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason, "NO_REASSIGNMENT_IN_PROGRESS", "{err}");

    // Bad requests name what is wrong and change nothing.
    for (replicas, reason, says) in [
        (vec![1, 1], "INVALID_REPLICA_ASSIGNMENT", "broker 1 is listed twice"),
        (vec![1, 9], "INVALID_REPLICA_ASSIGNMENT", "broker 9 is not live"),
    ] {
        let r = pb::Reassignment { topic: "m".into(), partition: 0, replicas };
        let err = client.admin().reassign_partitions(vec![r], false).await.unwrap_err();
        assert_eq!(err.reason, reason, "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    let r = pb::Reassignment { topic: "m".into(), partition: 7, replicas: vec![1] };
    let err = client.admin().reassign_partitions(vec![r], false).await.unwrap_err();
    assert_eq!(err.reason, "UNKNOWN_PARTITION", "{err}");

    finish(&client, "m", load).await;
    let mut copied = 0.0;
    for i in 0..4 {
        let (status, body) = common::http_get(&c.admin(i), "/metrics").await;
        assert_eq!(status, 200, "{body}");
        copied += common::metric(&body, "shale_reassignment_copied_bytes_total").unwrap();
        assert!(common::metric(&body, "shale_reassignments_in_progress").is_some(), "{body}");
    }
    assert!(copied > 0.0, "the moves copied bytes and /metrics says so");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_changes_replication_factor() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = config(conf_dir.path(), 0);
    let c = Cluster::start(3, "rf", &["--config", &conf]);
    let client = c.client();
    wait_for_brokers(&client, &[1, 2, 3]).await;
    client.admin().create_topic("r", 3, 1, BTreeMap::new()).await.unwrap();
    let load = start_load_on(client.clone(), "r", 3, ProducerConfig::default());
    wait_for_acks(&load, 300).await;

    let out = shale_cli(&c.addr(0), &["topic", "alter", "r", "--replication-factor", "3"]);
    assert!(out.contains("now has replication factor 3: 3 partition(s) reassigned"), "{out}");
    for p in 0..3 {
        wait_for_replicas(&client, "r", p, &[1, 2, 3]).await;
    }
    wait_for_acks(&load, 300).await;
    let out = shale_cli(&c.addr(1), &["topic", "alter", "r", "--replication-factor", "2"]);
    assert!(out.contains("replication factor 2"), "{out}");
    wait_for_moves_done(&client, "the replication factor to go down to 2").await;
    // The brokers' metadata follows the store a moment later.
    wait_until(Duration::from_secs(30), "every partition of r on 2 replicas", || {
        let client = client.clone();
        async move {
            let md = client.admin().metadata(&["r".to_string()]).await.unwrap();
            md.topics[0].topic.as_ref().unwrap().replication_factor == 2
                && md.topics[0].partitions.iter().all(|p| p.replicas.len() == 2)
        }
    })
    .await;
    let err = client.admin().alter_replication_factor("r", 4).await.unwrap_err();
    assert_eq!(err.reason, "INVALID_REPLICATION_FACTOR", "{err}");
    finish(&client, "r", load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_grows_from_3_to_12_partitions_under_load() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = config(conf_dir.path(), 0);
    let c = Cluster::start(3, "grow12", &["--config", &conf]);
    let client = c.client();
    wait_for_brokers(&client, &[1, 2, 3]).await;
    client.admin().create_topic("g", 3, 2, BTreeMap::new()).await.unwrap();
    let load = start_load_on(client.clone(), "g", 3, ProducerConfig::default());
    let member = Member::start(client.clone(), "g");
    wait_for_acks(&load, 500).await;

    let out = shale_cli(&c.addr(0), &["topic", "alter", "g", "--partitions", "12"]);
    assert!(out.contains("now has 12 partitions"), "{out}");
    let grown = std::time::Instant::now();
    // The producers spread onto the new partitions (the load names partitions itself; a
    // keyed producer would take them up within its metadata max age).
    load.partitions.store(12, Ordering::Relaxed);
    wait_until(Duration::from_secs(60), "the group member to read from partition 11", || {
        let read = member.read.clone();
        async move { read.lock().unwrap().iter().any(|(p, _)| *p == 11) }
    })
    .await;
    println!("the group read from a new partition {:?} after the alter", grown.elapsed());
    wait_for_acks(&load, 1200).await;

    // A new partition's first batches may wait for its leader to open it.
    wait_until(Duration::from_secs(60), "every partition, old and new, to take data", || {
        let done = (0..12).all(|p| load.log.acked_end(p) > 0);
        async move { done }
    })
    .await;
    let acked_end: Vec<i64> = (0..12).map(|p| load.log.acked_end(p)).collect();
    finish(&client, "g", load).await;
    member.finish_after_reading(&acked_end).await;
}

/// A group member reading the topic throughout, remembering every (partition, offset).
struct Member {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    read: Arc<Mutex<BTreeSet<(u32, i64)>>>,
}

impl Member {
    fn start(client: Client, topic: &str) -> Member {
        let mut config = GroupConfig::new("elastic", &[topic]);
        config.session_timeout = Duration::from_secs(3);
        config.auto_offset_reset = OffsetReset::Earliest;
        let stop = Arc::new(AtomicBool::new(false));
        let read: Arc<Mutex<BTreeSet<(u32, i64)>>> = Arc::default();
        let (stop2, read2) = (stop.clone(), read.clone());
        let task = tokio::spawn(async move {
            let mut consumer = GroupConsumer::subscribe(client, config).unwrap();
            while !stop2.load(Ordering::Acquire) {
                match consumer.poll(Duration::from_millis(200)).await {
                    Ok(records) => read2
                        .lock()
                        .unwrap()
                        .extend(records.iter().map(|r| (r.partition, r.offset))),
                    // Leadership moved under it: the consumer retries on the next poll.
                    Err(e) if e.kind.is_retriable() => {}
                    Err(e) => panic!("poll failed: {e}"),
                }
            }
            let _ = consumer.close().await;
        });
        Member { stop, task, read }
    }

    /// Waits (bounded) until the member has read every offset below `acked_end[p]` of each
    /// partition `p`, then stops it.
    async fn finish_after_reading(self, acked_end: &[i64]) {
        wait_until(Duration::from_secs(60), "the group member to read every ack", || {
            let read = self.read.clone();
            let acked_end = acked_end.to_vec();
            async move {
                let read = read.lock().unwrap();
                (0..acked_end.len() as u32)
                    .all(|p| (0..acked_end[p as usize]).all(|o| read.contains(&(p, o))))
            }
        })
        .await;
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scales_out_rebalances_and_scales_in_under_load() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = config(conf_dir.path(), 0);
    let mut c = Cluster::prepare(4, "elastic", &["--config", &conf]);
    for i in 0..3 {
        c.restart(i);
    }
    let client = c.client();
    wait_for_brokers(&client, &[1, 2, 3]).await;
    const PARTITIONS: u32 = 8;
    client.admin().create_topic("e", PARTITIONS, 2, BTreeMap::new()).await.unwrap();
    let load = start_load_on(client.clone(), "e", PARTITIONS, ProducerConfig::default());
    let member = Member::start(client.clone(), "e");
    wait_for_acks(&load, 500).await;

    // Scale out: a fourth broker, then a rebalance onto it.
    c.restart(3);
    wait_for_brokers(&client, &[1, 2, 3, 4]).await;
    let plan = shale_cli(&c.addr(0), &["cluster", "rebalance", "--dry-run"]);
    assert!(plan.contains("move(s) planned"), "{plan}");
    let out = shale_cli(&c.addr(0), &["cluster", "rebalance", "--execute"]);
    assert!(out.contains("requested"), "{out}");
    wait_for_moves_done(&client, "the rebalance onto broker 4").await;
    wait_for_acks(&load, 500).await;
    let loads = client.admin().describe_cluster().await.unwrap().loads;
    assert!(loads[&4].replicas >= 3, "broker 4 took its share: {loads:?}");

    // Scale in: decommission broker 1, wait until it is empty, stop it for good.
    let out = shale_cli(&c.addr(1), &["broker", "decommission", "1", "--wait"]);
    assert!(out.contains("can be stopped for good"), "{out}");
    // The broker answering may read the metadata a moment after the controller wrote it.
    wait_until(Duration::from_secs(30), "every broker's metadata without broker 1", || {
        let client = client.clone();
        async move {
            client.invalidate("e");
            let md = client.admin().metadata(&["e".to_string()]).await.unwrap();
            md.topics[0].partitions.iter().all(|p| !p.replicas.contains(&1))
        }
    })
    .await;
    let (clean, _, _) = c.terminate(0).await;
    assert!(clean, "broker 1 stops cleanly once empty");
    wait_for_acks(&load, 500).await;

    // Balance what is left, then check: nothing lost, duplicated or misplaced, and the
    // three remaining brokers within one of even.
    // Through a broker list that starts with the stopped broker: the CLI moves on.
    let brokers = format!("{},{}", c.addr(0), c.addr(1));
    let out = shale_cli(&brokers, &["cluster", "rebalance", "--execute"]);
    assert!(out.contains("requested") || out.contains("balanced"), "{out}");
    wait_for_moves_done(&client, "the rebalance after the decommission").await;
    let acked_end: Vec<i64> = (0..PARTITIONS).map(|p| load.log.acked_end(p)).collect();
    let report = finish(&client, "e", load).await;
    assert!(report.acknowledged > 1500, "{report:?}");
    member.finish_after_reading(&acked_end).await;

    let cluster = client.admin().describe_cluster().await.unwrap();
    let counts: Vec<(u32, u32)> =
        [2, 3, 4].iter().map(|b| (cluster.loads[b].replicas, cluster.loads[b].leaders)).collect();
    let spread = |f: fn(&(u32, u32)) -> u32| {
        counts.iter().map(f).max().unwrap() - counts.iter().map(f).min().unwrap()
    };
    assert!(spread(|c| c.0) <= 1 && spread(|c| c.1) <= 1, "replicas and leaders: {counts:?}");
    println!("loads after scale out and in (replicas, leaders) on 2, 3, 4: {counts:?}");
}
