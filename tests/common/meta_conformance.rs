//! Conformance bodies every `MetaStore` backend must pass, and the `conformance!` macro
//! that runs them all against one backend.
//!
//! Each body gets a store and a namespace (a key prefix ending in `/`) that no other test
//! uses, so the bodies also run against a shared real etcd. For the same reason they never
//! assume the global revision moves by exactly one between their own writes: other tests
//! may write in between.

// Test code: a failed unwrap is a failed test. Not every backend runs every helper.
#![allow(clippy::unwrap_used, dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use shale::meta::{
    Compare, KeyValue, MetaError, MetaStore, Revision, Txn, TxnOp, WatchEvent, WatchStream,
};

/// How long a single expected event or condition may take.
const PATIENCE: Duration = Duration::from_secs(10);
/// Lease expiry waits longer: etcd raises short TTLs to its minimum (about 2 s by default).
const LEASE_PATIENCE: Duration = Duration::from_secs(30);

/// A backend under test and whatever must outlive it (a temp dir, a server handle).
pub(crate) struct Fixture {
    /// The store.
    pub store: Arc<dyn MetaStore>,
    /// A key prefix only this test uses.
    pub ns: String,
    /// Dropped after the store.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance body for a backend:
/// `conformance!(name, || async { Fixture { .. } })`.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            conformance!(@tests $make;
                get_put_delete,
                revisions_track_create_mod_version,
                range_is_sorted_and_prefix_isolated,
                txn_compares_mod_revision,
                txn_compares_value,
                txn_is_atomic_in_one_revision,
                txn_rejects_what_etcd_rejects,
                delete_prefix_counts_and_isolates,
                lease_keep_alive_and_revoke,
                lease_expiry_deletes_keys,
                put_with_unknown_lease_fails,
                watch_delivers_changes_in_order,
                watch_replays_from_past_revision,
                watch_is_prefix_isolated,
                watching_several_prefixes_sees_only_them,
            );
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture: Fixture = ($make)().await;
                conformance::$test(fixture.store.clone(), &fixture.ns).await;
            }
        )*
    };
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next watch event, failing the test if none comes in time.
pub(crate) async fn next_event(w: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

/// Polls `check` until it returns true or `patience` passes.
pub(crate) async fn eventually<F, Fut>(patience: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {patience:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn expect_put(ev: &WatchEvent, key: &str, value: &str, revision: Revision) -> KeyValue {
    match ev {
        WatchEvent::Put(kv) if kv.key == key && kv.value == value.as_bytes() => {
            assert_eq!(kv.mod_revision, revision, "revision of the put to {key}");
            kv.clone()
        }
        other => panic!("expected put {key}={value}@{revision}, got {other:?}"),
    }
}

fn expect_delete(ev: &WatchEvent, key: &str, revision: Revision) {
    assert_eq!(
        ev,
        &WatchEvent::Delete { key: key.to_string(), mod_revision: revision },
        "expected delete of {key}@{revision}"
    );
}

pub(crate) async fn get_put_delete(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}k");
    assert_eq!(store.get(&k).await.unwrap(), None);
    let rev = store.put(&k, b("v1"), None).await.unwrap();
    let kv = store.get(&k).await.unwrap().expect("just put");
    assert_eq!((kv.key.as_str(), &kv.value[..], kv.lease), (k.as_str(), &b"v1"[..], None));
    assert_eq!(kv.mod_revision, rev);
    assert!(store.delete(&k).await.unwrap(), "existed");
    assert_eq!(store.get(&k).await.unwrap(), None);
    assert!(!store.delete(&k).await.unwrap(), "already gone");
    assert!(matches!(store.get("").await, Err(MetaError::Invalid(_))));
    assert!(matches!(store.put("", b("x"), None).await, Err(MetaError::Invalid(_))));
}

pub(crate) async fn revisions_track_create_mod_version(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}k");
    let r1 = store.put(&k, b("a"), None).await.unwrap();
    let r2 = store.put(&k, b("b"), None).await.unwrap();
    assert!(r2 > r1);
    let kv = store.get(&k).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (r1, r2, 2));
    store.delete(&k).await.unwrap();
    let r3 = store.put(&k, b("c"), None).await.unwrap();
    assert!(r3 > r2);
    let kv = store.get(&k).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (r3, r3, 1), "recreated");
    let range = store.range(&k).await.unwrap();
    assert!(range.revision >= r3, "a read sees at least the last write");
}

