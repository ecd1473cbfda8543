//! Kafka clients nobody here wrote, against one broker's Kafka listener: librdkafka
//! (PyPI's confluent-kafka, and Debian's kcat), kafka-python, aiokafka and kafkajs each
//! create a topic, produce with every codec it has, read everything back byte for byte
//! (keys, values, headers, timestamps; no loss, no duplicate), and run a consumer group
//! that commits, stops and is resumed by another member from the committed offsets.
//! librdkafka also rebalances a group of three as members leave and join, eagerly and
//! cooperatively, reading every record exactly once.
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

/// One broker for the whole file (its own runtime, so it outlives each test's): the
/// scripts make their own topics and groups.
fn bootstrap() -> String {
    static BROKER: OnceLock<(String, String)> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let dir = tempfile::tempdir().unwrap();
                    let mut settings = common::settings(dir.path());
                    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
                    // Groups of these tests form at once, not after Kafka's 3 s.
                    settings.groups.initial_rebalance_delay_ms = 200;
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
        .0
        .clone()
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
