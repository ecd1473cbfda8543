//! Retry with jittered exponential backoff and a timeout per attempt, for every bucket
//! request the gateway ([`Bucket`](super::Bucket)) sends.
//!
//! Requests that may succeed on a second try (server errors, throttling, connection
//! failures, timeouts: object_store's `Generic`) are retried; answers that will not change
//! (not found, already exists, precondition, permission) are not. An attempt is the whole
//! request, its answer's body included, so a body that stalls or breaks off is retried like
//! any other failure. Every object Shale writes has a unique key, so a retried put cannot
//! overwrite anything but its own earlier attempt (create-only puts resolve that case by
//! reading back, see [`Bucket::put_if_absent`](super::Bucket::put_if_absent)).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use object_store::path::Path as ObjectPath;

use super::metrics::Op;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Longest one attempt may take before it counts as failed.
    pub timeout: Duration,
    /// Backoff before the second attempt; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Whether another attempt could succeed (and whether a failed write may have been
/// applied: the store may have acted before the answer was lost).
pub fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

/// An attempt that got no complete answer within the policy's timeout.
#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no complete answer within {} ms (tier.request_timeout_ms)", self.0.as_millis())
    }
}

impl std::error::Error for TimedOut {}

/// Runs `attempt` until it succeeds, fails for good, or the policy's attempts run out, each
/// attempt bounded by the policy's timeout. Returns the last result and the attempts made.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    op: Op,
    path: &ObjectPath,
    mut attempt: F,
) -> (object_store::Result<T>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut backoff = policy.initial_backoff;
    let mut n = 1;
    loop {
        let result = match tokio::time::timeout(policy.timeout, attempt()).await {
            Ok(r) => r,
            Err(_) => Err(timed_out(policy.timeout)),
        };
        match result {
            Err(e) if is_transient(&e) && n < policy.max_attempts.max(1) => {
                tracing::debug!(
                    op = op.name(),
                    %path,
                    attempt = n,
                    error = %e,
                    "object store request failed; retrying"
                );
                let jitter = rand::random_range(0.5..1.0);
                shale_core::clock::sleep(backoff.mul_f64(jitter)).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                n += 1;
            }
            other => return (other, n),
        }
    }
}

/// The error of an attempt cut off after `timeout`.
pub(crate) fn timed_out(timeout: Duration) -> object_store::Error {
    object_store::Error::Generic { store: "retry", source: Box::new(TimedOut(timeout)) }
}
