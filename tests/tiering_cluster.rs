//! Tiering in a three-broker cluster on a real etcd, sharing one bucket, on both a local
//! filesystem bucket and a real S3-compatible server (moto; the test fails, not skips, when
//! moto is missing):
//!
//! - the leader dies in the middle of an upload, after the segment object is in the bucket
//!   and before the manifest lists it (a failpoint armed at run time, so the moment is
//!   certain): the new leader resumes from the manifest with no gap and no overlap, nothing
//!   acknowledged is lost, and the scrubber removes the dead leader's orphan;
//! - then a follower's disk is wiped and it rejoins the ISR copying only the untiered tail.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// etcd.rs and s3.rs each carry their own copy of the private process helper (service.rs).
#![allow(clippy::duplicate_mod)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/s3.rs"]
mod s3_server;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use cluster::Cluster;
use common::wait_until;
use s3_server::S3Server;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;
use shale::settings::TierSettings;
use shale::tier::manifest::{ManifestDelta, names};
use shale::tier::{Bucket, Manifest};

const MIB: u64 = 1 << 20;
const RECORD_BYTES: usize = 1000;
const TOPIC: &str = "ct";
const FAILPOINT: &str = "tier.after_segment_put";

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("{i:012}:").into_bytes();
    v.resize(RECORD_BYTES, b'a' + (i % 26) as u8);
    v
}

/// Where the brokers tier to.
enum Backing {
    File { _dir: tempfile::TempDir },
    S3(S3Server),
}

/// Three brokers sharing one bucket. Fields drop in order: brokers and etcd, then the S3
/// server.
struct TieredCluster {
    c: Cluster,
    backing: Backing,
    url: String,
    _config: tempfile::NamedTempFile,
}

impl TieredCluster {
    fn start(s3: bool) -> TieredCluster {
        let (backing, url) = if s3 {
            let server = S3Server::start("tiering-cluster");
            let url = format!("s3://{}/shale", server.bucket());
            (Backing::S3(server), url)
        } else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("file://{}", dir.path().canonicalize().unwrap().display());
            (Backing::File { _dir: dir }, url)
        };
        let mut config = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            config,
            "[replication]\nlag_time_max_ms = 1500\nfetch_max_wait_ms = 200\n\
             [log]\nretention_check_interval_ms = 200\n\
             [tier]\nupload_interval_ms = 200\nscrub_interval_ms = 300\norphan_grace_ms = 5000"
        )
        .unwrap();
        if let Backing::S3(server) = &backing {
            write!(config, "{}", s3_server::reach_toml(&server.endpoint())).unwrap();
        }
        let path = config.path().to_string_lossy().to_string();
        let c = Cluster::start(3, "tiering", &["--config", &path, "--object-store", &url]);
        TieredCluster { c, backing, url, _config: config }
    }

    /// The bucket the brokers share, opened the way they open it.
    fn bucket(&self) -> Bucket {
        let mut t = TierSettings::default();
        if let Backing::S3(server) = &self.backing {
            s3_server::reach(&mut t, &server.endpoint());
        }
        Bucket::open(&self.url, &t).unwrap()
    }
}

/// The harness index of broker `id`.
fn ix(id: i32) -> usize {
    id as usize - 1
}

async fn describe(client: &Client) -> pb::PartitionInfo {
    client.admin().describe_topic(TOPIC).await.unwrap().partitions[0].clone()
}

async fn metadata(client: &Client) -> pb::PartitionMetadata {
    describe(client).await.metadata.unwrap()
}

async fn wait_for_isr(client: &Client, what: &str) {
    wait_until(Duration::from_secs(120), what, || {
        let client = client.clone();
        async move {
            client.admin().describe_topic(TOPIC).await.is_ok_and(|d| {
                d.partitions[0]
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.isr.len() == 3 && m.leader_id > 0)
            })
        }
    })
    .await;
}

