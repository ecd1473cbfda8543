//! Transactions on gRPC with Shale's Rust client: the transactional producer (`init`,
//! `begin`, `send`, `send_offsets`, `commit`, `abort`), `read_committed` consumers (raw
//! batches filtered by the client, and records decoded by the broker), zombie fencing, an
//! operator's abort, and bad input.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use shale::client::{
    Client, Consumer, ConsumerConfig, GroupAdmin, GroupMetadata, Isolation, ProducerRecord,
    StartAt, TransactionalConfig, TransactionalProducer,
};
use shale::proto::pb;
use shale::record::control::{Marker, MarkerKind};

/// Every record of `topic`'s partitions from the start to the end `isolation` sees, as
/// (partition, value), read with or without multiplexing.
async fn read(client: &Client, topic: &str, isolation: Isolation, multiplex: bool) -> Vec<String> {
    let config =
        ConsumerConfig { stop_at_end: true, isolation, multiplex, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client.clone(), config);
    for p in 0..client.partition_count(topic).await.unwrap() {
        consumer.assign(topic, p, StartAt::Earliest).await.unwrap();
    }
    let mut out = Vec::new();
    while let Some(records) = consumer.poll().await.unwrap() {
        for r in records {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out.sort();
    out
}

/// The values a FETCH_FORMAT_RECORDS fetch of `topic`-`partition` decodes at `isolation`.
async fn read_decoded(client: &Client, topic: &str, partition: u32, isolation: i32) -> Vec<String> {
    let leader = client.leader(topic, partition).await.unwrap();
    let mut log = client.log_rpc(&leader).unwrap();
    let req = pb::FetchRequest {
        topic: topic.into(),
        partition,
        stop_at_end: true,
        format: pb::FetchFormat::Records as i32,
        isolation,
        ..Default::default()
    };
    let mut stream = log.fetch(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        for r in msg.records {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

fn record(topic: &str, value: String) -> ProducerRecord {
    ProducerRecord::new(topic, value)
}

async fn transactional(client: &Client, id: &str) -> TransactionalProducer {
    let mut config = TransactionalConfig::new(id);
    config.transaction_timeout = Duration::from_secs(30);
    TransactionalProducer::init(client.clone(), config).await.unwrap()
}

/// Two committed transactions around an aborted one, over two partitions, with offsets of
/// a group: `read_committed` readers (client-filtered batches, with and without
/// multiplexing, and broker-decoded records) see exactly the committed records, a
/// `read_uncommitted` one all of them; the epoch goes up at each end (transactions v2);
/// the group's offsets are those of the last commit, not of the abort.
#[tokio::test]
async fn committed_transactions_are_read_whole_and_aborted_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("tx-out", 2, 0, BTreeMap::new()).await.unwrap();
    client.admin().create_topic("tx-in", 1, 0, BTreeMap::new()).await.unwrap();
    let mut producer = transactional(&client, "copier").await;
    let (pid, first_epoch) = producer.producer_id().unwrap();
    let group = GroupMetadata { group: "g".into(), member_id: String::new(), member_epoch: 0 };
    let mut expected = Vec::new();
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin().unwrap();
        let mut deliveries = Vec::new();
        for i in 0..10 {
            let value = format!("r{round}-{i:02}");
            let rec = record("tx-out", value.clone()).key(format!("k{i}"));
            deliveries.push(producer.send(rec).await.unwrap());
            if commit {
                expected.push(value);
            }
        }
        for d in deliveries {
            d.await.unwrap();
        }
        let offsets = [("tx-in".to_string(), 0, 10 * (round + 1))];
        producer.send_offsets(&group, &offsets).await.unwrap();
        match commit {
            true => producer.commit().await.unwrap(),
            false => producer.abort().await.unwrap(),
        }
    }
    expected.sort();
    let (same_pid, epoch) = producer.producer_id().unwrap();
    assert_eq!((same_pid, epoch), (pid, first_epoch + 3), "one bump per end");
    // The markers follow the answers: wait for the last stable offsets to reach the ends.
    common::wait_for(Duration::from_secs(10), "both partitions stable", || {
        let client = client.clone();
        async move {
            let c = read(&client, "tx-out", Isolation::ReadCommitted, true).await;
            if c.len() == 20 { Ok(()) } else { Err(format!("{} read", c.len())) }
        }
    })
    .await;
    for multiplex in [true, false] {
        let got = read(&client, "tx-out", Isolation::ReadCommitted, multiplex).await;
        assert_eq!(got, expected, "read_committed, multiplex {multiplex}");
    }
    let all = read(&client, "tx-out", Isolation::ReadUncommitted, true).await;
    assert_eq!(all.len(), 30, "read_uncommitted sees the aborted records too");
    let mut decoded = Vec::new();
    for p in 0..2 {
        let committed = read_decoded(&client, "tx-out", p, pb::Isolation::ReadCommitted as i32);
        decoded.extend(committed.await);
        let everything = read_decoded(&client, "tx-out", p, 0).await;
        assert!(everything.iter().any(|v| v.starts_with("r1-")), "uncommitted decodes all");
    }
    decoded.sort();
    assert_eq!(decoded, expected, "broker-decoded read_committed records");
    // The offsets follow the markers too: a stable fetch (KIP-447, as a read_committed
    // consumer starts) waits for them; a plain one may still answer the previous commit's.
    let wait = shale::client::RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        total: Duration::from_secs(10),
    };
    let admin = GroupAdmin::new(client.clone());
    let offsets = admin.fetch_stable_offsets("g", &["tx-in".to_string()], wait).await.unwrap();
    let committed: Vec<(String, u32, i64)> =
        offsets.into_iter().map(|o| (o.topic, o.partition, o.offset)).collect();
    assert_eq!(committed, [("tx-in".to_string(), 0, 30)], "the last commit's offsets");
}

/// Offsets sent in an open transaction are not the group's yet: a stable fetch waits for
/// the transaction's end, a plain one answers the old offsets.
#[tokio::test]
async fn offsets_in_an_open_transaction_are_unstable_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("u-in", 1, 0, BTreeMap::new()).await.unwrap();
    client.admin().create_topic("u-out", 1, 0, BTreeMap::new()).await.unwrap();
    let mut producer = transactional(&client, "u").await;
    producer.begin().unwrap();
    producer.send(record("u-out", "x".into())).await.unwrap().await.unwrap();
    let group = GroupMetadata { group: "ug".into(), member_id: String::new(), member_epoch: 0 };
    producer.send_offsets(&group, &[("u-in".into(), 0, 7)]).await.unwrap();
    let admin = GroupAdmin::new(client.clone());
    let topics = ["u-in".to_string()];
    assert!(admin.fetch_offsets("ug", &topics).await.unwrap().is_empty(), "nothing committed");
    let quick = shale::client::RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(100),
        total: Duration::from_millis(300),
    };
    let e = admin.fetch_stable_offsets("ug", &topics, quick).await.unwrap_err();
    assert_eq!(e.reason, shale::error::Reason::UnstableOffsetCommit, "{e}");
    producer.commit().await.unwrap();
    let long = shale::client::RetryPolicy { total: Duration::from_secs(10), ..quick };
    let stable = admin.fetch_stable_offsets("ug", &topics, long).await.unwrap();
    assert_eq!(stable.iter().map(|o| o.offset).collect::<Vec<_>>(), [7]);
}

