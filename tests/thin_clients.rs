//! The thin-client examples, run as a new user would run them: `examples/python/
//! quickstart.py` (grpcio, the protos loaded at run time) and `examples/typescript/
//! quickstart.ts` (@grpc/grpc-js and @grpc/proto-loader, compiled with tsc), against a
//! `shale standalone` broker over TLS with a bearer token. Each creates a topic, produces
//! with keys and headers, reads back decoded, joins a group and commits; then it prints a
//! topic the Rust producer wrote with every codec, and every key, value and header must be
//! what was written. `scripts/grpc-clients.sh install` installs the clients; missing, the
//! test fails when `CI=true`.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/pki.rs"]
mod pki;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use shale::client::tls::TlsOptions;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::record::Compression;

const TOKEN: &str = "thin-0123456789abcdef";
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PER_CODEC: usize = 30;

/// What `scripts/grpc-clients.sh WHAT` prints; a missing client fails the test under CI.
fn installed(what: &str) -> Option<PathBuf> {
    let script = kafka::root().join("scripts/grpc-clients.sh");
    let out = Command::new(script).arg(what).output().ok();
    let found = out.filter(|o| o.status.success());
    let path = found.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if path.is_none() {
        let msg = "the gRPC clients are not installed: run `scripts/grpc-clients.sh install`";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("note: skipping: {msg}");
    }
    path
}

/// Record `i` of codec `codec`: binary value, key and a header.
fn record(codec: &str, i: usize) -> (String, Vec<u8>, String) {
    let value: Vec<u8> = (0..64 + i).map(|j| (i * 7 + j * 13) as u8).collect();
    (format!("{codec}-{i}"), value, format!("{codec}-h{i}"))
}

/// A broker over TLS that knows the token, with a topic the Rust producer wrote with every
/// codec; its address and the CA file.
struct Broker {
    _process: common::BrokerProcess,
    addr: String,
    ca: PathBuf,
}

async fn broker(dir: &Path) -> Broker {
    let ca = pki::Ca::new("thin clients CA");
    let ca_file = ca.write(&dir.join("ca.crt"));
    let leaf = ca.write_leaf(dir, "broker", "broker-1");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("User:thin {TOKEN}\n")).unwrap();
    let config = dir.join("shale.toml");
    std::fs::write(&config, format!("[auth]\ntoken_file = {:?}\n", tokens.display().to_string()))
        .unwrap();
    let args = [
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--kafka-listen",
        "none",
    ];
    let process = common::BrokerProcess::start_with(&dir.join("data"), &args);
    let addr = process.addr.clone();
    let tls = TlsOptions::from_files(Some(&ca_file), None, None).unwrap();
    let client = Client::builder(&addr).tls(tls).token(TOKEN).unwrap().build().unwrap();
    client.admin().create_topic("codecs", 1, 1, Default::default()).await.unwrap();
    for codec in CODECS {
        let config = ProducerConfig {
            compression: Compression::parse(codec).unwrap(),
            linger: Duration::from_millis(5),
            ..Default::default()
        };
        let producer = Producer::new(client.clone(), config);
        for i in 0..PER_CODEC {
            let (key, value, header) = record(codec, i);
            let r = ProducerRecord::new("codecs", value).key(key).header(header, "x").partition(0);
            producer.send(r).await.unwrap();
        }
        producer.flush().await.unwrap();
    }
    Broker { _process: process, addr, ca: ca_file }
}

/// Checks a quickstart's output: its own round trip, its group's commit, and the JSON lines
/// of the codecs topic.
fn check(what: &str, run: &kafka::Run, topic: &str) {
    assert!(run.ok, "{what} failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(out.contains("whoami: User:thin"), "{what}: {out}");
    assert!(out.contains("produced offsets 0..99"), "{what}: {out}");
    assert!(out.contains("read 100 records back; the first: user-0=order 0"), "{what}: {out}");
    assert!(out.contains(&format!("committed: {topic}-0@100")), "{what}: {out}");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), CODECS.len() * PER_CODEC, "{what}: records of the codecs topic");
    let expected = CODECS.iter().flat_map(|c| (0..PER_CODEC).map(move |i| record(c, i)));
    for (n, (line, (key, value, header))) in lines.iter().zip(expected).enumerate() {
        assert_eq!(line["offset"], n, "{what}");
        assert_eq!(b64(line["key"].as_str().unwrap()), key.as_bytes(), "{what} key at {n}");
        assert_eq!(b64(line["value"].as_str().unwrap()), value, "{what} value at {n}");
        assert_eq!(line["headers"][0][0], header, "{what} header at {n}");
        assert_eq!(b64(line["headers"][0][1].as_str().unwrap()), b"x", "{what} header at {n}");
        assert!(line["timestamp_ms"].as_i64().unwrap() > 0, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_quickstart_runs_over_tls_with_a_token_and_reads_every_codec() {
    let Some(python) = installed("python") else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let mut cmd = Command::new(python);
    cmd.arg(kafka::root().join("examples/python/quickstart.py"));
    cmd.args([&b.addr, b.ca.to_str().unwrap(), TOKEN, "orders-py", "codecs"]);
    let run = kafka::run(cmd, Duration::from_secs(60));
    check("examples/python/quickstart.py", &run, "orders-py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_quickstart_runs_over_tls_with_a_token_and_reads_every_codec() {
    let Some(node_dir) = installed("node-dir") else { return };
    // Compiled with the pinned tsc beside its node_modules, as `npm ci && npx tsc -p .` in
    // examples/typescript would.
    let build = tempfile::tempdir_in(&node_dir).unwrap();
    let source = kafka::root().join("examples/typescript");
    for file in ["quickstart.ts", "tsconfig.json"] {
        std::fs::copy(source.join(file), build.path().join(file)).unwrap();
    }
    let mut tsc = Command::new("node");
    tsc.arg(node_dir.join("node_modules/typescript/bin/tsc")).args(["-p"]).arg(build.path());
    let compiled = kafka::run(tsc, Duration::from_secs(120));
    assert!(compiled.ok, "tsc failed:\n{}\n{}", compiled.stdout, compiled.stderr);

    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let mut cmd = Command::new("node");
    cmd.arg(build.path().join("dist/quickstart.js"));
    cmd.args([&b.addr, b.ca.to_str().unwrap(), TOKEN, "orders-ts", "codecs"]);
    cmd.env("SHALE_PROTO_DIR", kafka::root().join("crates/proto/proto"));
    let run = kafka::run(cmd, Duration::from_secs(60));
    check("examples/typescript/quickstart.ts", &run, "orders-ts");
}
