//! A broker that says it serves, serves. A start-up slower than the metadata lease keeps
//! the lease (it is kept alive from the moment it is granted); a restarted standalone
//! broker confirms its leaderships before it answers, so produce from the moment its port
//! accepts is never refused; and readiness says ready only when produce would be accepted.
//!
//! `SHALE_AVAILABILITY_SECS` sets how long each run produces (default 3; the acceptance
//! run of issue 37 used 20). With `SHALE_POWER_LOSS_LAZYFS` naming a LazyFS build, each
//! broker's data dir is a LazyFS mount: a FUSE volume, slow as the one the user had.

// Tests observe the system from outside: they read real time directly.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/lazyfs.rs"]
mod lazyfs;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{BrokerProcess, free_port, http_get, metric, produce_req, wait_until};
use shale::client::Client;

const TOPIC: &str = "a";
const PARTITIONS: u32 = 4;
/// The lease TTL of these brokers: short, so a start-up held for twice as long stays quick.
const TTL_SECS: u64 = 2;

/// A broker's data dir: on LazyFS when the run asks for it, else a temporary directory.
enum DataDir {
    Lazy(lazyfs::LazyFs),
    Temp(tempfile::TempDir),
}

impl DataDir {
    fn new() -> DataDir {
        match lazyfs::home() {
            Some(home) => DataDir::Lazy(lazyfs::LazyFs::mount(&home)),
            None => DataDir::Temp(tempfile::tempdir().unwrap()),
        }
    }

    fn path(&self) -> &Path {
        match self {
            DataDir::Lazy(l) => l.path(),
            DataDir::Temp(t) => t.path(),
        }
    }
}

/// How long each run produces.
fn produce_for() -> Duration {
    let secs = std::env::var("SHALE_AVAILABILITY_SECS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(3))
}

fn config(dir: &Path) -> String {
    let path = dir.join("shale.toml");
    std::fs::write(&path, format!("[cluster]\nlease_ttl_secs = {TTL_SECS}\n")).unwrap();
    path.to_string_lossy().to_string()
}

/// What one run of [`produce_from_accept`] saw.
#[derive(Debug, Default)]
struct Answers {
    accepted: u64,
    refused: Vec<String>,
}

/// From the moment `addr` accepts a connection, for `how_long`: one-record acks=all
/// produces to each partition in turn, each its own call with no retry. Every refusal is
/// kept with its message.
async fn produce_from_accept(addr: String, how_long: Duration) -> Answers {
    wait_until(Duration::from_secs(60), "the broker's port to accept a connection", || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
    })
    .await;
    let mut log = Client::new(&addr).unwrap().log_rpc(&addr).unwrap();
    let end = Instant::now() + how_long;
    let mut answers = Answers::default();
    let mut i = 0u64;
    while Instant::now() < end {
        let p = (i % u64::from(PARTITIONS)) as u32;
        match log.produce(produce_req(TOPIC, p, &format!("r{i}"))).await {
            Ok(_) => answers.accepted += 1,
            Err(s) => answers.refused.push(format!("{TOPIC}-{p}: {}", s.message())),
        }
        i += 1;
    }
    answers
}

/// A standalone broker with the topic, stopped (SIGKILL) after a few records: its
/// restarts find every partition led by an earlier incarnation.
async fn broker_with_topic(dir: &Path, listen: &str, conf: &str) {
    let mut b = BrokerProcess::start_on(dir, listen, &["--config", conf], &[]);
    let client = b.client();
    client.admin().create_topic(TOPIC, PARTITIONS, 1, BTreeMap::new()).await.unwrap();
    let answers = produce_from_accept(b.addr.clone(), Duration::from_millis(300)).await;
    assert!(answers.accepted > 0 && answers.refused.is_empty(), "first run: {answers:?}");
    b.kill();
}

/// A standalone broker's data dir holding the topic, its broker stopped (SIGKILL), and
/// what restarting it takes: the config (in `conf_dir`, beside the log) and the address.
struct Stopped {
    dir: DataDir,
    conf_dir: tempfile::TempDir,
    conf: String,
    listen: String,
}

