//! Broker membership: a broker registers `brokers/{id}` under its own lease and keeps the
//! lease alive. It counts as live only while it can prove the lease has not expired: each
//! successful keepalive extends validity to (time the request was sent + TTL), which is
//! never later than etcd's own expiry. A broker that is not live must not act as leader;
//! once etcd has expired the lease, the controller may move leadership away, and by then
//! the old broker has already stopped acknowledging.
//!
//! Each new lease starts a new *session*; after losing its lease a broker re-registers
//! under a new one, and callers can ask for the session to know whether state they read
//! belongs to the current one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use shale_core::clock::{Instant, SharedClock};
use tokio::sync::watch;

use super::heartbeat::{self, Beat, Beaten, HeartbeatSettings};
use super::json::encode;
use super::topics::BrokerRecord;
use super::{Compare, Keys, LeaseId, MetaError, MetaStore, Txn, TxnOp, Versioned};
use shale_core::error::{Error, ErrorKind, Reason};

/// A broker's registration and the proof that it is still live.
#[derive(Debug, Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MetaStore>,
    keys: Keys,
    record: BrokerRecord,
    /// Set once by [`Membership::set_draining`]; re-registrations keep it.
    draining: AtomicBool,
    ttl: Duration,
    clock: SharedClock,
    lease: AtomicI64,
    session: AtomicU64,
    /// Times the lease ran out before it was kept alive.
    expiries: AtomicU64,
    valid_until: Mutex<Option<Instant>>,
    live_tx: watch::Sender<bool>,
    /// Heartbeats, when this broker beats (a cluster on etcd): liveness needs them too.
    beats: OnceLock<Beats>,
    /// Times this broker was fenced for a silence of its heartbeats.
    fences: AtomicU64,
}

/// A beating broker's heartbeat state.
#[derive(Debug)]
struct Beats {
    /// Until when the last successful beat keeps this broker valid (`None`: fenced, or no
    /// beat yet).
    valid_until: Mutex<Option<Instant>>,
}

