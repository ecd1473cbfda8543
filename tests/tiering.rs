//! Tiered storage end to end, on real `shale` processes: segments move to the bucket, local
//! disk stays near `local.retention.bytes`, and a consumer from offset 0 reads every record
//! back byte-identical through cold reads. The same test runs on the embedded filesystem
//! bucket and on a real S3-compatible server (moto on 127.0.0.1; it fails, not skips, when
//! moto is missing).

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::configs;
#[path = "common/s3_faults.rs"]
mod s3_faults;
#[path = "common/s3.rs"]
mod s3_server;
#[path = "common/tier_target.rs"]
mod tier_target;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{BrokerProcess, wait_until};
use s3_faults::S3FaultProxy;
use s3_server::S3Server;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::tier::{Bucket, ObjectPath};
use tier_target::{Target, config_file, strs};

const MIB: u64 = 1 << 20;
const RECORD_BYTES: usize = 1000;

/// The bytes of record `i`: its number, then a pattern that depends on it.
fn value(i: u64) -> Vec<u8> {
    let mut v = format!("{i:012}:").into_bytes();
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < RECORD_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v
}

fn bytes_with_suffix(dir: &Path, suffix: &str) -> (u64, usize) {
    let mut total = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path: PathBuf = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                total.0 += e.metadata().map(|m| m.len()).unwrap_or(0);
                total.1 += 1;
            }
        }
    }
    total
}

async fn produce(client: &Client, topic: &str, records: u64) {
    // Batches well below these tests' 128 KiB segments, so that a segment's size (what
    // local retention keeps) is about `segment.bytes`, not one oversized batch.
    let config = ProducerConfig { batch_size: 16 * 1024, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), config);
    let mut pending = Vec::with_capacity(records as usize);
    for i in 0..records {
        let d = producer.send(ProducerRecord::new(topic, value(i)).partition(0)).await.unwrap();
        pending.push(d);
    }
    for (i, d) in pending.into_iter().enumerate() {
        let delivered = d.await.unwrap_or_else(|e| panic!("record {i} not acknowledged: {e}"));
        assert_eq!(delivered.offset, i as i64, "record {i} landed at another offset");
    }
}

/// Segment data objects (`.log`) in the bucket.
async fn remote_segments(bucket: &Bucket) -> usize {
    let listed = bucket.list(&bucket.prefix).await.unwrap();
    listed.iter().filter(|m| m.location.as_ref().ends_with(".log")).count()
}

/// Produces `mib` MiB into a topic of 1 MiB segments that keeps 4 MiB locally, waits until
/// the bucket has it and the local log shrank, then reads everything back from offset 0.
async fn tiers_and_reads_back(target: Target, mib: u64) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let config = target.config();
    let admin = format!("127.0.0.1:{}", common::free_port());
    let args = [target.args(&config, data_dir), vec!["--admin-listen".into(), admin.clone()]];
    let broker = BrokerProcess::start_with(data_dir, &strs(&args.concat()));
    let client = &broker.client();
    let bucket = &target.bucket(data_dir);
    let topic = "tiered";
    client
        .admin()
        .create_topic(
            topic,
            1,
            1,
            configs(&[
                ("remote.storage.enable", "true"),
                ("segment.bytes", &MIB.to_string()),
                ("local.retention.bytes", &(4 * MIB).to_string()),
                ("retention.bytes", "-1"),
            ]),
        )
        .await
        .unwrap();
    let records = mib * MIB / (RECORD_BYTES as u64 + 20);
    produce(client, topic, records).await;
    let partition_dir = data_dir.join(format!("{topic}-0"));
    wait_until(Duration::from_secs(180), "local log near local.retention.bytes", || {
        let (bytes, _) = bytes_with_suffix(&partition_dir, ".log");
        async move { bytes <= 6 * MIB }
    })
    .await;
    let objects = remote_segments(bucket).await;
    let (local, segments) = bytes_with_suffix(&partition_dir, ".log");
    println!(
        "{mib} MiB produced ({records} records): {objects} objects in the bucket; \
         {segments} local segments, {local} bytes on local disk"
    );
    assert!(objects as u64 >= mib - 6, "{objects} objects in the bucket for {mib} MiB");

    read_back_check(&common::read_all(client, topic).await, records);

    // A consumer from offset 0 reads each segment from its first byte and every next read
    // where the last ended: it never looks an index up (a GET and a wait per segment).
    let (status, body) = common::http_get(&admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let m = |series: &str| {
        common::metric(&body, series).unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
    };
    let (hits, misses) =
        (m("shale_tier_read_index_hits_total"), m("shale_tier_read_index_misses_total"));
    println!("remote index lookups: {hits} cache hits, {misses} GETs");
    assert_eq!(
        hits + misses,
        0.0,
        "index lookups of a sequential read: {hits} hits, {misses} GETs"
    );
}

