//! Topic lifecycle on the broker: create, add partitions, delete, alter configs, describe.
//! Writes go to the store; hosted partitions follow it (`follow`), and the calls wait until
//! they have.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::{Broker, TopicEntry, unknown_topic};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_topic_name;
use shale_core::topic_config::{TopicConfig, is_known_key, unknown_key};
use shale_meta::topics::{PartitionState, TopicRecord};

/// A topic creation request.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partitions; 0 means the broker default.
    pub partitions: u32,
    /// Replication factor; 0 means the broker default.
    pub replication_factor: u32,
    /// Config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Validate only.
    pub validate_only: bool,
}

/// One partition as described to admins.
#[derive(Debug, Clone)]
pub struct PartitionDescription {
    /// Index.
    pub partition: u32,
    /// Replicas, leader, epoch, ISR as stored.
    pub state: PartitionState,
    /// Log start offset (-1 if not hosted here).
    pub log_start_offset: i64,
    /// Log end offset (-1 if not hosted here).
    pub log_end_offset: i64,
    /// High watermark (-1 if not hosted here).
    pub high_watermark: i64,
    /// Bytes on local disk.
    pub size_bytes: u64,
    /// Local segments.
    pub segments: u32,
    /// The local log's own start (-1 if not hosted here).
    pub local_log_start_offset: i64,
    /// What the tier pointer says of the remote log.
    pub remote: Option<shale_storage::tier::TierPointer>,
    /// Sealed local segments not in the bucket yet, and their bytes.
    pub upload_lag: (u64, u64),
    /// For a compacted topic hosted here: the cleaner's state.
    pub cleaning: Option<super::partition::Cleaning>,
}

impl Broker {
    /// Creates a topic: validates the name, counts and configs and writes the topic record;
    /// the controller places the partitions. Returns once they are placed (and, for
    /// partitions this broker hosts, open), or fails after a bounded wait.
    pub async fn create_topic(&self, req: NewTopic) -> Result<TopicEntry, Error> {
        validate_topic_name(&req.name)?;
        let partitions = if req.partitions == 0 {
            self.settings.topics.default_partitions
        } else {
            req.partitions
        };
        self.check_partition_limit(partitions)?;
        let rf = if req.replication_factor == 0 {
            self.settings.topics.default_replication_factor
        } else {
            req.replication_factor
        };
        self.check_replication_factor(rf).await?;
        let config = TopicConfig::resolve(&self.defaults, &req.configs)?;
        check_min_isr(&config, rf)?;
        self.check_tiering(&req.name, None, &config)?;
        let record = TopicRecord {
            name: req.name.clone(),
            id: uuid::Uuid::new_v4().to_string(),
            partitions,
            replication_factor: rf,
            configs: req.configs.clone(),
            created_ms: self.clock.now_ms(),
        };
        let entry = TopicEntry { record: record.clone(), config: Arc::new(config) };
        if req.validate_only {
            if self.view.topics.get(&req.name).await?.is_some() {
                return Err(topic_exists(&req.name));
            }
            return Ok(entry);
        }
        // The write is serialized with this broker's other admin writes; the wait for the
        // placement is not, so creations in flight together share the controller's and
        // the brokers' passes over the metadata instead of paying one each.
        let guard = self.admin_lock.lock().await;
        self.view.topics.create(&record).await?;
        drop(guard);
        tracing::info!(topic = %record.name, partitions, replication_factor = rf, "topic created");
        self.wait_placed(&record.name, 0..partitions, "was created").await?;
        Ok(entry)
    }

