//! Compacted topics end to end through the gRPC API, on one in-process broker: a topic
//! created with `cleanup.policy=compact` keeps each key's latest record (tombstones
//! included, within `delete.retention.ms`) at its original offset, refuses records without
//! a key, and a topic switched to `compact` by AlterConfigs is compacted from then on.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::configs;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shale::client::{Producer, ProducerConfig, ProducerRecord};

/// A broker whose cleaner looks every 50 ms (and whose retention pass rolls an active
/// segment past `segment.ms` as often: the active segment is never cleaned).
async fn broker(dir: &std::path::Path) -> shale::server::RunningServer {
    let mut settings = common::settings(dir);
    settings.log.cleaner_backoff_ms = 50;
    settings.log.retention_check_interval_ms = 50;
    common::start(settings).await
}

/// Produces `n` updates over `keys` keys (the last update of key 0 a tombstone); returns
/// each key's last record as (offset, value) and every acknowledged (offset → value).
async fn updates(
    client: &shale::client::Client,
    topic: &str,
    n: usize,
    keys: usize,
) -> (HashMap<String, (i64, Option<String>)>, BTreeMap<i64, Option<String>>) {
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_millis(1),
            batch_size: 1024,
            idempotence: true,
            ..Default::default()
        },
    );
    let mut pending = Vec::new();
    for i in 0..n {
        let key = format!("key-{}", i % keys);
        let mut record = ProducerRecord::new(topic, format!("{key}={i}")).key(key.clone());
        if i == n - keys {
            record.value = None;
        }
        let value = record.value.as_ref().map(|v| String::from_utf8(v.to_vec()).unwrap());
        pending.push((key, value, producer.send(record).await.unwrap()));
    }
    producer.flush().await.unwrap();
    let (mut latest, mut all) = (HashMap::new(), BTreeMap::new());
    for (key, value, delivery) in pending {
        let offset = delivery.await.unwrap().offset;
        all.insert(offset, value.clone());
        latest.insert(key, (offset, value));
    }
    (latest, all)
}

/// Reads the partition back until the cleaner has shrunk it under `most` records; checks
/// every record read against what was acknowledged (value at its offset, offsets
/// increasing) and that each key's latest record is there.
async fn compacted(
    client: &shale::client::Client,
    topic: &str,
    most: usize,
    latest: &HashMap<String, (i64, Option<String>)>,
    all: &BTreeMap<i64, Option<String>>,
) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let read = loop {
        let read = common::read_all(client, topic).await.remove(&0).unwrap();
        if read.len() <= most {
            break read;
        }
        if std::time::Instant::now() > deadline {
            let d = client.admin().describe_topic(topic).await.unwrap();
            panic!(
                "waited 60 s for the cleaner to compact {topic} under {most} records: {} left; \
                 {:?}",
                read.len(),
                d.partitions[0]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut last = -1;
    for r in &read {
        assert!(r.offset > last, "offset {} after {last}", r.offset);
        last = r.offset;
        let value = r.value.as_ref().map(|v| String::from_utf8(v.to_vec()).unwrap());
        assert_eq!(all.get(&r.offset), Some(&value), "the record at {}", r.offset);
    }
    for (key, (offset, value)) in latest {
        let found = read.iter().find(|r| r.offset == *offset);
        assert!(found.is_some(), "{key}'s latest record ({value:?} at {offset}) is kept");
    }
    read.len()
}

#[tokio::test]
async fn a_compacted_topic_keeps_each_keys_latest_record_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let client = common::client(&server);
    let admin = client.admin();
    let topic_configs = configs(&[
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("segment.ms", "200"),
        ("min.cleanable.dirty.ratio", "0.1"),
    ]);
    admin.create_topic("state", 1, 0, topic_configs).await.unwrap();
    let described = admin.describe_topic("state").await.unwrap();
    let policy = described.configs.iter().find(|c| c.name == "cleanup.policy").unwrap();
    assert_eq!((policy.value.as_str(), policy.source.as_str()), ("compact", "topic"));

    let (latest, all) = updates(&client, "state", 3_000, 20).await;
    let kept = compacted(&client, "state", 100, &latest, &all).await;
    assert!(kept <= 100, "{kept} records of 3000 after cleaning");
    let cleaning = admin.describe_topic("state").await.unwrap().partitions[0].cleaning.unwrap();
    assert!(cleaning.cleans >= 1 && cleaning.bytes_removed > 0, "{cleaning:?}");
    assert!(cleaning.first_dirty_offset > 0 && cleaning.failures == 0, "{cleaning:?}");

    // A record without a key is refused, naming why.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let refused = producer.send(ProducerRecord::new("state", "no key")).await.unwrap().await;
    let e = refused.expect_err("a keyless record on a compacted topic");
    assert!(e.message.contains("null key") && e.message.contains("compact"), "{e}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_topic_altered_to_compact_is_compacted_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let client = common::client(&server);
    let admin = client.admin();
    let segments = configs(&[("segment.bytes", "4096"), ("segment.ms", "200")]);
    admin.create_topic("later", 1, 0, segments).await.unwrap();
    let (latest, all) = updates(&client, "later", 2_000, 10).await;
    let read = common::read_all(&client, "later").await.remove(&0).unwrap();
    assert_eq!(read.len(), 2_000, "a delete topic keeps every record");
    let set = configs(&[("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.1")]);
    admin.alter_topic_config("later", set, vec![]).await.unwrap();
    let kept = compacted(&client, "later", 100, &latest, &all).await;
    assert!(kept <= 100, "{kept} records of 2000 after cleaning");
    server.shutdown().await.unwrap();
}
