//! How a broker starts: its id resolved, its lease taken and kept alive from that moment,
//! its caches, stores and partitions opened, then controller election, metadata following
//! and the background tasks started. Each phase's time is logged at info.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Broker, follow, identity, lifecycle, liveness, new_incarnation, producers, registry_host,
    replicas, share, tasks, tiering, txn_host, view,
};
use crate::settings::Settings;
use shale_core::clock::{SharedClock, monotonic_now};
use shale_core::error::Error;
use shale_meta::membership::Membership;
use shale_meta::topics::{BrokerRecord, TopicStore};
use shale_meta::{Keys, MetaStore};
use shale_storage::log::LogResources;

/// The time each start-up phase took, for the log line that reports them.
#[derive(Default)]
struct Phases {
    at: Option<shale_core::clock::Instant>,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn start() -> Phases {
        Phases { at: Some(monotonic_now()), done: Vec::new() }
    }

    /// Ends the phase under way as `name`.
    fn end(&mut self, name: &'static str) {
        let now = monotonic_now();
        let at = self.at.replace(now).unwrap_or(now);
        self.done.push((name, now.saturating_duration_since(at)));
    }

    fn report(&self, id: i32, partitions: usize) {
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        let phases: Vec<String> =
            self.done.iter().map(|(n, d)| format!("{n} {} ms", d.as_millis())).collect();
        tracing::info!(
            broker = id,
            partitions,
            total_ms = total.as_millis() as u64,
            "broker opened in {} ms: {}",
            total.as_millis(),
            phases.join(", ")
        );
    }
}