    /// Adds partitions to a topic (Kafka's CreatePartitions) so that it has `partitions`
    /// in all; the controller places the new ones as it places a new topic's. Records
    /// with a key then hash over the new count: a key's later records may go to another
    /// partition than its earlier ones. Returns once the new partitions are placed.
    pub async fn create_partitions(
        &self,
        name: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<TopicEntry, Error> {
        let guard = self.admin_lock.lock().await;
        loop {
            let (mut record, revision) =
                self.view.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
            let had = record.partitions;
            if partitions <= had {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::InvalidPartitions,
                    format!(
                        "topic {name:?} has {had} partitions; partitions can only be added, so \
                         ask for more than {had} (asked for {partitions})"
                    ),
                )
                .with("partitions", partitions));
            }
            self.check_partition_limit(partitions)?;
            self.check_replication_factor(record.replication_factor).await?;
            record.partitions = partitions;
            let config = TopicConfig::resolve(&self.defaults, &record.configs)?;
            let entry = TopicEntry { record: record.clone(), config: Arc::new(config) };
            if validate_only {
                return Ok(entry);
            }
            if self.view.topics.update(&record, revision).await? {
                tracing::info!(topic = name, from = had, to = partitions, "partitions added");
                drop(guard);
                self.wait_placed(name, had..partitions, "has its new partitions").await?;
                return Ok(entry);
            }
            // Someone else changed the topic meanwhile: re-read and check again.
        }
    }

    /// `partitions` within `topics.max_partitions`.
    fn check_partition_limit(&self, partitions: u32) -> Result<(), Error> {
        let max = self.settings.topics.max_partitions;
        if partitions > max {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidPartitions,
                format!(
                    "partitions {partitions} exceeds the limit of {max} (topics.max_partitions)"
                ),
            )
            .with("partitions", partitions));
        }
        Ok(())
    }

    /// A replication factor the live brokers can hold.
    async fn check_replication_factor(&self, rf: u32) -> Result<(), Error> {
        let brokers = self.view.topics.brokers().await?;
        if rf as usize > brokers.len() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidReplicationFactor,
                format!(
                    "replication factor {rf} exceeds the {} live broker(s); use at most {}",
                    brokers.len(),
                    brokers.len()
                ),
            )
            .with("replication_factor", rf));
        }
        Ok(())
    }

    /// Waits until partitions `range` of topic `name` are placed (and those this broker
    /// hosts are open); `done` says what happened to the topic, for the error after
    /// [`PLACEMENT_TIMEOUT`].
    async fn wait_placed(&self, name: &str, range: Range<u32>, done: &str) -> Result<(), Error> {
        let id = self.id;
        // (placed by the controller, of those placed here: still to open, failed to open)
        let progress = |b: &Broker| {
            let Ok(cache) = b.view.cache.read() else { return (0, 0, None) };
            let (mut placed, mut opening, mut failed) = (0u32, 0u32, None);
            for p in range.clone() {
                let key = (name.to_string(), p);
                if let Some((s, _)) = cache.states.get(&key) {
                    placed += 1;
                    if s.replicas.contains(&id) && b.hosted_partition(name, p).is_none() {
                        match b.open_failure(name, p) {
                            Some(e) => failed = failed.or(Some(e)),
                            None => opening += 1,
                        }
                    }
                }
            }
            (placed, opening, failed)
        };
        let want = range.len() as u32;
        let done_when = |b: &Broker| matches!(progress(b), (placed, 0, _) if placed == want);
        let settled = self.wait_for_metadata(PLACEMENT_TIMEOUT, done_when).await;
        let (placed, opening, failed) = progress(self);
        if let Some(e) = failed {
            // The precise reason, not a timeout: the partition does not open by waiting.
            let message = format!("topic {name:?} {done}, but {}", e.message);
            return Err(Error { message, ..e });
        }
        if settled {
            return Ok(());
        }
        let secs = PLACEMENT_TIMEOUT.as_secs();
        let message = if placed == 0 && self.controller_id() < 0 {
            format!(
                "topic {name:?} {done}, but no controller is elected to place its partitions \
                 (none within {secs} s); they will be placed once one is"
            )
        } else {
            format!(
                "topic {name:?} {done}; within {secs} s the controller placed {placed} of its \
                 {want} new partitions and broker {id} has {opening} of its share still to \
                 open; the rest carries on in the background"
            )
        };
        Err(Error::unavailable(message))
    }

    /// Deletes a topic and its partition states; every replica deletes its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let _guard = self.admin_lock.lock().await;
        if !self.view.topics.delete(name).await? {
            return Err(unknown_topic(name));
        }
        tracing::info!(topic = name, "topic deleted");
        // Local replicas go now, so the name can be reused at once; others follow the store.
        self.wait_for_metadata(PLACEMENT_TIMEOUT, |b| b.hosted().iter().all(|p| p.topic() != name))
            .await;
        Ok(())
    }

    /// `remote.storage.enable=true` needs an object store on this broker, and once on it
    /// stays on (`was` is the topic's config before the change, if any).
    fn check_tiering(
        &self,
        name: &str,
        was: Option<&TopicConfig>,
        config: &TopicConfig,
    ) -> Result<(), Error> {
        if was.is_some_and(|w| w.remote_storage_enable) && !config.remote_storage_enable {
            // The bucket holds the older part of the log. Turned off, local retention would
            // apply `retention.*` and delete data that was never uploaded, leaving a hole
            // between the remote and the local log (Kafka refuses this as well).
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidConfig,
                format!(
                    "remote.storage.enable cannot be turned off for topic {name:?}: its older \
                     records are in the bucket. Keep it on and lower local.retention.* to keep \
                     less on local disk or retention.* to keep less overall, or delete the topic"
                ),
            )
            .with("key", "remote.storage.enable"));
        }
        if config.remote_storage_enable && self.catalog().is_none() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidConfig,
                "remote.storage.enable=true needs an object store, and this broker has none: \
                 start it with --object-store URL (or [tier] object_store)",
            )
            .with("key", "remote.storage.enable"));
        }
        Ok(())
    }

    /// Sets and removes config overrides; returns the configs in force afterwards.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<TopicEntry, Error> {
        let _guard = self.admin_lock.lock().await;
        loop {
            let (mut record, revision) =
                self.view.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
            let was = TopicConfig::resolve(&self.defaults, &record.configs).ok();
            for key in delete {
                if !is_known_key(key) {
                    return Err(unknown_key(key));
                }
                record.configs.remove(key);
            }
            for (k, v) in set {
                record.configs.insert(k.clone(), v.clone());
            }
            let config = TopicConfig::resolve(&self.defaults, &record.configs)?;
            check_min_isr(&config, record.replication_factor)?;
            self.check_tiering(name, was.as_ref(), &config)?;
            let entry = TopicEntry { record: record.clone(), config: Arc::new(config) };
            if validate_only {
                return Ok(entry);
            }
            if self.view.topics.update(&record, revision).await? {
                tracing::info!(topic = name, "topic config altered");
                // Apply locally before answering; other brokers follow the store.
                let config = entry.config.clone();
                self.wait_for_metadata(PLACEMENT_TIMEOUT, |b| {
                    b.hosted().iter().filter(|p| p.topic() == name).all(|p| p.config() == config)
                })
                .await;
                return Ok(entry);
            }
            // Someone else changed the topic meanwhile: re-read and re-apply.
        }
    }

    /// Every topic, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicEntry>, Error> {
        let mut out = Vec::new();
        for record in self.view.topics.list().await? {
            let config = TopicConfig::resolve(&self.defaults, &record.configs)
                .unwrap_or_else(|_| self.defaults.clone());
            out.push(TopicEntry { record, config: Arc::new(config) });
        }
        Ok(out)
    }

    /// A topic with its partitions' states and, for partitions hosted here, local offsets.
    pub async fn describe_topic(
        &self,
        name: &str,
    ) -> Result<(TopicEntry, Vec<PartitionDescription>), Error> {
        let (record, _) = self.view.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
        let config = TopicConfig::resolve(&self.defaults, &record.configs)?;
        let states = self.view.topics.partitions(name).await?;
        let mut parts = Vec::with_capacity(states.len());
        for (p, state) in states {
            let d = match self.hosted_partition(name, p).filter(|h| h.topic_id() == record.id) {
                Some(h) => {
                    let log = h.log();
                    let remote = h.remote().and_then(|r| r.pointer()).filter(|p| p.segments > 0);
                    PartitionDescription {
                        partition: p,
                        state,
                        log_start_offset: h.log_start_offset(),
                        log_end_offset: log.log_end_offset(),
                        high_watermark: h.high_watermark(),
                        size_bytes: log.size_bytes(),
                        segments: log.segment_count() as u32,
                        local_log_start_offset: log.log_start_offset(),
                        remote,
                        upload_lag: h.upload_lag(),
                        cleaning: h.compacts().then(|| h.cleaning()),
                    }
                }
                None => PartitionDescription {
                    partition: p,
                    state,
                    log_start_offset: -1,
                    log_end_offset: -1,
                    high_watermark: -1,
                    size_bytes: 0,
                    segments: 0,
                    local_log_start_offset: -1,
                    remote: None,
                    upload_lag: (0, 0),
                    cleaning: None,
                },
            };
            parts.push(d);
        }
        Ok((TopicEntry { record, config: Arc::new(config) }, parts))
    }
}

/// How long topic admin calls wait for the controller and this broker to catch up.
const PLACEMENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn check_min_isr(config: &TopicConfig, rf: u32) -> Result<(), Error> {
    if config.min_insync_replicas > rf {
        return Err(Error::new(
            ErrorKind::Invalid,
            Reason::InvalidConfig,
            format!(
                "min.insync.replicas {} exceeds the replication factor {rf}",
                config.min_insync_replicas
            ),
        )
        .with("key", "min.insync.replicas"));
    }
    Ok(())
}

fn topic_exists(name: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        Reason::TopicExists,
        format!("topic {name:?} already exists"),
    )
    .with("topic", name)
}
