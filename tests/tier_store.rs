//! The object store layer against real backends: the local filesystem (the embedded default)
//! and a real S3-compatible server (moto on 127.0.0.1, started by the test; the test fails,
//! not skips, under `CI=true` when moto is missing). The same checks run on both.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/s3.rs"]
mod s3_server;

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use s3_server::S3Server;
use shale::meta::{EmbeddedStore, Keys, MetaStore};
use shale::settings::TierSettings;
use shale::tier::manifest::names;
use shale::tier::{Bucket, Catalog, PartitionRef, RemoteSegment};

fn settings_for(s3: Option<&S3Server>) -> TierSettings {
    let mut t =
        TierSettings { request_timeout_ms: 5_000, request_max_attempts: 3, ..Default::default() };
    if let Some(s3) = s3 {
        s3_server::reach(&mut t, &s3.endpoint());
    }
    t
}

/// Objects: put, ranged get, list by prefix, create-only put refusing an existing key,
/// delete; then the catalog's commit and fencing on top.
async fn conformance(bucket: Bucket) {
    let store = bucket.store.clone();
    let base = bucket.prefix.clone().join("conformance");
    let folder = base.clone().join("p");
    let a = folder.clone().join("a.log");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store.put(&a, PutPayload::from(data.clone())).await.unwrap();
    let range = store.get_range(&a, 1000..5000).await.unwrap();
    assert_eq!(range.as_ref(), &data[1000..5000], "{}: ranged get", bucket.url);
    assert_eq!(store.head(&a).await.unwrap().size, 100_000);

    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let again = store.put_opts(&a, PutPayload::from_static(b"x"), create.clone()).await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{}: create-only put over an existing object must fail: {again:?}",
        bucket.url
    );
    let b = folder.clone().join("b.index");
    store.put_opts(&b, PutPayload::from_static(b"idx"), create).await.unwrap();
    let mut listed: Vec<String> = store
        .list(Some(&folder))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(listed, ["a.log", "b.index"], "{}: list", bucket.url);
    store.delete(&a).await.unwrap();
    assert!(matches!(store.get(&a).await, Err(object_store::Error::NotFound { .. })));

    // The catalog: commits move the pointer forward; stale and lower-epoch writers lose.
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory(shale::clock::system());
    let catalog = Catalog::new(bucket.clone(), meta, Keys::new("c").unwrap(), "c");
    let p = PartitionRef { topic: "orders".into(), topic_id: "0a1b".into(), partition: 3 };
    let seg = |base: i64, next: i64| RemoteSegment {
        base_offset: base,
        next_offset: next,
        size_bytes: 10,
        max_timestamp: 5,
        upload_epoch: 2,
        name: names::segment_stem(base, 2),
    };
    let empty = catalog.current(&p).await.unwrap();
    let first = catalog.commit(&p, &empty, vec![seg(0, 50)], 2).await.unwrap();
    assert_eq!(
        catalog.commit(&p, &empty, vec![seg(0, 60)], 2).await.unwrap_err().reason,
        "TIER_CONFLICT"
    );
    let second = catalog.commit(&p, &first, vec![seg(0, 50), seg(50, 80)], 3).await.unwrap();
    assert_eq!(
        catalog.commit(&p, &second, vec![], 2).await.unwrap_err().reason,
        "FENCED_LEADER_EPOCH"
    );
    let now = catalog.current(&p).await.unwrap();
    assert_eq!(now.manifest.end_offset(), Some(80), "{}", bucket.url);
    let manifests: Vec<_> = store.list(Some(&catalog.folder(&p))).try_collect().await.unwrap();
    assert_eq!(
        manifests.len(),
        1,
        "{}: only the current manifest: none left by losers, replaced ones removed",
        bucket.url
    );
    // Injected 503s are retried through.
    bucket.faults.fail_next(2);
    assert_eq!(store.head(&b).await.unwrap().size, 3);
    assert_eq!(bucket.faults.injected(), 2);
    let gets = bucket.metrics.get(shale::tier::metrics::Op::Get);
    assert!(gets.requests >= 2 && gets.bytes >= 4000, "{}: {gets:?}", bucket.url);
}

#[tokio::test]
async fn local_filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    conformance(Bucket::open(&url, &settings_for(None)).unwrap()).await;
}

#[tokio::test]
async fn s3_compatible_server_conforms() {
    let s3 = S3Server::start("shale-test");
    let url = format!("s3://{}/some/prefix", s3.bucket());
    let bucket = Bucket::open(&url, &settings_for(Some(&s3))).unwrap();
    conformance(bucket).await;
}

/// `remote.storage.enable=true` is refused, naming the key, by a broker without an object
/// store; `shale standalone` has one by default (a bucket directory under its data dir).
#[tokio::test]
async fn tiering_needs_an_object_store_and_standalone_has_one() {
    let configs = std::collections::BTreeMap::from([(
        "remote.storage.enable".to_string(),
        "true".to_string(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let plain = common::BrokerProcess::serve(dir.path(), &[]);
    let client = shale::client::Client::new(&plain.addr).unwrap();
    let e = client.admin().create_topic("t", 1, 1, configs.clone()).await.unwrap_err();
    assert_eq!(e.reason, "INVALID_CONFIG", "{e:?}");
    assert!(e.message.contains("--object-store"), "{}", e.message);
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let standalone = common::BrokerProcess::start(dir.path());
    let client = shale::client::Client::new(&standalone.addr).unwrap();
    client.admin().create_topic("t", 1, 1, configs).await.unwrap();
    assert!(dir.path().join("bucket").is_dir(), "the embedded bucket directory");
}
