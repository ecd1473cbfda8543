//! Kafka clients nobody here wrote, against one broker's Kafka listener: librdkafka
//! (PyPI's confluent-kafka, and Debian's kcat), kafka-python, aiokafka and kafkajs each
//! create a topic, produce with every codec it has, read everything back byte for byte
//! (keys, values, headers, timestamps; no loss, no duplicate), and run a consumer group
//! that commits, stops and is resumed by another member from the committed offsets.
//! librdkafka also rebalances a group of three as members leave and join, eagerly and
//! cooperatively, reading every record exactly once, and copies records exactly once with
//! transactions, as Apache Kafka's Java client does with transactions v2.
//!
//! The scripts are in `tests/kafka/`; `scripts/kafka-clients.sh install` installs the
//! clients (the test command runs it).
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::sync::OnceLock;
use std::time::Duration;

use shale::server::RunningServer;

/// Each client run ends by itself within a minute (the scripts' own watchdogs).
const WITHIN: Duration = Duration::from_secs(90);

/// Where this process's shared broker keeps its data: a static is never dropped, so its
/// directory outlives the process (nextest runs each test in a process of its own). The
/// directories of processes that are gone are removed first.
fn data_dir() -> std::path::PathBuf {
    const PREFIX: &str = "shale-kafka-clients-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX) else { continue };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One broker for the whole file (its own runtime, so it outlives each test's): the
/// scripts make their own topics and groups. Its Kafka address and its gRPC address.
fn broker() -> &'static (String, String) {
    static BROKER: OnceLock<(String, String)> = OnceLock::new();
    BROKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let dir = data_dir();
                let mut settings = common::settings(&dir);
                settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
                // Groups of these tests form at once, not after Kafka's 3 s.
                settings.groups.initial_rebalance_delay_ms = 200;
                // Compacted topics are cleaned within a second of their writes: a
                // cleaner look, and an active segment rolled past segment.ms, every 50 ms.
                settings.log.cleaner_backoff_ms = 50;
                settings.log.retention_check_interval_ms = 50;
                let server: RunningServer = common::start(settings).await;
                let kafka = server.kafka_addr().unwrap().to_string();
                tx.send((kafka, server.addr().to_string())).unwrap();
                // Serve until the test binary exits.
                std::future::pending::<()>().await;
                drop((server, dir));
            });
        });
        rx.recv_timeout(Duration::from_secs(60)).expect("broker started")
    })
}

/// The broker's Kafka listener.
fn bootstrap() -> String {
    broker().0.clone()
}

/// The broker's gRPC address.
fn grpc_addr() -> String {
    broker().1.clone()
}

fn python_client(script: &str, scenario: &str) -> Option<serde_json::Value> {
    let python = kafka::python()?;
    let prefix = kafka::unique(scenario);
    let cmd = kafka::python_script(&python, script, &[&bootstrap(), scenario, &prefix]);
    Some(kafka::run(cmd, WITHIN).assert_ok(&format!("{script} {scenario}")))
}

fn kafkajs(scenario: &str) -> Option<serde_json::Value> {
    let dir = kafka::node_dir()?;
    let prefix = kafka::unique(scenario);
    let cmd = kafka::node_script(&dir, "kafkajs_client.js", &[&bootstrap(), scenario, &prefix]);
    Some(kafka::run(cmd, WITHIN).assert_ok(&format!("kafkajs {scenario}")))
}

