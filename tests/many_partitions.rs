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
