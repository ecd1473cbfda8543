//! Kafka clients nobody here wrote (`scripts/kafka-clients.sh install` installs them: PyPI's
//! confluent-kafka, kafka-python and aiokafka, npm's kafkajs, Debian's kcat, Apache Kafka's
//! Java client), run as
//! processes against a broker's Kafka listener. Each client script in `tests/kafka/` prints
//! one JSON object on its last line and exits 0 only when its checks passed.
//!
//! Without the clients a test fails when `CI=true`, naming the install command; otherwise
//! the lookups return `None` after printing a note, so the test can skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (where `scripts/` and `tests/kafka/` are).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn missing(what: &str) -> Option<PathBuf> {
    let msg = format!("{what} is not installed: run `scripts/kafka-clients.sh install`");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("note: skipping: {msg}");
    None
}

/// What `scripts/kafka-clients.sh WHAT` prints, if the clients are installed.
fn installed(what: &str) -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/kafka-clients.sh")).arg(what).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The venv's python with confluent-kafka, kafka-python and aiokafka.
pub(crate) fn python() -> Option<PathBuf> {
    installed("python").or_else(|| missing("the Python Kafka clients"))
}

/// The directory whose `node_modules` holds kafkajs.
pub(crate) fn node_dir() -> Option<PathBuf> {
    installed("node-dir").or_else(|| missing("kafkajs"))
}

/// The directory of Apache Kafka's Java client jars (and `java` on the PATH).
pub(crate) fn java_jars() -> Option<PathBuf> {
    installed("java-jars").or_else(|| missing("Apache Kafka's Java client"))
}

/// A single-file Java program of `tests/kafka/` run with the client jars in `jars`.
pub(crate) fn java_program(jars: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("java");
    cmd.arg("-cp").arg(jars.join("*")).arg(root().join("tests/kafka").join(program)).args(args);
    cmd
}

/// kcat.
pub(crate) fn kcat() -> Option<PathBuf> {
    let found = ["/usr/bin/kcat", "/usr/local/bin/kcat"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    found.or_else(|| missing("kcat"))
}

/// What a client run printed.
#[derive(Debug)]
pub(crate) struct Run {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// The JSON object on the last line of stdout.
    pub(crate) fn json(&self) -> serde_json::Value {
        let last = self.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("last stdout line is not JSON ({e}): {last:?}\nstderr:\n{}", self.stderr)
        })
    }

    /// Panics with the output unless the run succeeded.
    pub(crate) fn assert_ok(&self, what: &str) -> serde_json::Value {
        assert!(
            self.ok,
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
                .chars()
                .rev()
                .take(6000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
        self.json()
    }
}

/// Runs `cmd` (killed by PID after `within`), collecting its output.
pub(crate) fn run(mut cmd: Command, within: Duration) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, mut stderr) = (reader.join().unwrap(), err_reader.join().unwrap());
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {within:?})"));
    }
    Run { ok: status.is_some_and(|s| s.success()), stdout, stderr }
}

/// A Python client script of `tests/kafka/` with its arguments.
pub(crate) fn python_script(python: &Path, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/kafka").join(script)).args(args);
    cmd
}

/// The kafkajs client script with its arguments.
pub(crate) fn node_script(node_dir: &Path, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/kafka").join(script)).args(args).env("SHALE_KAFKAJS_DIR", node_dir);
    cmd
}

/// A name no other test of this run uses.
pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
