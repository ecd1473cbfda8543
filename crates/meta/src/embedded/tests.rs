//! Unit tests of the embedded store: persistence, recovery, snapshots, leases on an
//! injected clock, and watcher back-pressure.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::state::State;
use super::*;
use crate::{Compare, WatchEvent};
use shale_core::clock::{self, ManualClock};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn open(dir: &Path) -> Arc<EmbeddedStore> {
    EmbeddedStore::open(dir, clock::system()).expect("open")
}

/// Every key with its metadata, plus the revision: what must survive a reopen.
async fn dump(store: &EmbeddedStore) -> RangeResult {
    store.range("").await.unwrap()
}

async fn next(w: &mut WatchStream) -> Option<Result<WatchEvent, MetaError>> {
    tokio::time::timeout(Duration::from_secs(10), w.next()).await.expect("watch stalled")
}

#[tokio::test]
async fn reopen_keeps_keys_revisions_versions_and_drops_lease_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put("/a", b("1"), None).await.unwrap();
    store.put("/a", b("2"), None).await.unwrap();
    store.put("/b", b("x"), None).await.unwrap();
    store.put("/gone", b("x"), None).await.unwrap();
    store.delete("/gone").await.unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store.put("/live", b("x"), Some(lease)).await.unwrap();
    // A durable key rebound to a lease must not come back with its old value.
    store.put("/b", b("leased"), Some(lease)).await.unwrap();
    let before = dump(&store).await;
    drop(store);

    let store = open(dir.path());
    let after = dump(&store).await;
    assert_eq!(after.revision, before.revision, "revision survives");
    let durable: Vec<_> = before.kvs.iter().filter(|kv| kv.lease.is_none()).cloned().collect();
    assert_eq!(after.kvs, durable, "keys, create/mod revisions and versions survive");
    assert_eq!(after.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/a"]);
    assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(_))));
}

#[tokio::test]
async fn reopen_never_reuses_revisions_or_lease_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let l1 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let r1 = store.put("/k", b("1"), Some(l1)).await.unwrap();
    drop(store);
    let store = open(dir.path());
    let l2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    assert_ne!(l1, l2);
    assert!(l2 > 0);
    // The lease-bound put was not persisted as a key, but its revision was.
    let r2 = store.put("/k", b("2"), None).await.unwrap();
    assert!(r2 > r1, "{r2} > {r1}");
    drop(store);
    let store = open(dir.path());
    assert_ne!(store.grant_lease(Duration::from_secs(60)).await.unwrap(), l2);
}

/// Damage applied to the WAL's tail, as a crash or a bad disk would leave it.
fn damage_tail(dir: &Path, how: &str) {
    let path = dir.join(wal::WAL_FILE);
    match how {
        "half record" => {
            let mut frame = Vec::new();
            wal::encode_txn(&mut frame, 999, [wal::OpRef::Delete { key: "/a" }]);
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&frame[..frame.len() / 2]).unwrap();
        }
        "garbage" => {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03]).unwrap();
        }
        "flipped last byte" => {
            let mut data = std::fs::read(&path).unwrap();
            let last = data.len() - 1;
            data[last] ^= 0x55;
            std::fs::write(&path, data).unwrap();
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn torn_or_corrupt_tail_is_truncated_and_writes_go_on() {
    for how in ["half record", "garbage", "flipped last byte"] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let r1 = store.put("/a", b("1"), None).await.unwrap();
        store.put("/b", b("2"), None).await.unwrap();
        drop(store);
        // Reopen once so the last record is an open record, not an acknowledged write:
        // flipping its last byte then models damage to a write nobody was told about.
        drop(open(dir.path()));
        damage_tail(dir.path(), how);

        let store = open(dir.path());
        let kvs = dump(&store).await.kvs;
        assert_eq!(kvs.len(), 2, "{how}: earlier writes intact");
        assert_eq!((kvs[0].mod_revision, &kvs[1].value[..]), (r1, &b"2"[..]), "{how}");
        let r3 = store.put("/c", b("3"), None).await.unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get("/c").await.unwrap().map(|kv| kv.mod_revision), Some(r3), "{how}");
        assert_eq!(dump(&store).await.kvs.len(), 3, "{how}");
    }
}

