//! Kafka's consumer group protocol (KIP-848) with clients nobody here wrote: Apache Kafka's
//! Java client 4.3 and librdkafka (confluent-kafka), each with `group.protocol=consumer`,
//! as member processes (`tests/kafka/GroupMember.java`, `tests/kafka/group_member.py`).
//!
//! - Three members share a 6-partition topic and read every record, committing; one is
//!   SIGKILLed and another added while records are produced: after the session timeout
//!   the live members own every partition, nothing acked is lost, and only records the
//!   killed member read after its last commit are read twice.
//! - A regular-expression subscription picks up a topic created later.
//! - A static member (`group.instance.id`) stopped and restarted within its session keeps
//!   its partitions, with no rebalance (the group epoch does not move).
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/member.rs"]
mod member;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{produce, wait_until};
use member::Member;
use shale::client::{Client, GroupAdmin};
use shale::proto::pb;
use shale::server::RunningServer;

/// The session timeout of consumer-protocol members (the broker's; Kafka's default is 45 s).
const SESSION_MS: u32 = 6000;

/// Which client library a member runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lib {
    Java,
    Librdkafka,
}

/// A member of `group` subscribed to `subscription` (topics, comma-separated, or a
/// regular expression: `re:EXPR`), static with `instance` if given.
fn start_member(
    lib: Lib,
    dir: &Path,
    name: &str,
    bootstrap: &str,
    group: &str,
    subscription: &str,
    instance: Option<&str>,
) -> Option<Member> {
    let mut args = vec![bootstrap, group, "consumer"];
    let regex;
    let cmd = match lib {
        Lib::Java => {
            args.push(subscription);
            args.extend(instance);
            kafka::java_program(&kafka::java_jars()?, "GroupMember.java", &args)
        }
        Lib::Librdkafka => {
            // librdkafka takes a subscription starting with ^ as a regular expression.
            regex = subscription.strip_prefix("re:").map(|r| format!("^{r}"));
            args.push(regex.as_deref().unwrap_or(subscription));
            args.extend(instance);
            kafka::python_script(&kafka::python()?, "group_member.py", &args)
        }
    };
    Some(Member::spawn(cmd, dir, name))
}

/// (topic, partition, offset) of every record `m` printed, in order.
fn records(m: &Member) -> Vec<(String, u32, i64)> {
    m.json_lines()
        .into_iter()
        .map(|v| {
            let topic = v["topic"].as_str().unwrap().to_string();
            (topic, v["partition"].as_u64().unwrap() as u32, v["offset"].as_i64().unwrap())
        })
        .collect()
}

/// How many assignments `m` reported.
fn assignments(m: &Member) -> usize {
    m.stderr().lines().filter(|l| l.starts_with("ASSIGNED")).count()
}

/// A broker for one test, with a Kafka listener and consumer-protocol sessions of
/// `session_ms`.
async fn broker(dir: &Path, session_ms: u32) -> RunningServer {
    let mut settings = common::settings(dir);
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.groups.consumer_session_timeout_ms = session_ms;
    settings.groups.consumer_heartbeat_interval_ms = 500;
    common::start(settings).await
}

async fn describe(client: &Client, group: &str) -> Option<pb::DescribeGroupResponse> {
    GroupAdmin::new(client.clone()).describe(group).await.ok()
}

/// Each member's partitions as the broker sees them, once no member is giving any up.
fn settled(d: &pb::DescribeGroupResponse) -> Option<BTreeMap<String, BTreeSet<(String, u32)>>> {
    if d.members.iter().any(|m| !m.revoking.is_empty()) {
        return None;
    }
    Some(
        d.members
            .iter()
            .map(|m| {
                let set = m
                    .assignment
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
                    .collect();
                (m.member_id.clone(), set)
            })
            .collect(),
    )
}

