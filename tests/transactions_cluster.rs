//! The exactly-once checker, after Kafka's `transactions_test.py`: on a three-broker
//! cluster (three replicas, `min.insync.replicas=2`) a consume-transform-produce
//! application (librdkafka's transactions, `tests/kafka/eos.py copy`) copies N numbered
//! records from an input topic to an output topic, committing its input offsets in each
//! transaction, while a `read_committed` reader reads the output alongside. Under it the
//! checker SIGKILLs a partition leader, SIGKILLs the transaction coordinator's broker,
//! SIGSTOPs a partition leader until its partitions move, and SIGKILLs the application
//! mid-run (its next instance fences the old one's transaction), in an order and on
//! partitions drawn from a seed. Every input record must be in the output exactly once as
//! a `read_committed` reader sees it, the reader alongside must never see a record twice
//! (an aborted copy shown, or a copy committed twice), and the application must finish.
//!
//! `SHALE_EOS_SEEDS` (default `1`) lists the seeds, comma-separated; each runs on the same
//! cluster with topics of its own. `SHALE_EOS_RECORDS` (default 2000) sets N.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cluster::{Cluster, leader_of, wait_for_full_isr};
use common::wait_until;
use shale::client::Client;

const PARTITIONS: u32 = 3;

/// The faults of one run, each once, in an order drawn from the seed.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL the leader of an output partition, then restart it.
    KillLeader(u32),
    /// SIGKILL the broker coordinating the application's transactional id, then restart it.
    KillCoordinator,
    /// SIGSTOP the leader of an output partition until its partitions move, then SIGCONT.
    StopLeader(u32),
    /// SIGKILL the application; its next instance fences the old one's transaction.
    KillApp,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_copied_exactly_once_through_broker_and_application_kills() {
    let Some(python) = kafka::python() else { return };
    check(&python, Copier::Librdkafka).await;
}

/// The same with Apache Kafka's Java client 4.3 as the application, which negotiates
/// transactions v2: its producer's epoch, as DescribeTransactions shows it at the end, went
/// up at every commit and abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_client_copies_exactly_once_with_transactions_v2_through_kills() {
    let Some(python) = kafka::python() else { return };
    let Some(jars) = kafka::java_jars() else { return };
    check(&python, Copier::Java(jars)).await;
}

/// The same with Shale's Rust client on gRPC as the application (`examples/eos_copy.rs`:
/// its transactional producer and a read_committed group consumer); librdkafka fills the
/// input and reads the output alongside and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_copies_exactly_once_on_grpc_through_kills() {
    let Some(python) = kafka::python() else { return };
    check(&python, Copier::Rust(example("eos_copy"))).await;
}

/// The path of example `name`, built now (`scripts/test.sh` builds tests, not examples; a
/// build that is up to date takes a moment).
fn example(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--example", name]).current_dir(kafka::root());
    // What cargo and nextest set for a test process, not for a build: build scripts that
    // watch them (ring's watches CARGO_MANIFEST_DIR) would rebuild, here and then again
    // in the next test build.
    for (key, _) in std::env::vars() {
        let set_for_tests = ["CARGO_MANIFEST", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_"]
            .iter()
            .any(|p| key.starts_with(p))
            || key.starts_with("NEXTEST")
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"]
                .contains(&key.as_str());
        if set_for_tests {
            build.env_remove(key);
        }
    }
    let built = build.status().expect("run cargo");
    assert!(built.success(), "cargo build --example {name} failed: {built}");
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} is missing after its build", path.display());
    path
}

/// The application that copies.
#[derive(Debug, Clone)]
enum Copier {
    /// `tests/kafka/eos.py copy`.
    Librdkafka,
    /// `tests/kafka/EosCopy.java`, with the client jars in this directory.
    Java(PathBuf),
    /// `examples/eos_copy.rs`, built here, on gRPC.
    Rust(PathBuf),
}

impl Copier {
    /// The command line that runs it with `args`.
    fn argv(&self, python: &Path, args: &[String]) -> Vec<String> {
        let script = |name: &str| kafka::root().join("tests/kafka").join(name);
        let mut argv = match self {
            Copier::Librdkafka => vec![
                python.display().to_string(),
                script("eos.py").display().to_string(),
                "copy".to_string(),
            ],
            Copier::Java(jars) => vec![
                "java".to_string(),
                "-cp".to_string(),
                jars.join("*").display().to_string(),
                script("EosCopy.java").display().to_string(),
            ],
            Copier::Rust(binary) => vec![binary.display().to_string()],
        };
        argv.extend(args.iter().cloned());
        argv
    }
}

