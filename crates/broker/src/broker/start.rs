//! How a broker starts: its id resolved, its lease taken, its caches, stores and
//! partitions opened, then membership, controller election, metadata following and the
//! background tasks started.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Broker, follow, idempotence, identity, lifecycle, liveness, new_incarnation, replicas, tasks,
    tiering, view,
};
use crate::settings::Settings;
use shale_core::clock::SharedClock;
use shale_core::error::Error;
use shale_meta::membership::Membership;
use shale_meta::topics::{BrokerRecord, TopicStore};
use shale_meta::{Keys, MetaStore};
use shale_storage::log::LogResources;

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
        let defaults = settings.topic_defaults()?;
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
            kafka_address: settings.kafka.advertised_address(),
            rack: settings.broker.rack.clone(),
            started_ms: clock.now_ms(),
            incarnation: new_incarnation(),
            draining: false,
        };
        let ttl = Duration::from_secs(settings.cluster.lease_ttl_secs);
        let membership =
            Membership::join(meta.clone(), keys.clone(), record, ttl, clock.clone()).await?;
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
        let resources = Arc::new(
            LogResources::new(settings.log.fd_cache_capacity, settings.log.index_cache_bytes)
                .with_shared_fsync(settings.log.shared_fsync),
        );
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
            life: lifecycle::Lifecycle::default(),
            groups: crate::groups::Coordinator::new(
                meta.clone(),
                keys.clone(),
                settings.groups.clone(),
            ),
            producer_ids: idempotence::ProducerIds::new(meta.clone(), &keys),
            acl: acl.clone(),
            quotas: quotas.clone(),
            admin_lock: tokio::sync::Mutex::new(()),
            requests,
            self_ref: std::sync::OnceLock::new(),
            settings,
        });
        let _ = broker.self_ref.set(Arc::downgrade(&broker));
        // Keep the lease alive from the start: the first resync opens every hosted
        // partition, which takes longer than a lease with 100,000 of them (about 10 s here).
        broker.life.spawn(membership.clone().run());
        let revision = match broker.resync().await {
            Ok(revision) => revision,
            Err(e) => {
                broker.life.begin_close();
                return Err(e);
            }
        };
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
        tiering::start(&broker);
        Ok(broker)
    }
}
