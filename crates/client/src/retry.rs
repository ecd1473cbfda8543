//! Bounded waiting for a leader: exponential backoff between attempts, and a total wait
//! after which the client gives up with the last failure.

use std::time::Duration;

use shale_core::clock::{Instant, monotonic_now};

use shale_core::error::{Error, ErrorKind, Reason};

/// Whether a call a broker answered with `e` is worth making again (after the leader is
/// looked up again, within the leader wait): any retriable failure, a transport failure
/// that surfaced as a gRPC error, and, as Kafka's clients do, UNKNOWN_TOPIC from a broker
/// whose metadata is behind (restarted a moment ago, or not yet past the topic's
/// creation). A topic that is really gone fails once the leader wait is over.
pub(crate) fn worth_retrying(e: &Error) -> bool {
    e.kind.is_retriable()
        || e.kind == ErrorKind::Internal && e.reason == Reason::GrpcError
        || e.reason == Reason::UnknownTopic
}

/// How long and how often a client retries a partition whose leader it cannot reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First pause between attempts (`retry.backoff.ms`).
    pub initial: Duration,
    /// Longest pause; each pause doubles up to this (`retry.backoff.max.ms`).
    pub max: Duration,
    /// Longest wait for a leader before giving up.
    pub total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
            total: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A few quick tries within about a second, for one-off lookups (admin calls).
    pub const QUICK: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        total: Duration::from_secs(1),
    };

    /// Starts counting the wait now.
    pub fn start(&self) -> Backoff {
        Backoff { policy: *self, next: self.initial, deadline: monotonic_now() + self.total }
    }

    /// Runs `call` until it succeeds or fails for good, pausing between retriable
    /// failures; once the total wait is used up, gives up with the last failure, saying
    /// it waited for `what`. The wait starts at the first failure, so a call that succeeds
    /// at once (a cached answer) starts no backoff.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut backoff = None;
        loop {
            match call().await {
                Err(e) if e.kind.is_retriable() => {
                    match backoff.get_or_insert_with(|| self.start()).next_delay() {
                        Some(pause) => shale_core::clock::sleep(pause).await,
                        None => return Err(gave_up(what, e, self.total)),
                    }
                }
                result => return result,
            }
        }
    }
}

/// One bounded wait under a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    /// The pause before the next attempt, or `None` once the total wait is used up. The
    /// last pause ends at the deadline, so the last attempt is made when the wait runs out.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(monotonic_now())?;
        if left.is_zero() {
            return None;
        }
        let delay = self.next.min(left);
        self.next = (self.next * 2).min(self.policy.max);
        Some(delay)
    }

    /// The total wait this backoff allows.
    pub fn total(&self) -> Duration {
        self.policy.total
    }
}

/// The error a client gives up with: the last failure, saying what it waited for (a
/// `leader`, `metadata`) and how long.
pub(crate) fn gave_up(what: &str, e: Error, waited: Duration) -> Error {
    super::reword(e, |m| format!("{what} unavailable after waiting {waited:?} ({m})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_cap_and_end_at_the_deadline() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            total: Duration::from_secs(1),
        };
        let mut b = policy.start();
        let mut pauses = Vec::new();
        while let Some(d) = b.next_delay() {
            pauses.push(d.as_millis());
            shale_core::clock::sleep(d).await;
        }
        // 50+100+200+400 = 750 ms, then 250 ms to the deadline.
        assert_eq!(pauses, [50, 100, 200, 400, 250]);
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_in_attempts_counts_toward_the_total() {
        let mut b = RetryPolicy::default().start();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(b.next_delay(), Some(Duration::from_millis(50)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.next_delay(), None);
    }
}
