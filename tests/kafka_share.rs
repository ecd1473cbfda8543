//! Share groups (KIP-932) with Apache Kafka's Java client 4.3 (`KafkaShareConsumer`, as
//! member processes running `tests/kafka/ShareMember.java` with explicit
//! acknowledgement; a member prints only what the broker confirmed), and librdkafka's
//! `ShareConsumer` (confluent-kafka 2.16, `tests/kafka/share_members.py`: three members
//! accept each record once):
//!
//! - five members on a one-partition topic, 10 ms of work per record, accept every record,
//!   each exactly once, and more than one of them gets records;
//! - RELEASE redelivers at once; REJECT archives; a record released on each delivery is
//!   delivered `share.delivery.count.limit` times, then archived; both archived records
//!   are copied to the group's dead-letter topic with the reason and delivery count in
//!   their headers, and a dead-letter topic without the broker's prefix is refused;
//! - a member stalled (SIGSTOP) mid-batch has its records delivered to another after the
//!   lock duration, and one SIGKILLed has its records delivered to another; neither's
//!   late acknowledgement is taken, so no record is accepted twice;
//! - the share state survives the partition leader's SIGKILL in a three-broker cluster on
//!   a real etcd, and a power cut of a standalone broker (on the tracking disk, or on
//!   LazyFS with `SHALE_POWER_LOSS_LAZYFS`): every record is done once — accepted and
//!   confirmed, or, in the batches whose commit the failure cut, stored as accepted with
//!   the answer lost (never undelivered) — and none is delivered again after its
//!   acceptance was confirmed.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/lazyfs.rs"]
mod lazyfs;
#[path = "common/member.rs"]
mod member;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{produce, wait_until};
use member::Member;
use shale::client::Client;
use shale::server::RunningServer;

/// A broker with a Kafka listener whose share groups may lock records for 1 s at least.
async fn broker(dir: &Path) -> RunningServer {
    let mut settings = common::settings(dir);
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.groups.share_heartbeat_interval_ms = 500;
    settings.groups.share_min_record_lock_duration_ms = 1_000;
    common::start(settings).await
}

/// A share member of `group` on `topic`: `work_ms` per accepted record, `max_poll`
/// records a poll, acknowledging by `rules` (see `ShareMember.java`), setting the group
/// configs `configs` first.
fn share_member(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    (group, topic): (&str, &str),
    (work_ms, max_poll): (u32, u32),
    rules: &str,
    configs: &str,
) -> Option<Member> {
    let (work, poll) = (work_ms.to_string(), max_poll.to_string());
    let args = [bootstrap, group, topic, &work, &poll, rules, configs];
    let cmd = kafka::java_program(&kafka::java_jars()?, "ShareMember.java", &args);
    Some(Member::spawn(cmd, dir, name))
}

/// A confirmed acknowledgement a member printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    offset: i64,
    value: String,
    deliveries: i64,
    ack: String,
    /// When its commit returned (ms since the epoch).
    t: i64,
}

fn acked(m: &Member) -> Vec<Acked> {
    m.json_lines()
        .into_iter()
        .map(|v| Acked {
            offset: v["offset"].as_i64().unwrap(),
            value: v["value"].as_str().unwrap().to_string(),
            deliveries: v["deliveries"].as_i64().unwrap(),
            ack: v["ack"].as_str().unwrap().to_string(),
            t: v["t"].as_i64().unwrap(),
        })
        .collect()
}

/// Every delivery `m` reported: (offset, delivery count, a time its fetch was sent after).
fn delivered(m: &Member) -> Vec<(i64, i64, i64)> {
    m.stderr()
        .lines()
        .filter_map(|l| l.strip_prefix("GOT "))
        .filter_map(|l| {
            let mut f = l.split(' ').map(|x| x.parse::<i64>().ok());
            Some((f.next()??, f.next()??, f.next()??))
        })
        .collect()
}