fn mib_from_env(default: u64) -> u64 {
    std::env::var("SHALE_TIERING_TEST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_bucket_keeps_local_disk_near_budget_and_serves_cold_reads() {
    tiers_and_reads_back(Target::filesystem(), mib_from_env(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_keeps_local_disk_near_budget_and_serves_cold_reads() {
    tiers_and_reads_back(Target::s3("tiering"), mib_from_env(200)).await;
}

/// Waits (bounded) for a broker process to end by itself (an armed failpoint aborting it).
async fn wait_for_exit(b: &mut BrokerProcess, what: &str) {
    wait_until(Duration::from_secs(60), what, || {
        let exited = matches!(b.child.try_wait(), Ok(Some(_)));
        async move { exited }
    })
    .await;
}

async fn describe0(client: &Client, topic: &str) -> shale::proto::pb::PartitionInfo {
    client.admin().describe_topic(topic).await.unwrap().partitions[0].clone()
}

/// Objects in the partition folders by kind: (segment data, segment indexes, manifest
/// checkpoints).
async fn object_kinds(bucket: &Bucket) -> (usize, usize, usize) {
    let listed = bucket.list(&bucket.prefix).await.unwrap();
    let count =
        |suffix: &str| listed.iter().filter(|m| m.location.as_ref().ends_with(suffix)).count();
    let manifests = listed
        .iter()
        .filter(|m| m.location.filename().is_some_and(|f| f.starts_with("manifest-")))
        .count();
    (count(".log"), count(".index"), manifests)
}

fn read_back_check(read: &BTreeMap<u32, Vec<shale::client::ConsumerRecord>>, records: u64) {
    let got = &read[&0];
    assert_eq!(got.len() as u64, records, "every acknowledged record read back from offset 0");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "offsets from 0 without gaps or overlaps");
        assert!(r.value.as_deref() == Some(value(i as u64).as_slice()), "record {i} differs");
    }
}

/// Crashes at each step of an upload — after the segment PUT (before any manifest), after
/// the manifest PUT (before the pointer moves), after the commit (before local retention
/// deletes the copy) — and restarts: the remote log has no gap or overlap, nothing is lost,
/// and the scrubber removes what the crashes left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_bucket_crashes_between_upload_steps_lose_nothing() {
    crashes_between_upload_steps_lose_nothing_and_orphans_are_scrubbed(Target::filesystem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_crashes_between_upload_steps_lose_nothing() {
    crashes_between_upload_steps_lose_nothing_and_orphans_are_scrubbed(Target::s3("crashy")).await;
}

async fn crashes_between_upload_steps_lose_nothing_and_orphans_are_scrubbed(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = target.config();
    writeln!(config, "scrub_interval_ms = 300\norphan_grace_ms = 1000").unwrap();
    let args = target.args(&config, dir.path());
    let args = strs(&args);
    let topic = "crashy";
    let records = 4 * MIB / (RECORD_BYTES as u64 + 20);
    {
        let mut b = BrokerProcess::start_with(dir.path(), &args);
        let client = b.client();
        // Tiering off while producing, so the first upload happens after every ack.
        let segment = (256 * 1024).to_string();
        client
            .admin()
            .create_topic(
                topic,
                1,
                1,
                configs(&[("segment.bytes", &segment), ("local.retention.bytes", &segment)]),
            )
            .await
            .unwrap();
        produce(&client, topic, records).await;
        b.terminate();
    }
    for failpoint in ["tier.after_segment_put", "tier.after_manifest_put", "tier.after_commit"] {
        let mut b =
            BrokerProcess::start_with_env(dir.path(), &args, &[("SHALE_FAILPOINTS", failpoint)]);
        let client = b.client();
        let enable = configs(&[("remote.storage.enable", "true")]);
        // Set by the first round already: the restarted broker may hit its failpoint and
        // abort before it answers, which the wait below is about anyway.
        let _ = client.admin().alter_topic_config(topic, enable, vec![]).await;
        wait_for_exit(&mut b, &format!("the broker to abort at failpoint {failpoint}")).await;
    }
    // An orphan this broker's scrubber must find: a segment object no manifest lists.
    let bucket = target.bucket(dir.path());
    let listed = bucket.list(&bucket.prefix).await.unwrap();
    let segment = listed
        .iter()
        .find(|o| o.location.as_ref().ends_with(".log"))
        .expect("a segment object in the bucket after the crashes");
    let (folder, _) = segment.location.as_ref().rsplit_once('/').unwrap();
    let orphan = ObjectPath::from(format!(
        "{folder}/00000000000000999999-0-0123456789abcdef0123456789abcdef.log"
    ));
    bucket.put(&orphan, bytes::Bytes::from_static(b"x")).await.unwrap();
    let admin = format!("127.0.0.1:{}", common::free_port());
    let b =
        BrokerProcess::start_with(dir.path(), &[&args[..], &["--admin-listen", &admin]].concat());
    let client = b.client();
    wait_until(Duration::from_secs(60), "every sealed segment tiered, local copies gone", || {
        let client = client.clone();
        async move {
            let p = describe0(&client, topic).await;
            p.upload_lag_segments == 0 && p.remote_segments > 0 && p.size_bytes <= 2 * MIB
        }
    })
    .await;
    let p = describe0(&client, topic).await;
    wait_until(Duration::from_secs(30), "the scrubber to remove the crashes' orphans", || {
        let bucket = bucket.clone();
        let segments = p.remote_segments as usize;
        // Each segment's index is inside its object (manifest format 2).
        async move { object_kinds(&bucket).await == (segments, 0, 1) }
    })
    .await;
    assert_eq!(p.remote_log_start_offset, 0, "the remote log starts at 0: {p:?}");
    assert!(p.local_log_start_offset <= p.remote_log_end_offset, "no gap remote..local: {p:?}");
    println!(
        "after three crashes: {} remote segments, {} remote bytes, local from {}",
        p.remote_segments, p.remote_size_bytes, p.local_log_start_offset
    );
    read_back_check(&common::read_all(&client, topic).await, records);

    // The admin listener exposes what the scrubber and the cold reads did. The pending
    // gauge is the last pass's count: a pass that listed the bucket between an upload's
    // segment PUT and its commit saw a young unlisted object; the next one does not.
    assert_eq!(common::http_get(&admin, "/readyz").await.0, 200);
    wait_until(Duration::from_secs(30), "a scrub pass with no orphans pending", || {
        let admin = admin.clone();
        async move {
            let (_, body) = common::http_get(&admin, "/metrics").await;
            common::metric(&body, "shale_tier_orphans_pending") == Some(0.0)
        }
    })
    .await;
    let (status, body) = common::http_get(&admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let m = |series: &str| {
        common::metric(&body, series).unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
    };
    assert!(m("shale_tier_scrub_passes_total") >= 1.0);
    assert!(m("shale_tier_orphans_deleted_total") >= 1.0, "the crashes left orphans");
    assert!(m("shale_tier_orphans_found_total") >= m("shale_tier_orphans_deleted_total"));
    assert!(m("shale_tier_read_bytes_total") > 0.0, "records were read from the bucket");
    assert!(m("shale_object_store_requests_total{op=\"get\"}") > 0.0);
    assert!(m("shale_object_store_requests_total{op=\"put\"}") > 0.0);
    let series = format!("shale_tier_upload_lag_segments{{topic=\"{topic}\",partition=\"0\"}}");
    assert_eq!(m(&series), 0.0);
}

/// The bucket answering 30% of requests with HTTP 500 and 503 (a proxy in front of the S3
/// server, so the broker's S3 client sees real status codes) and then stopped for 60 s
/// (SIGSTOP): produce goes on, local copies stay until they are uploaded, and once the
/// bucket is back everything tiers and reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_then_stopped_bucket_keeps_local_data_until_uploads_resume() {
    let mut s3 = S3Server::start("outage");
    let faults = S3FaultProxy::start(&s3.endpoint()).await;
    faults.set_error_rate(0.3);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(Some(&faults.endpoint()));
    let cfg = config.path().to_string_lossy().to_string();
    let url = format!("s3://{}/shale", s3.bucket());
    let b = BrokerProcess::start_with(dir.path(), &["--config", &cfg, "--object-store", &url]);
    let client = b.client();
    let topic = "outage";
    let segment = (256 * 1024).to_string();
    client
        .admin()
        .create_topic(
            topic,
            1,
            1,
            configs(&[
                ("remote.storage.enable", "true"),
                ("segment.bytes", &segment),
                ("local.retention.bytes", &segment),
            ]),
        )
        .await
        .unwrap();
    let first = 2 * MIB / (RECORD_BYTES as u64 + 20);
    produce(&client, topic, first).await;
    wait_until(Duration::from_secs(60), "uploads despite 30% failed requests", || {
        let client = client.clone();
        async move { describe0(&client, topic).await.remote_segments >= 4 }
    })
    .await;
    let (requests, answered_500, answered_503) = faults.counts();
    println!("{requests} S3 requests, {answered_500} answered 500, {answered_503} answered 503");
    assert!(answered_500 > 0 && answered_503 > 0, "the proxy failed requests with both codes");

    let moto = s3.pid().unwrap().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &moto]).status().unwrap();
        assert!(ok.success(), "kill {sig} {moto}");
    };
    signal("-STOP");
    let started = std::time::Instant::now();
    // Produce goes on while the bucket is down; what is not uploaded stays local.
    let total = 2 * first;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut pending = vec![];
    for i in first..total {
        pending
            .push(producer.send(ProducerRecord::new(topic, value(i)).partition(0)).await.unwrap());
    }
    for d in pending {
        d.await.expect("produce acknowledged while the bucket is down");
    }
    let during = describe0(&client, topic).await;
    let untiered = during.log_end_offset - during.remote_log_end_offset.max(0);
    assert!(
        during.local_log_start_offset <= during.remote_log_end_offset.max(0),
        "nothing untiered was deleted locally: {during:?}"
    );
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(started.elapsed())).await;
    signal("-CONT");
    println!("bucket stopped for {:?}; {untiered} offsets waited locally", started.elapsed());
    wait_until(Duration::from_secs(120), "uploads to catch up once the bucket is back", || {
        let client = client.clone();
        async move {
            let p = describe0(&client, topic).await;
            p.upload_lag_segments == 0 && p.size_bytes <= 2 * MIB
        }
    })
    .await;
    read_back_check(&common::read_all(&client, topic).await, total);
    s3.stop();
}

