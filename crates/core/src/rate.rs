//! The one rate limiter: a token bucket of bytes (or requests). Quotas, the upload
//! throttle, the cold-read pace and the disk tier's admission are each one of these with
//! their own burst; the caller owns the lock and passes the time in, so the bucket is pure
//! arithmetic and tests drive it with any clock.

use std::time::Duration;

use crate::clock::Instant;

/// Tokens refilled at `rate` per second up to `burst`. [`take`](Self::take) may go into
/// debt (the caller waits it off); [`try_take`](Self::try_take) never does.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    level: f64,
    at: Instant,
}

impl TokenBucket {
    /// A bucket refilled at `rate` tokens per second (more than 0) up to `burst`, holding
    /// `level` tokens at `now`.
    pub fn new(rate: u64, burst: u64, level: u64, now: Instant) -> TokenBucket {
        let burst = burst as f64;
        TokenBucket { rate: rate.max(1) as f64, burst, level: (level as f64).min(burst), at: now }
    }

    /// Refills for the time since the last call, up to `cap`.
    fn refill(&mut self, now: Instant, cap: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.rate).min(cap.max(self.level));
        self.at = self.at.max(now);
    }

    /// Takes `n` tokens, into debt if need be; returns the wait until the bucket is out of
    /// debt again (zero if it was not driven into debt).
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        self.refill(now, self.burst);
        self.level -= n as f64;
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }

    /// Takes `n` tokens if the bucket holds them; whether it did. A take larger than the
    /// burst succeeds once the bucket has filled up to it.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        let n = n as f64;
        self.refill(now, self.burst.max(n));
        let taken = self.level >= n;
        if taken {
            self.level -= n;
        }
        taken
    }

    /// The refill rate, tokens per second.
    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// When the bucket was last taken from.
    pub fn last_used(&self) -> Instant {
        self.at
    }

    /// Returns `n` tokens taken for something that did not happen after all.
    pub fn give_back(&mut self, n: u64) {
        self.level = (self.level + n as f64).min(self.burst.max(self.level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_take_within_the_burst_waits_nothing_and_debt_is_waited_off() {
        let now = crate::clock::monotonic_now();
        let mut b = TokenBucket::new(100, 100, 100, now);
        assert_eq!(b.take(100, now), Duration::ZERO);
        assert_eq!(b.take(50, now), Duration::from_millis(500));
        // Half a second later the debt is paid; the next 100 wait a second.
        assert_eq!(b.take(100, now + SEC / 2), SEC);
        b.give_back(100);
        assert_eq!(b.take(0, now + SEC / 2), Duration::ZERO);
    }

    #[test]
    fn refills_stop_at_the_burst() {
        let now = crate::clock::monotonic_now();
        let mut b = TokenBucket::new(10, 5, 0, now);
        assert_eq!(b.take(5, now + 10 * SEC), Duration::ZERO, "ten seconds fill only the burst");
        assert_eq!(b.take(1, now + 10 * SEC), Duration::from_millis(100));
    }

    #[test]
    fn try_take_never_goes_into_debt_and_admits_a_take_above_the_burst() {
        let now = crate::clock::monotonic_now();
        let mut b = TokenBucket::new(4, 1, 0, now);
        assert!(!b.try_take(1, now));
        assert!(b.try_take(1, now + SEC / 4));
        assert!(!b.try_take(1, now + SEC / 4), "refused, and no debt");
        // Four tokens exceed the burst of one: admitted once a second's refill holds them.
        assert!(!b.try_take(4, now + SEC));
        assert!(b.try_take(4, now + SEC + SEC / 4));
    }
}