/// A second instance of a transactional id fences the first: the old one's records are
/// refused with a fencing error, its commit fails, and nothing of it is ever read
/// committed; the new one commits.
#[tokio::test]
async fn an_older_instance_is_fenced_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("z-out", 1, 0, BTreeMap::new()).await.unwrap();
    let mut zombie = transactional(&client, "z").await;
    zombie.begin().unwrap();
    zombie.send(record("z-out", "zombie-early".into())).await.unwrap().await.unwrap();
    let mut fresh = transactional(&client, "z").await;
    let late = zombie.send(record("z-out", "zombie-late".into())).await.unwrap().await;
    let e = late.expect_err("the old epoch is refused");
    assert_eq!(e.kind, shale::error::ErrorKind::Fenced, "{e}");
    let e = zombie.commit().await.expect_err("a fenced producer cannot commit");
    assert_eq!(e.kind, shale::error::ErrorKind::Fenced, "{e}");
    fresh.begin().unwrap();
    fresh.send(record("z-out", "fresh".into())).await.unwrap().await.unwrap();
    fresh.commit().await.unwrap();
    common::wait_for(Duration::from_secs(10), "the fresh commit to be readable", || {
        let client = client.clone();
        async move {
            let got = read(&client, "z-out", Isolation::ReadCommitted, true).await;
            if got == ["fresh"] { Ok(()) } else { Err(format!("{got:?}")) }
        }
    })
    .await;
}