/// Every record of a round trip came back once, unchanged, with every codec asked for.
fn assert_roundtrip(json: &serde_json::Value, codecs: &[&str]) {
    for field in ["missing", "duplicates", "mismatched"] {
        assert_eq!(json[field], 0, "{field}: {json}");
    }
    assert_eq!(json["produced"], json["consumed"], "{json}");
    let got: Vec<&str> =
        json["codecs"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(got, codecs, "{json}");
}

/// A group's second member resumed exactly where the first committed.
fn assert_group(json: &serde_json::Value) {
    assert_eq!((json["first"].as_i64(), json["second"].as_i64()), (Some(150), Some(250)), "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
    assert_eq!(json["missing"], 0, "{json}");
    assert_eq!(json["after_commit"], 0, "{json}");
}

const ALL_CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

#[test]
fn librdkafka_round_trips_every_codec() {
    let Some(json) = python_client("confluent_client.py", "roundtrip") else { return };
    assert_roundtrip(&json, &ALL_CODECS);
    assert!(
        json.get("not_compressed").is_none_or(|n| n.as_array().is_some_and(|a| a.is_empty())),
        "librdkafka sent a codec uncompressed: {json}"
    );
}

#[test]
fn librdkafka_groups_commit_and_resume() {
    let Some(json) = python_client("confluent_client.py", "group") else { return };
    assert_group(&json);
}

/// Three librdkafka members commit as they go and in their revocation callbacks while one
/// leaves and another joins: every record is read once, eager or cooperative.
fn librdkafka_rebalances(strategy: &str) {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("rebalance");
    let bootstrap = bootstrap();
    let args = [bootstrap.as_str(), "rebalance", &prefix, "--strategy", strategy];
    let cmd = kafka::python_script(&python, "confluent_client.py", &args);
    let json = kafka::run(cmd, WITHIN).assert_ok(&format!("librdkafka rebalance {strategy}"));
    assert_eq!(
        (json["consumed"].as_i64(), json["distinct"].as_i64()),
        (Some(600), Some(600)),
        "{json}"
    );
    assert_eq!(
        (json["duplicates"].as_i64(), json["missing"].as_i64()),
        (Some(0), Some(0)),
        "{json}"
    );
    assert_eq!(json["committed"], 600, "{json}");
    // `shale group list` shows the group as Kafka's classic protocol's.
    let listed = common::shale_cli(&grpc_addr(), &["group", "list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let group = format!("{prefix}-rb-grp");
    let entry = listed.as_array().unwrap().iter().find(|g| g["group"] == group.as_str());
    assert_eq!(entry.map(|g| g["protocol"].clone()), Some("classic".into()), "{listed}");
}

#[test]
fn librdkafka_eager_rebalances_read_every_record_once() {
    librdkafka_rebalances("range");
}

#[test]
fn librdkafka_cooperative_rebalances_read_every_record_once() {
    librdkafka_rebalances("cooperative-sticky");
}

#[test]
fn kafka_python_round_trips_every_codec() {
    let Some(json) = python_client("kafka_python_client.py", "roundtrip") else { return };
    assert_roundtrip(&json, &ALL_CODECS);
}

#[test]
fn kafka_python_groups_commit_and_resume() {
    let Some(json) = python_client("kafka_python_client.py", "group") else { return };
    assert_group(&json);
}

#[test]
fn aiokafka_round_trips_every_codec() {
    let Some(json) = python_client("aiokafka_client.py", "roundtrip") else { return };
    assert_roundtrip(&json, &ALL_CODECS);
}

#[test]
fn aiokafka_groups_commit_and_resume() {
    let Some(json) = python_client("aiokafka_client.py", "group") else { return };
    assert_group(&json);
}

#[test]
fn kafkajs_round_trips_every_codec() {
    let Some(json) = kafkajs("roundtrip") else { return };
    assert_roundtrip(&json, &ALL_CODECS);
}

#[test]
fn kafkajs_groups_commit_and_resume() {
    let Some(json) = kafkajs("group") else { return };
    assert_group(&json);
}

#[test]
fn kcat_produces_and_consumes_with_keys_and_headers() {
    let (Some(kcat), Some(python)) = (kafka::kcat(), kafka::python()) else { return };
    let topic = kafka::unique("kcat");
    let create = kafka::python_script(&python, "admin.py", &[&bootstrap(), "create", &topic, "3"]);
    kafka::run(create, WITHIN).assert_ok("creating the kcat topic");
    let mut cmd = std::process::Command::new(kafka::root().join("tests/kafka/kcat_roundtrip.sh"));
    cmd.args([&bootstrap(), &topic]).env("KCAT", kcat);
    let json = kafka::run(cmd, WITHIN).assert_ok("kcat round trip");
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(100), Some(100)),
        "{json}"
    );
    for field in ["missing", "duplicates", "mismatched"] {
        assert_eq!(json[field], 0, "{field}: {json}");
    }
}

/// One interop record: key, value, headers and timestamp.
type InteropRecord = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>, i64);

/// The records both interop directions exchange: keys, values and headers that exercise
/// nulls, empties, binary bytes and repeated header keys, with explicit timestamps.
fn interop_records(n: usize) -> Vec<InteropRecord> {
    (0..n)
        .map(|i| {
            let key = match i % 4 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i % 5 {
                0 => None,
                _ => Some((0..(i * 7 % 300)).map(|b| (b * 31 + i) as u8).collect()),
            };
            let headers = vec![
                ("h".to_string(), Some(vec![i as u8, 0, 255])),
                ("h".to_string(), None),
                ("unicode-ключ".to_string(), Some(b"v".to_vec())),
            ];
            (key, value, headers, 1_700_000_000_000 + i as i64 * 1000)
        })
        .collect()
}

fn b64(b: &Option<Vec<u8>>) -> serde_json::Value {
    use base64::Engine as _;
    match b {
        None => serde_json::Value::Null,
        Some(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
    }
}

/// What gRPC's consumer read, in the interop JSON form.
fn as_json(r: &shale::client::ConsumerRecord) -> serde_json::Value {
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|h| serde_json::json!([h.key, b64(&h.value.as_ref().map(|v| v.to_vec()))]))
        .collect();
    serde_json::json!({
        "p": r.partition, "o": r.offset,
        "key": b64(&r.key.as_ref().map(|k| k.to_vec())),
        "value": b64(&r.value.as_ref().map(|v| v.to_vec())),
        "headers": headers, "ts": r.timestamp_ms,
    })
}

/// gRPC writes, librdkafka reads byte for byte; librdkafka writes, gRPC reads byte for
/// byte; and a Kafka group's commits show in Shale's group description.
#[tokio::test]
async fn records_cross_between_grpc_and_kafka_clients_byte_for_byte() {
    let Some(python) = kafka::python() else { return };
    let bootstrap = bootstrap();
    let client = shale::client::Client::new(&grpc_addr()).unwrap();
    let admin = client.admin();
    let records = interop_records(60);

    // gRPC → Kafka.
    let there = kafka::unique("interop-g2k");
    admin.create_topic(&there, 2, 1, Default::default()).await.unwrap();
    let producer = shale::client::Producer::new(client.clone(), Default::default());
    let mut deliveries = Vec::new();
    for (i, (key, value, headers, ts)) in records.iter().enumerate() {
        let record = shale::client::ProducerRecord {
            topic: there.clone(),
            partition: Some((i % 2) as u32),
            key: key.clone().map(Into::into),
            value: value.clone().map(Into::into),
            headers: headers
                .iter()
                .map(|(k, v)| shale::record::Header {
                    key: k.clone(),
                    value: v.clone().map(Into::into),
                })
                .collect(),
            timestamp_ms: Some(*ts),
        };
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let grpc_view: Vec<serde_json::Value> =
        common::read_all(&client, &there).await.values().flatten().map(as_json).collect();
    let read =
        kafka::python_script(&python, "interop.py", &[&bootstrap, "read", &there, "2", "60"]);
    let kafka_view = kafka::run(read, WITHIN).assert_ok("librdkafka reading gRPC's records");
    let kafka_records = kafka_view["records"].as_array().unwrap();
    assert_eq!((kafka_records.len(), grpc_view.len()), (60, 60));
    for (k, g) in kafka_records.iter().zip(&grpc_view) {
        assert_eq!(k, g, "librdkafka and Shale's consumer read this record differently");
    }

    // Kafka → gRPC.
    let back = kafka::unique("interop-k2g");
    admin.create_topic(&back, 2, 1, Default::default()).await.unwrap();
    let spec: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, headers, ts))| {
            let headers: Vec<serde_json::Value> =
                headers.iter().map(|(k, v)| serde_json::json!([k, b64(v)])).collect();
            serde_json::json!({"p": i % 2, "key": b64(key), "value": b64(value), "headers": headers, "ts": ts})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let write = kafka::python_script(
        &python,
        "interop.py",
        &[&bootstrap, "write", &back, spec_file.to_str().unwrap()],
    );
    kafka::run(write, WITHIN).assert_ok("librdkafka writing");
    let read_back = common::read_all(&client, &back).await;
    for p in 0..2u32 {
        let got: Vec<serde_json::Value> = read_back[&p].iter().map(as_json).collect();
        let want: Vec<&serde_json::Value> = spec.iter().filter(|s| s["p"] == p).collect();
        assert_eq!(got.len(), want.len(), "partition {p}");
        for (g, w) in got.iter().zip(want) {
            for field in ["key", "value", "headers", "ts"] {
                assert_eq!(g[field], w[field], "partition {p} offset {}: {field}", g["o"]);
            }
        }
    }

    // A Kafka group's commits, seen through Shale's own group description.
    let group = kafka::unique("interop-group");
    let commit = kafka::python_script(
        &python,
        "admin.py",
        &[&bootstrap, "commit", &group, &back, "0", "17"],
    );
    kafka::run(commit, WITHIN).assert_ok("librdkafka committing");
    let described = shale::client::GroupAdmin::new(client.clone()).describe(&group).await.unwrap();
    let p0 = described.partitions.iter().find(|p| p.topic == back && p.partition == 0).unwrap();
    assert_eq!(p0.committed, 17, "{described:?}");
    assert_eq!(p0.log_end, 30);
}

/// Runs `admin.py` with `args` after the bootstrap, off the runtime's thread (a broker of
/// this test may serve on it meanwhile).
async fn librdkafka_admin(python: &std::path::Path, bootstrap: &str, args: &[&str]) -> kafka::Run {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    let cmd = kafka::python_script(python, "admin.py", &all);
    tokio::task::spawn_blocking(move || kafka::run(cmd, WITHIN)).await.unwrap()
}

/// librdkafka's AdminClient deletes a partition's records: a consumer asking for offset 0
/// is told it is out of range and starts at the new log start, and ListOffsets answers
/// the earliest and latest offsets and the record with the largest timestamp (written out
/// of order: not the last record), through Kafka and gRPC alike.
#[tokio::test]
async fn librdkafka_deletes_records_and_finds_the_largest_timestamp() {
    let Some(python) = kafka::python() else { return };
    let bootstrap = bootstrap();
    let client = shale::client::Client::new(&grpc_addr()).unwrap();
    let topic = kafka::unique("delete-records");
    client.admin().create_topic(&topic, 1, 1, Default::default()).await.unwrap();
    // 20 records at T0, T0 + 10, ..., but offset 12 at T0 + 500 and offset 3 at T0 + 900.
    let t0 = 1_700_000_000_000i64;
    let producer = shale::client::Producer::new(client.clone(), Default::default());
    for i in 0..20i64 {
        let ts = match i {
            3 => t0 + 900,
            12 => t0 + 500,
            _ => t0 + 10 * i,
        };
        let record = shale::client::ProducerRecord {
            partition: Some(0),
            timestamp_ms: Some(ts),
            ..shale::client::ProducerRecord::new(&topic, format!("v{i}"))
        };
        producer.send(record).await.unwrap().await.unwrap();
    }
    let admin = |args: Vec<String>| {
        let (python, bootstrap) = (python.clone(), bootstrap.clone());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            librdkafka_admin(&python, &bootstrap, &args).await
        }
    };
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let list = |spec: &str| a(&["list-offsets", &topic, "0", spec]);
    let json = admin(list("max_timestamp")).await.assert_ok("list max_timestamp");
    assert_eq!((json["offset"].as_i64(), json["timestamp"].as_i64()), (Some(3), Some(t0 + 900)));

    let json = admin(a(&["delete-records", &topic, "0", "7"])).await.assert_ok("delete");
    assert_eq!(json["low_watermark"], 7, "{json}");
    let json = admin(a(&["first-offset", &topic, "0"])).await.assert_ok("consume from 0");
    assert_eq!((json["first"].as_i64(), json["count"].as_i64()), (Some(7), Some(13)), "{json}");
    let json = admin(list("earliest")).await.assert_ok("list earliest");
    assert_eq!(json["offset"], 7, "{json}");
    let json = admin(list("latest")).await.assert_ok("list latest");
    assert_eq!(json["offset"], 20, "{json}");
    let json = admin(list("max_timestamp")).await.assert_ok("list max_timestamp");
    assert_eq!((json["offset"].as_i64(), json["timestamp"].as_i64()), (Some(12), Some(t0 + 500)));
    let json = admin(list(&(t0 + 65).to_string())).await.assert_ok("list by time");
    assert_eq!((json["offset"].as_i64(), json["timestamp"].as_i64()), (Some(7), Some(t0 + 70)));
    // The same through gRPC.
    use shale::proto::pb::list_offsets_request::Spec;
    let r = client.admin().list_offsets(&topic, 0, Spec::MaxTimestamp(true)).await.unwrap();
    assert_eq!((r.offset, r.timestamp_ms, r.log_start_offset), (12, t0 + 500, 7));

    let json = admin(a(&["delete-records", &topic, "0", "3"])).await.assert_ok("delete lower");
    assert_eq!(json["low_watermark"], 7, "never backwards: {json}");
    let past = admin(a(&["delete-records", &topic, "0", "21"])).await;
    assert!(!past.ok, "past the high watermark: {}", past.stdout);
    assert!(past.stderr.contains("OFFSET_OUT_OF_RANGE"), "{}", past.stderr);
    let json = admin(a(&["delete-records", &topic, "0", "-1"])).await.assert_ok("delete all");
    assert_eq!(json["low_watermark"], 20, "{json}");
}