impl Broker {
    /// Opens the broker: resolves its id, registers it, opens the partitions assigned to it,
    /// and starts membership, controller election, metadata following and background tasks.
    /// `meta`, `clock` and the object store (`bucket`, optional) are the injected parts.
    pub async fn open(
        settings: Settings,
        meta: Arc<dyn MetaStore>,
        clock: SharedClock,
        bucket: Option<shale_storage::tier::Bucket>,
        tls: Option<Arc<crate::tls::ServerTls>>,
    ) -> Result<Arc<Broker>, Error> {
        settings.validate()?;
        let mut phases = Phases::start();
        settings.topic_defaults()?;
        let data_dir = settings.broker.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::internal(format!("cannot create data dir {}: {e}", data_dir.display()))
        })?;
        let keys = Keys::new(&settings.cluster.name)?;
        let id =
            identity::resolve(settings.broker.id, &data_dir, &settings.cluster.name, &meta, &keys)
                .await?;
        let record = BrokerRecord {
            id,
            address: settings.broker.advertised_address(),
            kafka_address: settings.front_ends.kafka.clone(),
            registry_address: settings.front_ends.schema_registry.clone(),
            rack: settings.broker.rack.clone(),
            started_ms: clock.now_ms(),
            incarnation: new_incarnation(),
            draining: false,
        };
        phases.end("identity");
        let ttl = Duration::from_secs(settings.cluster.lease_ttl_secs);
        let membership =
            Membership::join(meta.clone(), keys.clone(), record, ttl, clock.clone()).await?;
        // Keep the lease alive from the moment it is granted: whatever the rest of start-up
        // takes (a slow volume, thousands of partitions to open), it never lapses on its
        // own broker. Should start-up fail, the lease is handed back.
        let life = lifecycle::Lifecycle::default();
        let keepalive = life.child_token();
        life.spawn_until(keepalive.clone(), membership.clone().run());
        if let Some(beats) = settings.cluster.heartbeats() {
            life.spawn_until(keepalive.clone(), membership.clone().beat(beats));
        }
        phases.end("lease");
        let opened = Self::open_registered(
            settings,
            meta,
            clock,
            bucket,
            tls,
            (membership.clone(), life),
            &mut phases,
        )
        .await;
        match opened {
            Ok(broker) => {
                phases.report(id, broker.hosted().len());
                Ok(broker)
            }
            Err(e) => {
                keepalive.cancel();
                membership.leave().await;
                Err(e)
            }
        }
    }

    /// The rest of [`Broker::open`], once the broker holds its lease (kept alive by a task
    /// of `life`).
    async fn open_registered(
        settings: Settings,
        meta: Arc<dyn MetaStore>,
        clock: SharedClock,
        bucket: Option<shale_storage::tier::Bucket>,
        tls: Option<Arc<crate::tls::ServerTls>>,
        (membership, life): (Membership, lifecycle::Lifecycle),
        phases: &mut Phases,
    ) -> Result<Arc<Broker>, Error> {
        // Start-up made slow on purpose by a test: the lease must outlive it.
        if shale_core::failpoint::active("start.hold") {
            shale_core::failpoint::hold("start.hold").await;
            phases.end("held by the failpoint start.hold");
        }
        let defaults = settings.topic_defaults()?;
        let keys = Keys::new(&settings.cluster.name)?;
        let id = membership.broker_id();
        let (acl, acl_revision) =
            crate::acl::Authorizer::open(&settings.acl, &settings.auth, meta.clone(), keys.clone())
                .await?;
        let requests = Arc::<crate::metrics::RequestMetrics>::default();
        let (quotas, quota_revision) = crate::quota::Quotas::open(
            &settings.quota,
            meta.clone(),
            keys.clone(),
            requests.clone(),
        )
        .await?;
        phases.end("ACLs and quotas");
        let resources = Arc::new(
            LogResources::new(settings.log.fd_cache_capacity, settings.log.index_cache_bytes)
                .with_shared_fsync(settings.log.shared_fsync),
        );
        if settings.log.journal {
            open_journal(&settings, &resources, &clock).await?;
            phases.end("journal replay");
        }
        let reader = match bucket {
            None => None,
            Some(b) => {
                let catalog = Arc::new(shale_storage::tier::Catalog::new(
                    b,
                    meta.clone(),
                    keys.clone(),
                    &settings.cluster.name,
                ));
                let dir = match settings.tier.cache_dir.as_str() {
                    "" => settings.broker.data_dir.join("cold-cache"),
                    dir => std::path::PathBuf::from(dir),
                };
                let disk = shale_storage::tier::reader::DiskTier {
                    dir,
                    activity: resources.activity().clone(),
                };
                let reader = shale_storage::tier::reader::RemoteReader::open(
                    catalog,
                    &settings.tier,
                    Some(disk),
                );
                Some(reader.await?)
            }
        };
        phases.end("cold-read cache");
        let broker = Arc::new(Broker {
            id,
            defaults,
            clock,
            view: view::ClusterView::new(
                TopicStore::new(meta.clone(), keys.clone()),
                membership.clone(),
            ),
            replicas: replicas::Replicas::new(
                resources,
                tls.clone(),
                settings.replication.move_throttle_bytes_per_sec,
            ),
            tier: tiering::Tiering::new(reader),
            life,
            groups: crate::groups::Coordinator::new(
                meta.clone(),
                keys.clone(),
                settings.groups.clone(),
            ),
            producer_ids: producers::ProducerIds::new(meta.clone(), &keys),
            txn: std::sync::OnceLock::new(),
            registry: std::sync::OnceLock::new(),
            acl: acl.clone(),
            quotas: quotas.clone(),
            admin_lock: tokio::sync::Mutex::new(()),
            requests,
            self_ref: std::sync::OnceLock::new(),
            settings,
        });
        let _ = broker.self_ref.set(Arc::downgrade(&broker));
        let txn_store = crate::txn::store::TxnStore::new(meta.clone(), keys.clone());
        let pending = crate::txn::offsets::PendingOffsets::new(meta.clone(), keys.clone());
        txn_host::install(&broker, txn_store, pending);
        registry_host::install(&broker, crate::registry::IdWatermark::new(meta.clone(), &keys));
        let revision = match broker.resync().await {
            Ok(revision) => revision,
            Err(e) => {
                broker.life.begin_close();
                return Err(e);
            }
        };
        phases.end("metadata and partitions");
        if let Some(beats) = broker.settings.cluster.heartbeats() {
            let obituaries = broker.view.obituaries.clone();
            broker.life.spawn(shale_meta::watchdog::watchdog(
                meta.clone(),
                keys.clone(),
                membership.clone(),
                beats,
                move |_| obituaries.wake(),
            ));
        }
        let (share_meta, share_keys) = (meta.clone(), keys.clone());
        broker.life.spawn(share::follow_resets(Arc::downgrade(&broker), share_meta, share_keys));
        broker.life.spawn(shale_meta::controller::run(
            meta,
            keys,
            membership,
            broker.view.obituaries.clone(),
            shale_meta::controller::Policy {
                max_moves: broker.settings.replication.max_moves,
                auto_balance: broker.settings.replication.auto_balance,
            },
        ));
        broker.life.spawn(follow::run(Arc::downgrade(&broker), revision));
        broker.life.spawn(acl.follow(acl_revision));
        broker.life.spawn(quotas.follow(quota_revision));
        if let Some(tls) = tls {
            broker.life.spawn(crate::tls::reload_loop(tls));
        }
        liveness::start(&broker);
        tasks::start(&broker);
        super::cleaner::start(&broker);
        tiering::start(&broker);
        Ok(broker)
    }
}

/// Opens the data directory's journal and replays it into the partitions' segment files,
/// before any partition opens (`log.journal`).
async fn open_journal(
    settings: &Settings,
    resources: &Arc<LogResources>,
    clock: &SharedClock,
) -> Result<(), Error> {
    let data_dir = settings.broker.data_dir.clone();
    let journal = shale_storage::log::JournalSettings {
        dir: match settings.log.journal_dir.as_str() {
            "" => data_dir.clone(),
            dir => std::path::PathBuf::from(dir),
        },
        bytes: settings.log.journal_bytes,
        checkpoint_bytes: settings.log.journal_checkpoint_bytes,
        round_interval: std::time::Duration::from_micros(settings.log.journal_round_interval_us),
    };
    let (resources, clock) = (resources.clone(), clock.clone());
    let stats =
        tokio::task::spawn_blocking(move || resources.open_journal(&data_dir, &journal, &clock))
            .await
            .map_err(|e| Error::internal(format!("journal replay task failed: {e}")))??;
    if stats.frames > 0 {
        tracing::info!(
            frames = stats.frames,
            logs = stats.logs,
            millis = stats.millis,
            "replayed the journal"
        );
    }
    Ok(())
}