/// Runs the checker with `copier` once per seed of `SHALE_EOS_SEEDS`, on one cluster.
async fn check(python: &Path, copier: Copier) {
    let seeds: Vec<u64> = std::env::var("SHALE_EOS_SEEDS")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SHALE_EOS_SEEDS: comma-separated numbers"))
        .collect();
    let n: usize =
        std::env::var("SHALE_EOS_RECORDS").map_or(2000, |s| s.parse().expect("SHALE_EOS_RECORDS"));
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("shale.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 300\n").unwrap();
    let mut c = Cluster::start(3, &kafka::unique("eos"), &["--config", config.to_str().unwrap()]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    for seed in seeds {
        let out = scratch.path().join(format!("seed-{seed}"));
        std::fs::create_dir_all(&out).unwrap();
        let last = run_seed(&mut c, &client, (python, &copier), &out, seed, n).await;
        if let Copier::Java(_) | Copier::Rust(_) = copier {
            let ends = last["commits"].as_i64().unwrap() + last["aborts"].as_i64().unwrap();
            let epoch = last["epoch"].as_i64().unwrap();
            assert!(
                epoch >= ends,
                "seed {seed}: transactions v2 bumps the epoch at each end: {last}"
            );
        }
    }
}

/// One run of the checker with `seed`, its files in `out`: what the instance that finished
/// printed.
async fn run_seed(
    c: &mut Cluster,
    client: &Client,
    (python, copier): (&Path, &Copier),
    out: &Path,
    seed: u64,
    n: usize,
) -> serde_json::Value {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (src, dst) = (format!("eos-in-{seed}"), format!("eos-out-{seed}"));
    let (group, txn_id) = (format!("eos-g-{seed}"), format!("eos-copier-{seed}"));
    for topic in [&src, &dst] {
        let configs = [("min.insync.replicas".to_string(), "2".to_string())].into();
        client.admin().create_topic(topic, PARTITIONS, 3, configs).await.unwrap();
        wait_for_full_isr(client, topic, PARTITIONS).await;
    }
    let bootstrap = c.kafka_bootstrap();
    let n_text = n.to_string();
    let fill = kafka::python_script(python, "eos.py", &["fill", &bootstrap, &src, &n_text]);
    let filled = tokio::task::spawn_blocking(move || kafka::run(fill, Duration::from_secs(160)));
    filled.await.unwrap().assert_ok("eos.py fill");

    let (read_out, done) = (out.join("read.txt"), out.join("copied.done"));
    let reader = kafka::python_script(
        python,
        "eos.py",
        &["read", &bootstrap, &dst, &n_text, read_out.to_str().unwrap(), done.to_str().unwrap()],
    );
    let reader = tokio::task::spawn_blocking(move || kafka::run(reader, Duration::from_secs(330)));
    // The Rust copier speaks gRPC.
    let grpc = (0..3).map(|i| c.addr(i)).collect::<Vec<_>>().join(",");
    let app_bootstrap = if let Copier::Rust(_) = copier { &grpc } else { &bootstrap };
    let copy_args: Vec<String> = [app_bootstrap, &src, &dst, &group, &txn_id, &n_text]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect();
    let app = App::start(copier.argv(python, &copy_args), out);

    let mut faults = vec![
        Fault::KillLeader(rng.random_range(0..PARTITIONS)),
        Fault::KillCoordinator,
        Fault::StopLeader(rng.random_range(0..PARTITIONS)),
        Fault::KillApp,
    ];
    faults.shuffle(&mut rng);
    eprintln!("seed {seed}: faults {faults:?}");
    for (round, fault) in faults.iter().enumerate() {
        let want = n * (round + 1) / (faults.len() + 2);
        let what = format!("seed {seed}: {want} records read committed before {fault:?}");
        let lines = read_out.clone();
        let read = async || match std::fs::read_to_string(&lines).map_or(0, |s| s.lines().count()) {
            got if got >= want => Ok(()),
            got => Err(format!("{got} read")),
        };
        let explain = async || {
            let state = stalled_state(client, &dst, &txn_id).await;
            let (summary, tail) = (app.summary(), app.stderr_tail());
            format!("; {state}\napp: {summary}\nits stderr's tail:\n{tail}")
        };
        common::wait_for_explained(Duration::from_secs(120), &what, read, explain).await;
        inject(c, client, &dst, &txn_id, *fault, &app).await;
    }
    let finished = app.wait(Duration::from_secs(240));
    std::fs::write(&done, "").unwrap();
    let alongside = reader.await.unwrap().assert_ok("eos.py read (alongside)");
    assert!(finished, "seed {seed}: the application did not finish: {}", app.stderr_tail());
    // A fresh reader after the run, and the one that read alongside: each record once.
    let fresh_out = out.join("read-after.txt");
    let fresh = kafka::python_script(
        python,
        "eos.py",
        &["read", &bootstrap, &dst, &n_text, fresh_out.to_str().unwrap(), done.to_str().unwrap()],
    );
    let fresh = tokio::task::spawn_blocking(move || kafka::run(fresh, Duration::from_secs(330)));
    let after = fresh.await.unwrap().assert_ok("eos.py read (after)");
    eprintln!("seed {seed}: alongside {alongside}, after {after}, app {}", app.summary());
    for (what, r) in [("alongside", &alongside), ("after", &after)] {
        assert_eq!(r["duplicates"], 0, "seed {seed}, reader {what}: a record seen twice: {r}");
        assert_eq!(r["unknown"], 0, "seed {seed}, reader {what}: {r}");
    }
    assert_eq!(after["distinct"].as_u64(), Some(n as u64), "seed {seed}: every record: {after}");
    assert_eq!(after["read"].as_u64(), Some(n as u64), "seed {seed}: once each: {after}");
    app.finished_with()
}

/// A transaction its application left open (it exited without ending it) holds every
/// `read_committed` reader at its first offset until its timeout (5 s); its coordinator's
/// broker is killed meanwhile, and the id's next coordinator aborts it: the last stable
/// offset of each partition reaches the high watermark, and the records are never read
/// committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_is_aborted_at_its_timeout_after_its_coordinator_dies() {
    use shale::proto::pb::list_offsets_request::Spec;
    let Some(python) = kafka::python() else { return };
    let mut c = Cluster::start(3, &kafka::unique("hang"), &[]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    let configs = [("min.insync.replicas".to_string(), "2".to_string())].into();
    client.admin().create_topic("hang", PARTITIONS, 3, configs).await.unwrap();
    wait_for_full_isr(&client, "hang", PARTITIONS).await;
    let bootstrap = c.kafka_bootstrap();
    let hang = kafka::python_script(&python, "eos.py", &["hang", &bootstrap, "hang", "hanging"]);
    let run = tokio::task::spawn_blocking(move || kafka::run(hang, Duration::from_secs(110)));
    assert_eq!(run.await.unwrap().assert_ok("eos.py hang")["written"], PARTITIONS);
    let offsets = |spec: Spec| {
        let admin = client.admin();
        async move {
            let mut out = Vec::new();
            for p in 0..PARTITIONS {
                out.push(admin.list_offsets("hang", p, spec).await.map(|r| r.offset));
            }
            out
        }
    };
    let held = offsets(Spec::LastStable(true)).await;
    assert!(held.iter().all(|o| *o.as_ref().unwrap() == 0), "held at the transaction: {held:?}");
    let coordinator = txn_coordinator(&c.kafka(0), "hanging").await;
    assert!(coordinator > 0);
    c.kill(coordinator as usize - 1);
    let killed_at = Instant::now();
    let what = "every partition's last stable offset at its high watermark";
    wait_until(Duration::from_secs(60), what, || {
        let offsets = &offsets;
        async move {
            let (lso, hw) =
                (offsets(Spec::LastStable(true)).await, offsets(Spec::Latest(true)).await);
            lso.iter().all(|o| o.is_ok())
                && lso.iter().zip(&hw).all(|(l, h)| l.as_ref().ok() == h.as_ref().ok())
        }
    })
    .await;
    eprintln!("aborted {:?} after the coordinator's kill", killed_at.elapsed());
    let hw = offsets(Spec::Latest(true)).await;
    assert!(
        hw.iter().all(|o| *o.as_ref().unwrap() == 2),
        "the record and its abort marker: {hw:?}"
    );
    let mut consumer = shale::client::Consumer::new(
        client.clone(),
        shale::client::ConsumerConfig { stop_at_end: true, ..Default::default() },
    );
    for p in 0..PARTITIONS {
        consumer.assign("hang", p, shale::client::StartAt::Earliest).await.unwrap();
    }
    let mut read = Vec::new();
    while let Some(records) = consumer.poll().await.unwrap() {
        read.extend(records);
    }
    assert_eq!(read.len(), PARTITIONS as usize, "a read_uncommitted reader sees the records");
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    std::fs::write(&done, "").unwrap();
    let out = dir.path().join("read.txt");
    let args = ["read", &bootstrap, "hang", "1", out.to_str().unwrap(), done.to_str().unwrap()];
    let read = kafka::python_script(&python, "eos.py", &args);
    let read = tokio::task::spawn_blocking(move || kafka::run(read, Duration::from_secs(60)));
    let read = read.await.unwrap().assert_ok("eos.py read");
    assert_eq!(read["read"], 0, "a read_committed reader sees none: {read}");
    c.restart(coordinator as usize - 1);
}

/// Applies `fault`, and waits until the cluster is whole again.
async fn inject(
    c: &mut Cluster,
    client: &Client,
    topic: &str,
    txn_id: &str,
    fault: Fault,
    app: &App,
) {
    eprintln!("injecting {fault:?}");
    match fault {
        Fault::KillLeader(p) => {
            let leader = leader_of(client, topic, p).await;
            c.kill(leader as usize - 1);
            wait_for_leader_other_than(client, topic, p, leader).await;
            c.restart(leader as usize - 1);
        }
        Fault::KillCoordinator => {
            let coordinator = txn_coordinator(&c.kafka(0), txn_id).await;
            c.kill(coordinator as usize - 1);
            let live = (0..3).find(|i| *i + 1 != coordinator as usize).unwrap();
            let other = c.kafka(live);
            wait_until(Duration::from_secs(30), "another broker to coordinate the id", || {
                let other = other.clone();
                async move { txn_coordinator(&other, txn_id).await != coordinator }
            })
            .await;
            c.restart(coordinator as usize - 1);
        }
        Fault::StopLeader(p) => {
            let leader = leader_of(client, topic, p).await;
            let broker = c.broker(leader as usize - 1);
            broker.signal("STOP");
            wait_for_leader_other_than(client, topic, p, leader).await;
            broker.signal("CONT");
        }
        Fault::KillApp => app.kill(),
    }
    common::wait_for_broker_count(client, 3).await;
    wait_for_full_isr(client, topic, PARTITIONS).await;
}

/// The application, started again whenever it exits with an error (a fenced or failed
/// instance) or is killed, until an instance exits 0.
struct App {
    state: Arc<Mutex<AppState>>,
    done: Arc<AtomicBool>,
    supervisor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct AppState {
    child: Child,
    starts: u32,
    kills: u32,
    finished: bool,
    stderr: PathBuf,
}

impl App {
    fn start(argv: Vec<String>, out: &Path) -> App {
        let spawn = {
            let out = out.to_path_buf();
            move |i: u32| {
                let stderr = out.join(format!("copy-{i}.err"));
                let child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stdout(std::fs::File::create(out.join(format!("copy-{i}.out"))).unwrap())
                    .stderr(std::fs::File::create(&stderr).unwrap())
                    .spawn()
                    .expect("start the copier");
                (child, stderr)
            }
        };
        let (child, stderr) = spawn(0);
        let state = AppState { child, starts: 1, kills: 0, finished: false, stderr };
        let state = Arc::new(Mutex::new(state));
        let done = Arc::new(AtomicBool::new(false));
        let (s, d) = (state.clone(), done.clone());
        let supervisor = std::thread::spawn(move || {
            while !d.load(Ordering::Acquire) {
                {
                    let mut st = s.lock().unwrap();
                    match st.child.try_wait().unwrap() {
                        Some(status) if status.success() => {
                            st.finished = true;
                            return;
                        }
                        Some(status) => {
                            eprintln!("the application exited ({status}); starting it again");
                            assert!(st.starts < 30, "the application failed 30 times");
                            let (child, stderr) = spawn(st.starts);
                            st.child = child;
                            st.stderr = stderr;
                            st.starts += 1;
                        }
                        None => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        App { state, done, supervisor: Mutex::new(Some(supervisor)) }
    }

    /// SIGKILLs the running instance (the supervisor starts the next).
    fn kill(&self) {
        let mut st = self.state.lock().unwrap();
        let _ = st.child.kill();
        st.kills += 1;
    }

    /// Waits up to `within` for an instance to finish; whether one did.
    fn wait(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.state.lock().unwrap().finished {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// What the instance that finished printed last.
    fn finished_with(&self) -> serde_json::Value {
        let st = self.state.lock().unwrap();
        let out = st.stderr.with_extension("out");
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("null");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{}: {e}: {last:?}", out.display()))
    }

    /// How many instances ran and were killed, and what each that ended said.
    fn summary(&self) -> String {
        let st = self.state.lock().unwrap();
        let dir = st.stderr.parent().unwrap().to_path_buf();
        let said: Vec<String> = (0..st.starts)
            .filter_map(|i| std::fs::read_to_string(dir.join(format!("copy-{i}.out"))).ok())
            .filter_map(|s| s.lines().last().map(str::to_string))
            .collect();
        format!("{} instances, {} killed: {said:?}", st.starts, st.kills)
    }

    fn stderr_tail(&self) -> String {
        let path = self.state.lock().unwrap().stderr.clone();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(h) = self.supervisor.lock().unwrap().take() {
            let _ = h.join();
        }
        let mut st = self.state.lock().unwrap();
        let _ = st.child.kill();
        let _ = st.child.wait();
    }
}

/// What a stalled copy looks like from outside: the output's last stable offsets and high
/// watermarks, and the transactional id's state as its coordinator describes it.
async fn stalled_state(client: &Client, topic: &str, txn_id: &str) -> String {
    use shale::proto::pb::list_offsets_request::Spec;
    let admin = client.admin();
    let mut offsets = Vec::new();
    for p in 0..PARTITIONS {
        let lso = admin.list_offsets(topic, p, Spec::LastStable(true)).await.map(|r| r.offset);
        let hw = admin.list_offsets(topic, p, Spec::Latest(true)).await.map(|r| r.offset);
        offsets.push(format!("{topic}-{p} lso {lso:?} hw {hw:?}"));
    }
    let txn = shale::client::TxnAdmin::new(client.clone()).describe(txn_id).await;
    format!("{}; transaction {txn_id}: {txn:?}", offsets.join(", "))
}

/// The broker coordinating transactional id `id`, as broker `addr` answers FindCoordinator
/// (v3, key type 1); -1 while it cannot say.
async fn txn_coordinator(addr: &str, id: &str) -> i32 {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(id.to_string()))
        .with_key_type(1);
    let (key, version) = (ApiKey::FindCoordinator, 3);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    let ask = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        conn.write_all(&buf).await.ok()?;
        let mut size = [0u8; 4];
        conn.read_exact(&mut size).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        conn.read_exact(&mut body).await.ok()?;
        let mut body = bytes::Bytes::from(body);
        ResponseHeader::decode(&mut body, key.response_header_version(version)).ok()?;
        let r = FindCoordinatorResponse::decode(&mut body, version).ok()?;
        assert_eq!(body.remaining(), 0);
        Some(if r.error_code == 0 { r.node_id.0 } else { -1 })
    };
    tokio::time::timeout(Duration::from_secs(10), ask).await.ok().flatten().unwrap_or(-1)
}

async fn wait_for_leader_other_than(client: &Client, topic: &str, partition: u32, old: i32) {
    let what = format!("{topic}/{partition} led by a broker other than {old}");
    wait_until(Duration::from_secs(30), &what, || {
        let client = client.clone();
        let topic = topic.to_string();
        async move {
            let Ok(md) = client.admin().metadata(&[topic]).await else { return false };
            let p = md.topics[0].partitions.iter().find(|p| p.partition == partition);
            p.is_some_and(|p| p.leader_id > 0 && p.leader_id != old)
        }
    })
    .await;
}

/// A replica that joins (a reassignment) copies the log from the leader's log start, which
/// DeleteRecords moved inside transactions: into an aborted one on partition 0, into an
/// open one on partition 1. Leading (the partition's only replica now), it hides the aborted records it has, holds
/// read_committed readers before the open transaction's records, and hides them too once
/// that transaction aborts: its producer state, rebuilt from the log it copied, knows each
/// transaction from its first batch there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_knows_the_transactions_across_its_log_start() {
    use shale::client::{
        Consumer, ConsumerConfig, Isolation, Producer, ProducerRecord, StartAt,
        TransactionalConfig, TransactionalProducer,
    };
    let c = Cluster::start(3, &kafka::unique("nrtx"), &[]);
    let client = c.client();
    common::wait_for_broker_count(&client, 3).await;
    client.admin().create_topic("nr", 2, 2, Default::default()).await.unwrap();
    wait_until(Duration::from_secs(60), "nr's partitions led, two replicas in sync", || {
        let client = client.clone();
        async move {
            let Ok(md) = client.admin().metadata(&["nr".to_string()]).await else { return false };
            let ps = &md.topics[0].partitions;
            ps.len() == 2 && ps.iter().all(|m| m.leader_id > 0 && m.isr.len() == 2)
        }
    })
    .await;
    let txn = |id: &str| TransactionalProducer::init(client.clone(), TransactionalConfig::new(id));
    let (mut a, mut b) = (txn("nr-a").await.unwrap(), txn("nr-b").await.unwrap());
    let plain = Producer::new(client.clone(), Default::default());
    let to_both = |v: String| [0, 1].map(|p| ProducerRecord::new("nr", v.clone()).partition(p));
    // Each partition: A0-A4 at 0-4 (aborted, marker at 10), p0-p4 at 5-9, B0-B2 at 11-13
    // (left open), p5-p9 at 14-18.
    a.begin().unwrap();
    for i in 0..5 {
        for r in to_both(format!("A{i}")) {
            a.send(r).await.unwrap().await.unwrap();
        }
    }
    for i in 0..5 {
        for r in to_both(format!("p{i}")) {
            plain.send(r).await.unwrap().await.unwrap();
        }
    }
    a.abort().await.unwrap();
    b.begin().unwrap();
    for i in 0..3 {
        for r in to_both(format!("B{i}")) {
            b.send(r).await.unwrap().await.unwrap();
        }
    }
    for i in 5..10 {
        for r in to_both(format!("p{i}")) {
            plain.send(r).await.unwrap().await.unwrap();
        }
    }
    let admin = client.admin();
    let timeout = Duration::from_secs(10);
    assert_eq!(admin.delete_records("nr", 0, 2, timeout).await.unwrap(), 2);
    assert_eq!(admin.delete_records("nr", 1, 12, timeout).await.unwrap(), 12);
    // Each partition moves to a broker that never had it, alone: it copies the log from
    // the leader's log start and then leads.
    let mut moved = Vec::new();
    for p in 0..2 {
        let md = admin.metadata(&["nr".to_string()]).await.unwrap();
        let m = md.topics[0].partitions.iter().find(|m| m.partition == p).unwrap();
        let new = (1..=3).find(|b| !m.replicas.contains(b)).unwrap();
        let r = shale::proto::pb::Reassignment {
            topic: "nr".into(),
            partition: p,
            replicas: vec![new],
        };
        admin.reassign_partitions(vec![r], false).await.unwrap();
        moved.push((p, new));
    }
    for &(p, new) in &moved {
        let what = format!("nr/{p} on broker {new} alone, leading");
        wait_until(Duration::from_secs(60), &what, || {
            let client = client.clone();
            async move {
                let Ok(md) = client.admin().metadata(&["nr".to_string()]).await else {
                    return false;
                };
                let m = md.topics[0].partitions.iter().find(|m| m.partition == p).cloned().unwrap();
                m.replicas == [new] && m.isr == [new] && m.leader_id == new
            }
        })
        .await;
    }
    let read = |p: u32| {
        let client = client.clone();
        async move {
            let config = ConsumerConfig {
                stop_at_end: true,
                isolation: Isolation::ReadCommitted,
                ..ConsumerConfig::default()
            };
            let mut consumer = Consumer::new(client, config);
            consumer.assign("nr", p, StartAt::Earliest).await.unwrap();
            let mut out = Vec::new();
            while let Some(records) = consumer.poll().await.unwrap() {
                out.extend(
                    records
                        .into_iter()
                        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
                );
            }
            out
        }
    };
    for &(p, new) in &moved {
        let got = read(p).await;
        let want: Vec<String> = match p {
            0 => (0..5).map(|i| format!("p{i}")).collect(),
            _ => Vec::new(),
        };
        assert_eq!(got, want, "partition {p} read committed from its new leader {new}");
    }
    b.abort().await.unwrap();
    wait_until(Duration::from_secs(30), "partition 1 readable past B's abort", || {
        let read = read(1);
        async move { read.await.len() == 5 }
    })
    .await;
    let got = read(1).await;
    assert_eq!(
        got,
        (5..10).map(|i| format!("p{i}")).collect::<Vec<_>>(),
        "B's records never shown"
    );
}
