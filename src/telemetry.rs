//! Tracing setup: human-readable or JSON logs, filtered by `SHALE_LOG` (or `RUST_LOG`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `json` switches to one JSON object per line.
pub fn init(json: bool) {
    let filter = std::env::var("SHALE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    // A subscriber installed already (tests) is fine.
    drop(result);
}
