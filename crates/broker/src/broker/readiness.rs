//! Readiness that tells the truth: a broker is ready when a produce to any partition the
//! metadata says it leads would be accepted, not merely when it holds its lease. After a
//! restart a broker holds its lease and has read the metadata well before the controller
//! confirms its leaderships under new epochs and the partitions open as leaders; a probe
//! that said "ready" in that window would send a rollout's or a load balancer's traffic
//! into refusals.

use std::time::Duration;

use super::Broker;
use shale_core::error::Error;

impl Broker {
    /// `Ok` when a produce to every partition the metadata says this broker leads would be
    /// accepted: not closing or draining, holding its lease, caught up with the metadata,
    /// and each such partition open here as its leader. Otherwise the error a produce to
    /// the first partition that is not would get (or the broker's own).
    pub fn readiness(&self) -> Result<(), Error> {
        if self.life.is_closing() {
            return Err(Error::unavailable(format!("broker {} is shutting down", self.id)));
        }
        if self.life.is_draining() {
            return Err(Error::unavailable(format!("broker {} is draining", self.id)));
        }
        self.check_serving()?;
        let led: Vec<(String, u32)> = {
            let cache =
                self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
            cache
                .states
                .iter()
                .filter(|(_, (s, _))| s.leader == self.id)
                .map(|(k, _)| k.clone())
                .collect()
        };
        let waiting = {
            let hosted = self
                .replicas
                .partitions
                .read()
                .map_err(|_| Error::internal("partition map poisoned"))?;
            led.into_iter().find(|k| !hosted.get(k).is_some_and(|p| p.is_leader()))
        };
        match waiting {
            None => Ok(()),
            // The precise reason, as a produce would get it (unconfirmed epoch, opening).
            Some((topic, partition)) => {
                Err(self.partition(&topic, partition).err().unwrap_or_else(|| {
                    Error::unavailable(format!("partition {topic}-{partition} is being opened"))
                }))
            }
        }
    }

    /// Waits, for at most `within`, until the broker is [ready](Self::readiness); returns
    /// the last reason it was not, if it still is not.
    pub async fn settle(&self, within: Duration) -> Result<(), Error> {
        let mut synced = self.view.synced_tx.subscribe();
        let mut live = self.view.membership.subscribe();
        let deadline = shale_core::clock::monotonic_now() + within;
        loop {
            let why = match self.readiness() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // Partitions open as leaders after the resync that announced them; look again
            // at every resync, liveness change, and every few milliseconds in between.
            let pause = shale_core::clock::sleep(Duration::from_millis(20));
            tokio::select! {
                _ = synced.changed() => {}
                _ = live.changed() => {}
                _ = pause => {}
                _ = shale_core::clock::sleep_until(deadline) => return Err(why),
            }
        }
    }
}
