//! Crash points for fault tests. A broker aborts the process (like a power cut: no cleanup,
//! no flush) when it reaches a named point that is armed, either
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

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    let armed = armed();
    let on = armed.names.iter().any(|a| a == name)
        || armed.dir.as_ref().is_some_and(|d| d.join(name).exists());
    if on {
        eprintln!("failpoint {name} hit: aborting the process");
        std::process::abort();
    }
}