/// librdkafka creates a compacted topic (`cleanup.policy=compact`, read back through
/// DescribeConfigs), its idempotent producer writes 3,000 updates over 20 keys and is
/// refused a keyless record (INVALID_RECORD); its consumer, reading from offset 0 once the
/// cleaner ran, gets each key's latest record (a tombstone for key 0) at the offset its
/// delivery report gave, and nothing that was not written.
#[test]
fn librdkafka_reads_a_compacted_topics_latest_records() {
    let Some(python) = kafka::python() else { return };
    let topic = kafka::unique("compacted");
    let cmd = kafka::python_script(&python, "compacted.py", &[&bootstrap(), &topic]);
    let json = kafka::run(cmd, WITHIN).assert_ok("compacted.py");
    assert_eq!(json["policy"], "compact", "{json}");
    assert_eq!(json["written"], 3000, "{json}");
    assert_eq!(json["keyless"], "INVALID_RECORD", "{json}");
    assert!(json["read"].as_u64().unwrap() <= 100, "compacted: {json}");
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(json["increasing"], true, "{json}");
    assert_eq!(json["missing_latest"], serde_json::json!([]), "{json}");
    assert_eq!(json["tombstone_kept"], true, "{json}");
}

/// A transactional copy's report: 600 records copied and read committed once each, the
/// aborted junk in the log but never read committed, the input's offsets committed.
fn assert_copied(json: &serde_json::Value) {
    let copy = &json["copy"];
    assert_eq!(copy["copied"], 600, "{json}");
    assert_eq!(copy["read_committed"], 600, "{json}");
    for field in ["missing", "duplicates", "junk_committed"] {
        assert_eq!(copy[field], 0, "{field}: {json}");
    }
    assert_eq!(copy["junk_uncommitted"], 600, "the aborted junk is in the log: {json}");
    assert_eq!(copy["committed_offsets"], 600, "{json}");
}

