//! Cluster mode on a real etcd: three `shale serve` processes on 127.0.0.1 place
//! partitions, route clients to leaders, survive the loss of the controller and of a broker,
//! fence a paused leader, ride out an etcd outage, and grow a topic's partitions.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, wait_for_brokers};
use common::{produce_req, shale_cli_with, wait_until};
use shale::client::Client;
use shale::proto::pb;
use shale::proto::status::from_status;

const TTL_SECS: u64 = cluster::LEASE_TTL_SECS;

async fn metadata(client: &Client) -> pb::GetMetadataResponse {
    client.admin().metadata(&[]).await.unwrap()
}

fn leaders(md: &pb::GetMetadataResponse, topic: &str) -> BTreeMap<u32, (i32, i32)> {
    md.topics
        .iter()
        .filter(|t| t.topic.as_ref().is_some_and(|i| i.name == topic))
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition, (p.leader_id, p.leader_epoch))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_partitions_spread_and_clients_route_to_leaders() {
    let c = Cluster::start(3, "routing", &[]);
    wait_for_brokers(&c.broker_client(0), &[1, 2, 3]).await;
    c.broker_client(0).admin().create_topic("orders", 12, 0, BTreeMap::new()).await.unwrap();
    // Broker 2 learns of the topic from the metadata store, a moment after broker 1 created it.
    let other = c.broker_client(1);
    wait_until(Duration::from_secs(30), "broker 2 to know the 12 partitions' leaders", || {
        let other = other.clone();
        async move {
            let md = metadata(&other).await;
            let known = leaders(&md, "orders");
            known.len() == 12 && known.values().all(|(leader, _)| *leader > 0)
        }
    })
    .await;
    let md = metadata(&other).await;
    let mut per_broker: HashMap<i32, usize> = HashMap::new();
    for (leader, epoch) in leaders(&md, "orders").values() {
        assert_eq!(*epoch, 0);
        *per_broker.entry(*leader).or_default() += 1;
    }
    assert_eq!(per_broker, HashMap::from([(1, 4), (2, 4), (3, 4)]), "each broker leads 4");

    // A non-leader answers NOT_LEADER naming the leader.
    let (p, (leader, _)) = leaders(&md, "orders").into_iter().find(|(_, (l, _))| *l != 1).unwrap();
    let status = c
        .broker_client(0)
        .log_rpc(&c.broker(0).addr)
        .unwrap()
        .produce(produce_req("orders", p, "x"))
        .await
        .unwrap_err();
    let e = from_status(&status);
    assert_eq!(e.reason, "NOT_LEADER", "{status:?}");
    assert_eq!(e.details["leader_id"], leader.to_string());
    assert_eq!(e.details["leader_address"], c.broker(leader as usize - 1).addr);

    // Produce through broker 1, consume through broker 2, with the CLI.
    let input: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    shale_cli_with(&c.broker(0).addr, &["produce", "--topic", "orders"], Some(input.as_bytes()));
    let out = shale_cli_with(
        &c.broker(1).addr,
        &["consume", "--topic", "orders", "--from-beginning", "--max-records", "20000"],
        None,
    );
    let mut values: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    values.sort();
    assert_eq!(values, (1..=20_000).collect::<Vec<_>>());
    // Topic describe through any broker shows every partition's offsets (asked of leaders).
    let described = shale_cli_with(
        &c.broker(2).addr,
        &["topic", "describe", "orders", "--format", "json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&described).unwrap();
    let ends: Vec<i64> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end_offset"].as_i64().unwrap())
        .collect();
    assert!(ends.iter().all(|e| *e >= 0), "{ends:?}");
    assert_eq!(ends.iter().sum::<i64>(), 20_000);
    let described =
        shale_cli_with(&c.broker(2).addr, &["cluster", "describe", "--format", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(v["brokers"].as_array().unwrap().len(), 3);
    assert!(v["controller"].as_i64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_broker_loss_then_return() {
    let mut c = Cluster::start(3, "failover", &[]);
    wait_for_brokers(&c.broker_client(0), &[1, 2, 3]).await;
    let admin = c.broker_client(0).admin();
    admin.create_topic("events", 6, 0, BTreeMap::new()).await.unwrap();
    let producer =
        shale::client::Producer::new(c.broker_client(0), shale::client::ProducerConfig::default());
    let mut sent = 0;
    for i in 0..600 {
        producer
            .send(shale::client::ProducerRecord::new("events", format!("before-{i}")))
            .await
            .unwrap();
        sent += 1;
    }
    producer.flush().await.unwrap();
    drop(producer);

    // Kill the controller: another broker takes over once its lease expires.
    let controller = metadata(&c.broker_client(0)).await.controller_id;
    let victim = controller as usize - 1;
    let survivor = (victim + 1) % 3;
    let t0 = Instant::now();
    c.kill(victim);
    let client = c.broker_client(survivor);
    wait_until(Duration::from_secs(30), "a new controller", || {
        let client = client.clone();
        async move {
            client
                .admin()
                .metadata(&[])
                .await
                .is_ok_and(|md| md.controller_id > 0 && md.controller_id != controller)
        }
    })
    .await;
    println!("controller failover: {} ms (lease TTL {TTL_SECS} s)", t0.elapsed().as_millis());

    // The dead broker leaves the cluster; its partitions go offline with a precise status.
    let live: Vec<i32> = (1..=3).filter(|id| *id != controller).collect();
    wait_for_brokers(&client, &live).await;
    wait_until(Duration::from_secs(30), "the dead broker's partitions marked offline", || {
        let client = client.clone();
        async move {
            let md = client.admin().metadata(&[]).await.unwrap();
            leaders(&md, "events").values().filter(|(l, _)| *l == -1).count() == 2
        }
    })
    .await;
    let md = metadata(&client).await;
    let (offline, _) = leaders(&md, "events").into_iter().find(|(_, (l, _))| *l == -1).unwrap();
    // Metadata reads etcd; the survivor's own view follows by watch a moment later, and until
    // then it names the dead leader (NOT_LEADER). Every answer comes quickly, never a hang.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let status = client
            .log_rpc(&c.broker(survivor).addr)
            .unwrap()
            .produce(produce_req("events", offline, "x"))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "answered, not hung");
        if status.code() == tonic::Code::Unavailable {
            assert_eq!(from_status(&status).reason, "PARTITION_OFFLINE", "{status:?}");
            break;
        }
        assert_eq!(from_status(&status).reason, "NOT_LEADER", "{status:?}");
        assert!(Instant::now() < deadline, "the survivor still names a dead leader: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // New topics can be created; partitions of live brokers keep serving.
    client.admin().create_topic("after", 2, 0, BTreeMap::new()).await.unwrap();
    let (online, _) = leaders(&md, "events").into_iter().find(|(_, (l, _))| *l > 0).unwrap();
    let resp = client
        .on_leader("events", online, |mut log| async move {
            log.produce(produce_req("events", online, "during")).await
        })
        .await
        .unwrap();
    assert!(resp.base_offset >= 0);
    sent += 1;

    // The dead broker returns with its data; its partitions serve again.
    c.restart(victim);
    wait_for_brokers(&client, &[1, 2, 3]).await;
    wait_until(Duration::from_secs(30), "every partition led again", || {
        let client = client.clone();
        async move {
            let md = client.admin().metadata(&[]).await.unwrap();
            leaders(&md, "events").values().all(|(l, _)| *l > 0)
        }
    })
    .await;
    client.invalidate("events");
    let read = common::read_all(&client, "events").await;
    assert_eq!(
        read.values().map(Vec::len).sum::<usize>(),
        sent,
        "every record back after the return"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_acknowledges_nothing_at_a_stale_epoch() {
    let c = Cluster::start(2, "zombie", &[]);
    wait_for_brokers(&c.broker_client(0), &[1, 2]).await;
    let client = c.broker_client(0);
    client.admin().create_topic("z", 2, 0, BTreeMap::new()).await.unwrap();
    let md = metadata(&client).await;
    let (partition, (leader, epoch)) =
        leaders(&md, "z").into_iter().find(|(_, (l, _))| *l == 2).unwrap();
    assert_eq!(leader, 2);
    let zombie = c.broker(1);
    let log = client.log_rpc(&zombie.addr).unwrap();

    // Requests keep going to the leader while it is frozen, and after it thaws.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (acks, sender) = common::send_directly(log, "z", partition, stop.clone());
    wait_until(Duration::from_secs(10), "acks before the pause", || {
        let n = acks.lock().unwrap().len();
        async move { n >= 5 }
    })
    .await;
    zombie.signal("STOP");
    // Requests count as sent during the freeze only once the process is stopped: one sent
    // between the signal and the stop may be answered, at the epoch it then had.
    let stat = format!("/proc/{}/stat", zombie.pid());
    wait_until(Duration::from_secs(5), "the broker's process stopped by SIGSTOP", || {
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        let stopped = state.rsplit(") ").next().is_some_and(|rest| rest.starts_with('T'));
        async move { stopped }
    })
    .await;
    let paused = Instant::now();
    let other = c.broker_client(0);
    wait_until(Duration::from_secs(30), "the frozen leader's partition to move on", || {
        let other = other.clone();
        async move {
            let md = other.admin().metadata(&[]).await.unwrap();
            leaders(&md, "z").get(&partition).is_some_and(|(_, e)| *e > epoch)
        }
    })
    .await;
    let resumed = Instant::now();
    zombie.signal("CONT");
    // It registers again and leads at a new epoch; keep sending a little longer.
    wait_until(Duration::from_secs(30), "the thawed broker to lead again at a newer epoch", || {
        let acks = acks.clone();
        async move { acks.lock().unwrap().iter().any(|(_, t, e)| *t > resumed && *e > epoch) }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.unwrap();
    let acks = acks.lock().unwrap();
    // A request sent after the freeze cannot have been handled before it: any ack of one at
    // the old epoch would be a zombie's.
    let stale = acks.iter().filter(|(sent, _, e)| *sent > paused && *e <= epoch).count();
    let sent_during = acks.iter().filter(|(sent, _, _)| *sent > paused && *sent < resumed).count();
    println!(
        "zombie: {} acks in all; {sent_during} acked requests were sent while frozen; {stale} \
         acked at the stale epoch {epoch}",
        acks.len()
    );
    assert_eq!(stale, 0, "acknowledged writes at a stale epoch");
}

fn count_by(errors: &Mutex<BTreeMap<String, usize>>, reason: &str) {
    *errors.lock().unwrap().entry(reason.to_string()).or_default() += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_ride_out_a_30s_etcd_outage() {
    let mut c = Cluster::start(2, "outage", &[]);
    wait_for_brokers(&c.broker_client(0), &[1, 2]).await;
    let client = c.broker_client(0);
    client.admin().create_topic("o", 2, 0, BTreeMap::new()).await.unwrap();
    let errors: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let last_ok: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, errors, ok, stop, last_ok) =
            (client.clone(), errors.clone(), ok.clone(), stop.clone(), last_ok.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let p = i % 2;
                let res = client
                    .on_leader("o", p, |mut log| async move {
                        log.produce(produce_req("o", p, "x")).await
                    })
                    .await;
                match res {
                    Ok(_) => {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        *last_ok.lock().unwrap() = Some(Instant::now());
                    }
                    Err(e) => count_by(&errors, &e.reason),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_until(Duration::from_secs(10), "writes before the outage", || {
        let n = ok.load(std::sync::atomic::Ordering::Relaxed);
        async move { n > 20 }
    })
    .await;
    let before = ok.load(std::sync::atomic::Ordering::Relaxed);
    let stopped = Instant::now();
    c.etcd.stop();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = ok.load(std::sync::atomic::Ordering::Relaxed);
    let last = last_ok.lock().unwrap().map(|t| t.saturating_duration_since(stopped));
    println!(
        "etcd outage: {} writes acknowledged after etcd stopped, the last {:?} after (lease TTL {TTL_SECS} s)",
        during - before,
        last
    );
    // Nothing may be acknowledged once a broker can no longer prove its lease.
    assert!(
        last.is_none_or(|l| l < Duration::from_secs(TTL_SECS)),
        "acked past the lease: {last:?}"
    );
    c.etcd.restart();
    let restarted = Instant::now();
    wait_until(Duration::from_secs(60), "writes to succeed again after etcd returns", || {
        let n = ok.load(std::sync::atomic::Ordering::Relaxed);
        async move { n > during + 20 }
    })
    .await;
    println!(
        "etcd outage: writes resumed {} ms after etcd restarted; client errors by reason: {:?}",
        restarted.elapsed().as_millis(),
        errors.lock().unwrap()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    // Both brokers are registered again without a restart, and each still serves.
    wait_for_brokers(&client, &[1, 2]).await;
    for p in 0..2 {
        client
            .on_leader(
                "o",
                p,
                |mut log| async move { log.produce(produce_req("o", p, "after")).await },
            )
            .await
            .unwrap();
    }
}

/// A leader whose disk fails an fsync (an injected EIO) stops acknowledging (fail-stop) and
/// hands the partition to an in-sync follower at a new epoch; producers carry on there and
/// nothing acknowledged is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_fails_an_fsync_hands_its_partition_over() {
    use shale::client::{Producer, ProducerConfig, ProducerRecord};
    let c = Cluster::start(3, "eio", &[]);
    let client = c.client();
    wait_for_brokers(&client, &[1, 2, 3]).await;
    let cfg = [("min.insync.replicas".to_string(), "2".to_string())].into();
    client.admin().create_topic("e", 1, 3, cfg).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acked = Vec::new();
    let mut send = async |from: usize, to: usize| {
        let mut pending = Vec::new();
        for i in from..to {
            let v = format!("v{i:05}");
            pending.push((v.clone(), producer.send(ProducerRecord::new("e", v)).await.unwrap()));
        }
        for (v, d) in pending {
            d.await.unwrap();
            acked.push(v);
        }
    };
    send(0, 200).await;
    let (leader, epoch) = leaders(&metadata(&client).await, "e")[&0];
    c.arm(leader as usize - 1, "log.fsync_eio", true);
    send(200, 400).await;
    let (next, next_epoch) = leaders(&metadata(&client).await, "e")[&0];
    println!("leader {leader} (epoch {epoch}) failed an fsync; {next} leads at epoch {next_epoch}");
    assert_ne!(next, leader, "leadership stayed on the broker whose log failed");
    assert!(next_epoch > epoch);
    let read = common::read_all(&client, "e").await;
    let report = common::check(&BTreeMap::from([(0u32, acked)]), &read);
    assert_eq!((report.lost, report.duplicated, report.offset_errors), (0, 0, 0), "{report:?}");
    assert_eq!(report.acknowledged, 400);
}

/// Kafka's CreatePartitions: `shale topic alter --partitions` grows a topic from 2 to 5
/// partitions; the new ones are placed across the brokers with the topic's replication
/// factor, take records and are read back. Shrinking, growing past `topics.max_partitions`
/// and an unknown topic are refused with errors naming the count or the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_added_to_a_topic_and_used() {
    use shale::client::{Producer, ProducerConfig, ProducerRecord};
    let c = Cluster::start(3, "grow", &[]);
    let client = c.broker_client(0);
    wait_for_brokers(&client, &[1, 2, 3]).await;
    client.admin().create_topic("grow", 2, 2, BTreeMap::new()).await.unwrap();

    let out =
        shale_cli_with(&c.broker(1).addr, &["topic", "alter", "grow", "--partitions", "5"], None);
    assert!(out.contains("now has 5 partitions"), "{out}");
    assert!(out.contains("Keyed records now hash over 5"), "states the key consequence: {out}");
    // Broker 1 answered once it saw the new partitions placed; broker 0 learns of them
    // from its own watch of the metadata store, a moment apart.
    let md =
        common::wait_for(Duration::from_secs(10), "broker 0 to see 5 partitions placed", || {
            let client = client.clone();
            async move {
                let md = client
                    .admin()
                    .metadata(&["grow".to_string()])
                    .await
                    .map_err(|e| e.to_string())?;
                match md.topics[0].partitions.len() {
                    5 => Ok(md),
                    n => Err(format!("{n} partitions: {:?}", md.topics[0].partitions)),
                }
            }
        })
        .await;
    let parts = &md.topics[0].partitions;
    assert_eq!(md.topics[0].topic.as_ref().unwrap().partitions, 5);
    assert!(parts.iter().all(|p| p.replicas.len() == 2 && p.leader_id > 0), "{parts:?}");
    let led: std::collections::BTreeSet<i32> = parts.iter().map(|p| p.leader_id).collect();
    assert_eq!(led.len(), 3, "the five partitions are led by all three brokers: {parts:?}");

    // Every partition, old and new, takes records; all of them are read back.
    client.invalidate("grow");
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acked = BTreeMap::new();
    for p in 0..5u32 {
        let values: Vec<String> = (0..50).map(|i| format!("p{p}-{i}")).collect();
        let mut pending = vec![];
        for v in &values {
            pending.push(producer.send(ProducerRecord::new("grow", v.clone()).partition(p)).await);
        }
        producer.flush().await.unwrap();
        for d in pending {
            d.unwrap().await.unwrap();
        }
        acked.insert(p, values);
    }
    let read = common::read_all(&client, "grow").await;
    let report = common::check(&acked, &read);
    assert_eq!((report.acknowledged, report.lost, report.duplicated), (250, 0, 0), "{report:?}");

    let admin = client.admin();
    let shrink = admin.create_partitions("grow", 3).await.unwrap_err();
    assert_eq!(shrink.reason, "INVALID_PARTITIONS", "{shrink}");
    assert!(shrink.to_string().contains("has 5 partitions"), "{shrink}");
    let same = admin.create_partitions("grow", 5).await.unwrap_err();
    assert_eq!(same.reason, "INVALID_PARTITIONS", "{same}");
    let huge = admin.create_partitions("grow", 10_000_000).await.unwrap_err();
    assert!(huge.to_string().contains("exceeds the limit"), "{huge}");
    let unknown = admin.create_partitions("nope", 4).await.unwrap_err();
    assert_eq!(unknown.reason, "UNKNOWN_TOPIC", "{unknown}");
    let md = client.admin().metadata(&["grow".to_string()]).await.unwrap();
    assert_eq!(md.topics[0].partitions.len(), 5, "refusals changed nothing");
}
