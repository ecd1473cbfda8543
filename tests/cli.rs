//! The README's tour, through the `shale` binary: create a topic, pipe 100,000 lines into
//! `shale produce`, read them back with `shale consume`.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

fn shale(broker: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(args)
        .env("SHALE_BROKER", broker)
        .env("SHALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shale {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::BrokerProcess::start(dir.path());
    shale(&broker.addr, &["topic", "create", "piped", "--partitions", "50"]);
    // `shale topic describe piped | head -0`: the reader is gone before the first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(["topic", "describe", "piped", "--broker", &broker.addr])
        .env("SHALE_LOG", "warn")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "no panic, no backtrace: {stderr}");
}

#[test]
fn tour_create_produce_consume_describe() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    shale(&addr, &["topic", "create", "orders", "--partitions", "3"]);

    let mut produce = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(["produce", "--topic", "orders", "--broker", &addr])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = std::io::BufWriter::new(produce.stdin.take().unwrap());
        for i in 1..=100_000 {
            writeln!(stdin, "{i}").unwrap();
        }
    }
    let out = produce.wait_with_output().unwrap();
    assert!(out.status.success(), "produce failed: {}", String::from_utf8_lossy(&out.stderr));

    let out = shale(
        &addr,
        &[
            "consume",
            "--topic",
            "orders",
            "--from-beginning",
            "--max-records",
            "100000",
            "--print-offset",
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut last_offset: HashMap<u32, i64> = HashMap::new();
    let mut seen = vec![false; 100_001];
    let mut lines = 0;
    for line in text.lines() {
        let mut f = line.split('\t');
        let p: u32 = f.next().unwrap().parse().unwrap();
        let o: i64 = f.next().unwrap().parse().unwrap();
        let v: usize = f.next().unwrap().parse().unwrap();
        if let Some(prev) = last_offset.insert(p, o) {
            assert!(o > prev, "partition {p}: offset {o} after {prev}");
        }
        assert!(!seen[v], "value {v} printed twice");
        seen[v] = true;
        lines += 1;
    }
    assert_eq!(lines, 100_000);
    assert_eq!(last_offset.len(), 3, "all three partitions were used");

    let out = shale(&addr, &["topic", "describe", "orders", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ends: i64 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(ends, 100_000);
    assert_eq!(v["partitions"][0]["leader"], 0);

    let out = shale(&addr, &["topic", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("orders"));
    assert!(broker.terminate(), "clean SIGTERM shutdown");
}

/// `--cpus` confines every thread of the broker, the journal's included, to the CPUs named,
/// and sizes its runtime to them; a CPU the process may not use is refused by number.
#[test]
fn a_broker_confined_to_one_cpu_runs_every_thread_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::BrokerProcess::start_with(dir.path(), &["--cpus", "0"]);
    assert!(
        broker.first_line().contains("on CPUs 0: 1 runtime worker)"),
        "{}",
        broker.first_line()
    );
    shale(&broker.addr, &["topic", "create", "pinned", "--partitions", "2"]);
    let mut produce = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(["produce", "--topic", "pinned", "--broker", &broker.addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    produce.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
    assert!(produce.wait().unwrap().success(), "produce to the confined broker");
    // Every thread the broker has now (the runtime's, the journal's writer, notifier and
    // checkpointer, the blocking pool's that produce used) may run on CPU 0 only.
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", broker.pid())).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let Ok(status) = std::fs::read_to_string(task.join("status")) else { continue };
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
        assert_eq!(
            allowed.map(str::trim),
            Some("0"),
            "thread {} ({})",
            task.display(),
            name.trim()
        );
        names.push(name.trim().to_string());
    }
    assert!(names.iter().any(|n| n == "shale-journal"), "the broker's threads: {names:?}");
    assert!(broker.terminate(), "clean SIGTERM shutdown");

    let lines = shale_fails(&["standalone", "--cpus", "0,1000", "--data-dir", "unused"], b"");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("CPU 1000 is not one this process may use"), "{lines:?}");
}

/// Runs `shale` with `args` (and default logging) and returns its failure's stderr lines.
fn shale_fails(args: &[&str], stdin: &[u8]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(args)
        .env("SHALE_LOG", "info")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "shale {args:?} succeeded against a dead broker: {stderr}");
    stderr.lines().map(str::to_string).collect()
}

#[test]
fn consume_from_a_dead_broker_fails_after_its_wait_with_one_line_naming_broker_and_partition() {
    // Nothing listens there: the port was free a moment ago and is below the ephemeral range.
    let addr = format!("127.0.0.1:{}", common::free_port());
    let started = std::time::Instant::now();
    let lines = shale_fails(
        &[
            "consume",
            "--topic",
            "orders",
            "--partition",
            "3",
            "--from-beginning",
            "--leader-wait-ms",
            "1000",
            "--broker",
            &addr,
        ],
        b"",
    );
    let waited = started.elapsed();
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    let want = format!("broker {addr}: topic orders partition 3: ");
    assert!(lines[0].contains(&want), "{:?} names {want:?}", lines[0]);
    assert!(lines[0].contains("connection refused"), "{:?} says why", lines[0]);
    assert!(waited >= std::time::Duration::from_secs(1), "waited --leader-wait-ms: {waited:?}");
    assert!(waited < std::time::Duration::from_secs(10), "and not much longer: {waited:?}");
}

#[test]
fn produce_to_a_dead_broker_fails_with_one_line_naming_broker_and_topic() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let started = std::time::Instant::now();
    let args = ["produce", "--topic", "orders", "--max-block-ms", "1000", "--broker", &addr];
    let lines = shale_fails(&args, b"a\nb\n");
    let waited = started.elapsed();
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    let want = format!("broker {addr}: topic orders: ");
    assert!(lines[0].contains(&want), "{:?} names {want:?}", lines[0]);
    assert!(lines[0].contains("connection refused"), "{:?} says why", lines[0]);
    assert!(waited >= std::time::Duration::from_secs(1), "waited --max-block-ms: {waited:?}");
    assert!(waited < std::time::Duration::from_secs(10), "and not much longer: {waited:?}");
}

/// `shale produce --null-marker` sends tombstones: on a compacted topic, a key whose latest
/// value is the marker reads back with a null value.
#[test]
fn produce_sends_tombstones_with_a_null_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    shale(&addr, &["topic", "create", "kv", "--config", "cleanup.policy=compact"]);
    let args = ["produce", "--topic", "kv", "--key-separator", ":", "--null-marker", "NULL"];
    common::shale_cli_with(&addr, &args, Some(b"a:1\nb:2\na:NULL\n"));
    let out = shale(&addr, &["consume", "--topic", "kv", "--from-beginning", "--format", "json"]);
    let values: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].clone())
        .collect();
    assert_eq!(
        values,
        vec![serde_json::json!("1"), serde_json::json!("2"), serde_json::Value::Null]
    );
}