/// An operator's abort of a hung transaction (`Transactions.AbortTransaction`, what
/// `shale txn abort` calls) moves the last stable offset past it, and listing and
/// describing show it on the way.
#[tokio::test]
async fn an_operator_aborts_a_hung_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("h-out", 1, 0, BTreeMap::new()).await.unwrap();
    let mut hung = transactional(&client, "hung").await;
    hung.begin().unwrap();
    hung.send(record("h-out", "stuck".into())).await.unwrap().await.unwrap();
    let mut rpc = client.txn_rpc().unwrap();
    let listed = rpc.list_transactions(pb::ListTransactionsRequest::default()).await.unwrap();
    let listed = listed.into_inner().transactions;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].transactional_id.as_str(), listed[0].state.as_str()),
        ("hung", "Ongoing")
    );
    let described = rpc
        .describe_transaction(pb::DescribeTransactionRequest { transactional_id: "hung".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.partitions.len(), 1, "{described:?}");
    assert_eq!(described.partitions[0].topic, "h-out");
    let lso = |client: Client| async move {
        let req = pb::ListOffsetsRequest {
            topic: "h-out".into(),
            partition: 0,
            spec: Some(pb::list_offsets_request::Spec::LastStable(true)),
        };
        let mut log = client.log_rpc(client.bootstrap()).unwrap();
        log.list_offsets(req).await.unwrap().into_inner().offset
    };
    assert_eq!(lso(client.clone()).await, 0, "held by the open transaction");
    rpc.abort_transaction(pb::AbortTransactionRequest { transactional_id: "hung".into() })
        .await
        .unwrap();
    let again = rpc
        .abort_transaction(pb::AbortTransactionRequest { transactional_id: "hung".into() })
        .await
        .unwrap_err();
    assert!(again.message().contains("no open transaction"), "{again:?}");
    common::wait_for(Duration::from_secs(10), "the abort marker", || {
        let client = client.clone();
        async move {
            let at = lso(client).await;
            if at == 2 { Ok(()) } else { Err(format!("last stable offset {at}")) }
        }
    })
    .await;
    assert!(read(&client, "h-out", Isolation::ReadCommitted, true).await.is_empty());
    // Its producer learns of the abort at its commit, and may go on after aborting (v2).
    let e = hung.commit().await.expect_err("an aborted transaction does not commit");
    assert_eq!(e.reason, shale::error::Reason::InvalidTxnState, "{e}");
    assert!(e.message.contains("CompleteAbort"), "{e}");
    hung.abort().await.unwrap();
    hung.begin().unwrap();
    hung.send(record("h-out", "after".into())).await.unwrap().await.unwrap();
    hung.commit().await.unwrap();
    common::wait_for(Duration::from_secs(10), "the next transaction's commit", || {
        let client = client.clone();
        async move {
            let got = read(&client, "h-out", Isolation::ReadCommitted, true).await;
            if got == ["after"] { Ok(()) } else { Err(format!("{got:?}")) }
        }
    })
    .await;
}

/// Bad input gets a precise error and stores nothing: an end for an unknown id, plain
/// records with a transactional id, an isolation that does not exist.
#[tokio::test]
async fn bad_transactional_input_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("b-out", 1, 0, BTreeMap::new()).await.unwrap();
    let mut rpc = client.txn_rpc().unwrap();
    let end = pb::EndTransactionRequest {
        transactional_id: "nobody".into(),
        producer_id: 5,
        producer_epoch: 0,
        commit: true,
    };
    let e = rpc.end_transaction(end).await.unwrap_err();
    assert!(e.message().contains("nobody") && e.message().contains("producer id 5"), "{e:?}");
    let mut log = client.log_rpc(client.bootstrap()).unwrap();
    let mut plain = common::produce_req("b-out", 0, "v");
    plain.payload = Some(pb::produce_request::Payload::Records(pb::Records {
        records: vec![pb::Record { value: Some("v".into()), ..Default::default() }],
        compression: 0,
    }));
    plain.transactional_id = "b".into();
    let e = log.produce(plain).await.unwrap_err();
    assert!(e.message().contains("\"b\"") && e.message().contains("plain records"), "{e:?}");
    let bad = pb::FetchRequest { topic: "b-out".into(), isolation: 7, ..Default::default() };
    let e = log.fetch(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("isolation 7"), "{e:?}");
    let described = client.admin().describe_topic("b-out").await.unwrap();
    assert_eq!(described.partitions[0].high_watermark, 0, "nothing stored");
}

