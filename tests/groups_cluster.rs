//! Consumer groups in a three-broker cluster on a real etcd: members join through any
//! broker (requests are forwarded to the group's coordinator), `shale group describe`
//! reports the lag a running producer creates, the coordinator is killed and another broker
//! takes the group over without losing a member's progress, committed offsets survive a
//! restart of every broker because they live in etcd, and a coordinator that drains hands
//! its group over before it leaves.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/ownership.rs"]
mod ownership;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::Cluster;
use common::{wait_for, wait_until};
use ownership::{Ownership, Recorder, assert_no_two_owners};
use shale::client::{
    Client, GroupAdmin, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig,
    ProducerRecord,
};
use shale::proto::pb;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const PARTITIONS: u32 = 6;

/// A group member running in a task: polls, remembers what it read, auto-commits, and
/// records when it owned which partition.
struct Member {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    read: Arc<Mutex<Vec<(u32, i64)>>>,
    owned: Ownership,
}

impl Member {
    fn start(client: Client, commit_interval: Duration) -> Member {
        let mut config = GroupConfig::new(GROUP, &[TOPIC]);
        config.session_timeout = Duration::from_secs(3);
        config.auto_commit_interval = commit_interval;
        config.auto_offset_reset = OffsetReset::Earliest;
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(Mutex::new(Vec::new()));
        let owned: Ownership = Arc::default();
        let (stop2, read2, owned2) = (stop.clone(), read.clone(), owned.clone());
        let task = tokio::spawn(async move {
            let mut consumer = GroupConsumer::subscribe(client, config).unwrap();
            consumer.set_listener(Box::new(Recorder(owned2)));
            while !stop2.load(Ordering::Acquire) {
                match consumer.poll(Duration::from_millis(200)).await {
                    Ok(records) => read2
                        .lock()
                        .unwrap()
                        .extend(records.iter().map(|r| (r.partition, r.offset))),
                    // A broker was killed under it: the consumer retries on the next poll.
                    Err(e) if e.kind.is_retriable() => {}
                    Err(e) => panic!("poll failed: {e}"),
                }
            }
            consumer.close().await.expect("commit on close");
        });
        Member { stop, task, read, owned }
    }

