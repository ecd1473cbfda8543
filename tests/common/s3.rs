//! A private S3-compatible server for tests: moto, in memory, on a free port on 127.0.0.1.
//!
//! [`S3Server::start`] runs `moto_server` from the venv that `scripts/s3.sh install` makes
//! (`${SHALE_S3_VENV:-$HOME/.cache/shale-moto-venv}`, or `$MOTO_SERVER_BIN`), creates one
//! bucket and hands out its [`endpoint`](S3Server::endpoint); the server is killed by PID on
//! [`stop`](S3Server::stop) or drop, and by a watchdog shell process if the test binary exits
//! first. Its state lives in memory only: once stopped, every object is gone.
//!
//! Moto checks no signatures, but object requests need an `Authorization` header (any
//! credentials do): unsigned ones are anonymous and get 403. A body sent as
//! `application/x-www-form-urlencoded` is stored empty.
//!
//! Without `moto_server` a test fails when `CI=true` with a message naming
//! `scripts/s3.sh install`; otherwise [`S3Server::try_start`] returns `None` after printing a
//! note, so the test can skip, and [`S3Server::start`] fails the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for moto to answer after start (it takes about half a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The venv's `moto_server`, or `None` after printing a note (outside CI) / failing (in CI).
pub fn moto_binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("MOTO_SERVER_BIN").map(PathBuf::from);
    let venv = std::env::var_os("SHALE_S3_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/shale-moto-venv")));
    let found =
        from_env.into_iter().chain(venv.map(|v| v.join("bin/moto_server"))).find(|p| p.is_file());
    if found.is_none() {
        let msg = "moto_server is not installed: run `scripts/s3.sh install` (a venv with \
                   moto[server]) or set MOTO_SERVER_BIN to a moto_server";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(std::io::stderr(), "note: skipping an S3 test: {msg}");
    }
    found
}

/// One moto server on 127.0.0.1 with one bucket; its log is in a temp dir.
pub struct S3Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    bucket: String,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a private S3 server holding an empty `bucket` (3-63 characters of a-z, 0-9, `-`
    /// and `.`); `None` if moto is missing (outside CI).
    pub fn try_start(bucket: &str) -> Option<S3Server> {
        let bin = moto_binary()?;
        let dir = tempfile::Builder::new().prefix("shale-s3-").tempdir().unwrap();
        let port = free_port();
        let mut server = S3Server { bin, dir, port, bucket: bucket.to_string(), child: None };
        server.spawn();
        server.create_bucket(bucket);
        Some(server)
    }

    /// Starts a private S3 server holding an empty `bucket`; fails the test if moto is
    /// missing.
    pub fn start(bucket: &str) -> S3Server {
        Self::try_start(bucket).expect("moto_server is not installed: run `scripts/s3.sh install`")
    }

    /// The server's URL, `http://127.0.0.1:PORT` (path-style: objects are at
    /// `{endpoint}/{bucket}/{key}`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket made at start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The temp dir holding the server's log, `moto.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of the running server, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Creates another empty bucket (an unsigned `PUT /{name}`, which moto allows).
    pub fn create_bucket(&self, name: &str) {
        let request = format!(
            "PUT /{name} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        let reply = http(self.port, &request)
            .unwrap_or_else(|e| panic!("creating bucket {name:?} at {}: {e}", self.endpoint()));
        let status = reply.lines().next().unwrap_or("");
        assert!(
            status.split(' ').nth(1) == Some("200"),
            "creating bucket {name:?} at {}/{name} got {status:?}, not 200:\n{reply}",
            self.endpoint()
        );
    }

    /// Kills the server (SIGKILL); everything it held is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) {
        let log_path = self.dir.path().join("moto.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let mut child = Command::new(&self.bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", self.bin));
        watchdog(child.id(), self.dir.path());
        let deadline = Instant::now() + START_TIMEOUT;
        while !answers(self.port) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited during start-up ({status}):\n{}", tail(&log_path));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "moto_server did not answer on {} within {START_TIMEOUT:?}:\n{}",
                    self.endpoint(),
                    tail(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever answered must be ours, not a server that already held the port.
        if let Ok(Some(status)) = child.try_wait() {
            panic!("moto_server exited during start-up ({status}):\n{}", tail(&log_path));
        }
        self.child = Some(child);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends one HTTP/1.0 `request` and returns the whole reply.
fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// One `GET /` (ListBuckets); true once an S3 server lists its buckets.
fn answers(port: u16) -> bool {
    http(port, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok_and(|reply| {
        reply.lines().next().is_some_and(|l| l.split(' ').nth(1) == Some("200"))
            && reply.contains("<ListAllMyBucketsResult")
    })
}

/// Kills moto `pid` and removes `dir` once this test process is gone, unless moto went
/// first (stopped by the test).
fn watchdog(pid: u32, dir: &Path) {
    let script = r#"while kill -0 "$1" 2>/dev/null; do
  kill -0 "$2" 2>/dev/null || exit 0
  sleep 0.5
done
kill -9 "$2" 2>/dev/null
rm -rf "$3""#;
    let spawned = Command::new("sh")
        .args(["-c", script, "moto-watchdog", &std::process::id().to_string(), &pid.to_string()])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("note: no watchdog for moto pid {pid} ({e}); kill it by hand if a test aborts");
    }
}

/// The last lines of moto's log, for start-up failures.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