/// `shale txn list|describe|abort` as an operator runs them against a hung transaction.
#[tokio::test]
async fn the_txn_commands_list_describe_and_abort_a_hung_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let addr = server.addr().to_string();
    client.admin().create_topic("c-out", 1, 0, BTreeMap::new()).await.unwrap();
    let mut hung = transactional(&client, "cli-hung").await;
    hung.begin().unwrap();
    hung.send(record("c-out", "stuck".into())).await.unwrap().await.unwrap();
    let (pid, _) = hung.producer_id().unwrap();
    let shale = |args: &[&str]| {
        let addr = addr.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            let run = move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_shale"))
                    .args(&args)
                    .env("SHALE_BROKER", addr)
                    .env("SHALE_LOG", "warn")
                    .output()
                    .unwrap()
            };
            let out = tokio::task::spawn_blocking(run).await.unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let (ok, listed, _) = shale(&["txn", "list"]).await;
    assert!(ok && listed.contains(&format!("cli-hung\t{pid}\tOngoing\t1")), "{listed}");
    let (ok, none, _) = shale(&["txn", "list", "--state", "CompleteCommit"]).await;
    assert!(ok && !none.contains("cli-hung"), "{none}");
    let (ok, json, _) = shale(&["txn", "describe", "cli-hung", "--format", "json"]).await;
    assert!(ok, "{json}");
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((d["state"].as_str(), d["producer_id"].as_i64()), (Some("Ongoing"), Some(pid)));
    assert_eq!(d["partitions"], serde_json::json!(["c-out-0"]));
    let (ok, said, _) = shale(&["txn", "abort", "cli-hung"]).await;
    assert!(ok && said.contains("aborted the open transaction of cli-hung"), "{said}");
    let (ok, _, err) = shale(&["txn", "abort", "cli-hung"]).await;
    assert!(!ok && err.contains("no open transaction") && err.trim().lines().count() == 1, "{err}");
    let (ok, _, err) = shale(&["txn", "list", "--state", "Bogus"]).await;
    assert!(!ok && err.contains("\"Bogus\" is not a transaction state"), "{err}");
}

/// The control batches of `topic`-0 from the start, as stored (raw fetch): their offsets.
async fn markers(client: &Client, topic: &str) -> Vec<i64> {
    marker_kinds(client, topic).await.into_iter().map(|(offset, _)| offset).collect()
}

/// The transaction markers of `topic`-0 from the start, as stored: offset and kind.
async fn marker_kinds(client: &Client, topic: &str) -> Vec<(i64, MarkerKind)> {
    let leader = client.leader(topic, 0).await.unwrap();
    let mut log = client.log_rpc(&leader).unwrap();
    let req = pb::FetchRequest { topic: topic.into(), stop_at_end: true, ..Default::default() };
    let mut stream = log.fetch(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        for frame in shale::record::BatchFrames::new(&msg.batches, usize::MAX) {
            let (h, range) = frame.unwrap();
            if h.is_control() {
                let marker = Marker::read(&msg.batches.slice(range)).unwrap();
                out.push((h.base_offset, marker.kind));
            }
        }
    }
    out
}

/// A broker's settings in `dir` whose cleaner looks every 50 ms and whose active segments
/// roll by time every 50 ms.
fn cleaning_settings(dir: &std::path::Path) -> shale::settings::Settings {
    let mut s = common::settings(dir);
    s.log.cleaner_backoff_ms = 50;
    s.log.retention_check_interval_ms = 50;
    s
}

/// A compacted topic of one partition, cleaned as soon as anything is dirty, with small
/// segments rolled every 200 ms and `delete.retention.ms=0`.
async fn create_cleaned_topic(client: &Client, topic: &str) {
    let configs = common::configs(&[
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("segment.ms", "200"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "0"),
    ]);
    client.admin().create_topic(topic, 1, 0, configs).await.unwrap();
}

