//! A compacted topic on three `shale serve` brokers over a real etcd, RF=3: every replica
//! cleans its own log down to about the live key set, a leader killed while the cleaners
//! run loses no key's latest value, and an idempotent producer's retry of a batch the
//! cleaner emptied is still answered with its original offset, before and after the
//! failover.
//!
//! `SHALE_COMPACTION_UPDATES` and `SHALE_COMPACTION_KEYS` size it (CI: 60,000 updates over
//! 1,000 keys; the acceptance size: 1,000,000 over 10,000).

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
use common::configs;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use cluster::Cluster;
use common::wait_until;
use shale::acks::Acks;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;
use shale::record::{BatchBuilder, Compression, Record};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn leader(client: &Client, topic: &str) -> i32 {
    client.invalidate(topic);
    let md = client.admin().metadata(&[topic.to_string()]).await.unwrap();
    md.topics[0].partitions[0].leader_id
}

/// The producer batch `(pid, epoch 0, sequence 0)` with one keyed record, as a retry
/// resends it byte for byte.
fn idempotent_batch(pid: i64) -> bytes::Bytes {
    let mut b = BatchBuilder::new(Compression::None).with_producer(pid, 0, 0);
    b.push(Record {
        key: Some(bytes::Bytes::from_static(b"key-0")),
        value: Some(bytes::Bytes::from_static(b"first")),
        headers: vec![],
        timestamp_ms: 1,
    });
    b.build()
}

/// Sends the batch to the partition's leader (acks=all); the offset it was given.
async fn send_raw(c: &Cluster, client: &Client, topic: &str, batch: bytes::Bytes) -> i64 {
    let id = leader(client, topic).await;
    let mut log = c.broker_client(id as usize - 1).log_rpc(&c.addr(id as usize - 1)).unwrap();
    let req = pb::ProduceRequest {
        topic: topic.into(),
        partition: 0,
        acks: pb::Acks::All as i32,
        payload: Some(pb::produce_request::Payload::Batches(batch)),
        ..Default::default()
    };
    log.produce(req).await.unwrap().into_inner().base_offset
}

/// Produces `updates` over `keys` keys (values unique), acks=all, idempotent; returns each
/// acknowledged value by offset.
async fn produce(
    client: &Client,
    topic: &str,
    from: usize,
    to: usize,
    keys: usize,
) -> BTreeMap<i64, (String, String)> {
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            linger: Duration::from_millis(2),
            batch_size: 4096,
            ..Default::default()
        },
    );
    let mut pending = Vec::new();
    for i in from..to {
        let key = format!("key-{}", i % keys);
        let value = format!("{key}={i}");
        let record = ProducerRecord::new(topic, value.clone()).key(key.clone()).partition(0);
        pending.push((key, value, producer.send(record).await.unwrap()));
    }
    producer.flush().await.unwrap();
    let mut acked = BTreeMap::new();
    for (key, value, delivery) in pending {
        if let Ok(md) = delivery.await {
            acked.insert(md.offset, (key, value));
        }
    }
    acked
}

/// The partition's bytes and cleaning state on broker `i`'s replica.
async fn replica(c: &Cluster, i: usize, topic: &str) -> pb::PartitionInfo {
    let d = c.broker_client(i).admin().describe_topic(topic).await.unwrap();
    d.partitions.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_compacts_and_a_failover_loses_no_latest_value() {
    let (updates, keys) =
        (env("SHALE_COMPACTION_UPDATES", 60_000), env("SHALE_COMPACTION_KEYS", 1_000));
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config, "[log]\ncleaner_backoff_ms = 100\nretention_check_interval_ms = 100").unwrap();
    writeln!(config, "[replication]\nlag_time_max_ms = 1500\nfetch_max_wait_ms = 200").unwrap();
    let path = config.path().to_string_lossy().to_string();
    let mut c = Cluster::start(3, "compact", &["--config", &path]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let topic = "state";
    let topic_configs = configs(&[
        ("cleanup.policy", "compact"),
        ("segment.bytes", "65536"),
        ("segment.ms", "500"),
        ("min.cleanable.dirty.ratio", "0.2"),
        ("min.insync.replicas", "2"),
    ]);
    client.admin().create_topic(topic, 1, 3, topic_configs).await.unwrap();

    // An idempotent producer's first batch, whose record later updates supersede.
    let mut rpc = c.broker_client(0).log_rpc(&c.addr(0)).unwrap();
    let pid = rpc.init_producer_id(pb::InitProducerIdRequest {}).await.unwrap();
    let pid = pid.into_inner().producer_id;
    let first = send_raw(&c, &client, topic, idempotent_batch(pid)).await;

    let mut acked = produce(&client, topic, 0, updates / 2, keys).await;
    let old = leader(&client, topic).await;
    wait_until(Duration::from_secs(60), "the leader's first clean", || {
        let c = &c;
        async move { replica(c, old as usize - 1, topic).await.cleaning.is_some_and(|x| x.cleans > 0) }
    })
    .await;
    // The retry of a batch whose record the cleaner removed is still a duplicate.
    assert_eq!(send_raw(&c, &client, topic, idempotent_batch(pid)).await, first);

    // Kill the leader while the second half is written and the cleaners run.
    let second = produce(&client, topic, updates / 2, updates, keys);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.kill(old as usize - 1);
    };
    let (more, ()) = tokio::join!(second, kill);
    acked.extend(more);
    c.restart(old as usize - 1);
    let new = leader(&client, topic).await;
    assert_ne!(new, old, "a new leader after the kill");
    assert_eq!(send_raw(&c, &client, topic, idempotent_batch(pid)).await, first, "after failover");

    // Every replica shrinks to about the live set: at most 4x its bytes, plus the
    // segments not yet cleanable.
    let live: usize = keys * 100;
    let bound = 4 * live as u64 + 3 * 65_536;
    let started = Instant::now();
    let mut sizes = vec![u64::MAX; 3];
    while sizes.iter().any(|s| *s > bound) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "replicas still at {sizes:?} bytes after 120 s (bound {bound})"
        );
        for (i, size) in sizes.iter_mut().enumerate() {
            *size = replica(&c, i, topic).await.size_bytes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{updates} updates over {keys} keys: replicas {sizes:?} bytes");

    // Reading from offset 0: each key's latest acknowledged value, at its offset, and
    // nothing that was not written; no value twice.
    let read = common::read_all(&client, topic).await.remove(&0).unwrap();
    let mut latest: HashMap<&str, (i64, &str)> = HashMap::new();
    for (offset, (key, value)) in &acked {
        latest.insert(key, (*offset, value));
    }
    let by_offset: HashMap<i64, String> = read
        .iter()
        .map(|r| {
            (r.offset, String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap())
        })
        .collect();
    assert_eq!(by_offset.len(), read.len(), "no offset twice");
    let mut seen = std::collections::HashSet::new();
    for r in &read {
        let value = &by_offset[&r.offset];
        assert!(seen.insert(value.clone()), "value {value} read twice");
        if let Some((_, want)) = acked.get(&r.offset) {
            assert_eq!(value, want, "the record at {}", r.offset);
        }
    }
    for (key, (offset, value)) in latest {
        assert_eq!(by_offset.get(&offset).map(String::as_str), Some(value), "{key}'s latest");
    }
}