impl Membership {
    /// Registers the broker under a new lease. Fails if another live broker holds the id.
    pub async fn join(
        store: Arc<dyn MetaStore>,
        keys: Keys,
        record: BrokerRecord,
        ttl: Duration,
        clock: SharedClock,
    ) -> Result<Membership, Error> {
        let m = Membership {
            inner: Arc::new(Inner {
                store,
                keys,
                record,
                draining: AtomicBool::new(false),
                ttl,
                clock,
                lease: AtomicI64::new(0),
                session: AtomicU64::new(0),
                expiries: AtomicU64::new(0),
                valid_until: Mutex::new(None),
                live_tx: watch::channel(false).0,
                beats: OnceLock::new(),
                fences: AtomicU64::new(0),
            }),
        };
        // A broker restarted right after a crash finds its old registration still held by
        // the old lease; wait (bounded) for that lease to expire rather than fail at once.
        let give_up = m.now() + ttl * 2 + Duration::from_secs(1);
        loop {
            match m.register().await {
                Ok(()) => return Ok(m),
                Err(e) if e.reason == Reason::BrokerIdInUse && m.now() < give_up => {
                    tracing::warn!(broker = m.broker_id(), "{}; waiting", e.message);
                    shale_core::clock::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The broker id.
    pub fn broker_id(&self) -> i32 {
        self.inner.record.id
    }

    /// This process's incarnation, as registered.
    pub fn incarnation(&self) -> u64 {
        self.inner.record.incarnation
    }

    /// The current lease.
    pub fn lease(&self) -> LeaseId {
        self.inner.lease.load(Ordering::Acquire)
    }

    /// Counts registrations: bumped each time the broker registers under a new lease.
    pub fn session(&self) -> u64 {
        self.inner.session.load(Ordering::Acquire)
    }

    /// Times the lease ran out before it was kept alive (its validity lapsed unconfirmed,
    /// or the store had expired it): each one is a window in which this broker refused to
    /// lead. Zero on a healthy broker, whatever it was doing meanwhile.
    pub fn expiries(&self) -> u64 {
        self.inner.expiries.load(Ordering::Relaxed)
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Whether the lease is provably unexpired right now, and, for a beating broker, its
    /// last heartbeat too (see `heartbeat`).
    pub fn is_live(&self) -> bool {
        let until = self.inner.valid_until.lock().map(|v| *v).unwrap_or(None);
        until.is_some_and(|u| self.now() < u) && self.beat_valid()
    }

    /// Whether the last heartbeat still keeps this broker valid (always, without beats).
    fn beat_valid(&self) -> bool {
        let Some(beats) = self.inner.beats.get() else { return true };
        let until = beats.valid_until.lock().map(|v| *v).unwrap_or(None);
        until.is_some_and(|u| self.now() < u)
    }

    /// Times this broker was fenced for a silence of its heartbeats (0 on a healthy one).
    pub fn fences(&self) -> u64 {
        self.inner.fences.load(Ordering::Relaxed)
    }

    /// Tells liveness watchers what [`is_live`](Self::is_live) says now.
    fn refresh_live(&self) {
        let live = self.is_live();
        self.inner.live_tx.send_if_modified(|l| std::mem::replace(l, live) != live);
    }

    /// How long the lease is still provably valid (zero when not live).
    pub fn lease_remaining(&self) -> Duration {
        self.valid_until().map_or(Duration::ZERO, |u| u.saturating_duration_since(self.now()))
    }

    /// Liveness changes (true once registered, false when validity runs out).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.live_tx.subscribe()
    }

    /// The error requests get while the broker is not live.
    pub fn not_live_error(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            Reason::BrokerNotLive,
            format!(
                "broker {} cannot confirm its metadata lease (metadata store unreachable or \
                 lease expired); it does not serve as leader until it registers again; retry",
                self.broker_id()
            ),
        )
    }

    fn extend(&self, sent: Instant, remaining: Duration) {
        if let Ok(mut v) = self.inner.valid_until.lock() {
            *v = Some(sent + remaining);
        }
        self.refresh_live();
    }

    fn mark_not_live(&self) {
        if let Ok(mut v) = self.inner.valid_until.lock() {
            *v = None;
        }
        self.refresh_live();
    }

    /// The lease's validity ran out before a keepalive confirmed it.
    fn lapsed(&self) {
        if self.valid_until().is_some() {
            self.inner.expiries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                broker = self.broker_id(),
                lease = self.lease(),
                "the metadata lease lapsed"
            );
        }
        self.mark_not_live();
    }

    /// The registration as it should read now.
    fn record(&self) -> BrokerRecord {
        BrokerRecord {
            draining: self.inner.draining.load(Ordering::Acquire),
            ..self.inner.record.clone()
        }
    }

    /// Marks the registration as draining (controlled shutdown): the controller moves this
    /// broker's leaderships to other in-sync replicas and places nothing new on it.
    pub async fn set_draining(&self) -> Result<(), Error> {
        self.inner.draining.store(true, Ordering::Release);
        let key = self.inner.keys.broker(self.inner.record.id as u32);
        let value = encode(&key, &self.record())?;
        self.inner.store.put(&key, value, Some(self.lease())).await?;
        Ok(())
    }

    /// Grants a lease and writes `brokers/{id}` under it, unless another lease holds it.
    async fn register(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let key = inner.keys.broker(inner.record.id as u32);
        let sent = self.now();
        let lease = inner.store.grant_lease(inner.ttl).await?;
        let txn = Txn::new().when(Compare::absent(key.clone())).and_then(TxnOp::put_with_lease(
            key.clone(),
            encode(&key, &self.record())?,
            lease,
        ));
        if !inner.store.txn(txn).await?.succeeded {
            let holder = match inner.store.get(&key).await? {
                Some(kv) => Versioned::<BrokerRecord>::decode(kv)
                    .map(|v| v.value.address)
                    .unwrap_or_else(|_| "an unknown address".into()),
                None => "a broker whose lease just expired".into(),
            };
            let _ = inner.store.revoke_lease(lease).await;
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                Reason::BrokerIdInUse,
                format!(
                    "broker id {} is registered by a live broker at {holder}; give this \
                     broker another id, or wait {} s for the other lease to expire",
                    inner.record.id,
                    inner.ttl.as_secs()
                ),
            ));
        }
        inner.lease.store(lease, Ordering::Release);
        inner.session.fetch_add(1, Ordering::AcqRel);
        self.extend(sent, inner.ttl);
        tracing::info!(broker = inner.record.id, lease, "registered");
        Ok(())
    }

    /// The monotonic now of the injected clock.
    pub(crate) fn now(&self) -> Instant {
        self.inner.clock.instant()
    }

    fn valid_until(&self) -> Option<Instant> {
        self.inner.valid_until.lock().map(|v| *v).unwrap_or(None)
    }

