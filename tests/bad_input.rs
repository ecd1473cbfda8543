//! Every kind of bad input gets a precise status naming the bad value, and no input —
//! random or mutated bytes included — panics the broker or corrupts the log.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use shale::proto::pb;
use shale::proto::pb::log_client::LogClient;
use shale::proto::status::from_status;
use shale::record::{BatchBuilder, Compression, Record};
use tonic::Code;

fn batch(values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for v in values {
        b.push(Record {
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
            timestamp_ms: 1,
        });
    }
    b.build()
}

fn produce_req(topic: &str, partition: u32, bytes: Bytes) -> pb::ProduceRequest {
    pb::ProduceRequest {
        topic: topic.into(),
        partition,
        acks: pb::Acks::All as i32,
        payload: Some(pb::produce_request::Payload::Batches(bytes)),
        correlation_id: 0,
        timeout_ms: 0,
        transactional_id: String::new(),
    }
}

struct Fixture {
    server: shale::server::RunningServer,
    log: LogClient<shale::client::Transport>,
    client: shale::client::Client,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client
        .admin()
        .create_topic("t", 2, 0, [("max.message.bytes".to_string(), "4096".to_string())].into())
        .await
        .unwrap();
    let log = client.log_rpc(&server.addr().to_string()).unwrap();
    Fixture { server, log, client, _dir: dir }
}

fn assert_status(status: &tonic::Status, code: Code, reason: &str, mentions: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    let e = from_status(status);
    assert_eq!(e.reason, reason, "{status:?}");
    for m in mentions {
        assert!(
            status.message().contains(m),
            "message {:?} should mention {m:?}",
            status.message()
        );
    }
}

