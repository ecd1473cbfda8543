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

use bytes::Bytes;
use s3_server::S3Server;
use shale::meta::{EmbeddedStore, Keys, MetaStore};
use shale::settings::TierSettings;
use shale::tier::manifest::names;
use shale::tier::metrics::Op;
use shale::tier::{Bucket, Catalog, PartitionRef, RemoteSegment, StoreError};

/// Parts of 5 MiB, S3's smallest.
const PART_BYTES: u64 = 5 << 20;

fn settings_for(s3: Option<&S3Server>) -> TierSettings {
    let mut t = TierSettings {
        request_timeout_ms: 5_000,
        request_max_attempts: 3,
        multipart_threshold_bytes: PART_BYTES,
        multipart_part_bytes: PART_BYTES,
        ..Default::default()
    };
    if let Some(s3) = s3 {
        s3_server::reach(&mut t, &s3.endpoint());
    }
    t
}

/// Objects: put, ranged get, list by prefix, create-only put refusing an existing key,
/// delete; a segment above the part size in parts; a create-only put whose answer is lost;
/// then the catalog's commit and fencing on top.
async fn conformance(bucket: Bucket) {
    let base = bucket.prefix.clone().join("conformance");
    let folder = base.clone().join("p");
    let a = folder.clone().join("a.log");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    bucket.put(&a, Bytes::from(data.clone())).await.unwrap();
    let range = bucket.get_range(&a, 1000..5000).await.unwrap();
    assert_eq!(range.as_ref(), &data[1000..5000], "{}: ranged get", bucket.url);
    assert_eq!(bucket.head(&a).await.unwrap().size, 100_000);

    let again = bucket.put_if_absent(&a, Bytes::from_static(b"x")).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{}: create-only put over an existing object must fail: {again:?}",
        bucket.url
    );
    let b = folder.clone().join("b.index");
    bucket.put_if_absent(&b, Bytes::from_static(b"idx")).await.unwrap();
    let mut listed: Vec<String> = bucket
        .list(&folder)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.filename().unwrap_or_default().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["a.log", "b.index"], "{}: list", bucket.url);
    bucket.delete(&a).await.unwrap();
    assert!(matches!(bucket.get(&a).await, Err(StoreError::NotFound { .. })));

    // A segment one byte over the threshold goes up in two parts, its index at the end.
    let big: Bytes = (0..PART_BYTES + 1).map(|i| (i % 253) as u8).collect::<Vec<_>>().into();
    let index = Bytes::from_static(b"the segment's index");
    let seg = folder.clone().join("big.log");
    let read = |pos: u64, len: u64| {
        let part = big.slice(pos as usize..(pos + len) as usize);
        async move { Ok(part) }
    };
    bucket.put_segment(&seg, PART_BYTES + 1, index.clone(), read).await.unwrap();
    let whole = [&big[..], &index[..]].concat();
    assert_eq!(bucket.get(&seg).await.unwrap(), whole, "{}: multipart upload", bucket.url);
    let parts = bucket.metrics.get(Op::PutMultipart);
    let len = whole.len() as u64;
    assert_eq!((parts.requests, parts.bytes), (4, len), "{}", bucket.url);
    bucket.delete(&seg).await.unwrap();

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
        index_bytes: 0,
        aborted: Vec::new(),
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
    // Epoch 3 goes on with deltas (an append, then a removal by retention).
    let mut segments = second.manifest.segments.clone();
    segments.push(seg(80, 90));
    let third = catalog.commit(&p, &second, segments, 3).await.unwrap();
    let kept = third.manifest.segments[1..].to_vec();
    catalog.commit(&p, &third, kept, 3).await.unwrap();
    let now = catalog.current(&p).await.unwrap();
    assert_eq!(now.manifest.start_offset(), Some(50), "{}", bucket.url);
    assert_eq!(now.manifest.end_offset(), Some(90), "{}", bucket.url);
    let mut names: Vec<String> = bucket
        .list(&catalog.folder(&p))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.filename().unwrap_or_default().to_string())
        .collect();
    names.sort();
    // The checkpoints of epochs 2 and 3 (the replaced one waits for the scrubber), and
    // epoch 3's two deltas; nothing the losers wrote.
    assert_eq!(names.len(), 4, "{}: {names:?}", bucket.url);
    assert!(names[0].starts_with("delta-00000000000000000003-3"), "{names:?}");
    assert!(names[1].starts_with("delta-00000000000000000004-3"), "{names:?}");
    assert!(names[2].starts_with("manifest-00000000000000000001-2"), "{names:?}");
    assert!(names[3].starts_with("manifest-00000000000000000002-3"), "{names:?}");
    // Injected 503s are retried through.
    bucket.faults.fail_next(2);
    assert_eq!(bucket.head(&b).await.unwrap().size, 3);
    assert_eq!(bucket.faults.injected(), 2);
    let gets = bucket.metrics.get(Op::Get);
    assert!(gets.requests >= 2 && gets.bytes >= 4000, "{}: {gets:?}", bucket.url);

    // The store applies a create-only put and the answer is lost: the retry is refused, and
    // the read-back finds this put's bytes.
    let m = folder.clone().join("manifest.json");
    bucket.faults.lose_next_answers(1);
    bucket.put_if_absent(&m, Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(bucket.faults.injected(), 3, "{}: the put's answer was lost", bucket.url);
    assert_eq!(bucket.get(&m).await.unwrap().as_ref(), b"{}");
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