/// librdkafka's transactions: a consume-transform-produce loop copies 600 numbered records
/// between two topics of three partitions, committing its consumer's offsets in each
/// transaction and aborting a transaction of junk before each commit; a `read_committed`
/// reader gets every record once and no junk (a `read_uncommitted` one gets all the junk,
/// so the check can fail), and the group's offsets are the input's end. A producer fenced
/// by a newer one with its transactional id fails with `_FENCED`, and its records are
/// never read committed.
#[test]
fn librdkafka_transactions_copy_exactly_once_and_fence_zombies() {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("txn");
    let cmd = kafka::python_script(&python, "transactions.py", &[&bootstrap(), &prefix]);
    let json = kafka::run(cmd, WITHIN).assert_ok("transactions.py");
    assert_copied(&json);
    let zombie = &json["zombie"];
    assert_eq!(zombie["old_error"], "_FENCED", "{json}");
    assert_eq!(zombie["read_committed"], serde_json::json!(["new-1"]), "{json}");
}

/// A compacted topic written by a transactional producer that commits a value of each of
/// ten keys and then aborts another, thirty times: once the cleaner has removed the
/// aborted records, librdkafka's `read_committed` reader finds each key's last committed
/// value and nothing aborted (a cleaner that kept aborted values as the keys' latest would
/// have removed the committed ones).
#[test]
fn librdkafka_compacted_transactions_keep_each_keys_latest_committed_value() {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("ctxn");
    let cmd =
        kafka::python_script(&python, "transactions.py", &[&bootstrap(), &prefix, "compacted"]);
    let json = kafka::run(cmd, WITHIN).assert_ok("transactions.py compacted");
    let c = &json["compacted"];
    assert_eq!(c["aborted_left"], 0, "the cleaner removed the aborted records: {json}");
    assert!(c["uncommitted_after_clean"].as_u64().unwrap() < 600, "cleaned: {json}");
    assert_eq!(c["aborted_committed"], 0, "{json}");
    assert_eq!(c["latest_ok"], true, "{json}");
}