/// `shale topic delete-records` moves a partition's log start, which `topic describe`
/// shows; past the high watermark it fails with one line saying why.
#[test]
fn topic_delete_records_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    shale(&addr, &["topic", "create", "trimmed"]);
    let lines: String = (0..10).map(|i| format!("{i}\n")).collect();
    common::shale_cli_with(&addr, &["produce", "--topic", "trimmed"], Some(lines.as_bytes()));
    let out =
        shale(&addr, &["topic", "delete-records", "trimmed", "--partition", "0", "--before", "4"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("trimmed/0") && text.contains("now starts at 4"), "{text}");
    let out = shale(&addr, &["topic", "describe", "trimmed", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["partitions"][0]["log_start_offset"], 4);
    let out =
        shale(&addr, &["topic", "delete-records", "trimmed", "--partition", "0", "--before", "-1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("now starts at 10"));
    let lines = shale_fails(
        &[
            "topic",
            "delete-records",
            "trimmed",
            "--partition",
            "0",
            "--before",
            "99",
            "--broker",
            &addr,
        ],
        b"",
    );
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    assert!(
        lines[0].contains("OFFSET_OUT_OF_RANGE") || lines[0].contains("out of range"),
        "{lines:?}"
    );
    assert!(lines[0].contains("99"), "names the offset: {lines:?}");
}

/// Records whose keys, values and headers are binary (newlines, NULs, bytes that are not
/// UTF-8), written with every codec over two partitions, with their timestamps.
fn binary_topic(addr: &str, topic: &str) -> Vec<shale::client::ConsumerRecord> {
    use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new(addr).unwrap();
        client.admin().create_topic(topic, 2, 1, Default::default()).await.unwrap();
        for (c, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
            let compression = shale::record::Compression::parse(codec).unwrap();
            let config = ProducerConfig { compression, ..Default::default() };
            let producer = Producer::new(client.clone(), config);
            for i in 0..40u32 {
                let value: Vec<u8> = (0..30 + i).map(|j| (j * 37 + i * 11) as u8).collect();
                let mut r = ProducerRecord::new(topic, value)
                    .partition(i % 2)
                    .header("text", format!("{codec}\n{i}"))
                    .header("raw", vec![0xff, 0x00, b'\n', i as u8]);
                r.key =
                    (i % 5 != 0).then(|| bytes::Bytes::from(format!("k\n{i}\u{0}").into_bytes()));
                r.timestamp_ms = Some(1_700_000_000_000 + (c as i64) * 1000 + i64::from(i));
                producer.send(r).await.unwrap();
            }
            producer.flush().await.unwrap();
        }
        common::read_all(&client, topic).await.into_values().flatten().collect()
    })
}

/// What a partition holds, as compared across the copy: key, value, headers, timestamp.
type Stored =
    (u32, Option<bytes::Bytes>, Option<bytes::Bytes>, Vec<(String, Option<bytes::Bytes>)>, i64);

fn stored(records: &[shale::client::ConsumerRecord]) -> Vec<Stored> {
    records
        .iter()
        .map(|r| {
            let headers = r.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
            (r.partition, r.key.clone(), r.value.clone(), headers, r.timestamp_ms)
        })
        .collect()
}

/// `shale consume --format json` of binary records of every codec, piped into
/// `shale produce --format json`, makes a byte-identical copy: keys, values, headers and
/// timestamps, partition by partition. And text output is one line per record whatever
/// the bytes (escaped), so `wc -l` counts records.
#[test]
fn a_topic_dumped_as_json_lines_replays_into_a_byte_identical_copy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    let original = binary_topic(&addr, "binary");
    assert_eq!(original.len(), 200);

    let text = shale(&addr, &["consume", "--topic", "binary", "--from-beginning"]).stdout;
    assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 200, "one line per record");
    let template = "%p %o %T %k=%s [%h]\\n";
    let formatted =
        shale(&addr, &["consume", "--topic", "binary", "--from-beginning", "--template", template]);
    let formatted = String::from_utf8(formatted.stdout).unwrap();
    assert_eq!(formatted.lines().count(), 200, "{formatted}");
    // Partition 0's first record: no key; its value begins 0x00 '%' 'J' 'o' 0x94.
    let first = formatted.lines().find(|l| l.starts_with("0 0 ")).unwrap();
    assert!(first.starts_with("0 0 1700000000000 =\\x00%Jo\\x94"), "{first}");
    assert!(first.ends_with(" [text=none\\n0,raw=\\xff\\x00\\n\\x00]"), "{first}");

    let dump =
        shale(&addr, &["consume", "--topic", "binary", "--from-beginning", "--format", "json"]);
    shale(&addr, &["topic", "create", "copy", "--partitions", "2"]);
    common::shale_cli_with(
        &addr,
        &["produce", "--topic", "copy", "--format", "json"],
        Some(&dump.stdout),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let copy: Vec<_> = rt.block_on(async {
        let client = shale::client::Client::new(&addr).unwrap();
        common::read_all(&client, "copy").await.into_values().flatten().collect()
    });
    let by_partition = |mut v: Vec<Stored>| {
        v.sort_by_key(|s| s.0);
        v
    };
    assert_eq!(by_partition(stored(&copy)), by_partition(stored(&original)));
}

