//! `EtcdStore` against a real etcd that goes away: calls fail fast with `Unavailable` while
//! it is down and work again on the same store once it is back; watches end with `Reset`
//! and a new watch from the last seen revision misses nothing; compacted starts say so.
//! Each test owns its etcd, since it stops it.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/etcd.rs"]
mod etcd_server;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_server::{EtcdServer, connect, namespace, test_options};
use futures::StreamExt;
use shale::meta::{
    Compare, EtcdOptions, EtcdStore, MetaError, MetaStore, Txn, TxnOp, WatchEvent, WatchStream,
};

/// How long a call may take beyond the request timeout before the test calls it a hang.
const SLACK: Duration = Duration::from_secs(1);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs `call`, asserting it fails with `Unavailable` naming the endpoint, in time.
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    endpoint: &str,
    call: impl Future<Output = Result<T, MetaError>>,
) {
    let limit = test_options().request_timeout + SLACK;
    let started = Instant::now();
    let result = tokio::time::timeout(limit * 2, call).await;
    let took = started.elapsed();
    match result {
        Ok(Err(MetaError::Unavailable(m))) => {
            assert!(took <= limit, "{what} took {took:?} to fail, more than {limit:?}");
            assert!(m.contains(endpoint), "{what}: error {m:?} does not name {endpoint}");
        }
        other => panic!("{what}: expected Unavailable within {limit:?}, got {other:?}"),
    }
}