pub(crate) async fn range_is_sorted_and_prefix_isolated(store: Arc<dyn MetaStore>, ns: &str) {
    for key in ["a/2", "a/10", "ab/1", "a/1", "b/1", "a"] {
        store.put(&format!("{ns}{key}"), b(key), None).await.unwrap();
    }
    let range = store.range(&format!("{ns}a/")).await.unwrap();
    let keys: Vec<&str> = range.kvs.iter().map(|kv| &kv.key[ns.len()..]).collect();
    assert_eq!(keys, ["a/1", "a/10", "a/2"], "byte order, only under the prefix");
    assert_eq!(&range.kvs[1].value[..], b"a/10");
    let all = store.range(ns).await.unwrap();
    assert_eq!(all.kvs.len(), 6);
    assert!(all.kvs.windows(2).all(|w| w[0].key < w[1].key));
    let none = store.range(&format!("{ns}zzz/")).await.unwrap();
    assert!(none.kvs.is_empty() && none.revision >= all.revision);
}

pub(crate) async fn txn_compares_mod_revision(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}leader");
    let lost = format!("{ns}lost");
    let create = || {
        Txn::new()
            .when(Compare::absent(k.as_str()))
            .and_then(TxnOp::put(k.as_str(), "me"))
            .or_else(TxnOp::put(lost.as_str(), "1"))
    };
    let won = store.txn(create()).await.unwrap();
    assert!(won.succeeded);
    let kv = store.get(&k).await.unwrap().unwrap();
    assert_eq!(kv.mod_revision, won.revision, "outcome revision is the put's revision");
    assert_eq!(store.get(&lost).await.unwrap(), None, "failure branch did not run");

    let again = store.txn(create()).await.unwrap();
    assert!(!again.succeeded, "key exists now");
    assert!(again.revision > won.revision, "the failure branch wrote");
    assert!(store.get(&lost).await.unwrap().is_some(), "failure branch ran");
    assert_eq!(&store.get(&k).await.unwrap().unwrap().value[..], b"me");

    let cas = |rev| {
        Txn::new()
            .when(Compare::mod_revision(k.as_str(), rev))
            .and_then(TxnOp::put(k.as_str(), "you"))
    };
    let stale = store.txn(cas(kv.mod_revision - 1)).await.unwrap();
    assert!(!stale.succeeded);
    assert!(stale.revision >= again.revision, "an empty branch changes nothing");
    let fresh = store.txn(cas(kv.mod_revision)).await.unwrap();
    assert!(fresh.succeeded);
    let kv2 = store.get(&k).await.unwrap().unwrap();
    assert_eq!((&kv2.value[..], kv2.mod_revision, kv2.version), (&b"you"[..], fresh.revision, 2));
}

pub(crate) async fn txn_compares_value(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}k");
    let flag = format!("{ns}flag");
    let txn = |v: &'static str| {
        Txn::new().when(Compare::value(k.as_str(), b(v))).and_then(TxnOp::put(flag.as_str(), v))
    };
    assert!(!store.txn(txn("x")).await.unwrap().succeeded, "absent key never equals a value");
    assert!(!store.txn(txn("")).await.unwrap().succeeded, "not even the empty value");
    store.put(&k, b("x"), None).await.unwrap();
    assert!(!store.txn(txn("y")).await.unwrap().succeeded);
    assert!(store.txn(txn("x")).await.unwrap().succeeded);
    assert_eq!(&store.get(&flag).await.unwrap().unwrap().value[..], b"x");
}

pub(crate) async fn txn_is_atomic_in_one_revision(store: Arc<dyn MetaStore>, ns: &str) {
    let (a, c, d) = (format!("{ns}a"), format!("{ns}c"), format!("{ns}d"));
    store.put(&a, b("old"), None).await.unwrap();
    let t = Txn::new()
        .and_then(TxnOp::put(c.as_str(), "1"))
        .and_then(TxnOp::put(d.as_str(), "2"))
        .and_then(TxnOp::delete(a.as_str()));
    let out = store.txn(t).await.unwrap();
    assert!(out.succeeded, "no compares: success branch");
    let range = store.range(ns).await.unwrap();
    let keys: Vec<(&str, Revision)> =
        range.kvs.iter().map(|kv| (kv.key.as_str(), kv.mod_revision)).collect();
    assert_eq!(keys, [(c.as_str(), out.revision), (d.as_str(), out.revision)]);
}

