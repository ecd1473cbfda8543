//! Consumer groups end to end, with `shale consume --group` processes as members:
//! sharing partitions, a member SIGKILLed (its partitions move; duplicates only after its
//! last commit), a zombie (SIGSTOP past the session timeout) whose commit is refused,
//! publish-subscribe across groups, resuming runs with --max-records, lag and offsets that
//! survive restarts of every broker (etcd).

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BrokerProcess, wait_until};
use shale::client::{Client, GroupAdmin, Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;

const SESSION_MS: u64 = 3000;

/// A `shale consume --group` process writing JSON lines to a file.
struct Member {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Member {
    fn start(
        dir: &Path,
        name: &str,
        broker: &str,
        group: &str,
        topic: &str,
        extra: &[&str],
    ) -> Member {
        let out = dir.join(format!("{name}.jsonl"));
        let err = dir.join(format!("{name}.err"));
        let session = SESSION_MS.to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_shale"))
            .args([
                "consume",
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--follow",
                "--format",
                "json",
                "--session-timeout-ms",
                &session,
                "--broker",
                broker,
            ])
            .args(extra)
            .env("SHALE_LOG", "warn")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn shale consume");
        Member { child, out, err }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.child.id());
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    fn stop(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "member exited with {status}: {}", self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "member did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn records(&self) -> Vec<(u32, i64)> {
        read_records(&self.out)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_records(path: &Path) -> Vec<(u32, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["partition"].as_u64().unwrap() as u32, v["offset"].as_i64().unwrap()))
        .collect()
}

async fn describe(client: &Client, group: &str) -> Option<pb::DescribeGroupResponse> {
    GroupAdmin::new(client.clone()).describe(group).await.ok()
}

/// Partition counts per member, sorted.
fn shares(d: &pb::DescribeGroupResponse) -> Vec<usize> {
    let mut v: Vec<usize> =
        d.members.iter().map(|m| m.assignment.iter().map(|t| t.partitions.len()).sum()).collect();
    v.sort();
    v
}

async fn wait_for_shares(client: &Client, group: &str, want: &[usize], what: &str) {
    wait_until(Duration::from_secs(30), what, || {
        let client = client.clone();
        async move {
            describe(&client, group).await.is_some_and(|d| {
                shares(&d) == want && d.members.iter().all(|m| m.revoking.is_empty())
            })
        }
    })
    .await;
}

/// Produces `n` records to `topic` spread over its partitions; returns the acked
/// (partition, offset) pairs.
async fn produce(client: &Client, topic: &str, n: u64) -> BTreeSet<(u32, i64)> {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("v{i}")).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut acked = BTreeSet::new();
    for d in deliveries {
        let md = d.await.unwrap();
        acked.insert((md.partition, md.offset));
    }
    acked
}

async fn wait_for_lag_zero(client: &Client, group: &str) {
    wait_until(Duration::from_secs(60), "the group to commit up to the log end", || {
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

/// Standalone broker: members share the partitions, a member is killed and one is frozen
/// (zombie), two groups each read everything, and --max-records runs resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_survive_a_kill_and_fence_a_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("broker"));
    let client = broker.client();
    let topic = "events";
    client.admin().create_topic(topic, 6, 1, BTreeMap::new()).await.unwrap();
    let mut acked = produce(&client, topic, 3000).await;

    let out = dir.path();
    let addr = broker.addr.as_str();
    let fast = ["--commit-interval-ms", "200"];
    let m1 = Member::start(out, "m1", addr, "g", topic, &fast);
    let m2 = Member::start(out, "m2", addr, "g", topic, &fast);
    wait_for_shares(&client, "g", &[3, 3], "two members with 3 partitions each").await;
    let mut m3 = Member::start(out, "m3", addr, "g", topic, &fast);
    wait_for_shares(&client, "g", &[2, 2, 2], "three members with 2 partitions each").await;
    acked.extend(produce(&client, topic, 3000).await);

    // Kill m2: its partitions move within the session timeout plus a heartbeat.
    let killed = Instant::now();
    let mut m2 = m2;
    m2.child.kill().unwrap();
    m2.child.wait().unwrap();
    wait_for_shares(&client, "g", &[3, 3], "m2's partitions to move to m1 and m3").await;
    let moved = killed.elapsed();
    println!("partitions of the killed member moved after {moved:?} (session {SESSION_MS} ms)");
    assert!(
        moved < Duration::from_millis(SESSION_MS + 5000),
        "partitions moved only after {moved:?}"
    );
    acked.extend(produce(&client, topic, 3000).await);
    wait_for_lag_zero(&client, "g").await;

    // Zombie: m1 with uncommitted positions is frozen past its session timeout.
    let mut m1 = m1;
    m1.stop();
    let zombie =
        Member::start(out, "zombie", addr, "g", topic, &["--commit-interval-ms", "600000"]);
    wait_for_shares(&client, "g", &[3, 3], "the zombie-to-be to join").await;
    acked.extend(produce(&client, topic, 600).await);
    wait_until(Duration::from_secs(30), "the zombie to read something", || {
        let n = zombie.records().len();
        async move { n > 0 }
    })
    .await;
    zombie.signal("STOP");
    wait_for_shares(&client, "g", &[6], "the frozen member to be removed").await;
    zombie.signal("CONT");
    wait_until(Duration::from_secs(15), "the zombie's commit to be refused", || {
        let err = zombie.stderr();
        async move { err.contains("FENCED_MEMBER") }
    })
    .await;

    wait_for_lag_zero(&client, "g").await;
    let mut zombie = zombie;
    zombie.stop();
    m3.stop();

    // Every acked record was read at least once by the group.
    let runs = [("m1", &m1), ("m2", &m2), ("m3", &m3), ("zombie", &zombie)];
    let mut seen: BTreeMap<(u32, i64), Vec<&str>> = BTreeMap::new();
    for (name, m) in &runs {
        let records = m.records();
        let distinct: BTreeSet<_> = records.iter().collect();
        assert_eq!(distinct.len(), records.len(), "{name} read a record twice");
        for r in records {
            seen.entry(r).or_default().push(name);
        }
    }
    let missing: Vec<_> = acked.iter().filter(|r| !seen.contains_key(r)).collect();
    assert!(
        missing.is_empty(),
        "{} acked records never consumed: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Duplicates only where the killed member or the zombie read past their last commit.
    let duplicates: Vec<_> = seen.iter().filter(|(_, who)| who.len() > 1).collect();
    let unexplained: Vec<_> = duplicates
        .iter()
        .filter(|(_, who)| !who.iter().any(|w| *w == "m2" || *w == "zombie"))
        .collect();
    let by = |name: &str| duplicates.iter().filter(|(_, who)| who.contains(&name)).count();
    println!(
        "{} records produced, {} consumed; read twice: {} after the killed member's last \
         commit, {} after the zombie's",
        acked.len(),
        seen.len(),
        by("m2"),
        by("zombie")
    );
    assert!(unexplained.is_empty(), "records read twice by live members: {unexplained:?}");

    // Publish-subscribe: another group reads every record on its own.
    let other = Member::start(out, "other", addr, "other", topic, &fast);
    wait_for_lag_zero(&client, "other").await;
    let mut other = other;
    other.stop();
    let got: BTreeSet<(u32, i64)> = other.records().into_iter().collect();
    assert!(acked.is_subset(&got), "group 'other' missed records");

    // --max-records runs resume where the last stopped.
    let mut all = BTreeSet::new();
    for run in 0..4 {
        let path = out.join(format!("limited-{run}.jsonl"));
        let status = Command::new(env!("CARGO_BIN_EXE_shale"))
            .args(["consume", "--topic", topic, "--group", "limited", "--from-beginning"])
            .args(["--format", "json", "--max-records", "4000", "--broker", addr])
            .env("SHALE_LOG", "warn")
            .stdout(std::fs::File::create(&path).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        let records = read_records(&path);
        for r in &records {
            assert!(all.insert(*r), "run {run} read {r:?} again");
        }
        if records.is_empty() {
            break;
        }
    }
    assert!(acked.is_subset(&all), "--max-records runs missed records");

    // Groups are listed; an empty one is deleted.
    let admin = GroupAdmin::new(client.clone());
    let names: Vec<String> = admin.list().await.unwrap().into_iter().map(|g| g.group).collect();
    assert_eq!(names, ["g", "limited", "other"]);
    admin.delete("limited").await.unwrap();
    let e = admin.describe("limited").await.unwrap_err();
    assert_eq!(e.reason, "GROUP_NOT_FOUND", "{e}");
}

/// Runs `shale group ...`; returns (success, stdout, stderr).
fn group_cli(args: &[&str], broker: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shale"))
        .arg("group")
        .args(args)
        .args(["--broker", broker])
        .env("SHALE_LOG", "warn")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `shale group reset-offsets` moves an empty group's offsets to the earliest, the latest,
/// a timestamp or an offset (dry runs change nothing), and refuses a group with members or
/// an offset outside the log, naming the bad value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_offsets_moves_an_empty_groups_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("broker"));
    let client = broker.client();
    let addr = broker.addr.as_str();
    let topic = "resets";
    client.admin().create_topic(topic, 2, 1, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let now_ms = || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64
    };
    for batch in 0..2 {
        if batch == 1 {
            // The second batch is stamped strictly later than the first.
            let first_done = now_ms();
            wait_until(Duration::from_secs(5), "the clock to move on", || async move {
                now_ms() > first_done
            })
            .await;
        }
        for i in 0..100 {
            let record = ProducerRecord::new(topic, format!("v{batch}-{i}")).partition(0);
            producer.send(record).await.unwrap();
        }
        producer.flush().await.unwrap();
    }
    let second_from = {
        // The timestamp of offset 100, the first record of the second batch.
        let mut c = shale::client::Consumer::new(client.clone(), Default::default());
        c.seek(topic, 0, 100);
        c.poll().await.unwrap().unwrap()[0].timestamp_ms
    };
    let admin = GroupAdmin::new(client.clone());
    let offsets = |group: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .fetch_offsets(group, &[topic.to_string()])
                .await
                .unwrap()
                .into_iter()
                .map(|o| (o.partition, o.offset))
                .collect::<BTreeMap<u32, i64>>()
        }
    };
    let reset = |extra: &[&str]| {
        let mut args = vec!["reset-offsets", "g", "--topic", topic, "--format", "json"];
        args.extend_from_slice(extra);
        group_cli(&args, addr)
    };

    let (ok, out, err) = reset(&["--to-latest"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{out}");
    assert_eq!(offsets("g").await, BTreeMap::from([(0, 200), (1, 0)]));

    let (ok, _, err) = reset(&["--to-earliest", "--partition", "0", "--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(offsets("g").await, BTreeMap::from([(0, 200), (1, 0)]), "a dry run changes nothing");
    let (ok, _, err) = reset(&["--to-earliest", "--partition", "0"]);
    assert!(ok, "{err}");
    assert_eq!(offsets("g").await[&0], 0);

    let ts = second_from.to_string();
    let (ok, _, err) = reset(&["--to-timestamp", &ts, "--partition", "0"]);
    assert!(ok, "{err}");
    assert_eq!(offsets("g").await[&0], 100, "the first record stamped at or after {ts}");

    let (ok, _, err) = reset(&["--to-offset", "150", "--partition", "0"]);
    assert!(ok, "{err}");
    assert_eq!(offsets("g").await[&0], 150);
    let (ok, _, err) = reset(&["--to-offset", "201", "--partition", "0"]);
    assert!(!ok && err.contains("201") && err.contains("0..=200"), "{err}");
    let (ok, _, err) = reset(&["--to-offset", "5", "--partition", "7"]);
    assert!(!ok && err.contains('7'), "{err}");
    assert_eq!(offsets("g").await[&0], 150, "refused resets change nothing");

    // A member reads from the reset offset; while it is in the group, resets are refused.
    let mut member = Member::start(dir.path(), "m", addr, "g", topic, &[]);
    wait_until(Duration::from_secs(30), "the member to read partition 0 to the end", || {
        let records = member.records();
        async move { records.iter().filter(|(p, _)| *p == 0).count() == 50 }
    })
    .await;
    let first: Vec<i64> = member.records().iter().filter(|(p, _)| *p == 0).map(|r| r.1).collect();
    assert_eq!(first.first(), Some(&150), "reading starts at the reset offset");
    let (ok, _, err) = reset(&["--to-earliest"]);
    assert!(!ok && err.contains("active member"), "{err}");
    member.stop();
}

/// A member killed together with its broker (so it never left): after the restart nobody
/// heartbeats to its group, yet once its session has passed the restarted coordinator has
/// removed it, and the group's offsets can be reset again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_lost_with_its_broker_is_removed_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    let mut broker = BrokerProcess::start(&data);
    let client = broker.client();
    let topic = "lost";
    client.admin().create_topic(topic, 2, 1, BTreeMap::new()).await.unwrap();
    let member = Member::start(dir.path(), "m", &broker.addr, "g", topic, &[]);
    wait_for_shares(&client, "g", &[2], "the member to own both partitions").await;
    member.signal("KILL");
    broker.kill();

    let broker = BrokerProcess::start(&data);
    let client = broker.client();
    let listed = describe(&client, "g").await.map(|d| d.members.len());
    assert_eq!(listed, Some(1), "right after the restart the lost member is still listed");
    let restarted = Instant::now();
    common::wait_for(Duration::from_secs(30), "the lost member to be removed", || {
        let client = client.clone();
        async move {
            match describe(&client, "g").await {
                Some(d) if d.members.is_empty() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    println!("the lost member was removed {:?} after the restart", restarted.elapsed());
    let (ok, _, err) =
        group_cli(&["reset-offsets", "g", "--topic", topic, "--to-earliest"], &broker.addr);
    assert!(ok, "{err}");
}

/// A topic that grows from 2 to 4 partitions under a running group: the coordinator sees
/// the new count at the members' next heartbeats and hands the new partitions out, and
/// records produced to all four are read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_takes_up_partitions_added_to_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("broker"));
    let client = broker.client();
    let addr = broker.addr.as_str();
    let topic = "growing";
    client.admin().create_topic(topic, 2, 1, BTreeMap::new()).await.unwrap();
    let mut a = Member::start(dir.path(), "a", addr, "grow", topic, &[]);
    let mut b = Member::start(dir.path(), "b", addr, "grow", topic, &[]);
    wait_for_shares(&client, "grow", &[1, 1], "two members sharing two partitions").await;

    client.admin().create_partitions(topic, 4).await.unwrap();
    wait_for_shares(&client, "grow", &[2, 2], "the group to take the two new partitions").await;
    let acked = produce(&client, topic, 400).await;
    let partitions: BTreeSet<u32> = acked.iter().map(|(p, _)| *p).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1, 2, 3]), "keys spread over all four");
    wait_for_lag_zero(&client, "grow").await;
    let mut read = a.records();
    read.extend(b.records());
    let unique: BTreeSet<(u32, i64)> = read.iter().copied().collect();
    assert_eq!(unique.len(), read.len(), "no record read twice");
    assert_eq!(unique, acked, "every acknowledged record read");
    a.stop();
    b.stop();
}