async fn next(w: &mut WatchStream, patience: Duration) -> Result<WatchEvent, MetaError> {
    match tokio::time::timeout(patience, w.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("watch ended without a Reset or an error"),
        Err(_) => panic!("no watch item within {patience:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_etcd_is_down_and_work_after_restart() {
    let Some(mut server) = EtcdServer::try_start() else { return };
    let endpoint = server.endpoints()[0].clone();
    let store = connect(&server).await;
    let ns = namespace("down");
    let k = format!("{ns}k");
    store.put(&k, b("before"), None).await.unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();

    server.stop();
    assert_unavailable("get", &endpoint, store.get(&k)).await;
    assert_unavailable("put", &endpoint, store.put(&k, b("x"), None)).await;
    assert_unavailable("range", &endpoint, store.range(&ns)).await;
    assert_unavailable("delete", &endpoint, store.delete(&k)).await;
    let txn = Txn::new().when(Compare::absent(k.as_str())).and_then(TxnOp::put(k.as_str(), "y"));
    assert_unavailable("txn", &endpoint, store.txn(txn)).await;
    assert_unavailable("grant", &endpoint, store.grant_lease(Duration::from_secs(5))).await;
    assert_unavailable("keep_alive", &endpoint, store.keep_alive(lease)).await;
    assert_unavailable("watch", &endpoint, async { store.watch_prefix(&ns, 0).await.map(|_| ()) })
        .await;
    assert!(MetaError::Unavailable(String::new()).is_retriable());

    server.restart();
    // The same store, no reconnect by the caller: the first call after the restart works.
    let kv = store.get(&k).await.expect("get after restart").expect("the put survived");
    assert_eq!(&kv.value[..], b"before");
    store.put(&k, b("after"), None).await.expect("put after restart");
    let ttl = store.keep_alive(lease).await.expect("the lease survived the restart");
    assert!(ttl >= Duration::from_secs(60), "keep_alive returns the full ttl, got {ttl:?}");
    let mut w = store.watch_prefix(&ns, 0).await.expect("watch after restart");
    let rev = store.put(&k, b("watched"), None).await.unwrap();
    assert!(matches!(next(&mut w, Duration::from_secs(10)).await,
        Ok(WatchEvent::Put(kv)) if kv.mod_revision == rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_etcd_times_out_instead_of_hanging() {
    let Some(server) = EtcdServer::try_start() else { return };
    let endpoint = server.endpoints()[0].clone();
    let store = connect(&server).await;
    let k = format!("{}k", namespace("paused"));
    store.put(&k, b("v"), None).await.unwrap();
    server.pause();
    // The connection stays open, so only the request timeout can end these calls.
    assert_unavailable("get", &endpoint, store.get(&k)).await;
    assert_unavailable("put", &endpoint, store.put(&k, b("x"), None)).await;
    server.resume();
    assert!(store.get(&k).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resets_when_etcd_stops_and_a_rewatch_misses_nothing() {
    let Some(mut server) = EtcdServer::try_start() else { return };
    let store = connect(&server).await;
    let ns = namespace("rewatch");
    let mut w = store.watch_prefix(&ns, 0).await.unwrap();
    let r1 = store.put(&format!("{ns}a"), b("1"), None).await.unwrap();
    let seen = match next(&mut w, Duration::from_secs(10)).await {
        Ok(WatchEvent::Put(kv)) => kv.mod_revision,
        other => panic!("expected the put, got {other:?}"),
    };
    assert_eq!(seen, r1);

    server.stop();
    // A killed etcd closes the connection, so the watch notices at once.
    assert_eq!(next(&mut w, Duration::from_secs(5)).await.unwrap(), WatchEvent::Reset);
    assert!(w.next().await.is_none(), "the stream ends after Reset");

    server.restart();
    // Writes land before the watcher is back; it must still get them, in order.
    let writer = connect(&server).await;
    let r2 = writer.put(&format!("{ns}b"), b("2"), None).await.unwrap();
    let delete_a = Txn::new().and_then(TxnOp::delete(format!("{ns}a")));
    let r3 = writer.txn(delete_a).await.unwrap().revision;
    let mut again = store.watch_prefix(&ns, seen + 1).await.expect("watch after restart");
    match next(&mut again, Duration::from_secs(10)).await.unwrap() {
        WatchEvent::Put(kv) => assert_eq!((kv.key, kv.mod_revision), (format!("{ns}b"), r2)),
        other => panic!("expected the put of b, got {other:?}"),
    }
    assert_eq!(
        next(&mut again, Duration::from_secs(10)).await.unwrap(),
        WatchEvent::Delete { key: format!("{ns}a"), mod_revision: r3 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_start_revision_yields_compacted() {
    let Some(server) = EtcdServer::try_start() else { return };
    let store = connect(&server).await;
    let ns = namespace("compacted");
    let r1 = store.put(&format!("{ns}a"), b("1"), None).await.unwrap();
    let r2 = store.put(&format!("{ns}a"), b("2"), None).await.unwrap();
    let r3 = store.put(&format!("{ns}b"), b("3"), None).await.unwrap();
    // Compaction is an operator's (or etcd's auto-compaction's) job, not the trait's.
    let mut raw = etcd_client::Client::connect(server.endpoints(), None).await.unwrap();
    raw.compact(r2, None).await.unwrap();

    let mut w = store.watch_prefix(&ns, r1).await.unwrap();
    match next(&mut w, Duration::from_secs(10)).await {
        Err(MetaError::Compacted { revision }) => assert_eq!(revision, r2),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(w.next().await.is_none(), "the stream ends after Compacted");

    // From the revision the error names, the watch works and starts there.
    let mut w = store.watch_prefix(&ns, r2).await.unwrap();
    let got = next(&mut w, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.revision(), Some(r2));
    assert_eq!(next(&mut w, Duration::from_secs(10)).await.unwrap().revision(), Some(r3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_fails_fast_naming_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let options = test_options();
    let limit = options.connect_timeout + options.request_timeout + SLACK;
    let started = Instant::now();
    let result = EtcdStore::connect(std::slice::from_ref(&endpoint), options).await;
    assert!(started.elapsed() <= limit, "connect took {:?}", started.elapsed());
    match result {
        Err(MetaError::Unavailable(m)) => assert!(m.contains(&endpoint), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let none = EtcdStore::connect(&[], EtcdOptions::default()).await;
    assert!(matches!(none, Err(MetaError::Invalid(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_outlives_the_request_timeout() {
    let Some(server) = EtcdServer::try_start() else { return };
    let store = connect(&server).await;
    let ns = namespace("quiet");
    let mut w = store.watch_prefix(&ns, 0).await.unwrap();
    // The request timeout bounds the creation of a watch, never its life.
    tokio::time::sleep(test_options().request_timeout * 2).await;
    let rev = store.put(&format!("{ns}k"), b("late"), None).await.unwrap();
    assert_eq!(next(&mut w, Duration::from_secs(10)).await.unwrap().revision(), Some(rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_frozen_etcd_resets() {
    let Some(server) = EtcdServer::try_start() else { return };
    // etcd's floor for client pings (--grpc-keepalive-min-time), so the test stays short.
    let ping = Duration::from_secs(5);
    let options = EtcdOptions { keep_alive_interval: ping, ..test_options() };
    let timeout = options.request_timeout;
    let store = EtcdStore::connect(&server.endpoints(), options).await.unwrap();
    let ns = namespace("frozen");
    let mut w = store.watch_prefix(&ns, 0).await.unwrap();
    server.pause();
    // The connection stays open: only the unanswered HTTP/2 ping can end the watch.
    let started = Instant::now();
    assert_eq!(next(&mut w, ping + timeout + SLACK * 3).await.unwrap(), WatchEvent::Reset);
    eprintln!("a frozen etcd was noticed after {:?}", started.elapsed());
    server.resume();
    let range = store.range(&ns).await.unwrap();
    let mut again = store.watch_prefix(&ns, range.revision + 1).await.unwrap();
    let rev = store.put(&format!("{ns}k"), b("thawed"), None).await.unwrap();
    assert_eq!(next(&mut again, Duration::from_secs(10)).await.unwrap().revision(), Some(rev));
}