fn log_bytes(dir: &Path) -> u64 {
    common::segment_files(&dir.join(format!("{TOPIC}-0")))
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// What the bucket holds for the partition: the newest manifest (the newest checkpoint and
/// the deltas its epoch wrote after it), how many checkpoints there are, and the stems of
/// the segment data and index objects.
struct Listing {
    manifest: Manifest,
    manifests: usize,
    logs: BTreeSet<String>,
    indexes: BTreeSet<String>,
}

impl Listing {
    /// Segment stems in the bucket that the manifest does not list.
    fn unlisted(&self) -> BTreeSet<String> {
        let listed: BTreeSet<&str> =
            self.manifest.segments.iter().map(|s| s.name.as_str()).collect();
        self.logs.union(&self.indexes).filter(|s| !listed.contains(s.as_str())).cloned().collect()
    }
}

async fn listing(bucket: &Bucket) -> Listing {
    // A manifest may be replaced (and removed) between the list and the read: list again.
    for _ in 0..20 {
        let objects = bucket.list(&bucket.prefix).await.unwrap();
        let mut manifests = vec![];
        let mut deltas = BTreeMap::new();
        let (mut logs, mut indexes) = (BTreeSet::new(), BTreeSet::new());
        for o in objects {
            let name = o.location.filename().unwrap_or_default().to_string();
            match names::kind(&name) {
                names::Kind::Manifest => manifests.push(o.location),
                names::Kind::Delta => {
                    deltas.insert(name, o.location);
                }
                names::Kind::Segment(stem) if name.ends_with(".log") => {
                    logs.insert(stem);
                }
                names::Kind::Segment(stem) => {
                    indexes.insert(stem);
                }
                names::Kind::Other => {}
            }
        }
        // `manifest-{seq:020}-…`: the newest sorts last.
        manifests.sort_by(|a, b| a.filename().cmp(&b.filename()));
        let Some(newest) = manifests.last() else { panic!("no manifest in the bucket") };
        let Ok(got) = bucket.get(newest).await else { continue };
        let mut manifest = Manifest::decode(&got).unwrap();
        let epoch = manifest.leader_epoch;
        let mut complete = true;
        while let Some(path) = deltas.get(&names::delta(manifest.seq + 1, epoch)) {
            let Ok(got) = bucket.get(path).await else {
                complete = false;
                break;
            };
            manifest = ManifestDelta::decode(&got).unwrap().apply(&manifest).unwrap();
        }
        if complete {
            return Listing { manifest, manifests: manifests.len(), logs, indexes };
        }
    }
    panic!("the newest manifest kept disappearing under the listing");
}

fn epoch_of(stem: &str) -> i32 {
    stem.split('-').nth(1).and_then(|e| e.parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_bucket_leader_dies_mid_upload_and_a_wiped_follower_copies_only_the_tail() {
    failover_mid_upload_then_a_wiped_follower(TieredCluster::start(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_leader_dies_mid_upload_and_a_wiped_follower_copies_only_the_tail() {
    failover_mid_upload_then_a_wiped_follower(TieredCluster::start(true)).await;
}

async fn failover_mid_upload_then_a_wiped_follower(tiered: TieredCluster) {
    let bucket = tiered.bucket();
    let mut c = tiered.c;
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let segment = (256 * 1024).to_string();
    let configs: BTreeMap<String, String> = [
        ("min.insync.replicas", "2"),
        ("remote.storage.enable", "true"),
        ("segment.bytes", segment.as_str()),
        ("local.retention.bytes", "524288"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    client.admin().create_topic(TOPIC, 1, 3, configs).await.unwrap();

    // One idempotent producer: record i must land at offset i, across the failover.
    let records = 12 * MIB / (RECORD_BYTES as u64 + 20);
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let load = tokio::spawn(async move {
        let mut pending = std::collections::VecDeque::new();
        for i in 0..records {
            let d = producer.send(ProducerRecord::new(TOPIC, value(i)).partition(0)).await.unwrap();
            pending.push_back((i, d));
            while pending.len() > 1000 {
                let (i, d) = pending.pop_front().unwrap();
                assert_eq!(d.await.unwrap().offset, i as i64, "record {i}");
            }
        }
        for (i, d) in pending {
            assert_eq!(d.await.unwrap().offset, i as i64, "record {i}");
        }
    });

    wait_until(Duration::from_secs(60), "the first segments in the bucket", || {
        let client = client.clone();
        async move { describe(&client).await.remote_segments >= 2 }
    })
    .await;
    // The leader's next upload puts the segment object, then the process aborts before
    // the manifest lists it.
    let m = metadata(&client).await;
    let (leader, epoch) = (m.leader_id, m.leader_epoch);
    c.arm(ix(leader), FAILPOINT, true);
    let status = c.wait_for_exit(ix(leader), "the leader to die at its next upload").await;
    assert_eq!(status.signal(), Some(6), "broker {leader} ended at the failpoint (SIGABRT)");
    c.arm(ix(leader), FAILPOINT, false);
    let orphans: BTreeSet<String> =
        listing(&bucket).await.unlisted().into_iter().filter(|s| epoch_of(s) <= epoch).collect();
    assert!(!orphans.is_empty(), "the dead leader left its segment object unlisted");
    wait_until(Duration::from_secs(60), "a new leader", || {
        let client = client.clone();
        async move {
            client.invalidate(TOPIC);
            client.admin().describe_topic(TOPIC).await.is_ok_and(|d| {
                d.partitions[0]
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.leader_id > 0 && m.leader_id != leader)
            })
        }
    })
    .await;
    c.restart(ix(leader));
    load.await.unwrap();
    wait_for_isr(&client, "every replica in sync after the failover").await;
    wait_until(Duration::from_secs(120), "every sealed segment tiered", || {
        let client = client.clone();
        async move { describe(&client).await.remote_log_end_offset > (records as i64) - 1000 }
    })
    .await;
    let p = describe(&client).await;
    assert_eq!(p.remote_log_start_offset, 0, "{p:?}");
    let read = common::read_all(&client, TOPIC).await;
    let got = &read[&0];
    assert_eq!(got.len() as u64, records, "every acknowledged record, once");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert!(r.value.as_deref() == Some(value(i as u64).as_slice()), "record {i} differs");
    }

    // The remote log: contiguous from 0, and the orphan gone once its grace period passed.
    wait_until(Duration::from_secs(60), "the scrubber to remove the dead leader's orphan", || {
        let bucket = bucket.clone();
        let orphans = orphans.clone();
        async move {
            let l = listing(&bucket).await;
            l.manifests == 1
                && l.unlisted().is_empty()
                && orphans.iter().all(|o| !l.logs.contains(o) && !l.indexes.contains(o))
        }
    })
    .await;
    let l = listing(&bucket).await;
    let segments = &l.manifest.segments;
    let gaps = segments.windows(2).filter(|w| w[1].base_offset > w[0].next_offset).count();
    let overlaps = segments.windows(2).filter(|w| w[1].base_offset < w[0].next_offset).count();
    println!(
        "leader {leader} died mid-upload at epoch {epoch}; {} orphan object(s) scrubbed; \
         remote log {}..{} in {} segments: {gaps} gaps, {overlaps} overlaps; {records} records \
         acknowledged, {} read back",
        orphans.len(),
        segments[0].base_offset,
        segments.last().unwrap().next_offset,
        segments.len(),
        got.len()
    );
    assert_eq!(segments[0].base_offset, 0);
    assert_eq!((gaps, overlaps), (0, 0), "{segments:?}");
    // Manifest format 2: each segment's index is inside its object.
    let whole = segments.iter().all(|s| s.index_bytes > 0 && l.logs.contains(&s.name));
    assert!(whole, "every segment's object is there, with its index: {segments:?}");
    assert!(l.indexes.is_empty(), "no index objects of their own: {:?}", l.indexes);

    // Replace a follower's disk: it copies only what is not in the bucket.
    let m = metadata(&client).await;
    let follower = *m.replicas.iter().find(|r| **r != m.leader_id).unwrap();
    c.kill(ix(follower));
    std::fs::remove_dir_all(c.dir(ix(follower))).unwrap();
    std::fs::create_dir_all(c.dir(ix(follower))).unwrap();
    c.restart(ix(follower));
    wait_until(Duration::from_secs(120), "the wiped follower back in the ISR", || {
        let client = client.clone();
        async move { metadata(&client).await.isr.contains(&follower) }
    })
    .await;
    let p = describe(&client).await;
    let copied = log_bytes(c.dir(ix(follower)));
    let total = p.remote_size_bytes + p.size_bytes;
    println!(
        "wiped follower {follower} rejoined with {copied} bytes copied of a {total}-byte \
         partition ({} bytes in the bucket, remote log 0..{})",
        p.remote_size_bytes, p.remote_log_end_offset
    );
    assert!(copied * 4 < total, "copied {copied} of {total} bytes: more than the untiered tail");
}