/// On a compacted topic with `delete.retention.ms=0`, the cleaner removes the commit
/// markers of transactions whose records were all overwritten, and keeps those of
/// transactions with records left; after a restart (the producer state rebuilt from the
/// cleaned log) the last stable offset is the high watermark and a read_committed reader
/// gets each key's latest committed value.
#[tokio::test]
async fn the_cleaner_removes_commit_markers_whose_transaction_left_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || cleaning_settings(dir.path());
    let server = common::start(settings()).await;
    let client = common::client(&server);
    create_cleaned_topic(&client, "ct").await;
    let mut producer = transactional(&client, "ct-app").await;
    for i in 0..60 {
        producer.begin().unwrap();
        // The first transaction's key is never written again: its record and marker stay.
        let key = if i == 0 { "solo".to_string() } else { format!("k{}", i % 3) };
        let rec = record("ct", format!("{key}={i}")).key(key).partition(0);
        producer.send(rec).await.unwrap().await.unwrap();
        match i % 10 == 9 {
            true => producer.abort().await.unwrap(),
            false => producer.commit().await.unwrap(),
        }
    }
    common::wait_for(Duration::from_secs(60), "commit markers removed", || {
        let client = client.clone();
        async move {
            let left = markers(&client, "ct").await;
            if left.len() <= 15 { Ok(()) } else { Err(format!("{} markers", left.len())) }
        }
    })
    .await;
    // A restart that replays the whole cleaned log (no producer snapshots): a transaction
    // whose records stayed must still be ended by its marker.
    drop(client);
    server.shutdown().await.unwrap();
    for path in common::walkdir(dir.path()) {
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let server = common::start(settings()).await;
    let client = common::client(&server);
    let left = markers(&client, "ct").await;
    assert!(left.len() >= 5, "the markers of 0, 56, 57, 58 and the last (59) stay: {left:?}");
    let (lso, hw) = stable_offsets(&client, "ct").await;
    assert_eq!(lso, hw, "no transaction seems open after the restart");
    let got = read(&client, "ct", Isolation::ReadCommitted, true).await;
    let latest: Vec<String> =
        got.iter().filter(|v| ["k0=57", "k1=58", "k2=56"].contains(&v.as_str())).cloned().collect();
    assert_eq!(latest.len(), 3, "each key's latest committed value: {got:?}");
    assert!(got.contains(&"solo=0".to_string()), "{got:?}");
    assert!(!got.iter().any(|v| v.ends_with("=59") || v.ends_with("=49")), "aborted: {got:?}");
}

/// On a compacted topic with `delete.retention.ms=0`, the cleaner removes the abort
/// markers too, once their transactions' records are gone, and the partition forgets those
/// transactions first, in memory and in its producer snapshots: one producer's committed
/// records after each removed abort stay visible to read_committed readers, before and
/// after a restart that loads the snapshots (a reader told of an aborted transaction skips
/// its producer's batches until an abort marker, so a transaction remembered without its
/// marker would hide every later commit).
#[tokio::test]
async fn the_cleaner_removes_abort_markers_and_forgets_their_transactions_first() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || cleaning_settings(dir.path());
    let server = common::start(settings()).await;
    let client = common::client(&server);
    create_cleaned_topic(&client, "ca").await;
    let mut producer = transactional(&client, "ca-app").await;
    let mut committed = Vec::new();
    let mut txn = |i: usize, abort: bool| {
        let value = format!("{}{i}", if abort { "a" } else { "c" });
        if !abort {
            committed.push(value.clone());
        }
        (record("ca", value.clone()).key(value).partition(0), abort)
    };
    let mut written = Vec::new();
    for i in 0..40 {
        written.push(txn(i, i % 4 == 3));
    }
    let aborts =
        |m: &[(i64, MarkerKind)]| m.iter().filter(|(_, k)| *k == MarkerKind::Abort).count();
    // Each round commits one more transaction (the log grows dirty and rolls, so the
    // cleaner cleans again) until no abort marker is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut i = 40;
    loop {
        for (rec, abort) in written.drain(..) {
            producer.begin().unwrap();
            producer.send(rec).await.unwrap().await.unwrap();
            match abort {
                true => producer.abort().await.unwrap(),
                false => producer.commit().await.unwrap(),
            }
        }
        let left = marker_kinds(&client, "ca").await;
        if aborts(&left) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited 60 s for the cleaner to remove the 10 abort markers: {} left",
            aborts(&left)
        );
        written.push(txn(i, false));
        i += 1;
    }
    let expected = {
        let mut c = committed.clone();
        c.sort();
        c
    };
    // The last commit is answered before its marker is written (as in Kafka: see "What is
    // atomic" in docs/architecture.md), so its records are read committed once it is in.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for multiplex in [true, false] {
        let mut got = read(&client, "ca", Isolation::ReadCommitted, multiplex).await;
        while got != expected && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            got = read(&client, "ca", Isolation::ReadCommitted, multiplex).await;
        }
        assert_eq!(got, expected, "every committed record, no aborted one (within 20 s)");
    }
    drop(client);
    server.shutdown().await.unwrap();
    let snapshots = common::walkdir(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .count();
    assert!(snapshots > 0, "the restart loads a producer snapshot");
    let server = common::start(settings()).await;
    let client = common::client(&server);
    let got = read(&client, "ca", Isolation::ReadCommitted, true).await;
    assert_eq!(got, expected, "after the restart: every committed record, no aborted one");
    assert_eq!(read_decoded(&client, "ca", 0, 1).await.len(), expected.len());
    drop(server);
}

