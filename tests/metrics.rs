//! `/metrics` of a broker under load: a producer, a consumer group and a cold reader run
//! while the admin listener is scraped twice; every named series exists and the ones that
//! count work move between the scrapes.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{BrokerProcess, http_get, metric, wait_until};
use shale::client::{
    Consumer, ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, StartAt,
};

const TOPIC: &str = "load";

async fn scrape(admin: &str) -> String {
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Sends one ApiVersions v0 request to the Kafka listener at `addr` and reads its answer.
async fn kafka_api_versions(addr: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Size 10; ApiVersions (18) v0, correlation id 7, no client id.
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    conn.write_all(&request).await.unwrap();
    let size = conn.read_i32().await.unwrap();
    let mut answer = vec![0; usize::try_from(size).unwrap()];
    conn.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..4], [0, 0, 0, 7], "the answer carries the correlation id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exist_and_move_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        config,
        "[log]\nretention_check_interval_ms = 200\n[tier]\nupload_interval_ms = 200\n\
         [groups]\nlag_metrics_interval_ms = 200"
    )
    .unwrap();
    let cfg = config.path().to_string_lossy().to_string();
    let admin = format!("127.0.0.1:{}", common::free_port());
    let kafka = format!("127.0.0.1:{}", common::free_port());
    let broker = BrokerProcess::start_with(
        dir.path(),
        &["--config", &cfg, "--admin-listen", &admin, "--kafka-listen", &kafka],
    );
    let client = broker.client();
    let segment = (128 * 1024).to_string();
    let configs = BTreeMap::from([
        ("segment.bytes".to_string(), segment.clone()),
        ("local.retention.bytes".to_string(), segment),
        ("remote.storage.enable".to_string(), "true".to_string()),
    ]);
    client.admin().create_topic(TOPIC, 2, 1, configs).await.unwrap();

    // Load: a producer of 1 KiB records and a two-member group reading them.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let producer = Producer::new(client, ProducerConfig::default());
            let value = vec![b'm'; 1024];
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let record = ProducerRecord::new(TOPIC, value.clone()).key(format!("k{i}"));
                producer.send(record).await.unwrap();
                i += 1;
                if i.is_multiple_of(200) {
                    producer.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            producer.flush().await.unwrap();
        })
    };
    let mut members = Vec::new();
    for _ in 0..2 {
        let (client, stop) = (client.clone(), stop.clone());
        members.push(tokio::spawn(async move {
            let mut config = GroupConfig::new("readers", &[TOPIC]);
            config.auto_commit_interval = Duration::from_millis(200);
            config.auto_offset_reset = OffsetReset::Earliest;
            let mut c = GroupConsumer::subscribe(client, config).unwrap();
            while !stop.load(Ordering::Acquire) {
                c.poll(Duration::from_millis(100)).await.unwrap();
            }
            c.close().await.unwrap();
        }));
    }

    // Wait until segments were tiered, local retention removed the first of them (the cold
    // read below must go to the bucket: on a slow machine it once found offset 0 still on
    // disk, and the bucket's read bytes never moved), and the group has lag samples; then
    // scrape twice.
    let lag_series =
        format!("shale_group_lag{{group=\"readers\",topic=\"{TOPIC}\",partition=\"0\"}}");
    let local_start =
        format!("shale_partition_local_log_start_offset{{topic=\"{TOPIC}\",partition=\"0\"}}");
    let what = "uploads, offset 0 gone from local disk, and group lag in /metrics";
    wait_until(Duration::from_secs(60), what, || {
        let (admin, lag_series, local_start) =
            (admin.clone(), lag_series.clone(), local_start.clone());
        async move {
            let body = scrape(&admin).await;
            metric(&body, "shale_object_store_requests_total{op=\"put\"}").is_some_and(|v| v > 0.0)
                && metric(&body, &local_start).is_some_and(|v| v > 0.0)
                && metric(&body, &lag_series).is_some()
        }
    })
    .await;
    let first = scrape(&admin).await;

    // A cold read from offset 0 (local copies are gone) between the scrapes.
    let mut cold = Consumer::new(
        client.clone(),
        ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() },
    );
    cold.assign(TOPIC, 0, StartAt::Earliest).await.unwrap();
    let mut cold_records = 0;
    while let Some(records) = cold.poll().await.unwrap() {
        cold_records += records.len();
        if cold_records >= 500 {
            break;
        }
    }
    drop(cold);
    let get = |body: &str, series: &str| {
        metric(body, series).unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
    };
    let p0 = |name: &str| format!("{name}{{topic=\"{TOPIC}\",partition=\"0\"}}");
    let heartbeat =
        "shale_grpc_request_duration_seconds_count{method=\"/shale.v1.Groups/Heartbeat\"}";
    let moving = [
        "shale_produce_requests_total{topic=\"load\"}".to_string(),
        "shale_produce_bytes_total{topic=\"load\"}".to_string(),
        "shale_fetch_bytes_total{topic=\"load\"}".to_string(),
        "shale_produce_latency_seconds_count".to_string(),
        heartbeat.to_string(),
        p0("shale_partition_log_end_offset"),
        p0("shale_partition_high_watermark"),
        "shale_object_store_requests_total{op=\"put\"}".to_string(),
        "shale_object_store_bytes_total{op=\"put\"}".to_string(),
        "shale_tier_read_bytes_total".to_string(),
        p0("shale_tier_remote_end_offset"),
        format!(
            "shale_group_committed_offset{{group=\"readers\",topic=\"{TOPIC}\",partition=\"0\"}}"
        ),
    ];
    for series in &moving {
        get(&first, series);
    }
    // Each moves at its own pace (heartbeats every second, uploads per segment): wait for
    // all of them, and name the laggards if they never move.
    let stuck = |body: &str| -> Vec<String> {
        moving
            .iter()
            .filter(|s| metric(body, s).is_none_or(|v| v <= metric(&first, s).unwrap()))
            .cloned()
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let second = loop {
        let body = scrape(&admin).await;
        let left = stuck(&body);
        if left.is_empty() {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "series that did not move in 60 s: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A Kafka request is timed by its API once its answer is handed to the connection.
    let api_versions = "shale_kafka_request_duration_seconds_count{api=\"ApiVersions\"}";
    assert_eq!(metric(&second, api_versions), None, "no Kafka request was sent yet");
    kafka_api_versions(&kafka).await;
    assert_eq!(metric(&scrape(&admin).await, api_versions), Some(1.0), "{api_versions}");
    stop.store(true, Ordering::Release);
    producer.await.unwrap();
    for m in members {
        m.await.unwrap();
    }

    let present = [
        "shale_fetch_requests_total{topic=\"load\"}".to_string(),
        "shale_produce_errors_total{topic=\"load\"}".to_string(),
        p0("shale_partition_isr_size"),
        p0("shale_partition_local_size_bytes"),
        p0("shale_tier_upload_lag_bytes"),
        p0("shale_tier_upload_lag_segments"),
        "shale_under_replicated_partitions".to_string(),
        "shale_tier_read_chunk_hits_total".to_string(),
        "shale_tier_read_chunk_misses_total".to_string(),
        "shale_object_store_errors_total{op=\"get\"}".to_string(),
        "shale_metadata_lease_sessions_total".to_string(),
        "shale_broker_draining".to_string(),
        "shale_log_open_files".to_string(),
        lag_series,
    ];
    for series in &present {
        get(&second, series);
    }
    assert_eq!(get(&second, "shale_broker_live"), 1.0);
    let (peak, limit) =
        (get(&second, "shale_log_open_files_peak"), get(&second, "shale_log_open_files_limit"));
    assert!(peak >= 1.0 && peak <= limit, "log files open at most {peak}, bound {limit}");
    assert_eq!(get(&second, "shale_under_replicated_partitions"), 0.0, "RF 1: nothing missing");
    assert!(get(&second, "shale_metadata_lease_remaining_seconds") > 0.0);
    assert!(
        get(&second, "shale_tier_read_chunk_misses_total") > 0.0,
        "the cold read hit the bucket"
    );
    assert!(
        second.contains("shale_produce_latency_seconds_bucket{le="),
        "the produce latency histogram has buckets"
    );
    // The Grafana dashboard only charts series the broker exports.
    // The package root as cargo gives it when running the test, not as baked in at compile
    // time: a build cache shared by two checkouts would otherwise point at the other one.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let path = format!("{root}/deploy/grafana/shale-dashboard.json");
    let dashboard =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut names: Vec<&str> = dashboard
        .match_indices("shale_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            let end =
                rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| n.len() > "shale_".len())
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        assert!(
            second.lines().any(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])),
            "the dashboard charts {name}, which /metrics does not export"
        );
    }
    println!(
        "produce requests {} -> {}, p0 log end {} -> {}, cold records read {cold_records}",
        get(&first, "shale_produce_requests_total{topic=\"load\"}"),
        get(&second, "shale_produce_requests_total{topic=\"load\"}"),
        get(&first, &p0("shale_partition_log_end_offset")),
        get(&second, &p0("shale_partition_log_end_offset")),
    );
}

