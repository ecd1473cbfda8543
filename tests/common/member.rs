//! A client process a test runs (a group member, a share consumer): its stdout and stderr
//! in files of the test's directory, killed when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running client process.
pub(crate) struct Member {
    pub(crate) name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Member {
    /// Runs `cmd` as `name`, its stdout and stderr in `dir/{name}.jsonl` and `dir/{name}.err`.
    pub(crate) fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Member {
        let out = dir.join(format!("{name}.jsonl"));
        let err = dir.join(format!("{name}.err"));
        let child = cmd
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start member {name}: {e}"));
        Member { name: name.to_string(), child, out, err }
    }

    /// Every JSON line it printed so far, parsed.
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Sends `sig` (`STOP`, `CONT`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([&format!("-{sig}"), &pid]).status().unwrap();
        assert!(status.success(), "kill -{sig} {pid}");
    }

    /// SIGKILL, and waits for it.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    pub(crate) fn stop(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}:\n{}", self.name, self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "{} did not exit after SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
