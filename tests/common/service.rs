//! Running a private service (etcd, moto) for a test: a free port, a bounded start-up wait
//! that shows the end of the service's log on failure, and a watchdog shell process that
//! kills the service (and removes its temp dir) if the test binary exits first.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a service to become ready after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

include!("ports.rs");

/// Sends one HTTP/1.0 `request` to 127.0.0.1:`port` and returns the whole reply.
pub(super) fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Spawns `cmd` as service `name` with its output in `dir/{name}.log`, under a watchdog,
/// and waits (bounded) until `ready` holds. Panics with the log's tail if the service exits
/// or is not ready in time, or if whatever answered was not it (it exited meanwhile).
pub(super) fn spawn(mut cmd: Command, name: &str, dir: &Path, ready: impl Fn() -> bool) -> Child {
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name} ({cmd:?}): {e}"));
    watchdog(name, child.id(), dir);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited during start-up ({status}):\n{}", tail(&log_path));
        }
        if ready() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} was not ready within {START_TIMEOUT:?}:\n{}", tail(&log_path));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever answered must be ours, not a server that already held the port.
    if let Ok(Some(status)) = child.try_wait() {
        panic!("{name} exited during start-up ({status}):\n{}", tail(&log_path));
    }
    child
}

/// Kills `pid` and removes `dir` once this test process is gone, unless the service went
/// first (stopped by the test); statics are never dropped, so this is their clean-up.
fn watchdog(name: &str, pid: u32, dir: &Path) {
    let script = r#"while kill -0 "$1" 2>/dev/null; do
  kill -0 "$2" 2>/dev/null || exit 0
  sleep 0.5
done
kill -9 "$2" 2>/dev/null
rm -rf "$3""#;
    let label = format!("{name}-watchdog");
    let spawned = Command::new("sh")
        .args(["-c", script, &label, &std::process::id().to_string(), &pid.to_string()])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("note: no watchdog for {name} pid {pid} ({e}); kill it by hand if a test aborts");
    }
}

/// The last lines of a service's log, for start-up failures.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
