//! A rolling restart of a three-broker cluster under acks=all load: each broker in turn gets
//! SIGTERM (it drains: produce refused, leadership handed to in-sync replicas, exit 0), is
//! started again and waited for (`/readyz`, full ISR). The producer never sees an error
//! and every acknowledged record reads back at its offset.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cluster::Cluster;
use common::{http_get, wait_until};
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};

const TOPIC: &str = "rolling";
const PARTITIONS: u32 = 6;

/// The gRPC health status of `service` ("" is readiness) at `addr`.
async fn grpc_health(addr: &str, service: &str) -> Option<i32> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut h = HealthClient::new(channel);
    let resp = h.check(HealthCheckRequest { service: service.to_string() }).await.ok()?;
    Some(resp.into_inner().status)
}

async fn full_isr(client: &Client) -> bool {
    client.admin().describe_topic(TOPIC).await.is_ok_and(|d| {
        d.partitions
            .iter()
            .all(|p| p.metadata.as_ref().is_some_and(|m| m.isr.len() == 3 && m.leader_id > 0))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing() {
    let mut c = Cluster::start(3, "rolling", &[]);
    let client = c.client();
    wait_until(Duration::from_secs(30), "three live brokers", || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    client.admin().create_topic(TOPIC, PARTITIONS, 3, configs).await.unwrap();
    wait_until(Duration::from_secs(30), "every partition with 3 in sync", || {
        let client = client.clone();
        async move { full_isr(&client).await }
    })
    .await;

    // acks=all (the default), idempotent; every delivery result is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicU64::new(0));
    let producer = {
        let (client, stop, acked_count) = (client.clone(), stop.clone(), acked_count.clone());
        tokio::spawn(async move {
            let producer = Producer::new(client, ProducerConfig::default());
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut pending = Vec::new();
                for _ in 0..100 {
                    let value = format!("r{i}");
                    let record = ProducerRecord::new(TOPIC, value.clone()).key(format!("k{i}"));
                    pending.push((value, producer.send(record).await.unwrap()));
                    i += 1;
                }
                for (value, d) in pending {
                    match d.await {
                        Ok(md) => {
                            acked.push((md.partition, md.offset, value));
                            acked_count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            (acked, errors)
        })
    };

    let mut handed_over = 0;
    for i in 0..3 {
        let before = acked_count.load(Ordering::Relaxed);
        wait_until(Duration::from_secs(30), "the producer to make progress", || {
            let n = acked_count.load(Ordering::Relaxed);
            async move { n >= before + 500 }
        })
        .await;
        let (clean, took, stopped) = c.terminate(i).await;
        assert!(clean, "broker {} exited non-zero after SIGTERM", i + 1);
        println!("after {took:?}: {stopped}");
        // Every leadership moved to an in-sync replica before the broker left.
        assert!(stopped.contains(", kept 0 "), "{stopped:?}");
        handed_over += stopped
            .split("handed over ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no drain report in {stopped:?}"));
        c.restart(i);
        let admin = c.admin(i);
        wait_until(Duration::from_secs(60), "the restarted broker to be ready", || {
            let admin = admin.clone();
            async move { http_get(&admin, "/readyz").await.0 == 200 }
        })
        .await;
        // The gRPC health service says the same (Kubernetes' gRPC probes ask it).
        let grpc = c.addr(i);
        wait_until(Duration::from_secs(5), "gRPC health to report SERVING", || {
            let grpc = grpc.clone();
            async move { grpc_health(&grpc, "").await == Some(1) }
        })
        .await;
        assert_eq!(grpc_health(&grpc, "shale.v1.Log").await, Some(1), "liveness service");
        wait_until(Duration::from_secs(120), "every partition back to 3 in sync", || {
            let client = client.clone();
            async move { full_isr(&client).await }
        })
        .await;
    }

    assert!(handed_over > 0, "no broker led anything when it was stopped");
    let before = acked_count.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(30), "the producer to make progress after the restarts", || {
        let n = acked_count.load(Ordering::Relaxed);
        async move { n >= before + 500 }
    })
    .await;
    stop.store(true, Ordering::Release);
    let (acked, errors) = producer.await.unwrap();
    assert!(errors.is_empty(), "{} deliveries failed; first: {}", errors.len(), errors[0]);

    client.invalidate(TOPIC);
    // A leader elected moments ago (the preferred replica taking its partitions back)
    // learns how far its followers got only from their next fetches, so its high watermark
    // may still sit below records the old leader acknowledged; a read that stops at the
    // high watermark would end short of them. Wait until every acknowledged offset is
    // below its partition's high watermark: records that were really lost never get
    // there (the producer has stopped), and the value check below catches any that did
    // with other contents.
    let mut want: BTreeMap<u32, i64> = BTreeMap::new();
    for (partition, offset, _) in &acked {
        let end = want.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    wait_until(
        Duration::from_secs(30),
        "every acknowledged offset below its high watermark",
        || {
            let (client, want) = (client.clone(), want.clone());
            async move {
                client.admin().describe_topic(TOPIC).await.is_ok_and(|d| {
                    d.partitions.iter().all(|p| {
                        let partition = p.metadata.as_ref().map_or(u32::MAX, |m| m.partition);
                        want.get(&partition).is_none_or(|end| p.high_watermark >= *end)
                    })
                })
            }
        },
    )
    .await;
    let read = common::read_all(&client, TOPIC).await;
    let mut lost = Vec::new();
    for (partition, offset, value) in &acked {
        let found = read[partition]
            .iter()
            .find(|r| r.offset == *offset)
            .and_then(|r| r.value.as_ref())
            .is_some_and(|v| v.as_ref() == value.as_bytes());
        if !found {
            lost.push((partition, offset, value));
        }
    }
    println!(
        "{} records acknowledged during the rolling restart, {} lost",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged records missing: {:?}", &lost[..lost.len().min(10)]);
}
