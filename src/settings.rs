//! Broker settings: a TOML file, overridden by `SHALE_*` environment variables and flags
//! (the CLI applies those), validated with the offending key named.
//!
//! Settings are plain data. The injected parts (metadata store, clock) are chosen by the
//! caller that assembles a broker (`server`), not here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::topic_config::TopicConfig;

/// Default gRPC port.
pub const DEFAULT_PORT: u16 = 9292;

/// Everything a broker process is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[cluster]`.
    pub cluster: ClusterSettings,
    /// `[broker]`.
    pub broker: BrokerSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[replication]`.
    pub replication: ReplicationSettings,
    /// `[topics]`: defaults for topic creation.
    pub topics: TopicSettings,
    /// `[topic_defaults]`: topic configs by Kafka name, for topics that don't set them.
    pub topic_defaults: BTreeMap<String, String>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Cluster name; prefixes every metadata key (`/shale/{name}/`).
    pub name: String,
    /// etcd endpoints (`http://host:port`); empty means the embedded metadata store.
    pub etcd_endpoints: Vec<String>,
    /// TTL of a broker's lease (seconds): how long a broker that stops renewing it is
    /// still taken as live, and so roughly how long failover takes.
    pub lease_ttl_secs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            name: "shale".to_string(),
            etcd_endpoints: Vec::new(),
            lease_ttl_secs: 10,
        }
    }
}

/// `[broker]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// Broker id, unique in the cluster; unset means "allocate one once and keep it in the
    /// data dir".
    pub id: Option<i32>,
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// Address clients are told to use; empty means `listen`.
    pub advertise: String,
    /// Rack or zone, for replica placement.
    pub rack: String,
    /// Where partition logs and the embedded metadata live.
    pub data_dir: PathBuf,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            id: None,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            advertise: String::new(),
            rack: String::new(),
            data_dir: PathBuf::from("./shale-data"),
        }
    }
}

impl BrokerSettings {
    /// The address clients should dial.
    pub fn advertised_address(&self) -> String {
        if self.advertise.is_empty() { self.listen.to_string() } else { self.advertise.clone() }
    }
}

/// `[log]`: local storage tuning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Open read handles kept for sealed segments, across all partitions.
    pub fd_cache_capacity: u64,
    /// Bytes of sealed-segment indexes kept in memory, across all partitions.
    pub index_cache_bytes: u64,
    /// How often retention runs (ms).
    pub retention_check_interval_ms: u64,
    /// Largest gRPC request accepted (bytes).
    pub max_request_bytes: usize,
    /// Batch bytes per Fetch response message when the client does not say (bytes).
    pub fetch_max_bytes: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            fd_cache_capacity: 1024,
            index_cache_bytes: 64 * 1024 * 1024,
            retention_check_interval_ms: 30_000,
            max_request_bytes: 64 * 1024 * 1024,
            fetch_max_bytes: 1024 * 1024,
        }
    }
}

/// `[replication]`: how followers fetch and when they drop out of the ISR.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSettings {
    /// A follower that has not caught up for this long leaves the ISR
    /// (Kafka's `replica.lag.time.max.ms`).
    pub lag_time_max_ms: u64,
    /// Batch bytes per replica fetch answer.
    pub fetch_max_bytes: u32,
    /// How long the leader holds a replica fetch open when there is nothing new.
    pub fetch_max_wait_ms: u32,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            lag_time_max_ms: 10_000,
            fetch_max_bytes: 4 * 1024 * 1024,
            fetch_max_wait_ms: 500,
        }
    }
}

/// `[topics]`: how topics are created when a request leaves things out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    /// Partitions when CreateTopic says 0.
    pub default_partitions: u32,
    /// Replication factor when CreateTopic says 0.
    pub default_replication_factor: u32,
    /// Upper bound on partitions of one topic.
    pub max_partitions: u32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            default_partitions: 1,
            default_replication_factor: 1,
            max_partitions: 10_000,
        }
    }
}

fn invalid(key: &str, why: String) -> Error {
    Error::new(crate::error::ErrorKind::Invalid, "INVALID_SETTING", format!("setting {key}: {why}"))
        .with("key", key)
}