/// Apache Kafka's Java client 4.3 negotiates transactions v2 (KIP-890) from ApiVersions'
/// finalized `transaction.version`, which its copier's epoch shows (v2 bumps it at every
/// commit and abort; v1 never does), and copies 600 records exactly once as librdkafka's
/// test does; a zombie producer is fenced and its records are never read committed.
#[test]
fn java_client_transactions_v2_copy_exactly_once_and_fence_zombies() {
    let Some(jars) = kafka::java_jars() else { return };
    let prefix = kafka::unique("jtxn");
    let cmd = kafka::java_program(&jars, "Transactions.java", &[&bootstrap(), &prefix]);
    let json = kafka::run(cmd, WITHIN).assert_ok("Transactions.java");
    let copy = &json["copy"];
    assert_copied(&json);
    let ends = copy["commits"].as_i64().unwrap() + copy["aborts"].as_i64().unwrap();
    assert_eq!(copy["epoch"].as_i64(), Some(ends), "one bump per end: transactions v2 {json}");
    let zombie = &json["zombie"];
    let fenced = ["ProducerFencedException", "InvalidProducerEpochException"];
    assert!(fenced.contains(&zombie["old_error"].as_str().unwrap()), "{json}");
    assert_eq!(zombie["read_committed"], serde_json::json!(["new-1"]), "{json}");
}

