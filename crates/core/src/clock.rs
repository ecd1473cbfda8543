//! Time as an injected part, so retention, lease and linger logic is testable.
//!
//! Two readings: wall-clock milliseconds (timestamps, retention) and a monotonic instant
//! (leases, ISR lag, drain deadlines: never jumps when the wall clock is set). Nothing
//! else reads the time: `clippy.toml` disallows `Instant::now` and `SystemTime::now`
//! elsewhere. The monotonic reading is tokio's, so tests that pause tokio's time move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// A source of time: wall-clock milliseconds and a monotonic instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// A monotonic instant, for deadlines and elapsed times.
    fn instant(&self) -> Instant {
        monotonic_now()
    }
}

/// The one monotonic reading of the process (tokio's, so paused test time applies).
#[allow(clippy::disallowed_methods, reason = "the clock module is where time is read")]
pub fn monotonic_now() -> Instant {
    Instant::now()
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the clock module is where time is read")]
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock { now: AtomicI64::new(start_ms) }
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance(&self, delta_ms: i64) {
        self.now.fetch_add(delta_ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now_ms: i64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Waits `duration` on the monotonic clock (tokio's, so paused test time applies). Every
/// wait goes through here or [`sleep_until`]: `clippy.toml` disallows tokio's directly, so
/// a simulated clock has one seam to take them over.
pub async fn sleep(duration: std::time::Duration) {
    #[allow(clippy::disallowed_methods, reason = "the clock module is where time is waited on")]
    tokio::time::sleep(duration).await
}

/// Waits until `deadline` on the monotonic clock; see [`sleep`].
pub async fn sleep_until(deadline: Instant) {
    #[allow(clippy::disallowed_methods, reason = "the clock module is where time is waited on")]
    tokio::time::sleep_until(deadline).await
}
