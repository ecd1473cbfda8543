//! Share groups through gRPC with Shale's Rust client ([`ShareConsumer`]): the queue
//! semantics of KIP-932 for any gRPC language. Three members share one partition, each
//! record accepted once; a rejected record is never delivered again; a released one comes
//! back at once with its delivery count; the records of a member that took a batch and
//! went silent come back to the others when their locks lapse. A member that acknowledges
//! a record it no longer holds is told INVALID_RECORD_STATE. `DescribeGroup` shows the
//! share partition's start offset and records in flight.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{produce, wait_until};
use shale::client::{AckKind, Client, ShareConfig, ShareConsumer, SharedRecord};

fn value(r: &SharedRecord) -> String {
    String::from_utf8(r.record.value.clone().unwrap_or_default().to_vec()).unwrap()
}

type Log = Arc<Mutex<Vec<(String, i64, u32, AckKind)>>>;

/// A member that acknowledges every record it gets by `rule` until `stop`.
fn worker(
    client: &Client,
    name: &str,
    log: Log,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let mut config = ShareConfig::new("crew", &["tasks"]);
    config.max_records = 10;
    let mut c = ShareConsumer::subscribe(client.clone(), config);
    let name = name.to_string();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let records = match c.poll(Duration::from_millis(300)).await {
                Ok(r) => r,
                Err(e) => panic!("{name}: poll failed: {e}"),
            };
            let mut done = Vec::new();
            for r in &records {
                let kind = match (value(r).as_str(), r.delivery_count) {
                    ("v7", _) => AckKind::Reject,
                    ("v8", 1) => AckKind::Release,
                    _ => AckKind::Accept,
                };
                c.acknowledge(r, kind);
                done.push((name.clone(), r.record.offset, r.delivery_count, kind));
            }
            c.commit().await.unwrap_or_else(|e| panic!("{name}: commit failed: {e}"));
            log.lock().unwrap().extend(done);
        }
        c.close().await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_share_consumers_accept_release_reject_and_take_over_lapsed_locks() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.groups.share_min_record_lock_duration_ms = 1_000;
    // Long enough for the working members to commit what they hold on a loaded machine
    // (at 1.5 s a worker's lock lapsed once in a full run, and its commit was refused);
    // short enough for the silent member's locks to lapse within the test.
    settings.groups.share_record_lock_duration_ms = 4_000;
    settings.groups.share_heartbeat_interval_ms = 200;
    let server = common::start(settings).await;
    let client = common::client(&server);
    client.admin().create_topic("tasks", 1, 1, BTreeMap::new()).await.unwrap();

    // A member takes a batch and goes silent: it never acknowledges.
    let mut silent_config = ShareConfig::new("crew", &["tasks"]);
    silent_config.max_records = 5;
    let mut silent = ShareConsumer::subscribe(client.clone(), silent_config);
    wait_until(Duration::from_secs(30), "the silent member to be assigned", || {
        let n = silent.assignment().len();
        async move { n == 1 }
    })
    .await;
    let produced: BTreeSet<i64> =
        produce(&client, "tasks", 60).await.into_iter().map(|(_, _, o)| o).collect();
    let held = silent.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(held.len(), 5, "the silent member's batch");

    let (log, stop): (Log, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let workers: Vec<_> =
        (0..3).map(|i| worker(&client, &format!("w{i}"), log.clone(), stop.clone())).collect();
    let want: BTreeSet<i64> = produced.iter().copied().filter(|o| *o != 7).collect();
    wait_until(Duration::from_secs(60), "every record but v7 accepted", || {
        let accepted: BTreeSet<i64> =
            log.lock().unwrap().iter().filter(|e| e.3 == AckKind::Accept).map(|e| e.1).collect();
        let done = want.is_subset(&accepted);
        async move { done }
    })
    .await;
    // `shale group describe`'s view: the share partition starts past every record (v7
    // archived), nothing in flight.
    let d = shale::client::GroupAdmin::new(client.clone()).describe("crew").await.unwrap();
    assert_eq!((d.protocol.as_str(), d.assignor.as_str()), ("share", "simple"));
    let p = &d.partitions[0];
    assert!(p.share, "{p:?}");
    assert_eq!((p.committed, p.log_end, p.lag, p.in_flight), (60, 60, 0, 0), "{p:?}");
    // The silent member's late acknowledgement is refused: its locks lapsed.
    silent.acknowledge(&held[0], AckKind::Accept);
    let e = silent.commit().await.unwrap_err();
    assert_eq!(e.reason.as_str(), "INVALID_RECORD_STATE", "{e}");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let mut accepted: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (_, offset, deliveries, kind) in &log {
        if *kind == AckKind::Accept {
            accepted.entry(*offset).or_default().push(*deliveries);
        }
    }
    let twice: Vec<_> = accepted.iter().filter(|(_, d)| d.len() > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    assert!(!accepted.contains_key(&7), "the rejected record came back");
    assert_eq!(log.iter().filter(|e| e.1 == 7).count(), 1, "v7 delivered once, rejected");
    assert_eq!(accepted[&8], vec![2], "v8 released once, accepted at its second delivery");
    for r in &held {
        let d = &accepted[&r.record.offset];
        assert!(d[0] >= 2, "offset {} came back after its lock lapsed: {d:?}", r.record.offset);
    }
    let busy: BTreeSet<&String> = log.iter().map(|e| &e.0).collect();
    assert!(busy.len() >= 2, "only {busy:?} got records");
}
