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
//! Without `moto_server` a test fails (never skips), with a message naming
//! `scripts/s3.sh install`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use service::{free_port, http};

/// The venv's `moto_server`; fails the test when it is missing.
pub(crate) fn moto_binary() -> PathBuf {
    let from_env = std::env::var_os("MOTO_SERVER_BIN").map(PathBuf::from);
    let venv = std::env::var_os("SHALE_S3_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/shale-moto-venv")));
    from_env
        .into_iter()
        .chain(venv.map(|v| v.join("bin/moto_server")))
        .find(|p| p.is_file())
        .expect(
            "moto_server is not installed: run `scripts/s3.sh install` (a venv with moto[server]) \
         or set MOTO_SERVER_BIN to a moto_server",
        )
}

/// One moto server on 127.0.0.1 with one bucket; its log is in a temp dir.
pub(crate) struct S3Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    bucket: String,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a private S3 server holding an empty `bucket` (3-63 characters of a-z, 0-9, `-`
    /// and `.`); fails the test if moto is missing.
    pub(crate) fn start(bucket: &str) -> S3Server {
        let bin = moto_binary();
        let dir = tempfile::Builder::new().prefix("shale-s3-").tempdir().unwrap();
        let port = free_port();
        let mut server = S3Server { bin, dir, port, bucket: bucket.to_string(), child: None };
        server.spawn();
        server.create_bucket(bucket);
        server
    }

    /// The server's URL, `http://127.0.0.1:PORT` (path-style: objects are at
    /// `{endpoint}/{bucket}/{key}`).
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket made at start.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The temp dir holding the server's log, `moto.log`.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of the running server, if any.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Creates another empty bucket (an unsigned `PUT /{name}`, which moto allows).
    pub(crate) fn create_bucket(&self, name: &str) {
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
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
        let port = self.port;
        self.child = Some(service::spawn(cmd, "moto", self.dir.path(), || answers(port)));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Points `t` at the S3 server at `endpoint` (this one, or a proxy in front of it), with
/// the region and credentials the tests use (moto takes any).
pub(crate) fn reach(t: &mut shale::settings::TierSettings, endpoint: &str) {
    t.s3_endpoint = endpoint.to_string();
    t.s3_region = "us-east-1".into();
    t.s3_access_key_id = "test".into();
    t.s3_secret_access_key = "test".into();
}

/// The same as `[tier]` lines for a broker's config file.
pub(crate) fn reach_toml(endpoint: &str) -> String {
    format!(
        "s3_endpoint = {endpoint:?}\ns3_region = \"us-east-1\"\ns3_access_key_id = \"test\"\n\
         s3_secret_access_key = \"test\"\n"
    )
}

/// One `GET /` (ListBuckets); true once an S3 server lists its buckets.
fn answers(port: u16) -> bool {
    http(port, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok_and(|reply| {
        reply.lines().next().is_some_and(|l| l.split(' ').nth(1) == Some("200"))
            && reply.contains("<ListAllMyBucketsResult")
    })
}