/// A broker with a `file://` bucket, fast upload and retention passes, and a Kafka listener.
async fn tiered_broker(dir: &std::path::Path) -> RunningServer {
    common::start(tiered_settings(dir)).await
}

/// The settings of [`tiered_broker`].
fn tiered_settings(dir: &std::path::Path) -> shale::settings::Settings {
    let mut settings = common::settings(dir);
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.tier.object_store = format!("file://{}", dir.join("bucket").display());
    settings.tier.upload_interval_ms = 200;
    settings.log.retention_check_interval_ms = 200;
    settings
}

/// Creates tiered `topic` (1 MiB segments, 1 MiB kept locally), writes `n` records of
/// about 1 KiB, and waits until its first segments are in the bucket only.
async fn tiered_topic(client: &shale::client::Client, topic: &str, n: usize) {
    let mib = (1u64 << 20).to_string();
    let configs = [
        ("remote.storage.enable", "true"),
        ("segment.bytes", mib.as_str()),
        ("local.retention.bytes", mib.as_str()),
        ("retention.bytes", "-1"),
    ];
    let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    client.admin().create_topic(topic, 1, 1, configs).await.unwrap();
    let producer = shale::client::Producer::new(client.clone(), Default::default());
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let value = format!("{i:08}-{}", "x".repeat(1000));
        let record = shale::client::ProducerRecord::new(topic, value).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    common::wait_until(
        Duration::from_secs(120),
        "the first segments tiered and gone from local disk",
        || {
            let admin = client.admin();
            let topic = topic.to_string();
            async move {
                let d = admin.describe_topic(&topic).await.unwrap();
                d.partitions[0].local_log_start_offset > 1000
            }
        },
    )
    .await;
}

