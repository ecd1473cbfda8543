//! Quotas per principal: over its byte quotas a principal is slowed down, not failed, and
//! no faster than the quota allows (the bucket holds one second of burst); far over its
//! request quota a request is refused with `RESOURCE_EXHAUSTED` and a `RetryInfo`, which
//! the Rust producer waits out, delivering everything exactly once. Another principal is
//! not limited by alice's quota.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;

const ALICE: &str = "alice-0123456789abcdef";
const BOB: &str = "bob-0123456789abcdef";
const MIB: u64 = 1024 * 1024;

fn settings(dir: &Path) -> shale::settings::Settings {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("User:alice {ALICE}\nUser:bob {BOB}\n")).unwrap();
    let mut s = common::settings(dir);
    s.auth.token_file = Some(tokens);
    s
}

/// Sends `n` records of `size` bytes to partition 0 of `topic` and waits for every ack.
async fn produce(client: &Client, topic: &str, n: usize, size: usize, config: ProducerConfig) {
    let producer = Producer::new(client.clone(), config);
    let mut acks = Vec::new();
    for i in 0..n {
        let mut value = format!("{i:08}").into_bytes();
        value.resize(size, b'.');
        let record = ProducerRecord::new(topic, value).partition(0);
        acks.push(producer.send(record).await.unwrap());
    }
    for a in acks {
        a.await.expect("a record over quota was not delivered");
    }
}

/// Reads `topic` back through `client`: every record once, by its number.
async fn read_back(client: &Client, topic: &str, n: usize) {
    let records = common::read_all(client, topic).await.remove(&0).unwrap_or_default();
    let seen: BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value.as_ref().unwrap()[..8]).to_string())
        .collect();
    assert_eq!(records.len(), n, "records read back (duplicates count)");
    assert_eq!(seen.len(), n, "distinct records read back");
}

#[tokio::test]
async fn over_its_byte_quotas_a_principal_is_slowed_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(settings(dir.path())).await;
    let addr = server.addr().to_string();
    let admin = Client::new(&addr).unwrap();
    let limit = pb::Quota {
        principal: "User:alice".into(),
        produce_bytes_per_sec: Some(MIB),
        fetch_bytes_per_sec: Some(MIB),
        requests_per_sec: None,
    };
    admin.admin().alter_quota(limit.clone()).await.unwrap();
    assert_eq!(admin.admin().describe_quotas().await.unwrap(), vec![limit]);
    admin.admin().create_topic("q", 1, 1, Default::default()).await.unwrap();
    let alice = Client::builder(&addr).token(ALICE).unwrap().build().unwrap();

    // 4 MiB at 1 MiB/s with one second of burst: at least 3 s, whatever the machine.
    let start = shale::clock::monotonic_now();
    produce(&alice, "q", 256, 16 * 1024, ProducerConfig::default()).await;
    let took = start.elapsed();
    println!("alice produced 4 MiB in {took:?} under a 1 MiB/s quota");
    assert!(took >= Duration::from_millis(2_700), "the produce quota held nothing: {took:?}");

    let start = shale::clock::monotonic_now();
    read_back(&alice, "q", 256).await;
    let took = start.elapsed();
    println!("alice fetched 4 MiB in {took:?} under a 1 MiB/s quota");
    assert!(took >= Duration::from_millis(2_700), "the fetch quota held nothing: {took:?}");

    // Bob has no quota: the same bytes are his at once (no time asserted, only delivery).
    admin.admin().create_topic("b", 1, 1, Default::default()).await.unwrap();
    let bob = Client::builder(&addr).token(BOB).unwrap().build().unwrap();
    produce(&bob, "b", 256, 16 * 1024, ProducerConfig::default()).await;
    read_back(&bob, "b", 256).await;

    // Removed, alice is free again.
    let free = pb::Quota { principal: "User:alice".into(), ..Default::default() };
    admin.admin().alter_quota(free).await.unwrap();
    assert!(admin.admin().describe_quotas().await.unwrap().is_empty());
    server.close().await.unwrap();
}

#[tokio::test]
async fn far_over_its_request_quota_a_call_is_refused_with_retry_info_and_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    // Held at most 50 ms: at 40 requests/s (one per 25 ms) a sequential caller is only
    // held, while a flood is refused.
    settings.quota.max_delay_ms = 50;
    let server = common::start(settings).await;
    let addr = server.addr().to_string();
    let admin = Client::new(&addr).unwrap();
    let limit = pb::Quota {
        principal: "User:alice".into(),
        requests_per_sec: Some(40),
        ..Default::default()
    };
    admin.admin().alter_quota(limit).await.unwrap();
    admin.admin().create_topic("r", 1, 1, Default::default()).await.unwrap();
    let alice = Client::builder(&addr).token(ALICE).unwrap().build().unwrap();

    // 80 calls at once: 40 of burst, a couple held, the rest refused with a RetryInfo.
    let flood = (0..80).map(|_| {
        let alice = alice.clone();
        async move { alice.admin_rpc().unwrap().who_am_i(pb::WhoAmIRequest {}).await }
    });
    let answers = futures::future::join_all(flood).await;
    let refused: Vec<&tonic::Status> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(!refused.is_empty(), "80 requests at once passed a 40/s quota");
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        use tonic_types::StatusExt;
        let retry = status.get_details_retry_info().expect("RetryInfo in the refusal");
        let delay = retry.retry_delay.expect("a retry delay");
        assert!(delay > Duration::from_millis(50), "retry delay {delay:?} within max_delay");
        let e = shale::proto::status::from_status(status);
        assert_eq!(e.reason.as_str(), "QUOTA_EXCEEDED", "{e}");
        assert!(e.kind.is_retriable() && e.retry_after() == Some(delay), "{e}");
    }
    println!("{} of 80 requests refused", refused.len());

    // A producer sharing the quota with a flood of other calls is refused on the way and
    // waits as told: everything arrives, once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flooder, flood_stop) = (alice.clone(), stop.clone());
    let flood = tokio::spawn(async move {
        let mut refusals = 0u64;
        while !flood_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let calls = (0..20).map(|_| {
                let c = flooder.clone();
                async move { c.admin_rpc().unwrap().who_am_i(pb::WhoAmIRequest {}).await }
            });
            let answers = futures::future::join_all(calls).await;
            refusals += answers.iter().filter(|a| a.is_err()).count() as u64;
        }
        refusals
    });
    let config = ProducerConfig { linger: Duration::ZERO, ..Default::default() };
    produce(&alice, "r", 100, 1024, config).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refusals = flood.await.unwrap();
    println!("the flood beside the producer was refused {refusals} times");
    assert!(refusals > 0, "the flood was never refused: the quota did not bind");
    read_back(&admin, "r", 100).await;
    server.close().await.unwrap();
}
