//! Crash points for fault tests: a broker started with `SHALE_FAILPOINTS=name[,name...]`
//! aborts the process (like a power cut: no cleanup, no flush) the first time it reaches a
//! named point. Unset, a check is one relaxed load.

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("SHALE_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("failpoint {name} hit: aborting the process");
        std::process::abort();
    }
}