impl Stopped {
    async fn new() -> Stopped {
        let dir = DataDir::new();
        let conf_dir = tempfile::tempdir().unwrap();
        let conf = config(conf_dir.path());
        let listen = format!("127.0.0.1:{}", free_port());
        broker_with_topic(dir.path(), &listen, &conf).await;
        Stopped { dir, conf_dir, conf, listen }
    }

    /// Where a restart logs.
    fn log(&self) -> std::path::PathBuf {
        self.conf_dir.path().join("broker.log")
    }

    /// Restarts the broker under produce (see [`restart_under_produce`]) with its admin
    /// listener on `admin` and the failpoints held in `points` (see [`held`]).
    async fn restart_held(&self, admin: &str, points: &Path) -> (BrokerProcess, Answers) {
        let points = points.to_string_lossy().to_string();
        restart_under_produce(
            self.dir.path(),
            &self.listen,
            &["--config", &self.conf, "--admin-listen", admin],
            &[("SHALE_FAILPOINTS_DIR", &points)],
            &self.log(),
        )
        .await
    }
}

/// The failpoint `point` held (`SHALE_FAILPOINTS_DIR` is the directory returned) until the
/// file returned is removed.
fn held(point: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let points = tempfile::tempdir().unwrap();
    let hold = points.path().join(point);
    std::fs::write(&hold, b"").unwrap();
    (points, hold)
}

/// Restarts the broker of `dir` on `listen` (with `env`, logging to `log`) while a
/// producer waits for the port; returns the broker and what the producer saw.
async fn restart_under_produce(
    dir: &Path,
    listen: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    log: &Path,
) -> (BrokerProcess, Answers) {
    let producer = tokio::spawn(produce_from_accept(listen.to_string(), produce_for()));
    let (dir, listen, log) = (dir.to_path_buf(), listen.to_string(), log.to_path_buf());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> =
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let broker = tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        BrokerProcess::start_logged(&dir, &listen, &extra, &env, &log)
    })
    .await
    .unwrap();
    (broker, producer.await.unwrap())
}

/// Start-up held for 2.5× the lease TTL right after the lease is granted (the failpoint
/// `start.hold`, standing for a slow volume or thousands of partitions): from the first
/// answer on, every produce is accepted, the lease never lapsed (log and metric), and the
/// broker kept its first session. Before the keepalive started at the grant, the lease
/// lapsed during the hold and the first answers were "cannot confirm its metadata lease".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_slower_than_the_lease_keeps_the_lease() {
    let stopped = Stopped::new().await;
    let (points, hold) = held("start.hold");
    let admin = format!("127.0.0.1:{}", free_port());
    let held_for = Duration::from_millis(2500 * TTL_SECS);
    // The fault: the hold lasts 2.5 TTLs, then is lifted.
    let lift = std::thread::spawn(move || {
        std::thread::sleep(held_for);
        std::fs::remove_file(&hold).unwrap();
    });
    let began = Instant::now();
    let (broker, answers) = stopped.restart_held(&admin, points.path()).await;
    lift.join().unwrap();
    assert!(began.elapsed() >= held_for, "start-up was held for {held_for:?}");

    let logged = std::fs::read_to_string(stopped.log()).unwrap();
    assert!(logged.contains("failpoint start.hold hit"), "the hold was reached: {logged}");
    assert!(answers.refused.is_empty(), "refused after listening: {:?}", answers.refused);
    assert!(answers.accepted > 0, "{answers:?}");
    assert!(!logged.contains("lease lapsed"), "the lease lapsed: {logged}");
    assert!(!logged.contains("lease expired"), "the lease expired: {logged}");
    let (_, body) = http_get(&admin, "/metrics").await;
    assert_eq!(metric(&body, "shale_metadata_lease_expiries_total"), Some(0.0), "{body}");
    assert_eq!(metric(&body, "shale_metadata_lease_sessions_total"), Some(1.0), "{body}");
    assert!(logged.contains("broker opened in"), "start-up phases logged: {logged}");
    drop(broker);
}

