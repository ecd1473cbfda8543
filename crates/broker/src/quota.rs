//! Quotas per principal: produce bytes, fetch bytes and requests per second, each a
//! token bucket on every broker (like Kafka's, a quota is per broker).
//!
//! Limits live in the metadata store, one key per principal (`quotas/{principal}`, with
//! `*` for every principal without its own), cached and watched like the ACLs. Brokers
//! are not limited.
//!
//! Over its quota, a caller is slowed down, not refused: the broker holds the request (or,
//! for a fetch stream, the next message) for as long as the bucket needs to pay back the
//! debt, the way Kafka throttles by delaying responses. That works with every client
//! without retries or reordering, and through HTTP/2 flow control it pushes back on a
//! `ProduceStream`. Only when the wait would be longer than `quota.max_delay_ms` (a client
//! sending far faster than its quota, e.g. on many connections at once) is the request
//! refused with `RESOURCE_EXHAUSTED`, reason `QUOTA_EXCEEDED`, and a `RetryInfo` saying
//! when to come back, which the Rust client honours; parked requests stay bounded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{Identity, Principal};
use shale_core::clock::Instant;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::rate::TokenBucket;
use shale_meta::{Keys, MetaStore, Revision, TxnOp};

/// `[quota]`: how quotas are enforced (the limits themselves are stored in etcd).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// Longest a request is held to keep its principal within quota; beyond it the request
    /// is refused with `RESOURCE_EXHAUSTED` and a retry delay (ms).
    pub max_delay_ms: u64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings { max_delay_ms: 5_000 }
    }
}

/// The limits of one principal; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    /// Bytes of records produced per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produce_bytes_per_sec: Option<u64>,
    /// Bytes of records fetched per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_bytes_per_sec: Option<u64>,
    /// Requests (RPCs, and each message of a produce stream) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_sec: Option<u64>,
}

