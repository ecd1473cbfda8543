//! Consumers ride through a leader outage: they wait (bounded, with backoff) for the
//! partition's leader to come back or to move, and resume at the next offset they have not
//! delivered, so every record arrives exactly once, in order.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::Cluster;
use common::BrokerProcess;
use shale::client::{
    Client, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    StartAt,
};

/// Sends `values` to partition 0 of `topic` and waits until each is acknowledged.
async fn produce(client: &Client, topic: &str, values: &[String]) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut deliveries = Vec::new();
    for v in values {
        deliveries.push(producer.send(ProducerRecord::new(topic, v.clone()).partition(0)).await);
    }
    producer.flush().await.unwrap();
    for d in deliveries {
        d.unwrap().await.unwrap();
    }
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Polls until at least `n` records were read (bounded), panicking on a consumer error.
async fn read_at_least(
    who: &str,
    consumer: &mut Consumer,
    into: &mut Vec<ConsumerRecord>,
    n: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while into.len() < n {
        let polled = tokio::time::timeout_at(deadline.into(), consumer.poll())
            .await
            .unwrap_or_else(|_| panic!("{who}: {} of {n} records read after 60s", into.len()));
        match polled {
            Ok(Some(records)) => into.extend(records),
            Ok(None) => panic!("{who}: the consumer ended after {} of {n} records", into.len()),
            Err(e) => panic!("{who}: the consumer failed after {} of {n} records: {e}", into.len()),
        }
    }
}

/// Every acknowledged value read exactly once, in order, at offsets 0, 1, 2, ...
fn assert_exactly_once(who: &str, acked: &[String], read: &[ConsumerRecord]) {
    let report = common::check(
        &BTreeMap::from([(0, acked.to_vec())]),
        &BTreeMap::from([(0, read.to_vec())]),
    );
    assert_eq!(
        (report.lost, report.duplicated, report.reordered, report.offset_errors),
        (0, 0, 0, 0),
        "{who}: lost, duplicated, reordered, offset errors of {} records: {report:?}",
        acked.len()
    );
    assert_eq!(read.len(), acked.len(), "{who}: nothing beyond what was acknowledged");
    let offsets: Vec<i64> = read.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..acked.len() as i64).collect::<Vec<_>>(), "{who}: offsets without gaps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_started_while_the_only_broker_is_down_reads_everything_once_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut broker = BrokerProcess::start_on(dir.path(), &addr, &[], &[]);
    let client = broker.client();
    client.admin().create_topic("orders", 1, 0, BTreeMap::new()).await.unwrap();
    let before = values("before", 0..500);
    produce(&client, "orders", &before).await;
    broker.kill();

    let consumer_client = Client::new(&addr).unwrap();
    let consumer = tokio::spawn(async move {
        let mut consumer = Consumer::new(consumer_client, ConsumerConfig::default());
        consumer.assign("orders", 0, StartAt::Earliest).await.map_err(|e| e.to_string())?;
        let mut read = Vec::new();
        read_at_least("consumer", &mut consumer, &mut read, 1000).await;
        Ok::<_, String>(read)
    });
    // The outage itself: the broker stays down for 2 s, longer than the client's quick
    // retries, while the consumer waits for it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if consumer.is_finished() {
        panic!("the consumer gave up while the broker was down: {:?}", consumer.await.unwrap());
    }

    let broker = BrokerProcess::start_on(dir.path(), &addr, &[], &[]);
    let after = values("after", 500..1000);
    produce(&broker.client(), "orders", &after).await;
    let read = tokio::time::timeout(Duration::from_secs(60), consumer)
        .await
        .expect("the consumer read 1000 records within 60s of the broker's return")
        .unwrap()
        .unwrap_or_else(|e| panic!("the consumer failed: {e}"));
    assert_exactly_once("consumer", &[before, after].concat(), &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_read_through_a_sigkilled_leader_exactly_once_in_order() {
    let mut c = Cluster::start(3, "consumer-failover", &[]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    client.admin().create_topic("events", 1, 3, BTreeMap::new()).await.unwrap();
    let before = values("before", 0..3000);
    produce(&client, "events", &before).await;
    let md = client.admin().metadata(&["events".to_string()]).await.unwrap();
    let leader = md.topics[0].partitions[0].leader_id as usize - 1;

    // One consumer knows every broker; the other was given the leader's address alone, so
    // it must find the new leader through the brokers it learned of from the leader.
    let mut consumers = Vec::new();
    let bootstraps = [
        ("bootstrapped from every broker", c.client()),
        ("bootstrapped from the leader alone", Client::new(&c.addr(leader)).unwrap()),
    ];
    for (who, bootstrap) in bootstraps {
        // Small fetch messages, so the consumer is mid-partition when its leader dies.
        let config = ConsumerConfig { max_bytes: 4096, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(bootstrap, config);
        consumer.assign("events", 0, StartAt::Earliest).await.unwrap();
        let mut read = Vec::new();
        read_at_least(who, &mut consumer, &mut read, 1).await;
        assert!(read.len() < before.len(), "{who}: mid-read: {} read", read.len());
        consumers.push((who, consumer, read));
    }

    c.kill(leader);
    // Records written after the kill can only come from the new leader.
    let after = values("after", 3000..4000);
    produce(&c.client(), "events", &after).await;
    let all = [before, after].concat();
    for (who, mut consumer, mut read) in consumers {
        read_at_least(who, &mut consumer, &mut read, all.len()).await;
        assert_exactly_once(who, &all, &read);
    }
}
