//! A cluster of `shale serve` processes on one private etcd, for tests: broker `i` (0-based)
//! has id `i + 1`, its own data dir, a fixed client port, Kafka, schema registry and admin port (so a
//! restart comes back at the same addresses), a 3 s lease and a failpoint folder (`SHALE_FAILPOINTS_DIR`,
//! see [`Cluster::arm`]). Brokers are killed by PID when dropped, before etcd stops.
//!
//! Include it next to `mod common;`: `#[path = "common/cluster.rs"] mod cluster;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "etcd.rs"]
pub(crate) mod etcd;

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use shale::client::Client;

use crate::common::{BrokerProcess, free_port, wait_until};
pub(crate) use etcd::EtcdServer;

/// Lease TTL of every broker: failover tests wait about this long for a dead broker.
pub(crate) const LEASE_TTL_SECS: u64 = 3;

/// Fields drop in order: brokers stop before etcd, so they do not log its absence.
pub(crate) struct Cluster {
    pub brokers: Vec<Option<BrokerProcess>>,
    dirs: Vec<tempfile::TempDir>,
    failpoints: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    kafka_ports: Vec<u16>,
    admin_ports: Vec<u16>,
    registry_ports: Vec<u16>,
    name: String,
    args: Vec<String>,
    pub etcd: EtcdServer,
}

impl Cluster {
    /// Starts etcd and `n` brokers of cluster `name`, each also given `args`.
    pub(crate) fn start(n: usize, name: &str, args: &[&str]) -> Cluster {
        Cluster::start_on(EtcdServer::start(), n, name, args)
    }

    /// Starts etcd and makes room for `n` brokers of cluster `name` without starting any
    /// (start them with [`restart`](Self::restart)): a cluster that grows.
    pub(crate) fn prepare(n: usize, name: &str, args: &[&str]) -> Cluster {
        let mut c = Cluster::start_on(EtcdServer::start(), 0, name, args);
        c.dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        c.failpoints = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        c.ports = (0..n).map(|_| free_port()).collect();
        c.kafka_ports = (0..n).map(|_| free_port()).collect();
        c.admin_ports = (0..n).map(|_| free_port()).collect();
        c.registry_ports = (0..n).map(|_| free_port()).collect();
        c.brokers = (0..n).map(|_| None).collect();
        c
    }

    /// The same on a given etcd (one serving TLS, say; `args` then say how to reach it).
    pub(crate) fn start_on(etcd: EtcdServer, n: usize, name: &str, args: &[&str]) -> Cluster {
        let mut c = Cluster {
            brokers: vec![],
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            failpoints: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            ports: (0..n).map(|_| free_port()).collect(),
            kafka_ports: (0..n).map(|_| free_port()).collect(),
            admin_ports: (0..n).map(|_| free_port()).collect(),
            registry_ports: (0..n).map(|_| free_port()).collect(),
            name: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            etcd,
        };
        for i in 0..n {
            let b = c.spawn(i);
            c.brokers.push(Some(b));
        }
        c
    }

    /// Starts broker `i` and waits until it serves.
    pub(crate) fn spawn(&self, i: usize) -> BrokerProcess {
        let id = (i + 1).to_string();
        let etcd = self.etcd.endpoints().join(",");
        let ttl = LEASE_TTL_SECS.to_string();
        let admin = self.admin(i);
        let kafka = self.kafka(i);
        let registry = self.registry(i);
        let failpoints = self.failpoints[i].path().to_string_lossy().to_string();
        let mut args = vec![
            "--id",
            &id,
            "--etcd",
            &etcd,
            "--cluster",
            &self.name,
            "--lease-ttl-secs",
            &ttl,
            "--admin-listen",
            &admin,
            "--kafka-listen",
            &kafka,
            "--schema-registry-listen",
            &registry,
        ];
        args.extend(self.args.iter().map(String::as_str));
        BrokerProcess::serve_on_with_env(
            self.dirs[i].path(),
            &self.addr(i),
            &args,
            &[("SHALE_FAILPOINTS_DIR", &failpoints)],
        )
    }

