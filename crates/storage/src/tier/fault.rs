//! Fault injection for tests: the bucket gateway ([`Bucket`](super::Bucket)) asks a
//! [`FaultControl`] around every request it sends, which can fail it the way a struggling
//! S3 would (HTTP 500/503, surfaced as object_store's `Generic` error), delay GETs like a
//! distant bucket, lose the answer of a request the store did apply, or break off or stall
//! an answer's body.
//!
//! Off by default. Tests flip it through [`FaultControl`]; a broker process picks up
//! `SHALE_OBJECT_STORE_FAULTS` at start (`down`, `error_rate=0.3`, `get_latency_ms=30`), for
//! process tests and benchmarks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::metrics::Op;

/// The switch the gateway consults around each request.
#[derive(Debug, Default)]
pub struct FaultControl {
    down: AtomicBool,
    /// Probability of failing a request, in millionths.
    rate_ppm: AtomicU64,
    fail_next: AtomicU64,
    lose_next: AtomicU64,
    break_bodies: AtomicU64,
    stall_bodies: AtomicU64,
    injected: AtomicU64,
    /// Added to every GET before it reaches the store, in milliseconds.
    get_latency_ms: AtomicU64,
}

#[derive(Debug)]
struct Injected(&'static str, &'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {} {}", self.0, self.1)
    }
}

impl std::error::Error for Injected {}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicU64) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
}

impl FaultControl {
    /// Reads `SHALE_OBJECT_STORE_FAULTS` (`down`, `error_rate=P`, `get_latency_ms=N`);
    /// inactive without it.
    pub fn from_env() -> FaultControl {
        let c = FaultControl::default();
        if let Ok(spec) = std::env::var("SHALE_OBJECT_STORE_FAULTS") {
            for part in spec.split(',').map(str::trim) {
                if part == "down" {
                    c.set_down(true);
                } else if let Some(rate) = part.strip_prefix("error_rate=") {
                    match rate.parse::<f64>() {
                        Ok(r) => c.set_error_rate(r),
                        Err(_) => tracing::warn!(value = rate, "bad error_rate; ignored"),
                    }
                } else if let Some(ms) = part.strip_prefix("get_latency_ms=") {
                    match ms.parse::<u64>() {
                        Ok(ms) => c.set_get_latency(Duration::from_millis(ms)),
                        Err(_) => tracing::warn!(value = ms, "bad get_latency_ms; ignored"),
                    }
                } else {
                    tracing::warn!(part, "unknown SHALE_OBJECT_STORE_FAULTS entry; ignored");
                }
            }
            tracing::warn!(spec, "object store fault injection is on");
        }
        c
    }

    /// Every request fails while set (the store is "stopped").
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// Each request fails with probability `rate` (0..=1).
    pub fn set_error_rate(&self, rate: f64) {
        self.rate_ppm.store((rate.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Release);
    }

    /// Every GET waits `latency` before it is sent: the first-byte latency of a remote
    /// bucket (tens of milliseconds on S3) on a local one, for benchmarks.
    pub fn set_get_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.get_latency_ms.store(ms, Ordering::Release);
    }

    /// The next `n` requests fail before they reach the store.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::Release);
    }

    /// The next `n` requests reach the store, which acts on them, and then fail as if the
    /// answer was lost (a timeout or a 5xx after the write was applied).
    pub fn lose_next_answers(&self, n: u64) {
        self.lose_next.store(n, Ordering::Release);
    }

    /// The bodies of the next `n` GET answers break off (a connection reset mid-body).
    pub fn break_next_bodies(&self, n: u64) {
        self.break_bodies.store(n, Ordering::Release);
    }

    /// The bodies of the next `n` GET answers never finish arriving.
    pub fn stall_next_bodies(&self, n: u64) {
        self.stall_bodies.store(n, Ordering::Release);
    }

    /// Requests failed (or stalled) on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    fn inject(&self, op: Op, what: &'static str) -> object_store::Error {
        self.injected.fetch_add(1, Ordering::AcqRel);
        object_store::Error::Generic { store: "fault", source: Box::new(Injected(op.name(), what)) }
    }

    /// Before a request is sent: fails it, or delays a GET, when told to.
    pub(crate) async fn before(&self, op: Op) -> object_store::Result<()> {
        let next = take_one(&self.fail_next);
        let rate = self.rate_ppm.load(Ordering::Acquire);
        let fail = self.down.load(Ordering::Acquire)
            || next
            || (rate > 0 && rand::random_range(0..1_000_000) < rate);
        if fail {
            return Err(self.inject(op, "answered 503 Service Unavailable"));
        }
        let latency = self.get_latency_ms.load(Ordering::Acquire);
        if op == Op::Get && latency > 0 {
            shale_core::clock::sleep(Duration::from_millis(latency)).await;
        }
        Ok(())
    }

    /// Once the answer's head is in and before its body is read: breaks the body off, or
    /// stalls it for good, when told to.
    pub(crate) async fn body(&self, op: Op) -> object_store::Result<()> {
        if take_one(&self.break_bodies) {
            return Err(self.inject(op, "answer's body broke off (connection reset)"));
        }
        if take_one(&self.stall_bodies) {
            self.injected.fetch_add(1, Ordering::AcqRel);
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// After the store answered: loses the answer when told to.
    pub(crate) fn after<T>(&self, op: Op, r: object_store::Result<T>) -> object_store::Result<T> {
        if take_one(&self.lose_next) {
            return Err(self.inject(op, "was applied, but its answer was lost (timeout)"));
        }
        r
    }
}