    async fn stop(self) -> Vec<(u32, i64)> {
        self.stop.store(true, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("member closes within 60 s")
            .expect("member task");
        Arc::try_unwrap(self.read).unwrap().into_inner().unwrap()
    }
}

/// `shale group describe --format json` through `broker`.
fn describe_cli(broker: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(["group", "describe", GROUP, "--format", "json", "--broker", broker])
        .env("SHALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "group describe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn describe(client: &Client) -> Option<pb::DescribeGroupResponse> {
    GroupAdmin::new(client.clone()).describe(GROUP).await.ok()
}

async fn log_ends(client: &Client) -> Vec<i64> {
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        let spec = pb::list_offsets_request::Spec::Latest(true);
        ends.push(client.admin().list_offsets(TOPIC, p, spec).await.unwrap().offset);
    }
    ends
}

async fn committed(client: &Client) -> BTreeMap<u32, i64> {
    GroupAdmin::new(client.clone())
        .fetch_offsets(GROUP, &[TOPIC.to_string()])
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect()
}

/// Produces until told to stop; returns the acked (partition, offset) pairs.
fn spawn_producer(
    client: Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeSet<(u32, i64)>> {
    tokio::spawn(async move {
        let producer = Producer::new(client, ProducerConfig::default());
        let mut acked = BTreeSet::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Acquire) {
            let mut deliveries = Vec::new();
            for _ in 0..50 {
                let record = ProducerRecord::new(TOPIC, format!("v{i}")).key(format!("k{i}"));
                deliveries.push(producer.send(record).await.unwrap());
                i += 1;
            }
            for d in deliveries {
                let md = d.await.expect("acked");
                acked.insert((md.partition, md.offset));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_survive_coordinator_loss_and_a_full_restart() {
    let mut c = Cluster::start(3, "groups", &[]);
    let client = c.client();
    wait_until(Duration::from_secs(30), "three live brokers", || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    client.admin().create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new()).await.unwrap();

    // Two members whose clients start at different brokers: at least one of them reaches the
    // coordinator only through forwarding.
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(client.clone(), stop_producing.clone());
    let m1 = Member::start(c.client_from(0), Duration::from_millis(1500));
    let m2 = Member::start(c.client_from(1), Duration::from_millis(1500));
    wait_until(Duration::from_secs(30), "two members with 3 partitions each", || {
        let client = client.clone();
        async move {
            describe(&client).await.is_some_and(|d| {
                d.members.len() == 2
                    && d.members.iter().all(|m| {
                        m.revoking.is_empty()
                            && m.assignment.iter().map(|t| t.partitions.len()).sum::<usize>() == 3
                    })
            })
        }
    })
    .await;

    // Every broker names the same coordinator and the same members.
    let views: Vec<serde_json::Value> = (0..3).map(|i| describe_cli(&c.addr(i))).collect();
    let coordinator = views[0]["coordinator"].as_i64().unwrap();
    assert!((1..=3).contains(&coordinator), "{}", views[0]);
    for v in &views {
        assert_eq!(v["coordinator"], views[0]["coordinator"], "{v}");
        assert_eq!(v["members"].as_array().unwrap().len(), 2, "{v}");
    }

    // While the producer runs, describe shows lag = log_end - committed, with log_end
    // between the log ends read just before and just after.
    let mut lag_seen = 0;
    for _ in 0..10 {
        let before = log_ends(&client).await;
        let v = describe_cli(&c.addr(2));
        let after = log_ends(&client).await;
        let parts = v["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), PARTITIONS as usize, "{v}");
        for p in parts {
            let i = p["partition"].as_u64().unwrap() as usize;
            let field = |name: &str| p[name].as_i64().unwrap();
            let (committed, log_end, lag) = (field("committed"), field("log_end"), field("lag"));
            assert!(
                before[i] <= log_end && log_end <= after[i],
                "partition {i}: log_end {log_end} outside {}..={}",
                before[i],
                after[i]
            );
            assert_eq!(lag, log_end - committed.max(0), "partition {i}: {p}");
            assert!(committed <= log_end, "partition {i} committed past the end: {p}");
            lag_seen = lag_seen.max(lag);
        }
    }
    println!("largest lag seen while producing: {lag_seen}");
    assert!(lag_seen > 0, "a running producer and 1.5 s commits show some lag");

    // Kill the coordinator: another broker takes the group over; the members (a client
    // talking to the dead broker moves on to the next) keep consuming.
    let victim = coordinator as usize - 1;
    let ids_before = member_ids(&describe(&client).await.unwrap());
    let killed = Instant::now();
    c.kill(victim);
    let survivor = c.addr((victim + 1) % 3);
    let survivor_client = Client::new(&survivor).unwrap();
    wait_until(Duration::from_secs(30), "a new coordinator", || {
        let client = survivor_client.clone();
        async move {
            describe(&client)
                .await
                .is_some_and(|d| d.coordinator > 0 && i64::from(d.coordinator) != coordinator)
        }
    })
    .await;
    println!("coordinator {coordinator} killed; group served again after {:?}", killed.elapsed());

    wait_until(Duration::from_secs(60), "two members sharing all partitions", || {
        let client = survivor_client.clone();
        async move { describe(&client).await.is_some_and(|d| settled(&d, 2)) }
    })
    .await;

    let ids_after = member_ids(&describe(&survivor_client).await.unwrap());
    println!(
        "members after the failover: {} kept their ids, {} rejoined",
        ids_after.intersection(&ids_before).count(),
        ids_after.difference(&ids_before).count()
    );

    stop_producing.store(true, Ordering::Release);
    let acked = producer.await.unwrap();
    wait_until(Duration::from_secs(60), "the group to commit up to the log end", || {
        let client = survivor_client.clone();
        async move {
            describe(&client)
                .await
                .is_some_and(|d| d.partitions.iter().all(|p| p.lag == 0 && p.committed >= 0))
        }
    })
    .await;
    let (owned1, owned2) = (m1.owned.clone(), m2.owned.clone());
    let mut read = m1.stop().await;
    read.extend(m2.stop().await);
    assert_no_two_owners(&[("m1", &owned1), ("m2", &owned2)], Instant::now());
    let read: BTreeSet<(u32, i64)> = read.into_iter().collect();
    let missing: Vec<_> = acked.difference(&read).collect();
    println!("{} records acked, {} distinct read", acked.len(), read.len());
    assert!(missing.is_empty(), "{} acked records never consumed: {missing:?}", missing.len());

    // Offsets survive a restart of every broker: they are in etcd.
    c.restart(victim);
    let before = committed(&survivor_client).await;
    assert_eq!(before.len(), PARTITIONS as usize, "{before:?}");
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    let client = c.client();
    let after = committed(&client).await;
    assert_eq!(after, before, "committed offsets after restarting every broker");
    wait_for(Duration::from_secs(60), "no members and lag 0 after the restart", || {
        let client = client.clone();
        async move {
            let d = GroupAdmin::new(client).describe(GROUP).await.map_err(|e| e.to_string())?;
            let done = d.members.is_empty()
                && d.partitions.len() == PARTITIONS as usize
                && d.partitions.iter().all(|p| p.lag == 0);
            if done { Ok(()) } else { Err(format!("{d:?}")) }
        }
    })
    .await;

    // A new member resumes at the commits (not auto.offset.reset=earliest): it reads only
    // what is produced now.
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(client.clone(), stop_producing.clone());
    let m = Member::start(client.clone(), Duration::from_millis(200));
    wait_until(Duration::from_secs(30), "the new member to read", || {
        let n = m.read.lock().unwrap().len();
        async move { n >= 200 }
    })
    .await;
    stop_producing.store(true, Ordering::Release);
    let fresh = producer.await.unwrap();
    wait_until(Duration::from_secs(60), "the new member to catch up", || {
        let client = client.clone();
        async move { describe(&client).await.is_some_and(|d| d.partitions.iter().all(|p| p.lag == 0)) }
    })
    .await;
    let read: BTreeSet<(u32, i64)> = m.stop().await.into_iter().collect();
    assert_eq!(read, fresh, "after the restart the group reads exactly the new records");
}

/// The member ids of the group and whether it is settled: `members` members, nothing being
/// revoked, every partition assigned.
fn settled(d: &pb::DescribeGroupResponse, members: usize) -> bool {
    d.members.len() == members
        && d.members.iter().all(|m| m.revoking.is_empty())
        && d.members
            .iter()
            .map(|m| m.assignment.iter().map(|t| t.partitions.len()).sum::<usize>())
            .sum::<usize>()
            == PARTITIONS as usize
}

fn member_ids(d: &pb::DescribeGroupResponse) -> BTreeSet<String> {
    d.members.iter().map(|m| m.member_id.clone()).collect()
}

/// SIGTERM on the group's coordinator: as soon as it marks itself draining, and while it
/// still runs (held there by the `drain.hold` failpoint), another broker coordinates the
/// group; the old one forwards what reaches it. The members keep their ids and the group
/// its epoch through the hand-over and after the old coordinator has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_coordinator_hands_its_group_over_before_it_leaves() {
    let mut c = Cluster::start(3, "handover", &[]);
    let client = c.client();
    wait_until(Duration::from_secs(30), "three live brokers", || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    client.admin().create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new()).await.unwrap();
    let m1 = Member::start(c.client_from(0), Duration::from_millis(500));
    let m2 = Member::start(c.client_from(1), Duration::from_millis(500));
    wait_until(Duration::from_secs(30), "two members sharing all partitions", || {
        let client = client.clone();
        async move { describe(&client).await.is_some_and(|d| settled(&d, 2)) }
    })
    .await;
    let before = describe(&client).await.unwrap();
    let old = before.coordinator;
    assert!((1..=3).contains(&old), "coordinator {old}");
    let i = old as usize - 1;
    let other = c.broker_client((i + 1) % 3);

    c.arm(i, "drain.hold", true);
    c.broker(i).signal("TERM");
    wait_until(Duration::from_secs(30), "another broker coordinating while the old drains", || {
        let client = other.clone();
        async move { describe(&client).await.is_some_and(|d| d.coordinator != old) }
    })
    .await;
    let during = describe(&other).await.unwrap();
    let new = during.coordinator;
    assert!(
        c.brokers[i].as_mut().unwrap().child.try_wait().unwrap().is_none(),
        "broker {old} is still running, held while draining"
    );
    let via_old =
        describe(&c.broker_client(i)).await.expect("describe through the draining broker");
    assert_eq!(via_old.coordinator, new, "the draining broker names the new coordinator");
    println!("coordinator {old} draining; broker {new} coordinates the group");

    // The members heartbeat at the new coordinator (some through the draining broker) and
    // keep consuming: a record produced now to every partition is committed by them.
    let producer = Producer::new(c.broker_client((i + 1) % 3), ProducerConfig::default());
    for p in 0..PARTITIONS {
        producer
            .send(ProducerRecord::new(TOPIC, "after the hand-over").partition(p))
            .await
            .unwrap()
            .await
            .expect("produced while the old coordinator drains");
    }
    let ends = log_ends(&other).await;
    wait_until(Duration::from_secs(30), "commits up to the log ends", || {
        let client = other.clone();
        let ends = ends.clone();
        async move {
            let committed = committed(&client).await;
            committed.len() == PARTITIONS as usize
                && committed.iter().all(|(p, o)| *o >= ends[*p as usize])
        }
    })
    .await;
    let handed = describe(&other).await.unwrap();
    assert!(settled(&handed, 2), "{handed:?}");
    assert_eq!(member_ids(&handed), member_ids(&before), "members keep their ids");
    assert_eq!(handed.group_epoch, before.group_epoch, "no rebalance: {handed:?}");

    c.arm(i, "drain.hold", false);
    let status = c.wait_for_exit(i, "the drained broker to exit").await;
    assert!(status.success(), "broker {old} exited with {status}");
    let after = describe(&other).await.unwrap();
    assert_eq!(after.coordinator, new, "the coordinator stays put when the old one leaves");
    assert_eq!(member_ids(&after), member_ids(&before), "members keep their ids");
    assert_eq!(after.group_epoch, before.group_epoch, "no rebalance: {after:?}");
    let (owned1, owned2) = (m1.owned.clone(), m2.owned.clone());
    m1.stop().await;
    m2.stop().await;
    assert_no_two_owners(&[("m1", &owned1), ("m2", &owned2)], Instant::now());
}

/// The ownership check itself: overlapping spans of two members fail it.
#[test]
#[should_panic(expected = "partition 3 had two owners")]
fn the_ownership_check_catches_two_owners() {
    let t = Instant::now();
    let ms = |n| t + Duration::from_millis(n);
    let a: Ownership = Arc::new(Mutex::new(vec![(ms(0), 3, true), (ms(50), 3, false)]));
    let b: Ownership = Arc::new(Mutex::new(vec![(ms(40), 3, true)]));
    assert_no_two_owners(&[("a", &a), ("b", &b)], ms(100));
}
