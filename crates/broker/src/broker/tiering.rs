//! Tiering on a broker: the wiring. The uploader (with remote retention and compaction) and
//! the scrubber live in the tier layer (`shale_storage::tier::{uploader, compactor,
//! scrubber}`) and reach a partition through `TierPartition`; here they get their tasks,
//! the partitions this broker leads, and the topics that exist. Also here: the tier pointers every hosted replica
//! learns from the metadata store (for local retention, cold reads and where a replica
//! with an empty disk starts).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Broker, Partition};
use shale_core::error::Error;
use shale_meta::{KeyValue, Versioned};
use shale_storage::tier::compactor::{CompactionStats, RemoteCompactor};
use shale_storage::tier::scrubber::ScrubStats;
use shale_storage::tier::scrubber::Scrubber;
use shale_storage::tier::uploader::Uploader;
use shale_storage::tier::{PartitionRef, TierPartition, TierPointer};

/// A broker's part in tiered storage: cold reads, the scrubber's findings, and the lock an
/// upload pass holds so a drain can wait for it.
#[derive(Debug)]
pub(super) struct Tiering {
    /// Remote reads (and through them the catalog of manifests and objects in the bucket),
    /// when the broker has an object store.
    pub(super) remote: Option<shale_storage::tier::reader::RemoteReader>,
    /// What the bucket scrubber found and removed.
    pub(super) scrub_stats: ScrubStats,
    /// Held by the uploader during a pass, so a drain can wait for uploads in flight.
    pub(super) upload_pass: Arc<tokio::sync::Mutex<()>>,
    /// What remote compaction did.
    pub(super) compaction_stats: Arc<CompactionStats>,
}

impl Tiering {
    pub(super) fn new(remote: Option<shale_storage::tier::reader::RemoteReader>) -> Tiering {
        Tiering {
            remote,
            scrub_stats: ScrubStats::default(),
            upload_pass: Arc::new(tokio::sync::Mutex::new(())),
            compaction_stats: Arc::default(),
        }
    }
}

pub(super) fn start(broker: &Arc<Broker>) {
    if broker.tier.remote.is_none() {
        return;
    }
    let every = Duration::from_millis(broker.settings.tier.upload_interval_ms.max(10));
    let scrub_every = Duration::from_millis(broker.settings.tier.scrub_interval_ms.max(100));
    broker.life.spawn(upload_loop(Arc::downgrade(broker), every));
    broker.life.spawn(scrub_loop(Arc::downgrade(broker), scrub_every));
}

impl Broker {
    /// Applies a tier pointer from the store (`tier/{topic}/{p}`) to the hosted replica.
    pub(super) fn apply_tier_pointer(&self, kv: KeyValue) {
        let Some((topic, partition)) = self.view.topics.keys().parse_tier(&kv.key) else { return };
        let Some(p) = self.hosted_partition(&topic, partition) else { return };
        let Some(remote) = p.remote() else { return };
        match Versioned::<TierPointer>::decode(kv) {
            Ok(v) => remote.set_pointer(Some(v.value)),
            Err(e) => tracing::warn!(%topic, partition, error = %e, "invalid tier pointer"),
        }
    }

    /// Reads every tier pointer and applies those of hosted partitions.
    pub(super) async fn load_tier_pointers(&self) -> Result<(), Error> {
        if self.tier.remote.is_none() {
            return Ok(());
        }
        let keys = self.view.topics.keys();
        for kv in self.view.topics.store().range(&keys.all_tiers()).await?.kvs {
            self.apply_tier_pointer(kv);
        }
        Ok(())
    }

    /// Whether `key` is a tier pointer (handled without a full metadata resync).
    pub(super) fn is_tier_key(&self, key: &str) -> bool {
        key.starts_with(&self.view.topics.keys().all_tiers())
    }

    /// Hosted partitions this broker leads, with a remote log.
    fn led_tiered(&self) -> Vec<Arc<Partition>> {
        self.hosted().into_iter().filter(|p| p.is_leader() && p.remote().is_some()).collect()
    }

    /// One scrubber pass: the partitions this broker leads, and on the controller the
    /// folders of topics that no longer exist.
    async fn scrub(&self, scrubber: &Scrubber) -> Result<(), Error> {
        let led: Vec<PartitionRef> = self.led_tiered().iter().map(|p| p.tier_ref()).collect();
        let live = if self.controller_id() == self.id {
            let cache =
                self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
            let topics = cache.topics.values();
            Some(topics.map(|t| (t.record.name.clone(), t.record.id.clone())).collect::<Vec<_>>())
        } else {
            None
        };
        scrubber.pass(&self.tier.scrub_stats, &led, live.as_deref()).await
    }
}

async fn upload_loop(broker: Weak<Broker>, every: Duration) {
    let uploader = {
        let Some(b) = broker.upgrade() else { return };
        let Some(reader) = b.tier.remote.clone() else { return };
        let uploader =
            Uploader::new(reader, b.settings.tier.clone(), b.clock.clone(), b.membership().clone());
        match remote_compactor(&b) {
            Ok(Some(compactor)) => uploader.with_compactor(Arc::new(compactor)),
            Ok(None) => uploader,
            Err(e) => {
                tracing::error!(error = %e, "remote compaction is off: its spool cannot be made");
                uploader
            }
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if b.check_serving().is_err() || b.is_draining() {
            continue;
        }
        // Held for the whole pass: a drain waits for it (uploads in flight finish).
        let _pass = b.tier.upload_pass.clone().lock_owned().await;
        let led = b.led_tiered();
        drop(b);
        uploader.pass(led).await;
    }
}

/// The remote compactor, unless the cleaner is off (`log.cleaner_threads = 0`): an offset
/// map the size of one cleaner thread's, replacement segments spooled in the data
/// directory's `tier-spool`.
fn remote_compactor(b: &Broker) -> Result<Option<RemoteCompactor>, Error> {
    let s = &b.settings.log;
    if s.cleaner_threads == 0 {
        return Ok(None);
    }
    let map_bytes = (s.cleaner_dedupe_buffer_bytes / u64::from(s.cleaner_threads)) as usize;
    let dir = b.settings.broker.data_dir.join("tier-spool");
    RemoteCompactor::new(dir, map_bytes, b.tier.compaction_stats.clone()).map(Some)
}

async fn scrub_loop(broker: Weak<Broker>, every: Duration) {
    let scrubber = {
        let Some(b) = broker.upgrade() else { return };
        let Some(catalog) = b.catalog().cloned() else { return };
        Scrubber::new(catalog, b.id, b.settings.tier.orphan_grace_ms)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if b.check_serving().is_err() {
            continue;
        }
        if let Err(e) = b.scrub(&scrubber).await {
            tracing::warn!(error = %e, "bucket scrub failed; retrying on the next pass");
        }
    }
}
