//! Compacted topics on tiered storage, end to end on real `shale` processes and a real
//! S3-compatible server (moto on 127.0.0.1; missing, the tests fail, not skip): the remote
//! compactor shrinks the bucket's copy of a partition to about its live key set; consumers
//! from offset 0 read every key's latest value before, during and after compactions; a crash
//! on either side of a compaction's swap loses nothing, and the scrubber removes what the
//! crash left.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::configs;
#[path = "common/s3.rs"]
mod s3_server;
#[path = "common/tier_target.rs"]
mod tier_target;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::{BrokerProcess, wait_until};
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::tier::Bucket;
use tier_target::{Target, strs};

const MIB: u64 = 1 << 20;
/// Bytes of each value.
const VALUE_BYTES: usize = 1000;

/// Update `seq` of key `key`: its key and seq, then a pattern that depends on them.
fn value(key: u64, seq: u64) -> Vec<u8> {
    let mut v = format!("{key:06}:{seq:012}:").into_bytes();
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < VALUE_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v
}

fn key(k: u64) -> String {
    format!("key-{k:06}")
}

/// What was acknowledged: each offset's (key, seq), and each key's latest offset.
#[derive(Default)]
struct Acked {
    at: BTreeMap<i64, (u64, u64)>,
    latest: BTreeMap<u64, i64>,
}

/// Produces updates `from..to`, round-robin over `keys` keys, into partition 0.
async fn produce(client: &Client, topic: &str, keys: u64, from: u64, to: u64, acked: &mut Acked) {
    let config = ProducerConfig { batch_size: 64 * 1024, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), config);
    let mut pending = Vec::new();
    for seq in from..to {
        let k = seq % keys;
        let record = ProducerRecord::new(topic, value(k, seq)).key(key(k)).partition(0);
        pending.push((k, seq, producer.send(record).await.unwrap()));
    }
    for (k, seq, d) in pending {
        let offset =
            d.await.unwrap_or_else(|e| panic!("update {seq} not acknowledged: {e}")).offset;
        acked.at.insert(offset, (k, seq));
        acked.latest.insert(k, offset);
    }
}

/// Reads partition 0 from offset 0 and checks it: offsets increase, every record is the
/// update acknowledged at its offset, and every key's latest update is there. Returns the
/// records read.
async fn read_back_check(client: &Client, topic: &str, acked: &Acked) -> usize {
    let read = common::read_all(client, topic).await.remove(&0).unwrap();
    let mut last = -1;
    let mut seen = BTreeMap::new();
    for r in &read {
        assert!(r.offset > last, "offset {} after {last}", r.offset);
        last = r.offset;
        let (k, seq) = acked.at[&r.offset];
        assert_eq!(r.key.as_deref(), Some(key(k).as_bytes()), "the key at {}", r.offset);
        assert!(r.value.as_deref() == Some(value(k, seq).as_slice()), "value at {}", r.offset);
        seen.insert(k, r.offset);
    }
    for (k, offset) in &acked.latest {
        assert_eq!(
            seen.get(k),
            Some(offset),
            "key {k}'s latest update (offset {offset}) read back"
        );
    }
    read.len()
}

/// Bytes of the objects of the topic's partition folders.
async fn bucket_bytes(bucket: &Bucket, topic: &str) -> u64 {
    let listed = bucket.list(&bucket.prefix).await.unwrap();
    let folder = format!("/{topic}-");
    listed.iter().filter(|o| o.location.as_ref().contains(&folder)).map(|o| o.size).sum()
}