pub(crate) async fn txn_rejects_what_etcd_rejects(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}k");
    let dup =
        Txn::new().and_then(TxnOp::put(k.as_str(), "1")).and_then(TxnOp::put(k.as_str(), "2"));
    assert!(matches!(store.txn(dup).await, Err(MetaError::Invalid(_))));
    let overlap =
        Txn::new().and_then(TxnOp::put(k.as_str(), "1")).and_then(TxnOp::delete(k.as_str()));
    assert!(matches!(store.txn(overlap).await, Err(MetaError::Invalid(_))));
    assert_eq!(store.get(&k).await.unwrap(), None, "a rejected txn wrote nothing");
    assert!(matches!(store.delete_prefix("").await, Err(MetaError::Invalid(_))));
}

pub(crate) async fn delete_prefix_counts_and_isolates(store: Arc<dyn MetaStore>, ns: &str) {
    for key in ["p/1", "p/2", "p/x/3", "p2/1", "q"] {
        store.put(&format!("{ns}{key}"), b(key), None).await.unwrap();
    }
    assert_eq!(store.delete_prefix(&format!("{ns}p/")).await.unwrap(), 3);
    assert_eq!(store.delete_prefix(&format!("{ns}p/")).await.unwrap(), 0);
    let left: Vec<String> =
        store.range(ns).await.unwrap().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(left, [format!("{ns}p2/1"), format!("{ns}q")]);
}

pub(crate) async fn lease_keep_alive_and_revoke(store: Arc<dyn MetaStore>, ns: &str) {
    let (k, plain) = (format!("{ns}bound"), format!("{ns}plain"));
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert!(lease > 0, "lease ids are positive, 0 means none");
    store.put(&k, b("x"), Some(lease)).await.unwrap();
    store.put(&plain, b("y"), None).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().unwrap().lease, Some(lease));
    let ttl = store.keep_alive(lease).await.unwrap();
    assert!(ttl >= Duration::from_secs(30), "keep_alive returns the full ttl, got {ttl:?}");

    let mut w = store.watch_prefix(ns, 0).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert!(matches!(next_event(&mut w).await, WatchEvent::Delete { key, .. } if key == k));
    assert_eq!(store.get(&k).await.unwrap(), None, "revoke deletes the lease's keys");
    assert!(store.get(&plain).await.unwrap().is_some(), "other keys stay");
    assert!(
        matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(l)) if l == lease)
    );
    assert!(matches!(store.revoke_lease(lease).await, Err(MetaError::LeaseNotFound(_))));

    // Rebinding a key moves it off its old lease.
    let l1 = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let l2 = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert_ne!(l1, l2);
    store.put(&k, b("1"), Some(l1)).await.unwrap();
    store.put(&k, b("2"), Some(l2)).await.unwrap();
    store.revoke_lease(l1).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().unwrap().lease, Some(l2));
    store.revoke_lease(l2).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), None);
}

pub(crate) async fn lease_expiry_deletes_keys(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}ephemeral");
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let rev = store.put(&k, b("x"), Some(lease)).await.unwrap();
    let mut w = store.watch_prefix(ns, rev + 1).await.unwrap();
    eventually(LEASE_PATIENCE, "the expired lease's key is deleted", || {
        let store = store.clone();
        let k = k.clone();
        async move { store.get(&k).await.unwrap().is_none() }
    })
    .await;
    match next_event(&mut w).await {
        WatchEvent::Delete { key, mod_revision } => {
            assert_eq!(key, k);
            assert!(mod_revision > rev);
        }
        other => panic!("expected the expiry's delete, got {other:?}"),
    }
    assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(_))));
}

pub(crate) async fn put_with_unknown_lease_fails(store: Arc<dyn MetaStore>, ns: &str) {
    let k = format!("{ns}k");
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert!(
        matches!(store.put(&k, b("x"), Some(lease)).await, Err(MetaError::LeaseNotFound(l)) if l == lease)
    );
    let t = Txn::new()
        .and_then(TxnOp::put(format!("{ns}other"), "1"))
        .and_then(TxnOp::put_with_lease(k.as_str(), "x", lease));
    assert!(matches!(store.txn(t).await, Err(MetaError::LeaseNotFound(_))));
    assert!(store.range(ns).await.unwrap().kvs.is_empty(), "a failed txn writes nothing");
}