/// One call of the random sessions below. `None` for a producer id, epoch or sequence
/// means the id's current one (or the next sequence), so that sessions also open, fill
/// and end real transactions.
#[derive(Debug, Clone)]
enum Call {
    Init { id: String, timeout_ms: u32 },
    Produce { id: String, producer: Option<(i64, i32)>, seq: Option<i32>, plain: bool },
    SendOffsets { id: String, producer: Option<(i64, i32)>, group: String, offset: i64 },
    End { id: String, producer: Option<(i64, i32)>, commit: bool },
    List { states: Vec<String>, producer_ids: Vec<i64>, open_longer_than_ms: i64 },
    Describe { id: String },
    Abort { id: String },
    Fetch { isolation: i32 },
}

fn calls() -> impl Strategy<Value = Vec<Call>> {
    let id = prop_oneof![
        4 => Just("fz".to_string()),
        2 => Just("fy".to_string()),
        1 => Just(String::new()),
        1 => "\\PC{0,40}",
    ];
    let producer = prop_oneof![
        6 => Just(None),
        1 => (-2i64..4, -2i32..4).prop_map(Some),
        1 => (any::<i64>(), any::<i32>()).prop_map(Some),
    ];
    let seq = prop_oneof![8 => Just(None), 1 => any::<i32>().prop_map(Some)];
    let state =
        prop_oneof![Just("Ongoing".to_string()), Just("CompleteCommit".to_string()), "\\PC{0,12}"];
    let call = prop_oneof![
        1 => (id.clone(), prop_oneof![Just(0u32), 1u32..3_600_000, any::<u32>()])
            .prop_map(|(id, timeout_ms)| Call::Init { id, timeout_ms }),
        6 => (id.clone(), producer.clone(), seq, proptest::bool::weighted(0.1))
            .prop_map(|(id, producer, seq, plain)| Call::Produce { id, producer, seq, plain }),
        1 => (id.clone(), producer.clone(), "[a-z]{0,3}", any::<i64>()).prop_map(
            |(id, producer, group, offset)| Call::SendOffsets { id, producer, group, offset }),
        2 => (id.clone(), producer, any::<bool>())
            .prop_map(|(id, producer, commit)| Call::End { id, producer, commit }),
        1 => (proptest::collection::vec(state, 0..3), proptest::collection::vec(any::<i64>(), 0..3), any::<i64>())
            .prop_map(|(states, producer_ids, open_longer_than_ms)| Call::List { states, producer_ids, open_longer_than_ms }),
        1 => id.clone().prop_map(|id| Call::Describe { id }),
        1 => id.prop_map(|id| Call::Abort { id }),
        1 => prop_oneof![0i32..2, any::<i32>()].prop_map(|isolation| Call::Fetch { isolation }),
    ];
    proptest::collection::vec(call, 1..30)
}

/// What the random sessions did to the two ids' transactions, as far as their answers
/// tell: each id's producer id, epoch and next sequence, the records of its open
/// transaction, and the records committed.
#[derive(Default)]
struct Model {
    producers: BTreeMap<String, (i64, i16, i32)>,
    open: BTreeMap<String, Vec<String>>,
    committed: Vec<String>,
    next_value: u64,
    /// The producer ids with a batch in the partition.
    written: std::collections::HashSet<i64>,
    /// Transactional records committed, and aborted; calls refused.
    txn_committed: usize,
    txn_aborted: usize,
    refused: usize,
}

/// Calls refused by the random sessions.
static REFUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A status the Transactions and Log services may answer bad calls with: a client's error,
/// never the broker's, with a message.
fn refused_well(s: &tonic::Status) -> Result<(), TestCaseError> {
    use tonic::Code;
    REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    prop_assert!(
        !matches!(s.code(), Code::Internal | Code::Unknown | Code::Unimplemented | Code::DataLoss),
        "the broker failed on a bad call: {s:?}"
    );
    prop_assert!(!s.message().is_empty(), "{s:?}");
    Ok(())
}

/// `topic`-0's last stable offset and high watermark.
async fn stable_offsets(client: &Client, topic: &str) -> (i64, i64) {
    use pb::list_offsets_request::Spec;
    let mut offsets = Vec::new();
    for spec in [Spec::LastStable(true), Spec::Latest(true)] {
        let req = pb::ListOffsetsRequest { topic: topic.into(), partition: 0, spec: Some(spec) };
        let mut log = client.log_rpc(client.bootstrap()).unwrap();
        offsets.push(log.list_offsets(req).await.unwrap().into_inner().offset);
    }
    (offsets[0], offsets[1])
}

/// Waits until `topic`-0's last stable offset is its high watermark: a commit or abort is
/// answered once decided, and its markers follow.
async fn stable(client: &Client, topic: &str) {
    common::wait_for(Duration::from_secs(30), "no transaction left open", || async move {
        match stable_offsets(client, topic).await {
            (lso, hw) if lso == hw => Ok(()),
            (lso, hw) => Err(format!("last stable offset {lso} < high watermark {hw}")),
        }
    })
    .await;
}