/// `shale schema`: the registry's REST API from the command line — register (printing
/// the ID), check (exit 1 with the reasons when incompatible), get by subject or ID, list,
/// config and mode (a subject without its own level shows the one that applies), delete;
/// a registry error is one line with Confluent's code.
#[test]
fn schema_commands_register_check_get_list_configure_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _broker =
        common::BrokerProcess::start_with(dir.path(), &["--schema-registry-listen", &listen]);
    let registry = format!("http://{listen}");
    let run = |args: &[&str]| -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_shale"))
            .arg("schema")
            .args(args)
            .env("SHALE_SCHEMA_REGISTRY", &registry)
            .env("SHALE_LOG", "warn")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let ok = |args: &[&str]| {
        let (success, stdout, stderr) = run(args);
        assert!(success, "shale schema {args:?} failed: {stderr}");
        stdout
    };
    let schema = |fields: &str| {
        let path = dir.path().join(format!("s{}.avsc", fields.len()));
        let text = format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().to_string()
    };
    let v1 = schema(r#"{"name":"id","type":"long"}"#);
    let v2 = schema(r#"{"name":"id","type":"long"},{"name":"qty","type":"int","default":1}"#);
    let bad = schema(r#"{"name":"id","type":"long"},{"name":"note","type":"string"}"#);

    assert_eq!(ok(&["register", "orders-value", "--file", &v1]), "1");
    assert_eq!(ok(&["check", "orders-value", "--file", &v2]), "compatible");
    let (success, _, stderr) = run(&["check", "orders-value", "--file", &bad]);
    assert!(!success, "an incompatible schema checked as compatible");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("incompatible with orders-value") && stderr.contains("'note'"),
        "{stderr}"
    );
    assert_eq!(ok(&["register", "orders-value", "--file", &v2]), "2");
    assert_eq!(ok(&["register", "copy-value", "--file", &v1]), "1", "the same schema, the same ID");
    let latest = ok(&["get", "orders-value"]);
    assert!(latest.contains(r#""name":"qty""#), "{latest}");
    assert_eq!(
        ok(&["get", "--id", "1"]),
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#
    );
    let v1_json: serde_json::Value =
        serde_json::from_str(&ok(&["get", "orders-value", "--version", "1", "--format", "json"]))
            .unwrap();
    assert_eq!(
        (v1_json["id"].as_i64(), v1_json["version"].as_i64()),
        (Some(1), Some(1)),
        "{v1_json}"
    );
    assert_eq!(ok(&["list"]), "copy-value\norders-value");
    assert_eq!(ok(&["list", "--prefix", "ord"]), "orders-value");

    assert_eq!(ok(&["config"]), "BACKWARD");
    assert_eq!(ok(&["config", "orders-value"]), "BACKWARD", "the global level applies");
    assert_eq!(ok(&["config", "orders-value", "--set", "full"]), "FULL");
    assert_eq!(ok(&["config", "orders-value"]), "FULL");
    assert_eq!(
        ok(&["config", "orders-value", "--normalize", "true"]),
        "FULL normalize=true",
        "the level stays"
    );
    assert_eq!(ok(&["config", "orders-value"]), "FULL normalize=true");
    ok(&["config", "orders-value", "--delete"]);
    assert_eq!(ok(&["config", "orders-value"]), "BACKWARD");
    assert_eq!(ok(&["mode"]), "READWRITE");

    assert_eq!(
        ok(&["delete", "orders-value", "--version", "2"]),
        "deleted orders-value version(s) 2"
    );
    assert_eq!(ok(&["delete", "orders-value"]), "deleted orders-value version(s) [1]");
    assert_eq!(ok(&["list"]), "copy-value");
    assert_eq!(ok(&["list", "--deleted"]), "copy-value\norders-value");
    ok(&["delete", "orders-value", "--permanent"]);
    let (success, _, stderr) = run(&["get", "orders-value"]);
    assert!(!success);
    assert_eq!(
        stderr, "error: schema registry: 40401 Subject 'orders-value' not found.",
        "{stderr}"
    );
    let (success, _, stderr) = run(&["get", "x", "--registry", "ftp://nowhere"]);
    assert!(!success && stderr.contains("not an http:// or https:// URL"), "{stderr}");
}
