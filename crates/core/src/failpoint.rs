//! Crash and hold points for fault tests. A broker aborts the process (like a power cut: no
//! cleanup, no flush) when it reaches a named crash point ([`hit`]) that is armed, and waits
//! at a hold point ([`hold`]) for as long as it is armed. A point is armed either
//!
//! - from the start, with `SHALE_FAILPOINTS=name[,name...]`, or
//! - at run time, with `SHALE_FAILPOINTS_DIR=dir`: the point `name` is armed while the file
//!   `dir/name` exists, so a test can pick the moment (say, once this broker leads a
//!   partition that has data to upload).
//!
//! With neither variable set a check is one relaxed load; the points sit on rare paths
//! (one per uploaded segment), so the file check costs nothing of note when it is on.

use std::path::PathBuf;
use std::sync::OnceLock;

struct Armed {
    names: Vec<String>,
    dir: Option<PathBuf>,
}

fn armed() -> &'static Armed {
    static ARMED: OnceLock<Armed> = OnceLock::new();
    ARMED.get_or_init(|| Armed {
        names: std::env::var("SHALE_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
        dir: std::env::var_os("SHALE_FAILPOINTS_DIR").map(PathBuf::from),
    })
}

fn is_armed(name: &str) -> bool {
    let armed = armed();
    armed.names.iter().any(|a| a == name)
        || armed.dir.as_ref().is_some_and(|d| d.join(name).exists())
}

/// Whether the failpoint `name` is armed (for points that inject an error, not a crash).
pub fn active(name: &str) -> bool {
    is_armed(name)
}

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if is_armed(name) {
        eprintln!("failpoint {name} hit: aborting the process");
        std::process::abort();
    }
}

/// Holds the caller while the failpoint `name` is armed, looking every 50 ms: a test keeps
/// a broker in a passing state (say, draining but still serving) for as long as it needs to
/// look at it, then removes the file.
pub async fn hold(name: &str) {
    if !is_armed(name) {
        return;
    }
    eprintln!("failpoint {name} hit: holding until it is disarmed");
    while is_armed(name) {
        crate::clock::sleep(std::time::Duration::from_millis(50)).await;
    }
}