/// Random sessions of transactional calls on gRPC — ids empty, unknown or Unicode,
/// producer ids and epochs stale, random or out of int16, timeouts past int32, unknown
/// states, bad isolations, sequences out of order — mixed with
/// the real ones of two ids: every bad call is refused with a client's status naming the
/// bad value where it is a conversion's (epoch, timeout, isolation), never a broker
/// failure; afterwards the broker still serves, no transaction is left open, and a
/// read_committed reader gets exactly the records of the commits the answers reported.
#[test]
fn random_transactional_calls_never_hurt_the_broker() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(common::start(common::settings(dir.path())));
    let client = common::client(&server);
    rt.block_on(client.admin().create_topic("fz-t", 1, 0, BTreeMap::new())).unwrap();
    let model = std::cell::RefCell::new(Model::default());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 60,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&calls(), |session| {
            let mut m = model.borrow_mut();
            for call in session {
                rt.block_on(fuzz_call(&client, &mut m, call))?;
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(async {
        let mut m = model.into_inner();
        m.refused = REFUSED.load(std::sync::atomic::Ordering::Relaxed);
        let mut rpc = client.txn_rpc().unwrap();
        for id in ["fz", "fy"] {
            let req = pb::AbortTransactionRequest { transactional_id: id.into() };
            if let Err(s) = rpc.abort_transaction(req).await {
                assert!(s.message().contains("no open transaction"), "{s:?}");
            }
        }
        stable(&client, "fz-t").await;
        let mut expected = m.committed.clone();
        expected.sort();
        let got = read(&client, "fz-t", Isolation::ReadCommitted, true).await;
        assert_eq!(got, expected, "read_committed: exactly the committed records");
        println!(
            "{} transactional records committed, {} aborted, {} calls refused",
            m.txn_committed, m.txn_aborted, m.refused
        );
        assert!(
            m.txn_committed > 0 && m.txn_aborted > 0,
            "the sessions also ended real transactions"
        );
        // The broker still serves a transactional producer.
        let mut producer = transactional(&client, "fz-after").await;
        producer.begin().unwrap();
        producer.send(record("fz-t", "after".into()).partition(0)).await.unwrap().await.unwrap();
        producer.commit().await.unwrap();
        m.committed.push("after".into());
        stable(&client, "fz-t").await;
        let got = read(&client, "fz-t", Isolation::ReadCommitted, false).await;
        assert_eq!(got.len(), m.committed.len(), "{got:?}");
        drop(client);
        server.shutdown().await.unwrap();
    });
}

/// Makes `call` and checks its answer against `m`, which it updates.
async fn fuzz_call(client: &Client, m: &mut Model, call: Call) -> Result<(), TestCaseError> {
    let mut rpc = client.txn_rpc().unwrap();
    let current = |m: &Model, id: &str, given: Option<(i64, i32)>| {
        given
            .or_else(|| m.producers.get(id).map(|(p, e, _)| (*p, i32::from(*e))))
            .unwrap_or((-1, -1))
    };
    // An epoch out of int16 is named, unless an empty id was refused first.
    let names_epoch = |s: &tonic::Status, epoch: i32, id: &str| {
        i16::try_from(epoch).is_ok() || id.is_empty() || s.message().contains(&epoch.to_string())
    };
    match call {
        Call::Init { id, timeout_ms } => {
            let req = pb::InitTransactionsRequest {
                transactional_id: id.clone(),
                transaction_timeout_ms: timeout_ms,
            };
            match rpc.init_transactions(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    m.producers.insert(id.clone(), (r.producer_id, r.producer_epoch as i16, 0));
                    m.open.remove(&id);
                }
                Err(s) => {
                    refused_well(&s)?;
                    if i32::try_from(timeout_ms).is_err() && !id.is_empty() {
                        prop_assert!(s.message().contains(&timeout_ms.to_string()), "{s:?}");
                    }
                }
            }
        }
        Call::Produce { id, producer, seq, plain } => {
            let (pid, epoch) = current(m, &id, producer);
            let next = m
                .producers
                .get(&id)
                .filter(|(p, e, _)| (*p, i32::from(*e)) == (pid, epoch))
                .map_or(0, |s| s.2);
            let seq = seq.unwrap_or(next);
            m.next_value += 1;
            let value = format!("{id}-{}", m.next_value);
            // A plain batch: neither idempotent nor transactional.
            let mut req = common::produce_req("fz-t", 0, &value);
            req.transactional_id = id.clone();
            if !plain {
                let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None)
                    .with_producer(pid, epoch as i16, seq)
                    .transactional();
                b.push(shale::record::Record {
                    key: None,
                    value: Some(value.clone().into()),
                    headers: vec![],
                    timestamp_ms: 1,
                });
                req.payload = Some(pb::produce_request::Payload::Batches(b.build()));
            }
            let mut log = client.log_rpc(client.bootstrap()).unwrap();
            match log.produce(req).await {
                // Not transactional: written as it comes, whatever the id (as Kafka does).
                Ok(_) if plain => m.committed.push(value),
                Ok(_) => {
                    // A producer new to the partition may start at any sequence (as in
                    // Kafka: its state may have gone with retention); then in order.
                    let known = m.written.contains(&pid);
                    let entry = m.producers.get_mut(&id);
                    prop_assert!(
                        entry.is_some(),
                        "accepted from {id:?} at ({pid}, {epoch}): {value}"
                    );
                    let entry = entry.unwrap();
                    prop_assert_eq!((entry.0, i32::from(entry.1)), (pid, epoch));
                    prop_assert!(
                        !known || entry.2 == seq,
                        "sequence {seq} accepted, {} expected",
                        entry.2
                    );
                    entry.2 = seq.wrapping_add(1);
                    m.written.insert(pid);
                    m.open.entry(id).or_default().push(value);
                }
                Err(s) => refused_well(&s)?,
            }
        }
        Call::SendOffsets { id, producer, group, offset } => {
            let (producer_id, producer_epoch) = current(m, &id, producer);
            let req = pb::SendOffsetsRequest {
                transactional_id: id.clone(),
                producer_id,
                producer_epoch,
                group,
                offsets: vec![pb::OffsetCommit {
                    topic: "fz-t".into(),
                    partition: 0,
                    offset,
                    ..Default::default()
                }],
                ..Default::default()
            };
            if let Err(s) = rpc.send_offsets(req).await {
                refused_well(&s)?;
                prop_assert!(names_epoch(&s, producer_epoch, &id), "{s:?}");
            }
        }
        Call::End { id, producer, commit } => {
            let (producer_id, producer_epoch) = current(m, &id, producer);
            let req = pb::EndTransactionRequest {
                transactional_id: id.clone(),
                producer_id,
                producer_epoch,
                commit,
            };
            match rpc.end_transaction(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    m.producers.insert(id.clone(), (r.producer_id, r.producer_epoch as i16, 0));
                    let records = m.open.remove(&id).unwrap_or_default();
                    match commit {
                        true => {
                            m.txn_committed += records.len();
                            m.committed.extend(records);
                        }
                        false => m.txn_aborted += records.len(),
                    }
                }
                Err(s) => {
                    refused_well(&s)?;
                    prop_assert!(names_epoch(&s, producer_epoch, &id), "{s:?}");
                }
            }
        }
        Call::List { states, producer_ids, open_longer_than_ms } => {
            let req = pb::ListTransactionsRequest { states, producer_ids, open_longer_than_ms };
            if let Err(s) = rpc.list_transactions(req).await {
                refused_well(&s)?;
            }
        }
        Call::Describe { id } => {
            if let Err(s) = rpc
                .describe_transaction(pb::DescribeTransactionRequest { transactional_id: id })
                .await
            {
                refused_well(&s)?;
            }
        }
        Call::Abort { id } => {
            match rpc
                .abort_transaction(pb::AbortTransactionRequest { transactional_id: id.clone() })
                .await
            {
                // The operator's abort fences the producer: its id's next calls start over.
                Ok(_) => {
                    m.open.remove(&id);
                    if let Some(p) = m.producers.get_mut(&id) {
                        p.1 = p.1.wrapping_add(1);
                        p.2 = 0;
                    }
                }
                Err(s) => refused_well(&s)?,
            }
        }
        Call::Fetch { isolation } => {
            let mut log = client.log_rpc(client.bootstrap()).unwrap();
            let req = pb::FetchRequest {
                topic: "fz-t".into(),
                isolation,
                stop_at_end: true,
                ..Default::default()
            };
            match log.fetch(req).await {
                Ok(stream) => {
                    prop_assert!((0..2).contains(&isolation));
                    let mut stream = stream.into_inner();
                    while let Some(msg) = stream.message().await.transpose() {
                        if let Err(s) = msg {
                            refused_well(&s)?;
                            break;
                        }
                    }
                }
                Err(s) => {
                    refused_well(&s)?;
                    prop_assert!(s.message().contains(&format!("isolation {isolation}")), "{s:?}");
                }
            }
        }
    }
    Ok(())
}