pub(crate) async fn watch_delivers_changes_in_order(store: Arc<dyn MetaStore>, ns: &str) {
    let (a, bk, c, d) = (format!("{ns}a"), format!("{ns}b"), format!("{ns}c"), format!("{ns}d"));
    let mut w = store.watch_prefix(ns, 0).await.unwrap();
    let r1 = store.put(&a, b("1"), None).await.unwrap();
    let r2 = store.put(&bk, b("2"), None).await.unwrap();
    let r3 = store.put(&a, b("3"), None).await.unwrap();
    let r4 = store.txn(Txn::new().and_then(TxnOp::delete(a.as_str()))).await.unwrap().revision;
    let t = Txn::new().and_then(TxnOp::put(c.as_str(), "5")).and_then(TxnOp::put(d.as_str(), "6"));
    let r5 = store.txn(t).await.unwrap().revision;
    assert!(r1 < r2 && r2 < r3 && r3 < r4 && r4 < r5);

    let kv = expect_put(&next_event(&mut w).await, &a, "1", r1);
    assert_eq!((kv.create_revision, kv.version), (r1, 1));
    expect_put(&next_event(&mut w).await, &bk, "2", r2);
    let kv = expect_put(&next_event(&mut w).await, &a, "3", r3);
    assert_eq!((kv.create_revision, kv.version), (r1, 2));
    expect_delete(&next_event(&mut w).await, &a, r4);
    expect_put(&next_event(&mut w).await, &c, "5", r5);
    expect_put(&next_event(&mut w).await, &d, "6", r5);
}

pub(crate) async fn watch_replays_from_past_revision(store: Arc<dyn MetaStore>, ns: &str) {
    let (a, bk, c) = (format!("{ns}a"), format!("{ns}b"), format!("{ns}c"));
    let r1 = store.put(&a, b("1"), None).await.unwrap();
    let r2 = store.put(&bk, b("2"), None).await.unwrap();
    let r3 = store.txn(Txn::new().and_then(TxnOp::delete(a.as_str()))).await.unwrap().revision;

    let mut w = store.watch_prefix(ns, r1).await.unwrap();
    expect_put(&next_event(&mut w).await, &a, "1", r1);
    expect_put(&next_event(&mut w).await, &bk, "2", r2);
    expect_delete(&next_event(&mut w).await, &a, r3);
    let r4 = store.put(&c, b("4"), None).await.unwrap();
    expect_put(&next_event(&mut w).await, &c, "4", r4);

    let mut from_r2 = store.watch_prefix(ns, r2).await.unwrap();
    expect_put(&next_event(&mut from_r2).await, &bk, "2", r2);

    // The read-then-watch pattern: nothing between the read and the watch is missed.
    let range = store.range(ns).await.unwrap();
    let mut after = store.watch_prefix(ns, range.revision + 1).await.unwrap();
    let r5 = store.put(&a, b("5"), None).await.unwrap();
    expect_put(&next_event(&mut after).await, &a, "5", r5);
}

pub(crate) async fn watch_is_prefix_isolated(store: Arc<dyn MetaStore>, ns: &str) {
    let mut w = store.watch_prefix(&format!("{ns}in/"), 0).await.unwrap();
    store.put(&format!("{ns}inside"), b("no"), None).await.unwrap();
    store.put(&format!("{ns}out/k"), b("no"), None).await.unwrap();
    let rev = store.put(&format!("{ns}in/k"), b("yes"), None).await.unwrap();
    expect_put(&next_event(&mut w).await, &format!("{ns}in/k"), "yes", rev);
}

pub(crate) async fn watching_several_prefixes_sees_only_them(store: Arc<dyn MetaStore>, ns: &str) {
    let prefixes = [format!("{ns}a/"), format!("{ns}b/")];
    let mut w = shale::meta::watch_prefixes(&*store, &prefixes, 0).await.unwrap();
    store.put(&format!("{ns}c/1"), b("no"), None).await.unwrap();
    let ra = store.put(&format!("{ns}a/1"), b("yes"), None).await.unwrap();
    store.put(&format!("{ns}c/2"), b("no"), None).await.unwrap();
    let rb = store.put(&format!("{ns}b/1"), b("yes"), None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next_event(&mut w).await {
            WatchEvent::Put(kv) => seen.push((kv.key, kv.mod_revision)),
            other => panic!("expected a put under {prefixes:?}, got {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, vec![(format!("{ns}a/1"), ra), (format!("{ns}b/1"), rb)]);
    // Nothing else was delivered: the next event is the next write under a watched prefix.
    store.put(&format!("{ns}c/3"), b("no"), None).await.unwrap();
    let r = store.put(&format!("{ns}a/2"), b("yes"), None).await.unwrap();
    expect_put(&next_event(&mut w).await, &format!("{ns}a/2"), "yes", r);
}