/// A standalone broker killed and restarted: produce from the moment its port accepts,
/// with no retry, is never refused, because the broker confirms its leaderships under new
/// epochs before it answers. (Before, the first answers were "restarted and leads
/// partition ... only once the controller confirms it under a new leader epoch".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_standalone_broker_answers_from_its_first_request() {
    let Stopped { dir, conf_dir, conf, listen } = Stopped::new().await;
    let log = conf_dir.path().join("broker.log");
    let (mut broker, answers) =
        restart_under_produce(dir.path(), &listen, &["--config", &conf], &[], &log).await;
    assert!(answers.refused.is_empty(), "refused after a restart: {:?}", answers.refused);
    assert!(answers.accepted > 0, "{answers:?}");
    println!("accepted {} produces after the first restart, none refused", answers.accepted);
    // Once more after a second SIGKILL, with data written since the first.
    broker.kill();
    let (_broker, answers) =
        restart_under_produce(dir.path(), &listen, &["--config", &conf], &[], &log).await;
    assert!(answers.refused.is_empty(), "refused after a second restart: {:?}", answers.refused);
    println!("accepted {} produces after the second restart, none refused", answers.accepted);
}

/// Readiness tells the truth: `/readyz` says ready only once a produce to every partition
/// the broker leads would be accepted. Polled from the moment the admin port accepts,
/// through a restart; at the first "ready", every partition takes a produce. (With
/// readiness meaning "holds its lease and read the metadata", it said ready while every
/// leadership still awaited its new epoch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_ready_only_when_produce_is_accepted() {
    let Stopped { dir, conf_dir, conf, listen } = Stopped::new().await;
    let admin = format!("127.0.0.1:{}", free_port());
    let log = conf_dir.path().join("broker.log");
    let probe = {
        let (admin, listen) = (admin.clone(), listen.clone());
        tokio::spawn(async move {
            wait_until(Duration::from_secs(60), "/readyz to say ready", || {
                let admin = admin.clone();
                async move {
                    tokio::net::TcpStream::connect(&admin).await.is_ok()
                        && http_get(&admin, "/readyz").await.0 == 200
                }
            })
            .await;
            let mut log_rpc = Client::new(&listen).unwrap().log_rpc(&listen).unwrap();
            let mut refused = Vec::new();
            for p in 0..PARTITIONS {
                if let Err(s) = log_rpc.produce(produce_req(TOPIC, p, "at ready")).await {
                    refused.push(format!("{TOPIC}-{p}: {}", s.message()));
                }
            }
            refused
        })
    };
    let (dir, conf, log2) = (dir.path().to_path_buf(), conf.clone(), log.clone());
    let broker = tokio::task::spawn_blocking(move || {
        BrokerProcess::start_logged(
            &dir,
            &listen,
            &["--config", &conf, "--admin-listen", &admin],
            &[],
            &log2,
        )
    })
    .await
    .unwrap();
    let refused = probe.await.unwrap();
    assert!(refused.is_empty(), "/readyz said ready, yet: {refused:?}");
    drop(broker);
}

/// The cold-read cache's disk tier opens in the background: while it is held from opening
/// (the failpoint `tier.cache_disk.hold`, standing for a slow volume) the broker starts,
/// takes produce and says on `/metrics` that the disk tier is not open; released, the disk
/// tier opens and takes over. (Opened inline, as before, the broker would not listen until
/// the hold was lifted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cold_read_cache_disk_tier_opens_in_the_background() {
    let stopped = Stopped::new().await;
    let (points, hold) = held("tier.cache_disk.hold");
    let admin = format!("127.0.0.1:{}", free_port());
    let (broker, answers) = stopped.restart_held(&admin, points.path()).await;
    assert!(answers.refused.is_empty() && answers.accepted > 0, "{answers:?}");
    let disk_open =
        || async { metric(&http_get(&admin, "/metrics").await.1, "shale_tier_cache_disk_open") };
    assert_eq!(disk_open().await, Some(0.0), "the disk tier is still held");
    std::fs::remove_file(&hold).unwrap();
    wait_until(Duration::from_secs(30), "the disk tier to open once released", || async {
        disk_open().await == Some(1.0)
    })
    .await;
    let logged = std::fs::read_to_string(stopped.log()).unwrap();
    assert!(logged.contains("disk tier is open"), "{logged}");
    drop(broker);
}
