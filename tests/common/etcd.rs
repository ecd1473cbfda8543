//! A private etcd for tests: its own temp data dir and free ports on 127.0.0.1.
//!
//! - [`shared`]: one etcd per test binary, started on first use; tests keep apart by
//!   putting their keys under [`namespace`]. Never stop it.
//! - [`EtcdServer::start`]: an etcd owned by one test, which may [`stop`](EtcdServer::stop),
//!   [`restart`](EtcdServer::restart) (same data dir and ports), [`pause`](EtcdServer::pause)
//!   and [`resume`](EtcdServer::resume) it; killed by PID on drop.
//!
//! A watchdog shell process kills each etcd (and removes a shared one's data dir) when the
//! test binary exits, since statics are never dropped.
//!
//! Without an `etcd` binary (on PATH, in /usr/bin, or `$ETCD_BIN`) a test fails when
//! `CI=true` with a message naming `scripts/etcd.sh install`; otherwise the `try_*`
//! functions return `None` after printing a note, so the test can skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "service.rs"]
mod service;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use service::free_port;
use shale::meta::{EtcdOptions, EtcdStore};

/// Client timeouts for tests: short, so tests of an unavailable etcd stay quick.
pub(crate) fn test_options() -> EtcdOptions {
    EtcdOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..EtcdOptions::default()
    }
}

/// A fresh key prefix ending in `/` that no other test of this binary uses.
pub(crate) fn namespace(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("/test/{}-{}/{test}/", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The etcd binary, or `None` after printing a note (outside CI) / failing (in CI).
pub(crate) fn etcd_binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("ETCD_BIN").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("etcd")).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = from_env
        .into_iter()
        .chain(on_path)
        .chain(["/usr/bin/etcd".into(), "/usr/local/bin/etcd".into()])
        .find(|p| p.is_file());
    if found.is_none() {
        let msg = "etcd is not installed: run `scripts/etcd.sh install` (Debian's etcd-server) \
                   or set ETCD_BIN to an etcd 3.4+ binary";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(std::io::stderr(), "note: skipping an etcd test: {msg}");
    }
    found
}

/// The binary's shared etcd, started on first use; `None` if etcd is missing (outside CI).
pub(crate) fn try_shared() -> Option<&'static EtcdServer> {
    static SHARED: OnceLock<Option<EtcdServer>> = OnceLock::new();
    SHARED.get_or_init(EtcdServer::try_start).as_ref()
}

/// The binary's shared etcd; fails the test if etcd is missing.
pub(crate) fn shared() -> &'static EtcdServer {
    try_shared().expect("etcd is not installed: run `scripts/etcd.sh install`")
}

/// A store connected to `server` with [`test_options`].
pub(crate) async fn connect(server: &EtcdServer) -> Arc<EtcdStore> {
    EtcdStore::connect(&server.endpoints(), test_options())
        .await
        .unwrap_or_else(|e| panic!("connecting to the test etcd: {e}"))
}

/// A temp dir for an etcd's data: in memory (`/dev/shm`) where there is one. The suite's
/// fsync-heavy tests share the disk, and behind them etcd's WAL fsyncs once took over the
/// 2 s request timeout of `test_options` (a put in a test's setup failed "Timeout
/// expired"); what these tests exercise is etcd going away, not its disk.
fn data_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("shale-etcd-");
    match shm.is_dir().then(|| builder.tempdir_in(shm)) {
        Some(Ok(dir)) => dir,
        _ => builder.tempdir().unwrap(),
    }
}

/// One etcd member on 127.0.0.1 with its data in a temp dir.
pub(crate) struct EtcdServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    /// With TLS: (CA, server certificate, key) files, client certificates required, and a
    /// plain-HTTP metrics port for the health check.
    tls: Option<([PathBuf; 3], u16)>,
}

impl EtcdServer {
    /// Starts a private etcd; `None` if etcd is missing (outside CI).
    pub(crate) fn try_start() -> Option<EtcdServer> {
        let bin = etcd_binary()?;
        let dir = data_dir();
        let (client_port, peer_port) = (free_port(), free_port());
        let mut server = EtcdServer { bin, dir, client_port, peer_port, child: None, tls: None };
        server.spawn();
        Some(server)
    }

    /// Starts a private etcd serving TLS with `cert`/`key`, requiring client certificates
    /// signed by `ca`; fails the test if etcd is missing.
    pub(crate) fn start_tls(ca: &Path, cert: &Path, key: &Path) -> EtcdServer {
        let bin = etcd_binary().expect("etcd is not installed: run `scripts/etcd.sh install`");
        let dir = data_dir();
        let (client_port, peer_port) = (free_port(), free_port());
        let files = [ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()];
        let tls = Some((files, free_port()));
        let mut server = EtcdServer { bin, dir, client_port, peer_port, child: None, tls };
        server.spawn();
        server
    }

    /// Starts a private etcd; fails the test if etcd is missing.
    pub(crate) fn start() -> EtcdServer {
        Self::try_start().expect("etcd is not installed: run `scripts/etcd.sh install`")
    }

    /// Client URLs, for `EtcdStore::connect`.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        vec![format!("{scheme}://127.0.0.1:{}", self.client_port)]
    }

    /// The data directory (the member's state is in `data/`, its log in `etcd.log`).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of the running member, if any.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the member (SIGKILL, like a crash; etcd fsyncs, so nothing acked is lost).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the member again on the same data dir and ports; waits until it is healthy.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes the member (SIGSTOP): connections stay open but nothing answers. Returns
    /// once the kernel reports the process stopped: `kill` returns when the signal is sent,
    /// and a request in flight could still be answered before every thread stops.
    pub(crate) fn pause(&self) {
        self.signal("STOP");
        let pid = self.pid().expect("etcd is not running");
        let deadline = Instant::now() + Duration::from_secs(5);
        // Every thread, not just the first: each stops when it takes the signal.
        let stopped = || {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
            tasks.map(|t| t.ok().map(|t| t.path().join("stat"))).try_fold(true, |all, stat| {
                let stat = std::fs::read_to_string(stat?).ok()?;
                // The state follows the command name in parentheses: `T` is stopped.
                let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
                Some(all && state == Some('T'))
            })
        };
        while stopped() != Some(true) {
            assert!(Instant::now() < deadline, "etcd {pid} not stopped 5 s after SIGSTOP");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Thaws a paused member (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("etcd is not running");
        let ok = Command::new("kill").args([format!("-{sig}"), pid.to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig} {pid} failed");
    }

    fn spawn(&mut self) {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name=shale-test")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=shale-test={peer}"))
            .args(["--initial-cluster-state=new", "--heartbeat-interval=10"])
            .args(["--election-timeout=50", "--logger=zap", "--log-level=warn"]);
        if std::env::consts::ARCH == "aarch64" {
            cmd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let mut port = self.client_port;
        if let Some(([ca, cert, key], metrics)) = &self.tls {
            cmd.arg(format!("--trusted-ca-file={}", ca.display()))
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg("--client-cert-auth")
                .arg(format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"));
            port = *metrics;
        }
        self.child = Some(service::spawn(cmd, "etcd", self.dir.path(), || healthy(port)));
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `GET /health`; true when etcd reports itself healthy (it has a leader).
fn healthy(port: u16) -> bool {
    service::http(port, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_ok_and(|reply| reply.contains("\"health\":\"true\""))
}