/// Offset commits and producer-id allocations change nothing a broker plans with, so they
/// make it re-read no cluster metadata (before, every commit made every broker resync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commits_and_producer_ids_make_no_broker_reread_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", common::free_port());
    let broker = BrokerProcess::start_with(dir.path(), &["--admin-listen", &admin]);
    let client = broker.client();
    client.admin().create_topic("quiet", 1, 1, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer.send(ProducerRecord::new("quiet", "x")).await.unwrap().await.unwrap();
    let resyncs = |body: String| metric(&body, "shale_metadata_resyncs_total").unwrap();
    let before = resyncs(scrape(&admin).await);
    let groups = shale::client::GroupAdmin::new(client.clone());
    for i in 0..100 {
        let commit = shale::proto::pb::OffsetCommit {
            topic: "quiet".into(),
            partition: 0,
            offset: i,
            metadata: String::new(),
        };
        groups.commit("quiet-group", vec![commit]).await.unwrap();
    }
    for _ in 0..20 {
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        producer.send(ProducerRecord::new("quiet", "y")).await.unwrap().await.unwrap();
    }
    let after = resyncs(scrape(&admin).await);
    println!("resyncs: {before} before 100 offset commits and 20 producer ids, {after} after");
    assert_eq!(after, before, "offset commits or producer ids made the broker re-read the cluster");
}
