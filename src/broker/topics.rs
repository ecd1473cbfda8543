//! Topic lifecycle on the broker: create, delete, alter configs, describe, and opening the
//! hosted partitions that the metadata says this broker holds.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::partition::PartitionSpec;
use super::{Broker, Partition, TopicEntry, unknown_topic};
use crate::error::{Error, ErrorKind};
use crate::meta::topics::{PartitionState, TopicRecord};
use crate::topic_config::{TopicConfig, is_known_key, unknown_key, validate_topic_name};

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
}

impl Broker {
    /// Creates a topic: validates the name, counts and configs, writes the metadata, and
    /// opens the partitions.
    pub async fn create_topic(&self, req: NewTopic) -> Result<TopicEntry, Error> {
        validate_topic_name(&req.name)?;
        let partitions = if req.partitions == 0 {
            self.settings.topics.default_partitions
        } else {
            req.partitions
        };
        let max = self.settings.topics.max_partitions;
        if partitions > max {
            return Err(Error::new(
                ErrorKind::Invalid,
                "INVALID_PARTITIONS",
                format!(
                    "partitions {partitions} exceeds the limit of {max} (topics.max_partitions)"
                ),
            )
            .with("partitions", partitions));
        }
        let rf = if req.replication_factor == 0 {
            self.settings.topics.default_replication_factor
        } else {
            req.replication_factor
        };
        let brokers = self.topics.brokers().await?;
        if rf as usize > brokers.len() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "INVALID_REPLICATION_FACTOR",
                format!(
                    "replication factor {rf} exceeds the {} live broker(s); use at most {}",
                    brokers.len(),
                    brokers.len()
                ),
            )
            .with("replication_factor", rf));
        }
        let config = TopicConfig::resolve(&self.defaults, &req.configs)?;
        if config.min_insync_replicas > rf {
            return Err(Error::new(
                ErrorKind::Invalid,
                "INVALID_CONFIG",
                format!(
                    "min.insync.replicas {} exceeds the replication factor {rf}",
                    config.min_insync_replicas
                ),
            )
            .with("key", "min.insync.replicas"));
        }
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
            if self.topics.get(&req.name).await?.is_some() {
                return Err(topic_exists(&req.name));
            }
            return Ok(entry);
        }
        let _guard = self.admin_lock.lock().await;
        // Place replicas round-robin over live brokers, leaders spread evenly.
        let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        let states: Vec<PartitionState> = (0..partitions as usize)
            .map(|p| {
                let replicas: Vec<i32> =
                    (0..rf as usize).map(|r| ids[(p + r) % ids.len()]).collect();
                PartitionState {
                    leader: replicas[0],
                    leader_epoch: 0,
                    isr: replicas.clone(),
                    replicas,
                }
            })
            .collect();
        self.topics.create(&record, &states).await?;
        self.apply_topic(
            &entry,
            &states.into_iter().enumerate().map(|(p, s)| (p as u32, s)).collect(),
        )
        .await?;
        tracing::info!(topic = %record.name, partitions, replication_factor = rf, "topic created");
        Ok(entry)
    }

    /// Deletes a topic, its metadata and its local data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let _guard = self.admin_lock.lock().await;
        if !self.topics.delete(name).await? {
            return Err(unknown_topic(name));
        }
        self.drop_topic_locally(name).await?;
        tracing::info!(topic = name, "topic deleted");
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
                self.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
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
            if config.min_insync_replicas > record.replication_factor {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "INVALID_CONFIG",
                    format!(
                        "min.insync.replicas {} exceeds the replication factor {}",
                        config.min_insync_replicas, record.replication_factor
                    ),
                )
                .with("key", "min.insync.replicas"));
            }
            let entry = TopicEntry { record: record.clone(), config: Arc::new(config) };
            if validate_only {
                return Ok(entry);
            }
            if self.topics.update(&record, revision).await? {
                self.apply_config(&entry);
                tracing::info!(topic = name, "topic config altered");
                return Ok(entry);
            }
            // Someone else changed the topic meanwhile: re-read and re-apply.
        }
    }

    /// Every topic, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicEntry>, Error> {
        let mut out = Vec::new();
        for record in self.topics.list().await? {
            let config = TopicConfig::resolve(&self.defaults, &record.configs)
                .unwrap_or_else(|_| self.defaults.clone());
            out.push(TopicEntry { record, config: Arc::new(config) });
        }
        Ok(out)
    }

    /// A topic with its partitions' states and local offsets.
    pub async fn describe_topic(
        &self,
        name: &str,
    ) -> Result<(TopicEntry, Vec<PartitionDescription>), Error> {
        let (record, _) = self.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
        let config = TopicConfig::resolve(&self.defaults, &record.configs)?;
        let states = self.topics.partitions(name).await?;
        let mut parts = Vec::with_capacity(states.len());
        for (p, state) in states {
            let hosted = self.partition(name, p).ok();
            let d = match hosted {
                Some(h) => {
                    let log = h.log();
                    PartitionDescription {
                        partition: p,
                        state,
                        log_start_offset: log.log_start_offset(),
                        log_end_offset: log.log_end_offset(),
                        high_watermark: h.high_watermark(),
                        size_bytes: log.size_bytes(),
                        segments: log.segment_count() as u32,
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
                },
            };
            parts.push(d);
        }
        Ok((TopicEntry { record, config: Arc::new(config) }, parts))
    }

    /// Loads every topic from the metadata store and opens hosted partitions; removes local
    /// partition directories no topic owns any more (left by a deletion cut short).
    pub(super) async fn load_all_topics(&self) -> Result<(), Error> {
        let mut expected = HashSet::new();
        for record in self.topics.list().await? {
            let config = TopicConfig::resolve(&self.defaults, &record.configs).map_err(|e| {
                Error::new(
                    ErrorKind::Data,
                    "CORRUPT_METADATA",
                    format!("stored configs of topic {:?} are invalid: {}", record.name, e.message),
                )
            })?;
            let states = self.topics.partitions(&record.name).await?;
            for p in states.keys() {
                expected.insert(format!("{}-{p}", record.name));
            }
            let entry = TopicEntry { record, config: Arc::new(config) };
            self.apply_topic(&entry, &states).await?;
        }
        self.remove_orphan_dirs(&expected).await;
        Ok(())
    }

    async fn remove_orphan_dirs(&self, expected: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(self.data_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let is_partition_dir = entry.path().join(super::partition::METADATA_FILE).exists();
            if is_partition_dir && !expected.contains(&name) {
                tracing::warn!(dir = %name, "removing partition directory of a deleted topic");
                let path = entry.path();
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
            }
        }
    }

    /// Caches a topic and opens the partitions this broker replicates.
    async fn apply_topic(
        &self,
        entry: &TopicEntry,
        states: &BTreeMap<u32, PartitionState>,
    ) -> Result<(), Error> {
        self.topic_cache
            .write()
            .map_err(|_| Error::internal("topic cache poisoned"))?
            .insert(entry.record.name.clone(), entry.clone());
        for (&p, state) in states {
            if !state.replicas.contains(&self.id) {
                continue;
            }
            let key = (entry.record.name.clone(), p);
            if self.partitions.read().map(|m| m.contains_key(&key)).unwrap_or(false) {
                continue;
            }
            let data_dir = self.data_dir();
            let spec = PartitionSpec {
                topic: entry.record.name.clone(),
                topic_id: entry.record.id.clone(),
                index: p,
                leader_epoch: state.leader_epoch,
                config: entry.config.clone(),
            };
            let clock = self.clock.clone();
            let resources = self.resources.clone();
            let part = tokio::task::spawn_blocking(move || {
                Partition::open(&data_dir, spec, clock, resources)
            })
            .await
            .map_err(|e| Error::internal(format!("open task failed: {e}")))??;
            self.partitions
                .write()
                .map_err(|_| Error::internal("partition map poisoned"))?
                .insert(key, Arc::new(part));
        }
        Ok(())
    }

    fn apply_config(&self, entry: &TopicEntry) {
        if let Ok(mut cache) = self.topic_cache.write() {
            cache.insert(entry.record.name.clone(), entry.clone());
        }
        for p in self.hosted() {
            if p.topic() == entry.record.name {
                p.set_config(entry.config.clone());
            }
        }
    }

    async fn drop_topic_locally(&self, name: &str) -> Result<(), Error> {
        if let Ok(mut cache) = self.topic_cache.write() {
            cache.remove(name);
        }
        let removed: Vec<Arc<Partition>> = match self.partitions.write() {
            Ok(mut map) => {
                let keys: Vec<_> = map.keys().filter(|(t, _)| t == name).cloned().collect();
                keys.into_iter().filter_map(|k| map.remove(&k)).collect()
            }
            Err(_) => return Err(Error::internal("partition map poisoned")),
        };
        for p in removed {
            let log = p.log().clone();
            let dir = p.dir().to_path_buf();
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                log.close()?;
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::internal(format!("cannot remove {}: {e}", dir.display())))
            })
            .await
            .map_err(|e| Error::internal(format!("delete task failed: {e}")))??;
        }
        Ok(())
    }
}

fn topic_exists(name: &str) -> Error {
    Error::new(ErrorKind::AlreadyExists, "TOPIC_EXISTS", format!("topic {name:?} already exists"))
        .with("topic", name)
}
