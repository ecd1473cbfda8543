//! 2,000 partitions on one broker: create, produce to all, restart, consume; prints the
//! broker's resident memory and open file descriptors at each step.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use shale::acks::Acks;
use shale::client::{Producer, ProducerConfig, ProducerRecord};

const PARTITIONS: u32 = 2000;
const PER_PARTITION: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_partitions_create_produce_restart_consume() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let mut broker = common::BrokerProcess::start(dir.path());
    let (rss0, fds0) = broker.resources();
    println!("idle broker: rss {rss0} KiB, {fds0} fds");
    let client = broker.client();
    client.admin().create_topic("wide", PARTITIONS, 0, BTreeMap::new()).await.unwrap();
    let (rss1, fds1) = broker.resources();
    println!(
        "after creating {PARTITIONS} partitions: rss {rss1} KiB, {fds1} fds ({:?})",
        t.elapsed()
    );

    let producer =
        Producer::new(client.clone(), ProducerConfig { acks: Acks::All, ..Default::default() });
    let mut acked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut deliveries = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..PARTITIONS {
            let v = format!("p{p}-{i}");
            deliveries.push((
                p,
                v.clone(),
                producer.send(ProducerRecord::new("wide", v).partition(p)).await.unwrap(),
            ));
        }
    }
    producer.flush().await.unwrap();
    for (p, v, d) in deliveries {
        d.await.unwrap();
        acked.entry(p).or_default().push(v);
    }
    drop(producer);
    let (rss2, fds2) = broker.resources();
    println!("after producing to all: rss {rss2} KiB, {fds2} fds ({:?})", t.elapsed());
    // One open segment per partition at most, plus a small fixed set.
    assert!(fds2 < PARTITIONS as usize * 2 + 200, "{fds2} fds for {PARTITIONS} partitions");

    assert!(broker.terminate(), "clean shutdown");
    let broker = common::BrokerProcess::start(dir.path());
    let (rss3, fds3) = broker.resources();
    println!("after restart: rss {rss3} KiB, {fds3} fds ({:?})", t.elapsed());
    let read = common::read_all(&broker.client(), "wide").await;
    let report = common::check(&acked, &read);
    let (rss4, fds4) = broker.resources();
    println!("after consuming all: rss {rss4} KiB, {fds4} fds ({:?}); {report:?}", t.elapsed());
    assert_eq!(report.acknowledged, PARTITIONS as usize * PER_PARTITION);
    assert_eq!((report.lost, report.duplicated, report.reordered), (0, 0, 0));
}

/// The lowest descriptor number the process has free: with the open-file limit set to it,
/// the process can open nothing more.
fn lowest_free_fd(pid: u32) -> u64 {
    let open: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    (0..).find(|n| !open.contains(n)).unwrap()
}

/// The open-file limits (soft, hard) of a running process.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut values = line["Max open files".len()..].split_whitespace();
    (values.next().unwrap().to_string(), values.next().unwrap().to_string())
}

/// Sets the soft open-file limit of a running process (no privilege needed below the hard
/// limit).
fn set_nofile(pid: u32, soft: &str) {
    let hard = nofile(pid).1;
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={soft}:{hard}")])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit --pid={pid} --nofile={soft}:{hard}: {status}");
}

/// A broker out of file descriptors: a partition it cannot open answers with the precise
/// reason (TOO_MANY_OPEN_FILES, naming the partition and the broker), not "being opened";
/// once descriptors are free again it opens by itself, with no metadata change, and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_cannot_open_for_lack_of_descriptors_says_so_and_opens_later() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let logged = logs.path().join("broker.log");
    let broker = common::BrokerProcess::start_logged(dir.path(), "127.0.0.1:0", &[], &[], &logged);
    let client = broker.client();
    let mut log = client.log_rpc(&broker.addr).unwrap();
    client.admin().create_topic("warm", 1, 0, BTreeMap::new()).await.unwrap();
    log.produce(common::produce_req("warm", 0, "w0")).await.unwrap();
    // The limit below is the lowest free descriptor: any descriptor the broker closes after
    // it is read frees a slot below the limit. The cold-read cache's disk tier opens in the
    // background after start-up (were it still opening, its failure would close some), so
    // await it -- from the log, not over a connection the broker would close later.
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the cold-read cache's disk tier to open",
        || {
            let text = std::fs::read_to_string(&logged).unwrap_or_default();
            async move { text.contains("disk tier is open") }
        },
    )
    .await;

    let (soft, _) = nofile(broker.pid());
    set_nofile(broker.pid(), &lowest_free_fd(broker.pid()).to_string());
    // The topic is created; the answer says why its partitions are not open here.
    let e = client.admin().create_topic("starved", 4, 0, BTreeMap::new()).await.unwrap_err();
    assert_eq!(e.reason.to_string(), "TOO_MANY_OPEN_FILES", "{e:?}");
    for m in ["topic \"starved\" was created", "cannot be opened on broker 0", "ulimit -n"] {
        assert!(e.message.contains(m), "{m:?} not in {e:?}");
    }
    common::wait_until(
        std::time::Duration::from_secs(30),
        "every partition of starved to answer produce with TOO_MANY_OPEN_FILES",
        || {
            let mut log = log.clone();
            async move {
                let mut reasons = Vec::new();
                for p in 0..4 {
                    let e = match log.produce(common::produce_req("starved", p, "s")).await {
                        Ok(_) => "acknowledged".to_string(),
                        Err(s) => {
                            let e = shale::proto::status::from_status(&s);
                            assert!(
                                !s.message().contains("being opened"),
                                "misleading answer for starved-{p}: {s:?}"
                            );
                            if e.reason == shale::error::Reason::TooManyOpenFiles {
                                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                                for m in [format!("starved-{p}"), "broker 0".into()] {
                                    assert!(s.message().contains(&m), "{m} not in {s:?}");
                                }
                            }
                            e.reason.to_string()
                        }
                    };
                    reasons.push(e);
                }
                reasons.iter().all(|r| r == "TOO_MANY_OPEN_FILES")
            }
        },
    )
    .await;

    set_nofile(broker.pid(), &soft);
    common::wait_until(
        std::time::Duration::from_secs(30),
        "starved-0..3 to open once descriptors are free, and acknowledge a produce",
        || {
            let mut log = log.clone();
            async move {
                let mut ok = true;
                for p in 0..4 {
                    ok &= log.produce(common::produce_req("starved", p, "s")).await.is_ok();
                }
                ok
            }
        },
    )
    .await;
    log.produce(common::produce_req("warm", 0, "w1")).await.unwrap();
}