async fn metrics(admin: &str) -> String {
    let (status, body) = common::http_get(admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

fn metric(body: &str, series: &str) -> f64 {
    common::metric(body, series).unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
}

fn mib_from_env(default: u64) -> u64 {
    let var = std::env::var("SHALE_TIER_COMPACTION_MIB");
    var.ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Updates over a small key set (500 keys of 1,000 bytes: a live set of about 0.5 MiB),
/// `SHALE_TIER_COMPACTION_MIB` of them (160 MiB in the suite; the acceptance run is 2,048),
/// into a compacted, tiered topic that keeps 64 MiB locally. While the bucket's copy
/// shrinks, consumers from offset 0 read every key's latest value; once it has, the
/// partition's objects in the bucket are within twice the live set, and the compactor's
/// requests per GiB compacted are reported (and bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_compacts_a_tiered_topic_to_about_its_live_set() {
    let target = Target::s3("compacted");
    let dir = tempfile::tempdir().unwrap();
    let mut config = target.config();
    writeln!(config, "scrub_interval_ms = 300\norphan_grace_ms = 1000").unwrap();
    let admin = format!("127.0.0.1:{}", common::free_port());
    let args = [target.args(&config, dir.path()), vec!["--admin-listen".into(), admin.clone()]];
    let broker = BrokerProcess::start_with(dir.path(), &strs(&args.concat()));
    let client = &broker.client();
    let bucket = &target.bucket(dir.path());
    let topic = "compacted";
    let keys = 500;
    client
        .admin()
        .create_topic(
            topic,
            1,
            1,
            configs(&[
                ("cleanup.policy", "compact"),
                ("remote.storage.enable", "true"),
                ("segment.bytes", &(4 * MIB).to_string()),
                ("local.retention.bytes", &(64 * MIB).to_string()),
            ]),
        )
        .await
        .unwrap();
    let mib = mib_from_env(160);
    let updates = mib * MIB / (VALUE_BYTES as u64 + 40);
    let mut acked = Acked::default();
    let started = std::time::Instant::now();
    produce(client, topic, keys, 0, updates, &mut acked).await;
    let produced = started.elapsed();
    let live = keys * (VALUE_BYTES as u64 + key(0).len() as u64);
    let mut reads = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let (bytes, p) = loop {
        // Every read, whatever the compactor is doing, has every key's latest value.
        read_back_check(client, topic, &acked).await;
        reads += 1;
        let p = client.admin().describe_topic(topic).await.unwrap().partitions[0].clone();
        let bytes = bucket_bytes(bucket, topic).await;
        if p.upload_lag_segments == 0 && bytes <= 2 * live {
            break (bytes, p);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bucket's copy fell to 2x the live set ({} bytes) within 600 s: {bytes} bytes, \
             {p:?}",
            2 * live
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(p.local_log_start_offset > 0, "offset 0 is read from the bucket only: {p:?}");
    // Describe shows the remote compaction: its cleaning point and time.
    let cleaning = p.cleaning.expect("a compacted partition's cleaning state");
    assert!(cleaning.remote_first_dirty_offset > 0, "{cleaning:?}");
    assert!(cleaning.remote_first_dirty_offset <= p.remote_log_end_offset, "{cleaning:?}");
    assert!(cleaning.remote_last_compaction_ms > 0, "{cleaning:?}");
    let read = read_back_check(client, topic, &acked).await;
    let body = metrics(&admin).await;
    let compactions = metric(&body, "shale_tier_compactions_total");
    let requests = metric(&body, "shale_tier_compaction_requests_total");
    let read_bytes = metric(&body, "shale_tier_compaction_read_bytes_total");
    let per_gib = requests / (read_bytes / f64::from(1u32 << 30));
    println!(
        "{mib} MiB of updates ({updates} over {keys} keys) produced in {produced:?}; the \
         bucket holds {bytes} bytes for a live set of {live} ({:.2}x); {compactions} \
         compactions read {:.1} MiB in {requests} requests ({per_gib:.0} per GiB); {reads} \
         reads from 0 during compaction; the last read {read} records, local log from {}",
        bytes as f64 / live as f64,
        read_bytes / MIB as f64,
        p.local_log_start_offset
    );
    assert!(compactions >= 1.0, "{body}");
    assert_eq!(metric(&body, "shale_tier_compaction_failures_total"), 0.0);
    // Ranged GETs of 8 MiB, a PUT per replacement, a LIST per compaction: far below one
    // request per MiB.
    assert!(per_gib < 1024.0, "{per_gib} requests per GiB compacted");
}

/// A crash after a compaction uploaded its replacements but before it swapped them in, then
/// one right after the swap: the restarted broker compacts again from what the manifest
/// says, a consumer from offset 0 reads every key's latest value, and the scrubber removes
/// the first crash's replacements (never committed) and, after the grace, the segments the
/// swap retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_crashes_around_a_compactions_swap_lose_nothing() {
    let target = Target::s3("compact-crash");
    let dir = tempfile::tempdir().unwrap();
    let mut config = target.config();
    writeln!(config, "scrub_interval_ms = 300\norphan_grace_ms = 1000").unwrap();
    let args = target.args(&config, dir.path());
    let args = strs(&args);
    let topic = "compact-crash";
    let keys = 200;
    let mut acked = Acked::default();
    {
        // Tiering off while producing, so the first upload and compaction come after every
        // acknowledgement.
        let mut b = BrokerProcess::start_with(dir.path(), &args);
        let client = b.client();
        let segment = MIB.to_string();
        let topic_configs = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", &segment),
            ("local.retention.bytes", &segment),
        ];
        client.admin().create_topic(topic, 1, 1, configs(&topic_configs)).await.unwrap();
        produce(&client, topic, keys, 0, 12_000, &mut acked).await;
        b.terminate();
    }
    for failpoint in ["tier.compaction_before_commit", "tier.compaction_after_commit"] {
        let mut b =
            BrokerProcess::start_with_env(dir.path(), &args, &[("SHALE_FAILPOINTS", failpoint)]);
        let client = b.client();
        let enable = configs(&[("remote.storage.enable", "true")]);
        // Set by the first round already; the broker may abort before it answers.
        let _ = client.admin().alter_topic_config(topic, enable, vec![]).await;
        let what = format!("the broker to abort at failpoint {failpoint}");
        wait_until(Duration::from_secs(60), &what, || {
            let exited = matches!(b.child.try_wait(), Ok(Some(_)));
            async move { exited }
        })
        .await;
    }
    let admin = format!("127.0.0.1:{}", common::free_port());
    let b =
        BrokerProcess::start_with(dir.path(), &[&args[..], &["--admin-listen", &admin]].concat());
    let client = b.client();
    let bucket = target.bucket(dir.path());
    let live = keys * (VALUE_BYTES as u64 + key(0).len() as u64);
    wait_until(Duration::from_secs(120), "the bucket's copy compacted, orphans scrubbed", || {
        let (client, bucket, admin) = (client.clone(), bucket.clone(), admin.clone());
        async move {
            let p = client.admin().describe_topic(topic).await.unwrap().partitions[0].clone();
            let body = metrics(&admin).await;
            p.upload_lag_segments == 0
                && bucket_bytes(&bucket, topic).await <= 2 * live
                && common::metric(&body, "shale_tier_orphans_pending") == Some(0.0)
                && common::metric(&body, "shale_tier_orphans_deleted_total") >= Some(1.0)
        }
    })
    .await;
    read_back_check(&client, topic, &acked).await;
}