#[tokio::test]
async fn unknown_topic() {
    let mut f = fixture().await;
    let s = f.log.produce(produce_req("nope", 0, batch(&["a"]))).await.unwrap_err();
    assert_status(&s, Code::NotFound, "UNKNOWN_TOPIC", &["\"nope\""]);
    let s = f.client.admin().describe_topic("nope").await.unwrap_err();
    assert_eq!(s.reason, "UNKNOWN_TOPIC");
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn partition_out_of_range() {
    let mut f = fixture().await;
    let s = f.log.produce(produce_req("t", 7, batch(&["a"]))).await.unwrap_err();
    assert_status(&s, Code::NotFound, "UNKNOWN_PARTITION", &["partition 7", "2 partitions"]);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn offset_out_of_range_names_the_valid_range() {
    let mut f = fixture().await;
    f.log.produce(produce_req("t", 0, batch(&["a", "b", "c"]))).await.unwrap();
    let req = pb::FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset: 42,
        max_bytes: 0,
        max_wait_ms: 0,
        stop_at_end: true,
        ..Default::default()
    };
    let s = f.log.fetch(req).await.unwrap_err();
    assert_status(&s, Code::OutOfRange, "OFFSET_OUT_OF_RANGE", &["42", "0..=3"]);
    let e = from_status(&s);
    assert_eq!(e.details.get("log_start_offset").map(String::as_str), Some("0"));
    assert_eq!(e.details.get("high_watermark").map(String::as_str), Some("3"));
    let req = pb::FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset: -5,
        max_bytes: 0,
        max_wait_ms: 0,
        stop_at_end: true,
        ..Default::default()
    };
    assert_eq!(f.log.fetch(req).await.unwrap_err().code(), Code::OutOfRange);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_batch() {
    let mut f = fixture().await;
    let big = "x".repeat(5000);
    let s = f.log.produce(produce_req("t", 0, batch(&[&big]))).await.unwrap_err();
    assert_status(&s, Code::InvalidArgument, "BATCH_TOO_LARGE", &["4096"]);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_crc() {
    let mut f = fixture().await;
    let mut bytes = batch(&["hello"]).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let s = f.log.produce(produce_req("t", 0, Bytes::from(bytes))).await.unwrap_err();
    assert_status(&s, Code::InvalidArgument, "CORRUPT_BATCH", &["crc"]);
    // Nothing was appended.
    let read = common::read_all(&f.client, "t").await;
    assert!(read[&0].is_empty());
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_topic_name() {
    let f = fixture().await;
    let e = f.client.admin().create_topic("bad/name", 1, 0, BTreeMap::new()).await.unwrap_err();
    assert_eq!(e.reason, "INVALID_TOPIC_NAME");
    assert!(e.message.contains("bad/name") && e.message.contains("'/'"), "{}", e.message);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn topic_exists() {
    let f = fixture().await;
    let e = f.client.admin().create_topic("t", 1, 0, BTreeMap::new()).await.unwrap_err();
    assert_eq!(e.kind, shale::ErrorKind::AlreadyExists);
    assert_eq!(e.reason, "TOPIC_EXISTS");
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_and_invalid_configs() {
    let f = fixture().await;
    let admin = f.client.admin();
    let e = admin
        .create_topic("c", 1, 0, [("retention.hours".to_string(), "1".to_string())].into())
        .await
        .unwrap_err();
    assert_eq!(e.reason, "UNKNOWN_CONFIG");
    assert!(e.message.contains("retention.hours"), "{}", e.message);
    let e = admin
        .alter_topic_config("t", [("segment.ms".to_string(), "soon".to_string())].into(), vec![])
        .await
        .unwrap_err();
    assert_eq!(e.reason, "INVALID_CONFIG");
    assert!(e.message.contains("segment.ms") && e.message.contains("soon"), "{}", e.message);
    let e =
        admin.alter_topic_config("t", BTreeMap::new(), vec!["nope.key".into()]).await.unwrap_err();
    assert_eq!(e.reason, "UNKNOWN_CONFIG");
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_partition_count_and_replication_factor() {
    let f = fixture().await;
    let admin = f.client.admin();
    let e = admin.create_topic("big", 1_000_000, 0, BTreeMap::new()).await.unwrap_err();
    assert_eq!(e.reason, "INVALID_PARTITIONS");
    let e = admin.create_topic("rf", 1, 3, BTreeMap::new()).await.unwrap_err();
    assert_eq!(e.reason, "INVALID_REPLICATION_FACTOR");
    assert!(e.message.contains("3") && e.message.contains("1 live broker"), "{}", e.message);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn empty_and_missing_payloads() {
    let mut f = fixture().await;
    let s = f.log.produce(produce_req("t", 0, Bytes::new())).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let mut req = produce_req("t", 0, Bytes::new());
    req.payload = None;
    assert_eq!(f.log.produce(req).await.unwrap_err().code(), Code::InvalidArgument);
    let mut req = produce_req("t", 0, batch(&["a"]));
    req.acks = 9;
    let s = f.log.produce(req).await.unwrap_err();
    assert!(s.message().contains("acks value 9"), "{}", s.message());
    f.server.shutdown().await.unwrap();
}

#[test]
fn random_and_mutated_batches_never_hurt_the_broker() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    let valid = batch(&["alpha", "beta", "gamma"]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from),
        (proptest::collection::vec((0usize..200, any::<u8>()), 1..8), 0usize..200).prop_map({
            let valid = valid.clone();
            move |(flips, cut)| {
                let mut b = valid.to_vec();
                for (i, v) in flips {
                    let n = b.len();
                    b[i % n] = v;
                }
                b.truncate(b.len().saturating_sub(cut % 20));
                Bytes::from(b)
            }
        }),
    ];
    let accepted = std::cell::Cell::new(0u64);
    runner
        .run(&strategy, |bytes| {
            let mut log = f.log.clone();
            let res = rt.block_on(log.produce(produce_req("t", 1, bytes)));
            match res {
                Ok(r) => {
                    let r = r.into_inner();
                    accepted.set(accepted.get() + (r.last_offset - r.base_offset + 1) as u64);
                }
                Err(s) => prop_assert!(
                    matches!(s.code(), Code::InvalidArgument),
                    "unexpected status {s:?}"
                ),
            }
            Ok(())
        })
        .unwrap();
    // The broker still serves, and the log holds exactly the batches it accepted, readable.
    rt.block_on(async {
        let mut log = f.log.clone();
        log.produce(produce_req("t", 1, batch(&["after"]))).await.unwrap();
        let read = common::read_all(&f.client, "t").await;
        assert_eq!(read[&1].len() as u64, accepted.get() + 1);
        assert_eq!(read[&1].last().unwrap().value.as_deref(), Some(&b"after"[..]));
        f.server.shutdown().await.unwrap();
    });
}

/// A follower whose log below its fetch offset cannot be the leader's (its last batch has an
/// epoch the leader never led) is told where to truncate and is not credited with the offset.
#[tokio::test]
async fn a_follower_fetch_position_the_leader_cannot_vouch_for_is_refused() {
    let f = fixture().await;
    let mut log = f.log.clone();
    let mut epoch = 0;
    for v in ["a", "b", "c"] {
        let resp = log.produce(produce_req("t", 0, batch(&[v]))).await.unwrap().into_inner();
        epoch = resp.leader_epoch;
    }
    let addr = format!("http://{}", f.server.addr());
    let mut replica = pb::replica_client::ReplicaClient::connect(addr).await.unwrap();
    let req = pb::ReplicaFetchRequest {
        topic: "t".into(),
        partition: 0,
        replica_id: 9,
        leader_epoch: epoch,
        fetch_offset: 3,
        max_bytes: 1 << 20,
        max_wait_ms: 10,
        replica_incarnation: 1,
        last_fetched_epoch: epoch + 5,
        log_start_floor: 0,
    };
    let mut answers =
        replica.replica_fetch(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let error = answer.error.expect("the leader refuses a position it cannot vouch for");
    assert_eq!(error.reason, "DIVERGING_EPOCH", "{error:?}");
    assert_eq!(error.metadata.get("diverging_epoch"), Some(&epoch.to_string()), "{error:?}");
    assert_eq!(error.metadata.get("diverging_end_offset").map(String::as_str), Some("3"));
}