#[tokio::test]
async fn a_torn_last_write_is_lost_but_nothing_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put("/a", b("1"), None).await.unwrap();
    drop(store);
    let path = dir.path().join(wal::WAL_FILE);
    let len_before = std::fs::metadata(&path).unwrap().len();
    let store = open(dir.path());
    store.put("/b", b("2"), None).await.unwrap();
    drop(store);
    // Cut the last write in half, as a crash during its fsync could.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let store = open(dir.path());
    assert!(store.get("/a").await.unwrap().is_some());
    assert_eq!(store.get("/b").await.unwrap(), None, "the torn write is dropped");
    assert!(std::fs::metadata(&path).unwrap().len() > len_before, "truncated, then reopened");
}

#[tokio::test]
async fn corrupt_snapshot_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put("/a", b("1"), None).await.unwrap();
    store.snapshot().await.unwrap();
    drop(store);
    let path = dir.path().join(wal::SNAPSHOT_FILE);
    let mut data = std::fs::read(&path).unwrap();
    data[20] ^= 1;
    std::fs::write(&path, data).unwrap();
    match EmbeddedStore::open(dir.path(), clock::system()) {
        Err(MetaError::Corrupt { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn snapshots_restart_the_wal_and_reopen_identically() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions { snapshot_wal_bytes: 4096, ..EmbeddedOptions::default() };
    let store = EmbeddedStore::open_with(dir.path(), clock::system(), options.clone()).unwrap();
    for i in 0..600 {
        let key = format!("/k/{}", i % 50);
        if i % 7 == 0 {
            store.delete(&key).await.unwrap();
        } else {
            store.put(&key, Bytes::from(vec![b'v'; 40 + i % 30]), None).await.unwrap();
        }
    }
    let wal_len = std::fs::metadata(dir.path().join(wal::WAL_FILE)).unwrap().len();
    let snap_len = std::fs::metadata(dir.path().join(wal::SNAPSHOT_FILE)).unwrap().len();
    assert!(snap_len > 0);
    assert!(wal_len < 4096 + 1024 || wal_len <= 2 * snap_len + 1024, "wal restarted: {wal_len}");
    let before = dump(&store).await;
    drop(store);

    let store = EmbeddedStore::open_with(dir.path(), clock::system(), options.clone()).unwrap();
    assert_eq!(dump(&store).await, before);
    let rev = store.put("/k/after", b("x"), None).await.unwrap();
    assert!(rev > before.revision);
    drop(store);
    let store = EmbeddedStore::open_with(dir.path(), clock::system(), options).unwrap();
    assert_eq!(dump(&store).await.kvs.len(), before.kvs.len() + 1);
}

#[tokio::test]
async fn a_stale_wal_left_by_a_crash_after_the_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..5 {
        store.put("/k", Bytes::from(format!("{i}")), None).await.unwrap();
    }
    store.put("/other", b("x"), None).await.unwrap();
    let old_wal = std::fs::read(dir.path().join(wal::WAL_FILE)).unwrap();
    store.snapshot().await.unwrap();
    let before = dump(&store).await;
    drop(store);
    // As if the process died after the snapshot's rename but before the WAL's.
    std::fs::write(dir.path().join(wal::WAL_FILE), old_wal).unwrap();
    let store = open(dir.path());
    assert_eq!(dump(&store).await, before, "old records are not applied twice");
    assert_eq!(store.get("/k").await.unwrap().unwrap().version, 5);
}

#[tokio::test]
async fn leases_expire_on_the_injected_clock() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = EmbeddedStore::in_memory(clock.clone());
    let lease = store.grant_lease(Duration::from_secs(5)).await.unwrap();
    store.put("/eph", b("x"), Some(lease)).await.unwrap();
    store.put("/keep", b("x"), None).await.unwrap();
    let mut w = store.watch_prefix("/", 0).await.unwrap();

    clock.advance(4_000);
    assert_eq!(store.reap_expired().await.unwrap(), 0);
    assert_eq!(store.keep_alive(lease).await.unwrap(), Duration::from_secs(5));
    clock.advance(4_000);
    assert_eq!(store.reap_expired().await.unwrap(), 0, "keep_alive pushed the deadline");
    assert!(store.get("/eph").await.unwrap().is_some());

    clock.advance(1_000);
    // Past the deadline the lease is dead even before the reaper runs.
    assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(_))));
    assert!(matches!(store.put("/x", b("x"), Some(lease)).await, Err(MetaError::LeaseNotFound(_))));
    assert!(store.reap_expired().await.unwrap() <= 1, "the background tick may win");
    assert_eq!(store.get("/eph").await.unwrap(), None);
    assert!(store.get("/keep").await.unwrap().is_some());
    assert!(
        matches!(next(&mut w).await, Some(Ok(WatchEvent::Delete { key, .. })) if key == "/eph")
    );
    assert_eq!(store.lease_count(), 0);
}