/// Transactions on a tiered topic: 40 committed and 40 aborted transactions of ten 1 KiB
/// records, most of them in the bucket only. A `read_committed` reader from offset 0 gets
/// the 400 committed records and no aborted one, as local reads do; and again after a
/// restart that lost the broker's producer-state snapshots (a replica without the
/// partition's history): the aborted transactions then come from the manifest's lists.
#[tokio::test]
async fn read_committed_reads_from_the_bucket_skip_aborted_transactions() {
    let Some(python) = kafka::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = tiered_broker(dir.path()).await;
    let client = common::client(&server);
    let topic = "tiered-txn";
    let kib64 = (64u64 << 10).to_string();
    let configs = [
        ("remote.storage.enable", "true"),
        ("segment.bytes", kib64.as_str()),
        ("local.retention.bytes", kib64.as_str()),
        ("retention.bytes", "-1"),
    ];
    let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    client.admin().create_topic(topic, 1, 1, configs).await.unwrap();
    let run = |server: &RunningServer, scenario: &str| {
        let bootstrap = server.kafka_addr().unwrap().to_string();
        let args = [bootstrap.as_str(), "tiered", scenario, topic];
        let cmd = kafka::python_script(&python, "transactions.py", &args);
        let what = format!("transactions.py {scenario}");
        tokio::task::spawn_blocking(move || kafka::run(cmd, WITHIN).assert_ok(&what))
    };
    run(&server, "tiered-write").await.unwrap();
    let in_bucket = |client: shale::client::Client| {
        common::wait_until(
            Duration::from_secs(120),
            "most segments in the bucket only",
            move || {
                let admin = client.admin();
                async move {
                    let d = admin.describe_topic(topic).await.unwrap();
                    d.partitions[0].local_log_start_offset > 600
                }
            },
        )
    };
    in_bucket(client.clone()).await;
    let want = |json: &serde_json::Value| {
        let c = &json["read_committed"];
        assert_eq!(
            (c["committed"].as_u64(), c["aborted"].as_u64()),
            (Some(400), Some(0)),
            "{json}"
        );
        assert_eq!(c["distinct"], 400, "no duplicates: {json}");
        assert_eq!(
            json["read_uncommitted"]["aborted"], 400,
            "the aborted records are there: {json}"
        );
    };
    want(&run(&server, "tiered-read").await.unwrap());
    // A restart without the producer-state snapshots: the local log no longer holds the
    // early transactions, so only the manifest knows they were aborted.
    drop(client);
    server.close().await.unwrap();
    let mut removed = 0;
    for entry in common::walkdir(dir.path()) {
        if entry.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(&entry).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "producer snapshots to remove");
    let server = tiered_broker(dir.path()).await;
    want(&run(&server, "tiered-read").await.unwrap());
}