    /// Client address of broker `i`.
    pub(crate) fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// Kafka listener address of broker `i`.
    pub(crate) fn kafka(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.kafka_ports[i])
    }

    /// Every broker's Kafka address, comma-separated: a Kafka client's bootstrap list.
    pub(crate) fn kafka_bootstrap(&self) -> String {
        (0..self.kafka_ports.len()).map(|i| self.kafka(i)).collect::<Vec<_>>().join(",")
    }

    /// Schema registry address of broker `i`.
    pub(crate) fn registry(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.registry_ports[i])
    }

    /// Admin HTTP address of broker `i`.
    pub(crate) fn admin(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.admin_ports[i])
    }

    /// Data dir of broker `i`.
    pub(crate) fn dir(&self, i: usize) -> &Path {
        self.dirs[i].path()
    }

    /// Broker `i`, which must be running.
    pub(crate) fn broker(&self, i: usize) -> &BrokerProcess {
        self.brokers[i].as_ref().expect("broker is running")
    }

    /// A client that knows every broker, so it outlives any one of them.
    pub(crate) fn client(&self) -> Client {
        self.client_from(0)
    }

    /// The same, trying broker `first` first.
    pub(crate) fn client_from(&self, first: usize) -> Client {
        let n = self.ports.len();
        let all: Vec<String> = (0..n).map(|i| self.addr((first + i) % n)).collect();
        Client::new(&all.join(",")).unwrap()
    }

    /// A client of broker `i` alone.
    pub(crate) fn broker_client(&self, i: usize) -> Client {
        self.broker(i).client()
    }

    /// SIGKILL broker `i` (if running) and reap it.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut b) = self.brokers[i].take() {
            b.kill();
        }
    }

    /// Starts broker `i` again, on the same data dir and ports.
    pub(crate) fn restart(&mut self, i: usize) {
        let b = self.spawn(i);
        self.brokers[i] = Some(b);
    }

    /// Arms (or disarms) failpoint `name` on broker `i`, which checks it at the point itself.
    pub(crate) fn arm(&self, i: usize, name: &str, on: bool) {
        let file = self.failpoints[i].path().join(name);
        if on {
            std::fs::write(file, b"").unwrap();
        } else {
            std::fs::remove_file(file).unwrap();
        }
    }

    /// Waits (bounded, without blocking the runtime) for broker `i` to end by itself, and
    /// returns how it ended.
    pub(crate) async fn wait_for_exit(&mut self, i: usize, what: &str) -> ExitStatus {
        let b = self.brokers[i].as_mut().expect("broker is running");
        let mut status = None;
        wait_until(Duration::from_secs(60), what, || {
            status = b.child.try_wait().ok().flatten();
            let done = status.is_some();
            async move { done }
        })
        .await;
        self.brokers[i] = None;
        status.unwrap()
    }

    /// SIGTERM and wait for the exit; returns its success, how long the drain and shutdown
    /// took, and the broker's last stdout line.
    pub(crate) async fn terminate(&mut self, i: usize) -> (bool, Duration, String) {
        let started = Instant::now();
        self.broker(i).signal("TERM");
        let mut b = self.brokers[i].take().expect("broker is running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = b.child.try_wait().unwrap() {
                let took = started.elapsed();
                // The reader thread sees the pipe close right after the exit.
                let mut last = String::new();
                for _ in 0..250 {
                    last = b.stdout_lines().last().cloned().unwrap_or_default();
                    if last.contains("stopped") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return (status.success(), took, last);
            }
            assert!(Instant::now() < deadline, "broker {} did not exit after SIGTERM", i + 1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits (bounded) until the registered brokers are exactly `want` (sorted ids).
pub(crate) async fn wait_for_brokers(client: &Client, want: &[i32]) {
    let want = want.to_vec();
    wait_until(Duration::from_secs(30), &format!("brokers {want:?} registered"), || {
        let client = client.clone();
        let want = want.clone();
        async move {
            let Ok(md) = client.admin().metadata(&[]).await else { return false };
            let mut ids: Vec<i32> = md.brokers.iter().map(|b| b.id).collect();
            ids.sort();
            ids == want
        }
    })
    .await;
}

/// The leader of `topic`-`partition`, as `client`'s metadata says.
pub(crate) async fn leader_of(client: &Client, topic: &str, partition: u32) -> i32 {
    let md = client.admin().metadata(&[topic.to_string()]).await.unwrap();
    md.topics[0].partitions.iter().find(|p| p.partition == partition).unwrap().leader_id
}

/// Waits (bounded) until each of the `partitions` partitions of `topic` has a leader and
/// all three replicas in sync.
pub(crate) async fn wait_for_full_isr(client: &Client, topic: &str, partitions: u32) {
    let what = format!("every partition of {topic} led, with three replicas in sync");
    wait_until(Duration::from_secs(60), &what, || {
        let client = client.clone();
        let topic = topic.to_string();
        async move {
            let Ok(md) = client.admin().metadata(&[topic]).await else { return false };
            let parts = &md.topics[0].partitions;
            parts.len() == partitions as usize
                && parts.iter().all(|p| p.leader_id > 0 && p.isr.len() == 3)
        }
    })
    .await;
}