#[tokio::test]
async fn a_slow_watcher_gets_reset_instead_of_blocking_writers() {
    let options = EmbeddedOptions { watch_buffer: 4, ..EmbeddedOptions::default() };
    let store = EmbeddedStore::in_memory_with(clock::system(), options);
    let mut slow = store.watch_prefix("/k/", 0).await.unwrap();
    let mut fine = store.watch_prefix("/other/", 0).await.unwrap();
    let mut revs = Vec::new();
    for i in 0..50 {
        // Completes although nobody reads `slow`.
        revs.push(store.put(&format!("/k/{i:02}"), b("x"), None).await.unwrap());
    }
    for rev in &revs[..4] {
        match next(&mut slow).await {
            Some(Ok(WatchEvent::Put(kv))) => assert_eq!(kv.mod_revision, *rev),
            other => panic!("expected a buffered put, got {other:?}"),
        }
    }
    assert!(matches!(next(&mut slow).await, Some(Ok(WatchEvent::Reset))));
    assert!(next(&mut slow).await.is_none(), "the stream ends after Reset");

    let rev = store.put("/other/x", b("y"), None).await.unwrap();
    assert!(
        matches!(next(&mut fine).await, Some(Ok(WatchEvent::Put(kv))) if kv.mod_revision == rev)
    );
    assert_eq!(store.watcher_count(), 1, "only the lagging watcher was dropped");
    drop(fine);
    assert_eq!(store.watcher_count(), 0);
}

#[tokio::test]
async fn watches_older_than_the_history_get_compacted() {
    let options = EmbeddedOptions { history_events: 5, ..EmbeddedOptions::default() };
    let store = EmbeddedStore::in_memory_with(clock::system(), options);
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(store.put(&format!("/k/{i}"), b("x"), None).await.unwrap());
    }
    let mut old = store.watch_prefix("/k/", revs[0]).await.unwrap();
    let oldest = match next(&mut old).await {
        Some(Err(MetaError::Compacted { revision })) => revision,
        other => panic!("expected Compacted, got {other:?}"),
    };
    assert!(next(&mut old).await.is_none());
    assert_eq!(oldest, revs[15], "the last 5 events are kept");
    let mut ok = store.watch_prefix("/k/", oldest).await.unwrap();
    for rev in &revs[15..] {
        assert!(matches!(next(&mut ok).await, Some(Ok(ev)) if ev.revision() == Some(*rev)));
    }
}