    /// Keeps the lease alive until the task is dropped; registers again after losing it.
    pub async fn run(self) {
        let every = (self.inner.ttl / 3).max(Duration::from_millis(100));
        loop {
            let next = self.now() + every;
            // Wake at expiry too, so liveness watchers hear about it on time.
            while let Some(deadline) = self.valid_until().filter(|d| *d < next) {
                shale_core::clock::sleep_until(deadline).await;
                if !self.is_live() {
                    self.lapsed();
                }
            }
            shale_core::clock::sleep_until(next).await;
            let lease = self.lease();
            let sent = self.now();
            match self.inner.store.keep_alive(lease).await {
                Ok(remaining) if !remaining.is_zero() => self.extend(sent, remaining),
                Ok(_) | Err(MetaError::LeaseNotFound(_)) => {
                    self.lapsed();
                    tracing::warn!(
                        broker = self.broker_id(),
                        lease,
                        "lease expired; registering again"
                    );
                    if let Err(e) = self.register().await {
                        tracing::warn!(broker = self.broker_id(), error = %e, "registering again failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(broker = self.broker_id(), lease, error = %e, "lease keepalive failed");
                }
            }
        }
    }

    /// Beats (see `heartbeat`) until the task is dropped: from now on this broker is live
    /// only while its last beat is valid. Call once, before the broker leads anything.
    pub fn beat(self, settings: HeartbeatSettings) -> impl Future<Output = ()> + Send {
        // From this call on (not the task's first poll), liveness needs a beat.
        let first = self.inner.beats.set(Beats { valid_until: Mutex::new(None) }).is_ok();
        self.refresh_live();
        async move {
            if first {
                self.beat_loop(settings).await;
            }
        }
    }

    async fn beat_loop(self, settings: HeartbeatSettings) {
        let key = self.inner.keys.heartbeat(self.broker_id());
        let alive = || Beat::Alive { incarnation: self.incarnation(), lease: self.lease() };
        let mut last: super::Revision = 0;
        // Fenced and not yet beaten over the fence: the beat that gets over it starts a new
        // session, whichever try that is.
        let mut fenced = false;
        loop {
            let next = self.now() + settings.interval;
            // A fence is beaten over at once, once; an error or a moved key waits a beat.
            let mut at_once = true;
            loop {
                let sent = self.now();
                let beat = alive();
                match heartbeat::beat(&self.inner.store, &key, last, &beat, self.lease()).await {
                    Ok(Beaten::Written(revision)) => {
                        last = revision;
                        if std::mem::take(&mut fenced) {
                            // Beating over the fence starts a new session: the broker
                            // re-reads the metadata (after every move the fence allowed)
                            // before it leads again.
                            self.inner.session.fetch_add(1, Ordering::AcqRel);
                            tracing::info!(
                                broker = self.broker_id(),
                                "beating again after a fence"
                            );
                        }
                        self.extend_beat(sent + settings.validity());
                    }
                    Ok(Beaten::Moved(revision)) => last = revision,
                    Ok(Beaten::Fenced(revision, by)) => {
                        self.inner.fences.fetch_add(1, Ordering::Relaxed);
                        self.set_beat(None);
                        tracing::warn!(
                            broker = self.broker_id(),
                            by,
                            "fenced: no heartbeat of this broker was seen for {} ms; it leads \
                             nothing until it has re-read the metadata",
                            settings.timeout.as_millis()
                        );
                        last = revision;
                        fenced = true;
                        if std::mem::take(&mut at_once) {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(broker = self.broker_id(), error = %e, "heartbeat failed");
                    }
                }
                break;
            }
            // Wake at the beat's expiry too, so liveness watchers hear about it on time.
            let expiry = self.beat_until().filter(|d| *d < next);
            if let Some(deadline) = expiry {
                shale_core::clock::sleep_until(deadline).await;
                self.refresh_live();
            }
            shale_core::clock::sleep_until(next).await;
        }
    }

    fn beat_until(&self) -> Option<Instant> {
        let beats = self.inner.beats.get()?;
        beats.valid_until.lock().map(|v| *v).unwrap_or(None)
    }

    fn set_beat(&self, until: Option<Instant>) {
        if let Some(beats) = self.inner.beats.get()
            && let Ok(mut v) = beats.valid_until.lock()
        {
            *v = until;
        }
        self.refresh_live();
    }

    /// Extends beat validity to `until` (never backwards: beats answer in order).
    fn extend_beat(&self, until: Instant) {
        let current = self.beat_until();
        self.set_beat(Some(current.map_or(until, |c| c.max(until))));
    }

    /// Deregisters (revokes the lease, deleting `brokers/{id}`).
    pub async fn leave(&self) {
        self.mark_not_live();
        if let Err(e) = self.inner.store.revoke_lease(self.lease()).await {
            tracing::warn!(error = %e, "could not revoke the broker lease");
        }
    }
}