impl Settings {
    /// Reads and validates a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Settings, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!("cannot read settings file {}: {e}", path.display()))
        })?;
        Settings::from_toml(&text)
            .map_err(|e| Error::invalid(format!("settings file {}: {}", path.display(), e.message)))
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Settings, Error> {
        let settings: Settings =
            toml::from_str(text).map_err(|e| Error::invalid(e.message().trim().to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let name = &self.cluster.name;
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "cluster.name",
                format!("{name:?} must be non-empty [a-zA-Z0-9_-]"),
            ));
        }
        if let Some(id) = self.broker.id.filter(|id| *id < 0) {
            return Err(invalid("broker.id", format!("{id} must be >= 0")));
        }
        if !(1..=3600).contains(&self.cluster.lease_ttl_secs) {
            return Err(invalid(
                "cluster.lease_ttl_secs",
                format!("{} must be from 1 to 3600", self.cluster.lease_ttl_secs),
            ));
        }
        for e in &self.cluster.etcd_endpoints {
            if e.trim().is_empty() || e.contains(char::is_whitespace) {
                return Err(invalid("cluster.etcd_endpoints", format!("{e:?} is not an endpoint")));
            }
        }
        if self.broker.data_dir.as_os_str().is_empty() {
            return Err(invalid("broker.data_dir", "must not be empty".to_string()));
        }
        if self.log.fd_cache_capacity < 16 {
            return Err(invalid("log.fd_cache_capacity", "must be at least 16".to_string()));
        }
        if self.log.retention_check_interval_ms == 0 {
            return Err(invalid("log.retention_check_interval_ms", "must be > 0".to_string()));
        }
        if self.log.max_request_bytes < 1024 {
            return Err(invalid("log.max_request_bytes", "must be at least 1024".to_string()));
        }
        if self.log.fetch_max_bytes == 0 {
            return Err(invalid("log.fetch_max_bytes", "must be > 0".to_string()));
        }
        if self.replication.lag_time_max_ms < 100 {
            return Err(invalid("replication.lag_time_max_ms", "must be at least 100".to_string()));
        }
        if self.replication.fetch_max_bytes < 1024 {
            return Err(invalid(
                "replication.fetch_max_bytes",
                "must be at least 1024".to_string(),
            ));
        }
        if self.replication.fetch_max_wait_ms == 0 {
            return Err(invalid("replication.fetch_max_wait_ms", "must be > 0".to_string()));
        }
        if self.topics.default_partitions == 0 {
            return Err(invalid("topics.default_partitions", "must be > 0".to_string()));
        }
        if self.topics.default_replication_factor == 0 {
            return Err(invalid("topics.default_replication_factor", "must be > 0".to_string()));
        }
        self.topic_defaults().map_err(|e| invalid("topic_defaults", e.message))?;
        Ok(())
    }

    /// The broker-wide topic config defaults.
    pub fn topic_defaults(&self) -> Result<TopicConfig, Error> {
        TopicConfig::resolve(&TopicConfig::default(), &self.topic_defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_files_parse() {
        Settings::default().validate().unwrap();
        let s = Settings::from_toml(
            "[broker]\nid = 3\nlisten = \"0.0.0.0:9000\"\n[topic_defaults]\n\"retention.ms\" = \"1000\"\n",
        )
        .unwrap();
        assert_eq!(s.broker.id, Some(3));
        assert_eq!(s.topic_defaults().unwrap().retention_ms, 1000);
    }

    #[test]
    fn sample_file_in_deploy_shows_the_defaults() {
        let sample = Settings::from_toml(include_str!("../deploy/shale.toml")).unwrap();
        assert_eq!(sample, Settings::default());
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = Settings::from_toml("[broker]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.message.contains("listen_addr"), "{}", e.message);
        let e = Settings::from_toml("[topic_defaults]\n\"segment.bytes\" = \"1\"\n").unwrap_err();
        assert!(e.message.contains("segment.bytes"), "{}", e.message);
        let e = Settings::from_toml("[cluster]\nname = \"a/b\"\n").unwrap_err();
        assert!(e.message.contains("cluster.name"), "{}", e.message);
    }
}