/// Waits until no member of the group is giving partitions up and `ok` holds of each
/// member's partitions; the group's description then.
async fn wait_for<F>(client: &Client, group: &str, what: &str, ok: F) -> pb::DescribeGroupResponse
where
    F: Fn(&BTreeMap<String, BTreeSet<(String, u32)>>) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(d) = describe(client, group).await
            && settled(&d).is_some_and(|owned| ok(&owned))
        {
            return d;
        }
        assert!(Instant::now() < deadline, "timed out after 60 s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait_for`] `shares`: partition counts per member, sorted.
async fn wait_for_shares(
    client: &Client,
    group: &str,
    shares: &[usize],
    what: &str,
) -> pb::DescribeGroupResponse {
    wait_for(client, group, what, |owned| {
        let mut counts: Vec<usize> = owned.values().map(BTreeSet::len).collect();
        counts.sort();
        counts == shares
    })
    .await
}

async fn wait_for_lag_zero(client: &Client, group: &str) {
    wait_until(Duration::from_secs(90), "the group to commit up to the log end", || {
        let client = client.clone();
        async move {
            describe(&client, group).await.is_some_and(|d| {
                !d.partitions.is_empty()
                    && d.partitions.iter().all(|p| p.lag == 0 && p.committed >= 0)
            })
        }
    })
    .await;
}

/// Records produced to a topic in rounds until stopped.
struct Producing {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeSet<(String, u32, i64)>>,
}

impl Producing {
    /// Produces rounds of `per_round` records to `topic`, 50 ms apart.
    fn start(client: &Client, topic: &'static str, per_round: u64) -> Producing {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, stopped) = (client.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            while !stopped.load(Ordering::Relaxed) {
                acked.extend(produce(&client, topic, per_round).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acked
        });
        Producing { stop, task }
    }

    /// Stops producing; every record acked.
    async fn stop(self) -> BTreeSet<(String, u32, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Three members, one SIGKILLed and one added while records are produced.
async fn kill_and_add(lib: Lib) {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(&dir.path().join("broker"), SESSION_MS).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    let (topic, group) = ("events", "readers");
    client.admin().create_topic(topic, 6, 1, BTreeMap::new()).await.unwrap();
    let mut acked = produce(&client, topic, 1200).await;

    let out = dir.path();
    let start = |name: &str| start_member(lib, out, name, &bootstrap, group, topic, None);
    let Some(m1) = start("m1") else { return };
    let m2 = start("m2").unwrap();
    let m3 = start("m3").unwrap();
    let before = wait_for_shares(&client, group, &[2, 2, 2], "three members with 2 each").await;
    assert_eq!(before.assignor, "uniform", "the consumer protocol's default assignor");

    // Records keep coming while a member dies and another joins.
    let producing = Producing::start(&client, topic, 100);
    wait_until(Duration::from_secs(30), "m2 to read something", || {
        let n = records(&m2).len();
        async move { n > 0 }
    })
    .await;
    let mut m2 = m2;
    let killed = Instant::now();
    m2.kill();
    let m4 = start("m4").unwrap();
    // m2 is gone and m4 in: three members, two of them from before, 2 partitions each.
    let earlier: BTreeSet<String> = before.members.iter().map(|m| m.member_id.clone()).collect();
    wait_for(&client, group, "m2 removed and m4 in, with 2 partitions each", |owned| {
        owned.len() == 3
            && owned.keys().filter(|id| earlier.contains(*id)).count() == 2
            && owned.values().all(|set| set.len() == 2)
    })
    .await;
    let moved = killed.elapsed();
    acked.extend(producing.stop().await);
    wait_for_lag_zero(&client, group).await;

    let mut members = [m1, m2, m3, m4];
    for m in members.iter_mut().filter(|m| m.name != "m2") {
        m.stop();
    }
    let mut seen: BTreeMap<(String, u32, i64), Vec<&str>> = BTreeMap::new();
    for m in &members {
        let records = records(m);
        let distinct: BTreeSet<_> = records.iter().collect();
        assert_eq!(distinct.len(), records.len(), "{} read a record twice", m.name);
        for r in records {
            seen.entry(r).or_default().push(&m.name);
        }
    }
    let missing: Vec<_> = acked.iter().filter(|r| !seen.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} acked records never read: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let extra: Vec<_> = seen.keys().filter(|r| !acked.contains(*r)).collect();
    assert!(extra.is_empty(), "records read that were never acked: {extra:?}");
    // Read twice only past m2's last commit: each duplicate was read by m2, and in each
    // partition they are the last records m2 read there.
    let duplicates: Vec<_> = seen.iter().filter(|(_, who)| who.len() > 1).map(|(r, _)| r).collect();
    let m2_read = records(&members[1]);
    for (topic, p, offset) in &duplicates {
        let by_m2: Vec<i64> =
            m2_read.iter().filter(|(t, q, _)| t == topic && q == p).map(|r| r.2).collect();
        assert!(by_m2.contains(offset), "{topic}-{p}@{offset} read twice, not by m2");
        assert!(
            by_m2.iter().filter(|o| *o > offset).all(|o| duplicates.contains(&&(
                topic.clone(),
                *p,
                *o
            ))),
            "{topic}-{p}@{offset} read twice, but m2 read later records that were not"
        );
    }
    println!(
        "{lib:?}: {} records acked and read; {} read twice (after m2's last commit); m2's \
         partitions moved {:.1} s after its SIGKILL (session timeout {} s)",
        acked.len(),
        duplicates.len(),
        moved.as_secs_f64(),
        SESSION_MS / 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_consumer_protocol_members_survive_a_kill_and_a_join() {
    kill_and_add(Lib::Java).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_consumer_protocol_members_survive_a_kill_and_a_join() {
    kill_and_add(Lib::Librdkafka).await;
}

/// A regular-expression subscription reads a topic created after the member joined.
async fn regex_picks_up_new_topics(lib: Lib) {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(&dir.path().join("broker"), SESSION_MS).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    let admin = client.admin();
    admin.create_topic("metrics-a", 2, 1, BTreeMap::new()).await.unwrap();
    admin.create_topic("other", 2, 1, BTreeMap::new()).await.unwrap();
    let mut acked = produce(&client, "metrics-a", 50).await;
    produce(&client, "other", 50).await;
    let sub = "re:metrics-.*";
    let Some(mut m) = start_member(lib, dir.path(), "m", &bootstrap, "rx", sub, None) else {
        return;
    };
    wait_until(Duration::from_secs(60), "the member to read metrics-a", || {
        let n = records(&m).len();
        async move { n >= 50 }
    })
    .await;
    admin.create_topic("metrics-b", 3, 1, BTreeMap::new()).await.unwrap();
    acked.extend(produce(&client, "metrics-b", 60).await);
    wait_until(Duration::from_secs(60), "the member to read metrics-b, created later", || {
        let n = records(&m).len();
        async move { n >= 110 }
    })
    .await;
    m.stop();
    let read: BTreeSet<_> = records(&m).into_iter().collect();
    assert_eq!(read, acked, "the member read exactly the matching topics' records");
    let d = describe(&client, "rx").await.unwrap();
    assert!(d.partitions.iter().all(|p| p.topic != "other"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_regex_subscription_picks_up_a_topic_created_later() {
    regex_picks_up_new_topics(Lib::Java).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_regex_subscription_picks_up_a_topic_created_later() {
    regex_picks_up_new_topics(Lib::Librdkafka).await;
}

/// A static member restarted within its session takes its partitions back with no
/// rebalance: the group epoch stays, and the other member's assignment never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_static_member_restarted_keeps_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough for a JVM to start again within the session.
    let session = Duration::from_secs(30);
    let server = broker(&dir.path().join("broker"), session.as_millis() as u32).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    client.admin().create_topic("st", 4, 1, BTreeMap::new()).await.unwrap();
    let out = dir.path();
    let start = |name: &str, instance: &str| {
        start_member(Lib::Java, out, name, &bootstrap, "statics", "st", Some(instance))
    };
    let Some(mut a) = start("a", "instance-a") else { return };
    let b = start("b", "instance-b").unwrap();
    let before = wait_for_shares(&client, "statics", &[2, 2], "two static members, 2 each").await;
    let a_id =
        before.members.iter().find(|m| m.instance_id == "instance-a").map(|m| m.member_id.clone());
    let owned_before = settled(&before).unwrap();
    let a_owned = owned_before[a_id.as_deref().unwrap_or_default()].clone();
    let b_before = before.members.iter().find(|m| m.instance_id == "instance-b").unwrap().clone();
    a.stop();
    let restarted = Instant::now();
    let a2 = start("a2", "instance-a").unwrap();
    let a_id = a_id.expect("instance-a described");
    let after = wait_for(&client, "statics", "instance-a back as a new member", |owned| {
        owned.len() == 2 && !owned.contains_key(&a_id) && owned.values().all(|s| s.len() == 2)
    })
    .await;
    let a2_id = after.members.iter().find(|m| m.instance_id == "instance-a").unwrap();
    assert_eq!(settled(&after).unwrap()[&a2_id.member_id], a_owned, "instance-a's partitions");
    assert_eq!(after.group_epoch, before.group_epoch, "no rebalance: the group epoch stayed");
    assert!(restarted.elapsed() < session, "the restart took longer than the session");
    wait_until(Duration::from_secs(30), "the restarted member to report its assignment", || {
        let n = assignments(&a2);
        async move { n > 0 }
    })
    .await;
    // b was never reconciled meanwhile: same partitions, same member epoch.
    let b_after = after.members.iter().find(|m| m.instance_id == "instance-b").unwrap();
    assert_eq!(b_after.member_epoch, b_before.member_epoch, "b was reconciled:\n{}", b.stderr());
    assert_eq!(b_after.assignment, b_before.assignment);
}

/// A group member of the classic protocol (librdkafka, cooperative-sticky).
fn classic_member(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Option<Member> {
    let python = kafka::python()?;
    let args = [bootstrap, group, "classic", topic];
    Some(Member::spawn(kafka::python_script(&python, "group_member.py", &args), dir, name))
}

/// Online upgrade (KIP-848), and back: a classic group of three librdkafka members is
/// restarted member by member with `group.protocol=consumer` while records are produced
/// and read, then member by member with the classic protocol again. The group converts
/// when the first consumer-protocol member joins, its classic members are then assigned by
/// the broker, it is a classic group again once the last consumer-protocol member left,
/// every acked record is read, and no committed offset ever moves back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_classic_group_converts_member_by_member_while_consuming() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(&dir.path().join("broker"), SESSION_MS).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    let (topic, group) = ("migrating", "upgraders");
    client.admin().create_topic(topic, 6, 1, BTreeMap::new()).await.unwrap();
    let mut acked = produce(&client, topic, 600).await;
    let out = dir.path();
    let Some(c1) = classic_member(out, "c1", &bootstrap, group, topic) else { return };
    let mut classic = vec![c1];
    for name in ["c2", "c3"] {
        classic.push(classic_member(out, name, &bootstrap, group, topic).unwrap());
    }
    let d = wait_for_shares(&client, group, &[2, 2, 2], "three classic members, 2 each").await;
    assert_eq!(d.protocol, "classic");

    let producing = Producing::start(&client, topic, 50);
    let stop = producing.stop.clone();
    // Committed offsets, sampled throughout: none may move back.
    let backwards = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampling = {
        let (client, stop, backwards) = (client.clone(), stop.clone(), backwards.clone());
        tokio::spawn(async move {
            let mut last: BTreeMap<u32, i64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(d) = describe(&client, group).await {
                    for p in d.partitions {
                        let before = last.insert(p.partition, p.committed).unwrap_or(-1);
                        if p.committed < before {
                            backwards.lock().unwrap().push((p.partition, before, p.committed));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut upgraded = Vec::new();
    for i in 1..=3usize {
        let mut old = classic.remove(0);
        old.stop();
        upgraded.push(old);
        let name = format!("k{i}");
        let m = start_member(Lib::Librdkafka, out, &name, &bootstrap, group, topic, None).unwrap();
        upgraded.push(m);
        let what =
            format!("{i} consumer-protocol member(s) and {} classic, 2 partitions each", 3 - i);
        wait_until(Duration::from_secs(60), &what, || {
            let client = client.clone();
            async move {
                describe(&client, group).await.is_some_and(|d| {
                    let consumers = d.members.iter().filter(|m| m.protocol == "consumer").count();
                    let even = settled(&d).is_some_and(|o| o.values().all(|s| s.len() == 2));
                    consumers == i && d.members.len() == 3 && even
                })
            }
        })
        .await;
        let d = describe(&client, group).await.unwrap();
        assert_eq!(d.protocol, "consumer", "converted at the first consumer-protocol member");
    }
    // And back (Kafka 4's downgrade): the members return to the classic protocol one by
    // one; when the last consumer-protocol member leaves, the group is classic again.
    for i in 1..=3usize {
        let k = upgraded.iter().position(|m| m.name == format!("k{i}")).unwrap();
        upgraded[k].stop();
        let name = format!("r{i}");
        upgraded.push(classic_member(out, &name, &bootstrap, group, topic).unwrap());
        let what = format!(
            "{} consumer-protocol member(s) and {i} classic again, 2 partitions each",
            3 - i
        );
        wait_until(Duration::from_secs(90), &what, || {
            let client = client.clone();
            async move {
                describe(&client, group).await.is_some_and(|d| {
                    let consumers = d.members.iter().filter(|m| m.protocol == "consumer").count();
                    let even = settled(&d).is_some_and(|o| o.values().all(|s| s.len() == 2));
                    consumers == 3 - i && d.members.len() == 3 && even
                })
            }
        })
        .await;
    }
    let d = describe(&client, group).await.unwrap();
    assert_eq!(d.protocol, "classic", "classic again once its last consumer member left");
    acked.extend(producing.stop().await);
    sampling.await.unwrap();
    wait_for_lag_zero(&client, group).await;
    for m in upgraded.iter_mut().filter(|m| m.name.starts_with('r')) {
        m.stop();
    }
    let mut read: BTreeMap<(String, u32, i64), usize> = BTreeMap::new();
    for m in &upgraded {
        for r in records(m) {
            *read.entry(r).or_default() += 1;
        }
    }
    let missing: Vec<_> = acked.iter().filter(|r| !read.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} acked records never read: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let backwards = backwards.lock().unwrap().clone();
    assert!(
        backwards.is_empty(),
        "committed offsets moved back (partition, from, to): {backwards:?}"
    );
    let twice = read.values().filter(|n| **n > 1).count();
    println!(
        "classic → consumer → classic, member by member: {} records acked, all read, {twice} \
         read twice; committed offsets never moved back",
        acked.len()
    );
}

/// Group configs with the Java Admin client: a session timeout set for one group is
/// described as the group's own (DYNAMIC_GROUP_CONFIG), the rest as defaults, and a
/// heartbeat interval above the session timeout is refused, naming the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_admin_sets_and_describes_group_configs() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(&dir.path().join("broker"), SESSION_MS).await;
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let Some(jars) = kafka::java_jars() else { return };
    let cmd = kafka::java_program(&jars, "GroupConfigs.java", &[&bootstrap, "configured"]);
    let json = kafka::run(cmd, Duration::from_secs(90)).assert_ok("GroupConfigs.java");
    let configs = &json["configs"];
    assert_eq!(configs["consumer.session.timeout.ms"][0], "20000", "{json}");
    assert_eq!(configs["consumer.session.timeout.ms"][1], "DYNAMIC_GROUP_CONFIG", "{json}");
    assert_eq!(configs["consumer.heartbeat.interval.ms"][1], "DEFAULT_CONFIG", "{json}");
    let refused = json["refused"].as_str().unwrap();
    assert!(
        refused.starts_with("InvalidConfigurationException") && refused.contains("99999999"),
        "{json}"
    );
}
