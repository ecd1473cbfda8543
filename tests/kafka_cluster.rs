//! Kafka clients through leader failovers in a three-broker cluster on a real etcd:
//! librdkafka (confluent-kafka) producers, idempotent with acks=all, write two topics of
//! three partitions (three replicas, `min.insync.replicas=2`) while two consumer groups of
//! three members read them, one with the eager `range` assignor and one with
//! `cooperative-sticky`, each losing a member and gaining another mid-run. Partition
//! leaders are SIGKILLed and restarted twice under them. Every acknowledged record must be
//! consumed and committed exactly once, and the log must hold each record exactly once.
//!
//! The clients are `tests/kafka/cluster_clients.py` processes; this test checks the files
//! they write itself rather than trusting their verdicts alone.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::{Cluster, leader_of, wait_for_full_isr};
use common::wait_until;
use shale::client::Client;

/// Records each producer sends, and over how many seconds.
const RECORDS: usize = 3000;
const SECONDS: &str = "20";
const PARTITIONS: u32 = 3;

/// One topic, its group and what the group's members do.
struct Flow {
    topic: &'static str,
    group: &'static str,
    strategy: &'static str,
    out: PathBuf,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_groups_read_every_acked_record_once_through_leader_kills() {
    let Some(python) = kafka::python() else { return };
    let scratch = tempfile::tempdir().unwrap();
    // A short initial rebalance delay: members joining together still land in one round.
    let config = scratch.path().join("shale.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 300\n").unwrap();
    let mut c = Cluster::start(3, &kafka::unique("kc"), &["--config", config.to_str().unwrap()]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let flows = [
        Flow { topic: "eager", group: "eager-readers", strategy: "range", out: PathBuf::new() },
        Flow {
            topic: "coop",
            group: "coop-readers",
            strategy: "cooperative-sticky",
            out: PathBuf::new(),
        },
    ]
    .map(|f| Flow { out: scratch.path().join(f.topic), ..f });
    for f in &flows {
        std::fs::create_dir_all(&f.out).unwrap();
        let configs = [("min.insync.replicas".to_string(), "2".to_string())].into();
        client.admin().create_topic(f.topic, PARTITIONS, 3, configs).await.unwrap();
        wait_for_full_isr(&client, f.topic, PARTITIONS).await;
    }

    // Consumers first: the producers' "done" marker must come after they started.
    let bootstrap = c.kafka_bootstrap();
    let mut runs = Vec::new();
    for f in &flows {
        let out = f.out.to_str().unwrap();
        let consume = kafka::python_script(
            &python,
            "cluster_clients.py",
            &[
                "consume",
                &bootstrap,
                f.topic,
                f.group,
                out,
                "3",
                f.strategy,
                "150",
                "--leave-after",
                "300",
                "--join-after",
                "1500",
            ],
        );
        runs.push((format!("{} consumers", f.topic), background(consume)));
    }
    for f in &flows {
        let out = f.out.to_str().unwrap();
        let produce = kafka::python_script(
            &python,
            "cluster_clients.py",
            &["produce", &bootstrap, f.topic, out, &RECORDS.to_string(), SECONDS],
        );
        runs.push((format!("{} producer", f.topic), background(produce)));
    }

    // Two leader kills while both flows run, each once a quarter more was acknowledged,
    // each broker back in every ISR before the next.
    for (round, (topic, partition)) in [("eager", 0), ("coop", 1)].into_iter().enumerate() {
        let want = RECORDS * (round + 1) / 4;
        wait_until(Duration::from_secs(60), &format!("{want} records acked on {topic}"), || {
            let n = acked_count(&scratch.path().join(topic));
            async move { n >= want }
        })
        .await;
        let leader = leader_of(&client, topic, partition).await;
        eprintln!("killing broker {leader}, leader of {topic}/{partition}");
        c.kill(leader as usize - 1);
        wait_until(Duration::from_secs(30), "another broker to lead", || {
            let client = client.clone();
            async move { leader_of(&client, topic, partition).await != leader }
        })
        .await;
        c.restart(leader as usize - 1);
        for f in &flows {
            wait_for_full_isr(&client, f.topic, PARTITIONS).await;
        }
    }

    let mut verdicts = BTreeMap::new();
    for (what, run) in runs {
        let run = run.await.unwrap();
        verdicts.insert(what.clone(), run.assert_ok(&what));
    }
    for f in &flows {
        let consumed = &verdicts[&format!("{} consumers", f.topic)];
        for field in ["duplicates", "missing", "mismatched", "written_twice"] {
            assert_eq!(consumed[field], 0, "{} {field}: {consumed}", f.topic);
        }
        check_files(&f.out, f.topic);
        check_log(&client, f.topic).await;
    }
}

/// Runs `cmd` to its end (its own watchdog, and ours, bound it) on a blocking thread.
fn background(cmd: std::process::Command) -> tokio::task::JoinHandle<kafka::Run> {
    tokio::task::spawn_blocking(move || kafka::run(cmd, Duration::from_secs(240)))
}

/// How many deliveries the producer writing to `out` has reported acknowledged so far.
fn acked_count(out: &Path) -> usize {
    std::fs::read_to_string(out.join("acked.jsonl")).map(|s| s.lines().count()).unwrap_or(0)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every acknowledged (partition, offset) was committed by exactly one member, holding
/// the record acknowledged there, and nothing else was. A record librdkafka acknowledged
/// without an offset (a retried batch the leader answered was already written, where it
/// no longer knew) is found by its number, committed once on its partition.
fn check_files(out: &Path, topic: &str) {
    let pos = |r: &serde_json::Value| (r["p"].as_i64().unwrap(), r["o"].as_i64().unwrap());
    let records = lines(&out.join("acked.jsonl"));
    let (placed, unplaced): (Vec<_>, Vec<_>) = records.iter().partition(|r| !r["o"].is_null());
    let acked: BTreeMap<(i64, i64), i64> =
        placed.iter().map(|r| (pos(r), r["i"].as_i64().unwrap())).collect();
    let unplaced: BTreeMap<i64, i64> =
        unplaced.iter().map(|r| (r["i"].as_i64().unwrap(), r["p"].as_i64().unwrap())).collect();
    let ids: BTreeSet<i64> = acked.values().chain(unplaced.keys()).copied().collect();
    assert_eq!(
        (acked.len() + unplaced.len(), ids.len()),
        (RECORDS, RECORDS),
        "{topic}: acked positions, records"
    );
    let mut consumed: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("consumed-") {
            for r in lines(&path) {
                consumed.entry(pos(&r)).or_default().push(r["i"].as_i64().unwrap());
            }
        }
    }
    let found = |i: &i64, p: &i64| consumed.iter().any(|((cp, _), v)| cp == p && v.contains(i));
    let missing: Vec<_> = acked.keys().filter(|k| !consumed.contains_key(k)).take(5).collect();
    let lost: Vec<_> = unplaced.iter().filter(|(i, p)| !found(i, p)).take(5).collect();
    let twice: Vec<_> = consumed.iter().filter(|(_, v)| v.len() > 1).take(5).collect();
    let wrong: Vec<_> = consumed
        .iter()
        .filter(|(k, v)| match acked.get(k) {
            Some(i) => *i != v[0],
            None => unplaced.get(&v[0]) != Some(&k.0),
        })
        .take(5)
        .collect();
    assert!(missing.is_empty(), "{topic}: acked, never committed: {missing:?}");
    assert!(lost.is_empty(), "{topic}: acked without an offset, never committed: {lost:?}");
    assert!(twice.is_empty(), "{topic}: committed more than once: {twice:?}");
    assert!(wrong.is_empty(), "{topic}: committed, not the record acked there: {wrong:?}");
    if !unplaced.is_empty() {
        eprintln!("{topic}: {} records acked without an offset, each found once", unplaced.len());
    }
}

/// The log holds each record exactly once: retries after the failovers wrote nothing twice.
async fn check_log(client: &Client, topic: &str) {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for record in common::read_all(client, topic).await.into_values().flatten() {
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        *seen.entry(value).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "{topic}: records in the log more than once: {twice:?}");
    assert_eq!(seen.len(), RECORDS, "{topic}: distinct records in the log");
}

/// Runs `admin.py` with `args` after the bootstrap, off the runtime's thread.
async fn librdkafka_admin(python: &Path, bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    let cmd = kafka::python_script(python, "admin.py", &all);
    let what = format!("admin.py {args:?}");
    let run = tokio::task::spawn_blocking(move || kafka::run(cmd, Duration::from_secs(90)));
    run.await.unwrap().assert_ok(&what)
}

/// DeleteRecords is answered once every in-sync replica has the new log start, so the
/// leader elected after the old one is killed refuses the deleted records too: a consumer
/// asking for offset 0 starts at the new start, and ListOffsets earliest says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_stay_deleted_after_the_leader_is_killed() {
    let Some(python) = kafka::python() else { return };
    let mut c = Cluster::start(3, &kafka::unique("kdr"), &[]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let topic = "deleted";
    client.admin().create_topic(topic, PARTITIONS, 3, Default::default()).await.unwrap();
    wait_for_full_isr(&client, topic, PARTITIONS).await;
    let producer = shale::client::Producer::new(client.clone(), Default::default());
    for i in 0..100 {
        let record = shale::client::ProducerRecord {
            partition: Some(0),
            ..shale::client::ProducerRecord::new(topic, format!("v{i}"))
        };
        producer.send(record).await.unwrap().await.unwrap();
    }
    let bootstrap = c.kafka_bootstrap();
    let json = librdkafka_admin(&python, &bootstrap, &["delete-records", topic, "0", "60"]).await;
    assert_eq!(json["low_watermark"], 60, "{json}");

    let leader = leader_of(&client, topic, 0).await;
    eprintln!("killing broker {leader}, leader of {topic}/0");
    c.kill(leader as usize - 1);
    wait_until(Duration::from_secs(30), "another broker to lead", || {
        let client = client.clone();
        async move { leader_of(&client, topic, 0).await != leader }
    })
    .await;
    let json = librdkafka_admin(&python, &bootstrap, &["first-offset", topic, "0"]).await;
    assert_eq!((json["first"].as_i64(), json["count"].as_i64()), (Some(60), Some(40)), "{json}");
    use shale::proto::pb::list_offsets_request::Spec;
    let earliest = client.admin().list_offsets(topic, 0, Spec::Earliest(true)).await.unwrap();
    assert_eq!(earliest.offset, 60);
    // The killed broker comes back and follows: its log start was durable.
    c.restart(leader as usize - 1);
    wait_for_full_isr(&client, topic, PARTITIONS).await;
    let json = librdkafka_admin(&python, &bootstrap, &["delete-records", topic, "0", "-1"]).await;
    assert_eq!(json["low_watermark"], 100, "{json}");
}