/// A tiered topic whose first segments are in the bucket only: a Kafka consumer reads it
/// from offset 0, every record in order.
#[tokio::test]
async fn a_kafka_consumer_reads_a_tiered_topic_from_offset_zero() {
    let Some(python) = kafka::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = tiered_broker(dir.path()).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    let topic = "tiered-kafka";
    let n = 4000usize;
    tiered_topic(&client, topic, n).await;
    let read = kafka::python_script(
        &python,
        "interop.py",
        &[&bootstrap, "read", topic, "1", &n.to_string()],
    );
    // Off the runtime's thread: the broker serves on it meanwhile.
    let run = tokio::task::spawn_blocking(move || kafka::run(read, WITHIN)).await.unwrap();
    let json = run.assert_ok("librdkafka reading the tiered topic");
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), n);
    use base64::Engine as _;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["o"], i as i64, "offsets in order from 0");
        let value =
            base64::engine::general_purpose::STANDARD.decode(r["value"].as_str().unwrap()).unwrap();
        assert!(value.starts_with(format!("{i:08}-").as_bytes()), "record {i}");
    }
}

/// DeleteRecords into what is in the bucket only: a Kafka consumer from offset 0 starts at
/// the new log start, ListOffsets says so (and where the local log and the bucket end), and
/// the remote segments wholly below it leave the bucket.
#[tokio::test]
async fn records_deleted_in_the_bucket_are_not_served_and_leave_it() {
    let Some(python) = kafka::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = tiered_broker(dir.path()).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    let topic = "tiered-deleted";
    let n = 4000usize;
    tiered_topic(&client, topic, n).await;
    // Past the first segment (about 1,000 records of 1 KiB), in the bucket only.
    common::wait_until(Duration::from_secs(120), "the local log past offset 2000", || {
        let admin = client.admin();
        async move {
            admin.describe_topic(topic).await.unwrap().partitions[0].local_log_start_offset > 2000
        }
    })
    .await;
    let before = client.admin().describe_topic(topic).await.unwrap().partitions[0].clone();
    assert_eq!(before.remote_log_start_offset, 0, "{before:?}");

    let json = librdkafka_admin(&python, &bootstrap, &["delete-records", topic, "0", "1500"])
        .await
        .assert_ok("deleting records in the bucket");
    assert_eq!(json["low_watermark"], 1500, "{json}");
    let json = librdkafka_admin(&python, &bootstrap, &["first-offset", topic, "0"])
        .await
        .assert_ok("consuming from 0");
    let want = (Some(1500), Some(n as i64 - 1500));
    assert_eq!((json["first"].as_i64(), json["count"].as_i64()), want, "{json}");
    use shale::proto::pb::list_offsets_request::Spec;
    let admin = client.admin();
    assert_eq!(admin.list_offsets(topic, 0, Spec::Earliest(true)).await.unwrap().offset, 1500);
    let local = admin.list_offsets(topic, 0, Spec::EarliestLocal(true)).await.unwrap().offset;
    assert!(local > 2000, "the local log starts above the deleted records: {local}");
    let tiered = admin.list_offsets(topic, 0, Spec::LatestTiered(true)).await.unwrap().offset;
    assert!(tiered >= local - 1, "the bucket reaches the local log: {tiered} {local}");
    common::wait_until(Duration::from_secs(60), "the remote segments below 1500 removed", || {
        let admin = client.admin();
        async move {
            let d = admin.describe_topic(topic).await.unwrap();
            let p = &d.partitions[0];
            p.remote_log_start_offset > 0 && p.remote_log_start_offset <= 1500
        }
    })
    .await;
}