#[tokio::test]
async fn after_a_reopen_only_new_revisions_can_be_watched() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r1 = store.put("/a", b("1"), None).await.unwrap();
    drop(store);
    let store = open(dir.path());
    let mut old = store.watch_prefix("/", r1).await.unwrap();
    assert!(
        matches!(next(&mut old).await, Some(Err(MetaError::Compacted { revision })) if revision == r1 + 1)
    );
    let mut w = store.watch_prefix("/", r1 + 1).await.unwrap();
    let r2 = store.put("/b", b("2"), None).await.unwrap();
    assert!(matches!(next(&mut w).await, Some(Ok(ev)) if ev.revision() == Some(r2)));
}

#[tokio::test]
async fn a_fresh_store_can_be_watched_from_revision_one() {
    let store = EmbeddedStore::in_memory(clock::system());
    let mut w = store.watch_prefix("/", 1).await.unwrap();
    let rev = store.put("/a", b("1"), None).await.unwrap();
    assert_eq!(rev, 2, "etcd numbering: an empty store is at revision 1");
    assert!(matches!(next(&mut w).await, Some(Ok(ev)) if ev.revision() == Some(2)));
}

#[tokio::test]
async fn closing_the_store_ends_watches_with_unavailable() {
    let store = EmbeddedStore::in_memory(clock::system());
    let mut w = store.watch_prefix("/", 0).await.unwrap();
    drop(store);
    assert!(matches!(next(&mut w).await, Some(Err(MetaError::Unavailable(_)))));
    assert!(next(&mut w).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_swap_increments_are_serializable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(shale_core::task::spawn_owned(async move {
            let mut wins = Vec::new();
            while wins.len() < 25 {
                let cur = store.get("/counter").await.unwrap();
                let (n, rev) = cur.map_or((0, 0), |kv| {
                    (
                        std::str::from_utf8(&kv.value).unwrap().parse::<u64>().unwrap(),
                        kv.mod_revision,
                    )
                });
                let txn = Txn::new()
                    .when(Compare::mod_revision("/counter", rev))
                    .and_then(TxnOp::put("/counter", format!("{}", n + 1)));
                let out = store.txn(txn).await.unwrap();
                if out.succeeded {
                    wins.push(out.revision);
                }
            }
            wins
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200, "every win has its own revision");
    let kv = store.get("/counter").await.unwrap().unwrap();
    assert_eq!((&kv.value[..], kv.version), (&b"200"[..], 200));
    drop(store);
    let store = open(dir.path());
    assert_eq!(&store.get("/counter").await.unwrap().unwrap().value[..], b"200");
}

#[test]
fn one_batch_sees_its_own_earlier_writes_and_revokes() {
    let mut state = State::new(hub(0, &EmbeddedOptions::default()));
    state.generation = 1;
    let lease = state.grant(10, 0).unwrap();
    let mut ov = state.overlay();
    let put = Txn::new().and_then(TxnOp::put_with_lease("/eph", "x", lease));
    let p1 = state.prepare_txn(&mut ov, &put, 0).unwrap();
    let cas = Txn::new()
        .when(Compare::mod_revision("/eph", p1.revision))
        .and_then(TxnOp::put("/seen", "1"));
    let p2 = state.prepare_txn(&mut ov, &cas, 0).unwrap();
    assert!(p2.succeeded, "the second txn sees the first's put");
    let p3 = state.prepare_revoke(&mut ov, lease).unwrap();
    assert_eq!(p3.deleted, 1, "revoke finds a key bound earlier in the same batch");
    assert!(matches!(state.prepare_txn(&mut ov, &put, 0), Err(MetaError::LeaseNotFound(_))));
    let p4 =
        state.prepare_txn(&mut ov, &Txn::new().and_then(TxnOp::delete_prefix("/")), 0).unwrap();
    assert_eq!(p4.deleted, 1, "only /seen is left");
    let revs: Vec<Revision> = [&p1, &p2, &p3, &p4].iter().map(|p| p.revision).collect();
    assert_eq!(revs, [2, 3, 4, 5]);
    for p in [p1, p2, p3, p4] {
        state.apply(p);
    }
    assert_eq!((state.revision, state.range("").kvs.len(), state.lease_count()), (5, 0, 0));
}