/// A bucket failing every request (HTTP 500/503 from the proxy): nothing can leave the local
/// disk, so `tier.local_disk_budget_bytes` refuses produce with a retriable error naming the
/// budget before the disk fills; once the bucket answers, uploads free the space and produce
/// resumes, and every acknowledged record reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bucket_turns_the_disk_budget_into_a_retriable_produce_error() {
    let s3 = S3Server::start("budget");
    let faults = S3FaultProxy::start(&s3.endpoint()).await;
    faults.set_error_rate(1.0);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_file(Some(&faults.endpoint()));
    let budget = 2 * MIB;
    // config_file ends in the [tier] table.
    writeln!(config, "local_disk_budget_bytes = {budget}").unwrap();
    let cfg = config.path().to_string_lossy().to_string();
    let url = format!("s3://{}/shale", s3.bucket());
    let b = BrokerProcess::start_with(dir.path(), &["--config", &cfg, "--object-store", &url]);
    let client = b.client();
    let topic = "budget";
    let segment = (256 * 1024).to_string();
    let c = configs(&[
        ("remote.storage.enable", "true"),
        ("segment.bytes", &segment),
        ("local.retention.bytes", &segment),
    ]);
    client.admin().create_topic(topic, 1, 1, c).await.unwrap();

    // Windows of 100 records, no retries, until the broker refuses. Every batch of the
    // refusing window is answered before the bucket comes back: batches after the refused
    // one are still sent, and, were they left in the producer, would land once uploads free
    // space, ahead of the records produced then (seen as record 2,100 written at 2,199).
    let once = ProducerConfig { retries: 0, idempotence: false, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), once);
    let mut acked = 0u64;
    let refused = loop {
        assert!(acked * RECORD_BYTES as u64 <= 4 * budget, "{acked} records and never refused");
        let mut window = vec![];
        for i in acked..acked + 100 {
            let r = ProducerRecord::new(topic, value(i)).partition(0);
            window.push(producer.send(r).await.unwrap());
        }
        let answers = futures::future::join_all(window).await;
        let first_refused = answers.iter().position(Result::is_err);
        let Some(at) = first_refused else {
            acked += 100;
            continue;
        };
        acked += at as u64;
        let later = answers[at..].iter().filter(|a| a.is_ok()).count();
        assert_eq!(later, 0, "records accepted after a refusal while the bucket is down");
        break answers[at].clone().unwrap_err();
    };
    assert_eq!(refused.reason, "LOCAL_DISK_BUDGET_EXCEEDED", "{refused}");
    assert_eq!(refused.kind, shale::ErrorKind::Unavailable, "retriable: {refused}");
    assert!(refused.message.contains(&budget.to_string()), "names the budget: {refused}");
    let (local, _) = bytes_with_suffix(&dir.path().join(format!("{topic}-0")), ".log");
    let p = describe0(&client, topic).await;
    println!(
        "refused after {acked} records with {local} bytes on local disk (budget {budget}); \
         remote end {}; {:?} (requests, 500s, 503s)",
        p.remote_log_end_offset,
        faults.counts()
    );
    assert!(local < budget + 512 * 1024, "{local} bytes on local disk: the budget held");
    assert_eq!(p.log_end_offset, acked as i64, "every record before the refusal was acked");
    assert!(p.remote_log_end_offset <= 0, "nothing reached the bucket: {p:?}");

    // The bucket answers again: uploads free the space and produce resumes.
    faults.set_error_rate(0.0);
    let total = acked + 2000;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut pending = vec![];
    for i in acked..total {
        pending
            .push(producer.send(ProducerRecord::new(topic, value(i)).partition(0)).await.unwrap());
    }
    for (i, d) in (acked..).zip(pending) {
        let got = d.await.unwrap_or_else(|e| panic!("record {i} after the bucket came back: {e}"));
        assert_eq!(got.offset, i as i64);
    }
    read_back_check(&common::read_all(&client, topic).await, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_bucket_retention_is_per_topic_and_changes_at_runtime() {
    retention_is_per_topic_and_changes_at_runtime(Target::filesystem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_retention_is_per_topic_and_changes_at_runtime() {
    retention_is_per_topic_and_changes_at_runtime(Target::s3("per-topic")).await;
}

/// Three tiered topics with different local and total retention, by size and by time, in
/// one broker, and runtime changes: each keeps what its own configs say.
async fn retention_is_per_topic_and_changes_at_runtime(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let config = target.config();
    let b = BrokerProcess::start_with(dir.path(), &strs(&target.args(&config, dir.path())));
    let client = b.client();
    let seg = (128 * 1024).to_string();
    let topics = [
        // Keeps 256 KiB locally and everything in the bucket.
        ("keep-all", [("local.retention.bytes", "262144"), ("retention.bytes", "-1")]),
        // Keeps 1 MiB locally and 2 MiB in total.
        ("keep-2m", [("local.retention.bytes", "1048576"), ("retention.bytes", "2097152")]),
        // Keeps sealed data locally for 1 s once tiered, and an hour in total.
        ("keep-1h", [("local.retention.ms", "1000"), ("retention.ms", "3600000")]),
    ];
    let records = 4 * MIB / (RECORD_BYTES as u64 + 20);
    for (topic, retention) in topics {
        let mut c = configs(&retention);
        c.extend(configs(&[("remote.storage.enable", "true"), ("segment.bytes", &seg)]));
        client.admin().create_topic(topic, 1, 1, c).await.unwrap();
        produce(&client, topic, records).await;
    }
    let settled = |topic: &'static str, check: fn(&shale::proto::pb::PartitionInfo) -> bool| {
        let client = client.clone();
        async move {
            wait_until(Duration::from_secs(60), &format!("{topic} to settle"), || {
                let client = client.clone();
                async move { check(&describe0(&client, topic).await) }
            })
            .await;
            describe0(&client, topic).await
        }
    };
    let all =
        settled("keep-all", |p| p.upload_lag_segments == 0 && p.size_bytes <= 512 * 1024).await;
    // Remote retention runs after each pass's uploads: a describe between the two sees
    // every segment uploaded but not yet expired, so the size is part of settling.
    let two = settled("keep-2m", |p| {
        p.upload_lag_segments == 0
            && p.remote_log_start_offset > 0
            && p.size_bytes <= 1280 * 1024
            && p.remote_size_bytes <= 2 * MIB + 256 * 1024
    })
    .await;
    // Time: after a second, only the active segment (at most 128 KiB) stays local.
    let hour = settled("keep-1h", |p| {
        p.upload_lag_segments == 0 && p.size_bytes <= 128 * 1024 + 16 * 1024
    })
    .await;
    assert_eq!(all.remote_log_start_offset, 0, "keep-all keeps everything: {all:?}");
    assert!(two.remote_size_bytes <= 2 * MIB + 256 * 1024, "keep-2m keeps about 2 MiB: {two:?}");
    assert_eq!(hour.remote_log_start_offset, 0, "keep-1h keeps the hour: {hour:?}");
    for (topic, p) in [("keep-all", &all), ("keep-2m", &two), ("keep-1h", &hour)] {
        println!(
            "{topic}: local {}.. ({} B), remote {}..{} ({} B)",
            p.local_log_start_offset,
            p.size_bytes,
            p.remote_log_start_offset,
            p.remote_log_end_offset,
            p.remote_size_bytes
        );
    }
    // At runtime: keep-all now keeps 1 MiB in total; earliest moves past 0.
    let change = configs(&[("retention.bytes", "1048576")]);
    client.admin().alter_topic_config("keep-all", change, vec![]).await.unwrap();
    let after = settled("keep-all", |p| p.remote_log_start_offset > 0).await;
    assert!(after.remote_size_bytes <= MIB + 256 * 1024, "{after:?}");
    let earliest = client
        .admin()
        .list_offsets("keep-all", 0, shale::proto::pb::list_offsets_request::Spec::Earliest(true))
        .await
        .unwrap();
    assert_eq!(earliest.offset, after.remote_log_start_offset, "earliest is the remote start");

    // At runtime: keep-1h now keeps 2 s. Every record is older than that by now, so the
    // remote log shrinks to its newest segment, which is always kept (see docs/architecture.md).
    let change = configs(&[("retention.ms", "2000"), ("local.retention.ms", "1000")]);
    client.admin().alter_topic_config("keep-1h", change, vec![]).await.unwrap();
    let after = settled("keep-1h", |p| p.remote_segments == 1).await;
    assert!(after.remote_log_start_offset > 0, "{after:?}");
    println!(
        "keep-1h after retention.ms=2000: remote {}..{} ({} B)",
        after.remote_log_start_offset, after.remote_log_end_offset, after.remote_size_bytes
    );

    // Once on, tiering stays on: off would let local retention cut a hole in the log.
    let off = configs(&[("remote.storage.enable", "false")]);
    let e = client.admin().alter_topic_config("keep-all", off, vec![]).await.unwrap_err();
    assert_eq!(e.reason, "INVALID_CONFIG");
    assert!(e.message.contains("remote.storage.enable") && e.message.contains("keep-all"), "{e}");
    let unset = vec!["remote.storage.enable".to_string()];
    let e = client.admin().alter_topic_config("keep-all", BTreeMap::new(), unset).await;
    assert_eq!(e.unwrap_err().reason, "INVALID_CONFIG", "removing the override turns it off too");
}

/// The scrubber never deletes what an upload may still commit: an uploader held between its
/// segment PUT and its commit for longer than `orphan_grace_ms`, through several scrub
/// passes, commits a segment whose objects are all still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_not_scrubbed_before_it_commits() {
    let target = Target::filesystem();
    let dir = tempfile::tempdir().unwrap();
    let failpoints = tempfile::tempdir().unwrap();
    let mut config = target.config();
    writeln!(config, "scrub_interval_ms = 200\norphan_grace_ms = 500").unwrap();
    let args = target.args(&config, dir.path());
    let admin = format!("127.0.0.1:{}", common::free_port());
    let args = [&strs(&args)[..], &["--admin-listen", &admin]].concat();
    let fp_dir = failpoints.path().to_string_lossy().to_string();
    let hold = failpoints.path().join("tier.hold_before_commit");
    std::fs::write(&hold, b"").unwrap();
    let b = BrokerProcess::start_with_env(
        dir.path(),
        &args,
        &[("SHALE_FAILPOINTS_DIR", fp_dir.as_str())],
    );
    let client = b.client();
    let topic = "slow";
    let segment = (64 * 1024).to_string();
    let cfg = configs(&[("segment.bytes", &segment), ("remote.storage.enable", "true")]);
    client.admin().create_topic(topic, 1, 1, cfg).await.unwrap();
    produce(&client, topic, MIB / (RECORD_BYTES as u64 + 20)).await;

    let bucket = target.bucket(dir.path());
    wait_until(Duration::from_secs(30), "a segment PUT held before its commit", || {
        let bucket = bucket.clone();
        async move { object_kinds(&bucket).await.0 > 0 }
    })
    .await;
    let held = object_kinds(&bucket).await;
    let past_grace = std::time::Instant::now() + Duration::from_millis(600);
    wait_until(
        Duration::from_secs(5),
        "the held objects to pass the 500 ms grace",
        || async move { std::time::Instant::now() >= past_grace },
    )
    .await;
    let passes = || {
        let admin = admin.clone();
        async move {
            let body = common::http_get(&admin, "/metrics").await.1;
            common::metric(&body, "shale_tier_scrub_passes_total").unwrap_or(0.0)
        }
    };
    let first = passes().await;
    wait_until(Duration::from_secs(30), "two scrub passes past the grace period", || {
        let passes = passes();
        async move { passes.await >= first + 2.0 }
    })
    .await;
    assert_eq!(object_kinds(&bucket).await.0, held.0, "the scrubber removed a held upload");

    std::fs::remove_file(&hold).unwrap();
    wait_until(Duration::from_secs(60), "every sealed segment tiered", || {
        let client = client.clone();
        async move {
            let p = describe0(&client, topic).await;
            p.upload_lag_segments == 0 && p.remote_segments > 0
        }
    })
    .await;
    let p = describe0(&client, topic).await;
    let (logs, _, _) = object_kinds(&bucket).await;
    println!("held {} segment objects; {} remote segments, {logs} logs", held.0, p.remote_segments);
    assert!(logs as u64 >= p.remote_segments, "a committed segment lost its object: {p:?}");
}