/// Asserts that no record was accepted twice, nor delivered to anyone after its
/// acceptance was confirmed.
fn assert_accepted_once(members: &[&Member]) {
    let counts = accepted(members);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records accepted more than once: {twice:?}");
    let accepted_at: BTreeMap<i64, i64> = members
        .iter()
        .flat_map(|m| acked(m))
        .filter(|a| a.ack == "accept")
        .map(|a| (a.offset, a.t))
        .collect();
    for m in members {
        for (offset, deliveries, at) in delivered(m) {
            if let Some(t) = accepted_at.get(&offset) {
                assert!(
                    at <= *t,
                    "{} got offset {offset} (delivery {deliveries}) fetched after {at}, after \
                     its acceptance was confirmed at {t}",
                    m.name
                );
            }
        }
    }
}

/// Offsets accepted by `members`, with how many times each.
fn accepted(members: &[&Member]) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for m in members {
        for a in acked(m).into_iter().filter(|a| a.ack == "accept") {
            *out.entry(a.offset).or_insert(0) += 1;
        }
    }
    out
}

/// Waits up to 120 s for `members` to have accepted every offset of `want`; on timeout
/// panics naming the missing offsets, each member's last delivery and the end of the rest
/// of its stderr.
async fn wait_for_accepted(members: &[&Member], want: &BTreeSet<i64>, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<i64> = accepted(members).into_keys().collect();
        if want.is_subset(&got) {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let missing: Vec<_> = want.difference(&got).collect();
            let tails: String = members.iter().map(|m| stderr_tail(m)).collect();
            panic!(
                "timed out after 120s waiting for {what}: {} of {} not accepted, {missing:?}\n{tails}",
                missing.len(),
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a failure (the partition leader's SIGKILL, a power cut): waits until `group`'s
/// stored share state of `topic`-0 is done with every record of `produced` (its start
/// offset past the last, nothing in flight) and `members` confirmed accepting all but at
/// most `in_doubt` of them, then asserts that each one they did not confirm was delivered
/// to one of them. An acceptance in flight when its leader died may have been stored with
/// the answer lost: the member's commit failed, yet the record is done and not delivered
/// again (as with Kafka's share consumers), so the batches in flight then — `in_doubt`
/// records at most — may be neither confirmed nor redelivered, but never lost undelivered.
async fn wait_for_done(
    client: &Client,
    (group, topic): (&str, &str),
    members: &[&Member],
    produced: &BTreeSet<i64>,
    in_doubt: usize,
) {
    let end = produced.last().map_or(0, |o| o + 1);
    let admin = shale::client::GroupAdmin::new(client.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stored = admin.describe(group).await.ok().and_then(|d| {
            let p = d.partitions.into_iter().find(|p| p.topic == topic && p.partition == 0)?;
            Some((p.committed, p.in_flight))
        });
        let confirmed: BTreeSet<i64> = accepted(members).into_keys().collect();
        let unconfirmed: Vec<i64> = produced.difference(&confirmed).copied().collect();
        if stored == Some((end, 0)) && unconfirmed.len() <= in_doubt {
            let got: BTreeSet<i64> =
                members.iter().flat_map(|m| delivered(m)).map(|d| d.0).collect();
            let never: Vec<_> = unconfirmed.iter().filter(|o| !got.contains(o)).collect();
            assert!(never.is_empty(), "done but never delivered to a member: {never:?}");
            if !unconfirmed.is_empty() {
                eprintln!("accepted with the answer lost to the failure: {unconfirmed:?}");
            }
            return;
        }
        if std::time::Instant::now() >= deadline {
            let tails: String = members.iter().map(|m| stderr_tail(m)).collect();
            panic!(
                "timed out after 120s waiting for {group:?} to be done with {topic}-0 up to \
                 {end} (stored start and records in flight: {stored:?}) with at most \
                 {in_doubt} records not confirmed accepted: {} not, {unconfirmed:?}\n{tails}",
                unconfirmed.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `m`'s last delivery and the end of the rest of its stderr, for a failure's message.
fn stderr_tail(m: &Member) -> String {
    let err = m.stderr();
    let others: Vec<&str> =
        err.lines().filter(|l| !l.starts_with("GOT ") && !l.starts_with("POLLED ")).collect();
    let tail = others[others.len().saturating_sub(40)..].join("\n");
    let last_got = err.lines().rfind(|l| l.starts_with("GOT "));
    format!("--- {} stderr, last GOT {last_got:?}, last 40 others:\n{tail}\n", m.name)
}

fn offsets(acked: &BTreeSet<(String, u32, i64)>) -> BTreeSet<i64> {
    acked.iter().map(|(_, _, o)| *o).collect()
}

async fn setup(dir: &Path, topic: &str, n: u64) -> (RunningServer, Client, String, BTreeSet<i64>) {
    let server = broker(dir).await;
    let client = common::client(&server);
    client.admin().create_topic(topic, 1, 1, BTreeMap::new()).await.unwrap();
    let produced = offsets(&produce(&client, topic, n).await);
    let bootstrap = server.kafka_addr().unwrap().to_string();
    (server, client, bootstrap, produced)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_java_share_consumers_accept_each_record_of_one_partition_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _client, bootstrap, produced) = setup(dir.path(), "jobs", 400).await;
    let mut members = Vec::new();
    for i in 0..5 {
        let name = format!("m{i}");
        let Some(m) =
            share_member(dir.path(), &name, &bootstrap, ("workers", "jobs"), (10, 10), "", "")
        else {
            return;
        };
        members.push(m);
    }
    let all: Vec<&Member> = members.iter().collect();
    wait_for_accepted(&all, &produced, "five members to accept all 400 records").await;
    for m in &mut members {
        m.stop();
    }
    let all: Vec<&Member> = members.iter().collect();
    assert_accepted_once(&all);
    assert_eq!(accepted(&all).into_keys().collect::<BTreeSet<_>>(), produced);
    let busy = members.iter().filter(|m| !acked(m).is_empty()).count();
    assert!(busy >= 2, "only {busy} of 5 members got records");
}

#[tokio::test(flavor = "multi_thread")]
async fn java_share_consumer_releases_rejects_and_hits_the_delivery_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client, bootstrap, produced) = setup(dir.path(), "poison", 20).await;
    client.admin().create_topic("dlq.poison", 1, 1, BTreeMap::new()).await.unwrap();
    // v7 is rejected, v8 released once, v9 released on every delivery.
    let rules = "v7=reject,v8=release1,v9=release";
    let configs = "share.delivery.count.limit=4,errors.deadletterqueue.topic.name=dlq.poison";
    let Some(mut m) =
        share_member(dir.path(), "m", &bootstrap, ("careful", "poison"), (0, 5), rules, configs)
    else {
        return;
    };
    let want: BTreeSet<i64> = produced.iter().copied().filter(|o| *o != 7 && *o != 9).collect();
    wait_for_accepted(&[&m], &want, "every record but v7 and v9 accepted").await;
    wait_until(Duration::from_secs(60), "v9 delivered four times", || {
        let n = acked(&m).iter().filter(|a| a.value == "v9").count();
        async move { n >= 4 }
    })
    .await;
    // Past the limit v9 is archived: a record produced after it is accepted, and v9 never
    // comes again.
    let later = offsets(&produce(&client, "poison", 1).await);
    wait_for_accepted(&[&m], &later, "a record produced after v9 was archived").await;
    m.stop();
    let lines = acked(&m);
    let of = |v: &str| -> Vec<(i64, String)> {
        lines.iter().filter(|a| a.value == v).map(|a| (a.deliveries, a.ack.clone())).collect()
    };
    assert_eq!(of("v7"), [(1, "reject".to_string())]);
    assert_eq!(of("v8"), [(1, "release".to_string()), (2, "accept".to_string())]);
    let v9: Vec<(i64, String)> = (1..=4).map(|d| (d, "release".to_string())).collect();
    assert_eq!(of("v9"), v9, "released on each of its four deliveries, then archived");
    let counts = accepted(&[&m]);
    assert!(counts.values().all(|n| *n == 1), "accepted twice: {counts:?}");
    // Both archived records were copied to the dead-letter topic, saying why.
    let dead = common::read_all(&client, "dlq.poison").await.remove(&0).unwrap();
    let described: Vec<(String, BTreeMap<String, String>)> = dead
        .iter()
        .map(|r| {
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            let headers = r
                .headers
                .iter()
                .filter(|h| h.key.starts_with("__dlq.errors."))
                .map(|h| {
                    let v = String::from_utf8(h.value.clone().unwrap_or_default().to_vec());
                    (h.key.trim_start_matches("__dlq.errors.").to_string(), v.unwrap())
                })
                .collect();
            (value, headers)
        })
        .collect();
    let expect = |offset: &str, count: &str, reason: &str| -> BTreeMap<String, String> {
        [
            ("group.id", "careful"),
            ("topic", "poison"),
            ("partition", "0"),
            ("offset", offset),
            ("delivery.count", count),
            ("reason", reason),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    assert_eq!(
        described,
        [
            ("v7".to_string(), expect("7", "1", "rejected")),
            ("v9".to_string(), expect("9", "4", "delivery.count.limit")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_a_stalled_or_killed_java_share_consumer_go_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _client, bootstrap, produced) = setup(dir.path(), "tasks", 60).await;
    let group = ("crew", "tasks");
    // Slow members take 20 records a poll at 200 ms each: 4 s a batch, twice the lock.
    let lock = "share.record.lock.duration.ms=2000";
    let slow = |name: &str| share_member(dir.path(), name, &bootstrap, group, (200, 20), "", lock);
    let Some(stalled) = slow("stalled") else { return };
    let polled = |m: &Member| m.stderr().contains("POLLED");
    wait_until(Duration::from_secs(60), "the first member to acquire a batch", || {
        let done = polled(&stalled);
        async move { done }
    })
    .await;
    stalled.signal("STOP");
    let Some(mut killed) = slow("killed") else { return };
    wait_until(Duration::from_secs(60), "the second member to acquire a batch", || {
        let done = polled(&killed);
        async move { done }
    })
    .await;
    killed.kill();
    let Some(mut rescuer) = share_member(dir.path(), "rescuer", &bootstrap, group, (0, 20), "", "")
    else {
        return;
    };
    wait_for_accepted(&[&rescuer], &produced, "the third member to accept every record").await;
    // The stalled member wakes up and acknowledges records it no longer holds: refused.
    stalled.signal("CONT");
    let mut stalled = stalled;
    wait_until(Duration::from_secs(60), "the stalled member's late commit to be refused", || {
        let done = stalled.stderr().contains("COMMIT FAILED");
        async move { done }
    })
    .await;
    stalled.stop();
    rescuer.stop();
    assert_accepted_once(&[&stalled, &killed, &rescuer]);
    assert!(acked(&stalled).is_empty(), "the stalled member's acknowledgements were taken");
    let redelivered = acked(&rescuer).iter().filter(|a| a.deliveries > 1).count();
    assert!(redelivered >= 20, "only {redelivered} records came back to the rescuer");
}

#[tokio::test(flavor = "multi_thread")]
async fn share_state_survives_the_partition_leaders_sigkill_in_a_cluster() {
    use cluster::{Cluster, leader_of, wait_for_full_isr};
    if kafka::java_jars().is_none() {
        return;
    }
    let mut c = Cluster::start(3, &kafka::unique("kshare"), &[]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    client.admin().create_topic("jobs", 1, 3, BTreeMap::new()).await.unwrap();
    wait_for_full_isr(&client, "jobs", 1).await;
    let produced = offsets(&produce(&client, "jobs", 400).await);
    let bootstrap = c.kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let group = ("survivors", "jobs");
    let start = |name: &str| share_member(dir.path(), name, &bootstrap, group, (10, 10), "", "");
    let (Some(mut a), Some(mut b)) = (start("a"), start("b")) else { return };
    wait_until(Duration::from_secs(120), "120 records accepted before the kill", || {
        let n = accepted(&[&a, &b]).len();
        async move { n >= 120 }
    })
    .await;
    let leader = leader_of(&client, "jobs", 0).await;
    eprintln!("killing broker {leader}, leader of jobs/0");
    c.kill(leader as usize - 1);
    // A batch per member may have been in its commit when the leader died.
    wait_for_done(&client, group, &[&a, &b], &produced, 20).await;
    a.stop();
    b.stop();
    assert_accepted_once(&[&a, &b]);
}

#[tokio::test(flavor = "multi_thread")]
async fn share_state_survives_a_power_cut_of_a_standalone_broker() {
    if kafka::java_jars().is_none() {
        return;
    }
    let lazy = lazyfs::home();
    let mount = lazy.as_deref().map(lazyfs::LazyFs::mount);
    let temp = tempfile::tempdir().unwrap();
    let data: &Path = mount.as_ref().map_or(temp.path(), |m| m.path());
    let env: Vec<(&str, &str)> = match &lazy {
        Some(_) => vec![],
        None => vec![("SHALE_TEST_DISK", "tracking")],
    };
    let args = ["--kafka-listen", "127.0.0.1:0"];
    eprintln!("power cut on {}", if lazy.is_some() { "LazyFS" } else { "the tracking disk" });
    let mut broker = common::BrokerProcess::start_with_env(data, &args, &env);
    let client = broker.client();
    client.admin().create_topic("jobs", 1, 0, BTreeMap::new()).await.unwrap();
    let produced = offsets(&produce(&client, "jobs", 300).await);
    let out = tempfile::tempdir().unwrap();
    let group = ("cut", "jobs");
    let bootstrap = broker.kafka_addr().unwrap();
    let mut before =
        share_member(out.path(), "before", &bootstrap, group, (5, 10), "", "").unwrap();
    wait_until(Duration::from_secs(120), "100 records accepted before the cut", || {
        let n = accepted(&[&before]).len();
        async move { n >= 100 }
    })
    .await;
    broker.kill();
    if let Some(m) = &mount {
        m.power_cut();
    }
    before.kill();
    let kept = accepted(&[&before]).len();
    eprintln!("power cut after {kept} confirmed acceptances");
    let mut broker = common::BrokerProcess::start_with_env(data, &args, &env);
    let bootstrap = broker.kafka_addr().unwrap();
    let mut after = share_member(out.path(), "after", &bootstrap, group, (0, 50), "", "").unwrap();
    // The batch in the member's commit at the cut (10 records at most) may have been
    // stored with the answer lost.
    wait_for_done(&broker.client(), group, &[&before, &after], &produced, 10).await;
    after.stop();
    assert_accepted_once(&[&before, &after]);
    // Stronger than the timestamps: nothing accepted before the cut came back after it.
    let confirmed: BTreeSet<i64> = accepted(&[&before]).into_keys().collect();
    let again: Vec<_> =
        delivered(&after).into_iter().filter(|d| confirmed.contains(&d.0)).collect();
    assert!(again.is_empty(), "accepted before the cut, delivered again after it: {again:?}");
    assert!(broker.terminate(), "broker did not exit cleanly on SIGTERM");
}

/// `ShareAdmin.java BOOTSTRAP GROUP ARGS...`: its JSON line.
fn share_admin(bootstrap: &str, group: &str, args: &[&str]) -> serde_json::Value {
    let jars = kafka::java_jars().unwrap();
    let mut all = vec![bootstrap, group];
    all.extend_from_slice(args);
    let cmd = kafka::java_program(&jars, "ShareAdmin.java", &all);
    kafka::run(cmd, Duration::from_secs(90)).assert_ok("ShareAdmin.java")
}

#[tokio::test(flavor = "multi_thread")]
async fn java_admin_describes_moves_and_deletes_a_share_groups_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _client, bootstrap, produced) = setup(dir.path(), "ledger", 50).await;
    let group = ("auditors", "ledger");
    let Some(mut first) = share_member(dir.path(), "first", &bootstrap, group, (0, 50), "", "")
    else {
        return;
    };
    wait_for_accepted(&[&first], &produced, "the first member to accept all 50").await;
    let d = share_admin(&bootstrap, "auditors", &["describe"]);
    assert_eq!((d["state"].as_str(), d["members"].as_i64()), (Some("Stable"), Some(1)), "{d}");
    let o = share_admin(&bootstrap, "auditors", &["offsets"]);
    assert_eq!(o, serde_json::json!({"ledger-0": 50}));
    // Not while the group has a member.
    let refused = share_admin(&bootstrap, "auditors", &["alter", "ledger", "10"]);
    assert_eq!(refused["error"], "GroupNotEmptyException", "{refused}");
    first.stop();
    let d = share_admin(&bootstrap, "auditors", &["describe"]);
    assert_eq!((d["state"].as_str(), d["members"].as_i64()), (Some("Empty"), Some(0)), "{d}");
    // Moved back to 10: a new member gets 10..50 again.
    let moved = share_admin(&bootstrap, "auditors", &["alter", "ledger", "10"]);
    assert_eq!(moved["ok"], true, "{moved}");
    assert_eq!(
        share_admin(&bootstrap, "auditors", &["offsets"]),
        serde_json::json!({"ledger-0": 10})
    );
    let again: BTreeSet<i64> = (10..50).collect();
    let Some(mut second) = share_member(dir.path(), "second", &bootstrap, group, (0, 50), "", "")
    else {
        return;
    };
    wait_for_accepted(&[&second], &again, "the records from 10 again").await;
    second.stop();
    let redone: BTreeSet<i64> = accepted(&[&second]).into_keys().collect();
    assert_eq!(redone, again, "exactly the records from the new start offset");
    // Forgotten, then the group deleted.
    let deleted = share_admin(&bootstrap, "auditors", &["delete-offsets", "ledger"]);
    assert_eq!(deleted["ok"], true, "{deleted}");
    assert_eq!(share_admin(&bootstrap, "auditors", &["offsets"]), serde_json::json!({}));
    let gone = share_admin(&bootstrap, "auditors", &["delete-group"]);
    assert_eq!(gone["ok"], true, "{gone}");
    let d = share_admin(&bootstrap, "auditors", &["describe"]);
    assert_eq!(d["error"], "GroupIdNotFoundException", "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_librdkafka_share_consumers_accept_each_record_once() {
    let Some(python) = kafka::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_server, _client, bootstrap, produced) = setup(dir.path(), "rdjobs", 300).await;
    let n = produced.len().to_string();
    let args = [bootstrap.as_str(), "rdworkers", "rdjobs", "3", n.as_str()];
    let cmd = kafka::python_script(&python, "share_members.py", &args);
    let json = kafka::run(cmd, Duration::from_secs(150)).assert_ok("share_members.py");
    let members: Vec<Vec<i64>> = serde_json::from_value(json["members"].clone()).unwrap();
    let all: Vec<i64> = members.iter().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "records accepted more than once");
    assert_eq!(distinct, produced);
    let busy = members.iter().filter(|m| !m.is_empty()).count();
    assert!(
        busy >= 2,
        "only {busy} of 3 members got records: {:?}",
        members.iter().map(Vec::len).collect::<Vec<_>>()
    );
}