impl QuotaLimits {
    /// Checks the limits, naming a bad one (0 would stop the principal entirely).
    pub fn validate(&self, principal: &str) -> Result<(), Error> {
        for (name, v) in [
            ("produce_bytes_per_sec", self.produce_bytes_per_sec),
            ("fetch_bytes_per_sec", self.fetch_bytes_per_sec),
            ("requests_per_sec", self.requests_per_sec),
        ] {
            if v == Some(0) {
                return Err(Error::invalid(format!(
                    "quota {name} of {principal} is 0; remove the quota for no limit, or set \
                     at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    // The discriminants index a principal's buckets.
    /// Produced bytes.
    Produce,
    /// Fetched bytes.
    Fetch,
    /// Requests.
    Requests,
}

impl Kind {
    /// `produce`, `fetch` or `requests`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::Requests => "requests",
        }
    }

    fn limit(self, l: &QuotaLimits) -> Option<u64> {
        match self {
            Kind::Produce => l.produce_bytes_per_sec,
            Kind::Fetch => l.fetch_bytes_per_sec,
            Kind::Requests => l.requests_per_sec,
        }
    }
}

/// The principal whose limits apply to principals without their own.
pub const DEFAULT_PRINCIPAL: &str = "*";

/// A principal's bucket of `rate` per second: it holds one second of its rate and starts
/// full; a charge always succeeds, and the debt says how long the caller waits.
fn bucket(rate: u64, now: Instant) -> TokenBucket {
    TokenBucket::new(rate, rate, rate, now)
}

/// Buckets not used for this long are dropped (a principal's burst is then full again).
const IDLE: Duration = Duration::from_secs(60);

/// Quotas of every principal, and their buckets on this broker.
#[derive(Debug)]
pub struct Quotas {
    max_delay: Duration,
    limits: RwLock<Arc<BTreeMap<String, QuotaLimits>>>,
    /// Each principal's buckets, by [`Kind`].
    buckets: Mutex<HashMap<String, [Option<TokenBucket>; 3]>>,
    metrics: Arc<crate::metrics::RequestMetrics>,
    store: Arc<dyn MetaStore>,
    keys: Keys,
}

fn decode(key: &str, value: &[u8]) -> Option<(String, QuotaLimits)> {
    #[derive(Deserialize)]
    struct Stored {
        principal: String,
        #[serde(flatten)]
        limits: QuotaLimits,
    }
    match serde_json::from_slice::<Stored>(value) {
        Ok(s) => Some((s.principal, s.limits)),
        Err(e) => {
            tracing::warn!(%key, error = %e, "skipping a quota that does not decode");
            None
        }
    }
}

fn by_principal(
    stored: &BTreeMap<String, (String, QuotaLimits)>,
) -> Arc<BTreeMap<String, QuotaLimits>> {
    Arc::new(stored.values().cloned().collect())
}

/// `RESOURCE_EXHAUSTED` telling `who` to come back after `wait`.
fn exceeded(who: &Identity, kind: Kind, wait: Duration) -> Error {
    Error::new(
        ErrorKind::ResourceExhausted,
        Reason::QuotaExceeded,
        format!(
            "{} is over its {} quota; retry in {} ms",
            who.principal,
            kind.as_str(),
            wait.as_millis()
        ),
    )
    .with("principal", who.principal.to_string())
    .with("quota", kind.as_str())
    .with("retry_after_ms", wait.as_millis())
}

impl Quotas {
    /// Reads the stored quotas; returns them and the revision to follow from.
    pub async fn open(
        settings: &QuotaSettings,
        store: Arc<dyn MetaStore>,
        keys: Keys,
        metrics: Arc<crate::metrics::RequestMetrics>,
    ) -> Result<(Arc<Quotas>, Revision), Error> {
        let (stored, revision) = crate::watched::read(&*store, &keys.quotas(), decode).await?;
        let quotas = Quotas {
            max_delay: Duration::from_millis(settings.max_delay_ms),
            limits: RwLock::new(by_principal(&stored)),
            buckets: Mutex::default(),
            metrics,
            store,
            keys,
        };
        Ok((Arc::new(quotas), revision))
    }

    /// Keeps the limits equal to the stored ones. Runs until the broker stops it.
    pub async fn follow(self: Arc<Self>, from: Revision) {
        let current = self.limits.read().unwrap_or_else(|e| e.into_inner()).clone();
        let stored = current.iter().map(|(p, l)| (self.keys.quota(p), (p.clone(), *l))).collect();
        let (store, prefix) = (self.store.clone(), self.keys.quotas());
        crate::watched::follow(store, prefix, from, stored, decode, |s| {
            *self.limits.write().unwrap_or_else(|e| e.into_inner()) = by_principal(s);
        })
        .await
    }

    fn limit(&self, who: &Identity, kind: Kind) -> Option<u64> {
        let limits = self.limits.read().unwrap_or_else(|e| e.into_inner()).clone();
        let own = limits.get(who.principal.as_str()).or_else(|| limits.get(DEFAULT_PRINCIPAL));
        own.and_then(|l| kind.limit(l))
    }

    /// Charges `n` (bytes, or 1 request) to `who`'s `kind` bucket; how long to hold the
    /// request, or `RESOURCE_EXHAUSTED` when that is longer than `max_delay` (nothing is
    /// charged then). Brokers are never limited.
    pub fn charge(&self, who: &Identity, kind: Kind, n: u64) -> Result<Duration, Error> {
        self.take(who, kind, n, true)
    }

    fn take(&self, who: &Identity, kind: Kind, n: u64, refuse: bool) -> Result<Duration, Error> {
        if who.broker {
            return Ok(Duration::ZERO);
        }
        let Some(rate) = self.limit(who, kind) else { return Ok(Duration::ZERO) };
        let now = shale_core::clock::monotonic_now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, kinds| {
                kinds.iter().flatten().any(|b| now.saturating_duration_since(b.last_used()) < IDLE)
            });
        }
        if !buckets.contains_key(who.principal.as_str()) {
            buckets.insert(who.principal.as_str().to_string(), Default::default());
        }
        let Some(of_principal) = buckets.get_mut(who.principal.as_str()) else {
            return Ok(Duration::ZERO);
        };
        let bucket = of_principal[kind as usize].get_or_insert_with(|| bucket(rate, now));
        if bucket.rate() != rate {
            *bucket = self::bucket(rate, now);
        }
        let wait = bucket.take(n, now);
        if refuse && wait > self.max_delay {
            bucket.give_back(n);
            self.metrics.quota_refused(kind.as_str());
            return Err(exceeded(who, kind, wait));
        }
        if !wait.is_zero() {
            self.metrics.quota_delayed(kind.as_str(), wait);
        }
        Ok(wait)
    }

    /// [`charge`](Self::charge), then holds the caller for the wait.
    pub async fn throttle(&self, who: &Identity, kind: Kind, n: u64) -> Result<(), Error> {
        let wait = self.charge(who, kind, n)?;
        if !wait.is_zero() {
            shale_core::clock::sleep(wait).await;
        }
        Ok(())
    }

    /// Charges `n` that was already served (a fetch's bytes): how long to hold or throttle
    /// the caller for it, however long (what was sent is never refused, only paid for).
    pub fn owe(&self, who: &Identity, kind: Kind, n: u64) -> Duration {
        self.take(who, kind, n, false).unwrap_or(Duration::ZERO)
    }

    /// Stores `limits` for `principal` (`*` for the default); all `None` removes them.
    pub async fn set(&self, principal: &str, limits: QuotaLimits) -> Result<(), Error> {
        if principal != DEFAULT_PRINCIPAL {
            Principal::parse(principal)?;
        }
        limits.validate(principal)?;
        let key = self.keys.quota(principal);
        if limits == QuotaLimits::default() {
            self.store.delete(&key).await?;
            return Ok(());
        }
        let mut value = serde_json::to_value(limits)
            .map_err(|e| Error::internal(format!("cannot encode a quota: {e}")))?;
        value["principal"] = serde_json::Value::String(principal.to_string());
        let txn = shale_meta::Txn::new().and_then(TxnOp::put(key, value.to_string()));
        self.store.txn(txn).await?;
        Ok(())
    }

    /// The stored quotas (read from the store), by principal.
    pub async fn list(&self) -> Result<BTreeMap<String, QuotaLimits>, Error> {
        let (stored, _) = crate::watched::read(&*self.store, &self.keys.quotas(), decode).await?;
        Ok(stored.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_holds_a_steady_sender_to_its_rate() {
        let rate = 5 * 1024 * 1024;
        let start = shale_core::clock::monotonic_now();
        let mut b = bucket(rate, start);
        // A sender that sends 64 KiB whenever it is allowed to, for 10 s.
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(10) {
            let wait = b.take(64 * 1024, shale_core::clock::monotonic_now());
            sent += 64 * 1024;
            shale_core::clock::sleep(wait).await;
        }
        let per_sec = sent as f64 / start.elapsed().as_secs_f64();
        // One second of burst on top of ten of rate.
        let expected = rate as f64 * 1.1;
        assert!((per_sec - expected).abs() / expected < 0.02, "{per_sec} bytes/s");
    }

    #[test]
    fn a_refused_charge_is_given_back() {
        let now = shale_core::clock::monotonic_now();
        let mut b = bucket(100, now);
        assert_eq!(b.take(100, now), Duration::ZERO);
        let wait = b.take(1000, now);
        assert_eq!(wait, Duration::from_secs(10));
        b.give_back(1000);
        assert_eq!(b.take(50, now), Duration::from_millis(500));
    }
}
