//! Tiering in a three-broker cluster on a real etcd, sharing one bucket: the leader is
//! killed while segments are being uploaded (the new leader resumes from the manifest:
//! no gap, no overlap, nothing lost), then a follower's disk is wiped and it rejoins the ISR
//! copying only the untiered tail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/etcd.rs"]
mod etcd_server;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{BrokerProcess, wait_until};
use etcd_server::EtcdServer;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::rpc::pb;

const MIB: u64 = 1 << 20;
const RECORD_BYTES: usize = 1000;
const TOPIC: &str = "ct";

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("{i:012}:").into_bytes();
    v.resize(RECORD_BYTES, b'a' + (i % 26) as u8);
    v
}

struct Cluster {
    brokers: Vec<Option<BrokerProcess>>,
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    _bucket: tempfile::TempDir,
    url: String,
    config: tempfile::NamedTempFile,
    etcd: EtcdServer,
}

impl Cluster {
    fn start() -> Cluster {
        let etcd = EtcdServer::start();
        let bucket = tempfile::tempdir().unwrap();
        let url = format!("file://{}", bucket.path().canonicalize().unwrap().display());
        let mut config = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            config,
            "[replication]\nlag_time_max_ms = 1500\nfetch_max_wait_ms = 200\n\
             [log]\nretention_check_interval_ms = 200\n[tier]\nupload_interval_ms = 200"
        )
        .unwrap();
        let mut c = Cluster {
            brokers: vec![],
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            ports: (0..3).map(|_| common::free_port()).collect(),
            _bucket: bucket,
            url,
            config,
            etcd,
        };
        for i in 0..3 {
            let b = c.spawn(i);
            c.brokers.push(Some(b));
        }
        c
    }

    fn spawn(&self, i: usize) -> BrokerProcess {
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let id = (i + 1).to_string();
        let etcd = self.etcd.endpoints().join(",");
        let config = self.config.path().to_string_lossy().to_string();
        BrokerProcess::serve_on(
            self.dirs[i].path(),
            &listen,
            &[
                "--config",
                &config,
                "--id",
                &id,
                "--etcd",
                &etcd,
                "--cluster",
                "tiering",
                "--lease-ttl-secs",
                "3",
                "--object-store",
                &self.url,
            ],
        )
    }

    fn client(&self) -> Client {
        let all: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Client::new(&all.join(",")).unwrap()
    }

    fn kill(&mut self, id: i32) {
        if let Some(mut b) = self.brokers[id as usize - 1].take() {
            b.kill();
        }
    }

    fn restart(&mut self, id: i32) {
        let b = self.spawn(id as usize - 1);
        self.brokers[id as usize - 1] = Some(b);
    }

    fn dir(&self, id: i32) -> &Path {
        self.dirs[id as usize - 1].path()
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_mid_upload_and_a_wiped_follower_copy_only_the_tail() {
    let mut c = Cluster::start();
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
        async move { describe(&client).await.remote_segments >= 3 }
    })
    .await;
    let leader = metadata(&client).await.leader_id;
    c.kill(leader);
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
    c.restart(leader);
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

    // Replace a follower's disk: it copies only what is not in the bucket.
    let m = metadata(&client).await;
    let follower = *m.replicas.iter().find(|r| **r != m.leader_id).unwrap();
    c.kill(follower);
    std::fs::remove_dir_all(c.dir(follower)).unwrap();
    std::fs::create_dir_all(c.dir(follower)).unwrap();
    c.restart(follower);
    wait_until(Duration::from_secs(120), "the wiped follower back in the ISR", || {
        let client = client.clone();
        async move { metadata(&client).await.isr.contains(&follower) }
    })
    .await;
    let p = describe(&client).await;
    let copied = log_bytes(c.dir(follower));
    let total = p.remote_size_bytes + p.size_bytes;
    println!(
        "wiped follower {follower} rejoined with {copied} bytes copied of a {total}-byte \
         partition ({} bytes in the bucket, remote log 0..{})",
        p.remote_size_bytes, p.remote_log_end_offset
    );
    assert!(copied * 4 < total, "copied {copied} of {total} bytes: more than the untiered tail");
}
