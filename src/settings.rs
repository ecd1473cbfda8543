//! The settings file of a `shale` process: the broker's sections (`[cluster]`, `[broker]`,
//! `[log]`, ... in `shale_broker::settings`, whose types are re-exported here) and each
//! front end's own (`[kafka]`: `shale_kafka::KafkaSettings`), read from TOML, overridden by
//! `SHALE_*` environment variables and flags (the CLI applies those), validated section by
//! section with the offending key named.
//!
//! The broker gets its sections, and the front ends' advertised addresses, as
//! [`shale_broker::settings::Settings`] ([`Settings::broker_settings`]); each front end
//! gets its own section from the process that assembles them (`server`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use shale_broker::settings::Settings as BrokerSettingsFile;
pub use shale_broker::settings::*;
use shale_core::error::Error;

/// Everything a `shale` process is configured with.
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
    /// `[tier]`: the object store and tiered storage.
    pub tier: TierSettings,
    /// `[groups]`: consumer group timeouts.
    pub groups: GroupSettings,
    /// `[topic_defaults]`: topic configs by Kafka name, for topics that don't set them.
    pub topic_defaults: BTreeMap<String, String>,
    /// `[tls]`: TLS on the client listeners and to other brokers.
    pub tls: shale_broker::tls::TlsSettings,
    /// `[auth]`: how callers are authenticated.
    pub auth: shale_broker::auth::AuthSettings,
    /// `[acl]`: authorization.
    pub acl: shale_broker::acl::AclSettings,
    /// `[quota]`: how per-principal quotas are enforced.
    pub quota: shale_broker::quota::QuotaSettings,
    /// `[kafka]`: the Kafka listener.
    pub kafka: shale_kafka::KafkaSettings,
    /// `[schema_registry]`: the schema registry's listener.
    pub schema_registry: shale_registry::RegistrySettings,
    /// `[console]`: the web console's listener.
    pub console: shale_console::ConsoleSettings,
    /// `[runtime]`: the process's threads.
    pub runtime: RuntimeSettings,
}

/// `[runtime]`: where the process's threads run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// The CPUs the broker confines every thread of it to, as Linux writes a CPU list
    /// (`0`, `0-3`, `0,2-3`), its runtime a worker per CPU; empty: every CPU the process
    /// may use. See [`crate::cpus`].
    pub cpus: String,
}

impl RuntimeSettings {
    /// The CPUs to confine the process to, if any.
    pub fn cpus(&self) -> Result<Option<crate::cpus::CpuList>, Error> {
        if self.cpus.trim().is_empty() {
            return Ok(None);
        }
        let cpus = self.cpus.parse().map_err(|e| Error::invalid(format!("runtime.cpus: {e}")))?;
        Ok(Some(cpus))
    }
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

    /// Checks every section, naming the key of the first bad value.
    pub fn validate(&self) -> Result<(), Error> {
        self.broker_settings().validate()?;
        self.kafka.validate()?;
        self.schema_registry.validate()?;
        self.console.validate()?;
        self.runtime.cpus().map(drop)
    }

    /// The broker's sections, with the front ends' advertised addresses.
    pub fn broker_settings(&self) -> BrokerSettingsFile {
        let Settings {
            cluster,
            broker,
            log,
            replication,
            topics,
            tier,
            groups,
            topic_defaults,
            tls,
            auth,
            acl,
            quota,
            kafka,
            schema_registry,
            console: _,
            runtime: _,
        } = self.clone();
        BrokerSettingsFile {
            cluster,
            broker,
            log,
            replication,
            topics,
            tier,
            groups,
            topic_defaults,
            tls,
            auth,
            acl,
            quota,
            front_ends: FrontEndAddresses {
                kafka: kafka.advertised_address(),
                schema_registry: schema_registry.advertised_address(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_files_parse() {
        Settings::default().validate().unwrap();
        let s = Settings::from_toml(
            "[broker]\nid = 3\nlisten = \"0.0.0.0:9000\"\n[topic_defaults]\n\"retention.ms\" = \"1000\"\n[kafka]\nadvertise = \"k:9092\"\n",
        )
        .unwrap();
        assert_eq!(s.broker.id, Some(3));
        assert_eq!(s.broker_settings().topic_defaults().unwrap().retention_ms, 1000);
        assert_eq!(s.broker_settings().front_ends.kafka, "k:9092");
    }

    #[test]
    fn sample_file_in_deploy_shows_the_defaults() {
        let sample = Settings::from_toml(include_str!("../deploy/shale.toml")).unwrap();
        assert_eq!(sample, Settings::default());
    }

    #[test]
    fn the_kubernetes_settings_files_are_valid() {
        for (name, text) in [
            ("base", include_str!("../deploy/k8s/base/shale.toml")),
            ("tls", include_str!("../deploy/k8s/components/tls/shale.toml")),
        ] {
            let s = Settings::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn a_nice_value_out_of_range_is_refused_by_name() {
        let e = Settings::from_toml("[tier]\ncold_read_nice = 25\n").unwrap_err();
        assert!(e.message.contains("tier.cold_read_nice") && e.message.contains("25"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = Settings::from_toml("[broker]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.message.contains("listen_addr"), "{}", e.message);
        let e = Settings::from_toml("[topic_defaults]\n\"segment.bytes\" = \"1\"\n").unwrap_err();
        assert!(e.message.contains("segment.bytes"), "{}", e.message);
        let e = Settings::from_toml("[cluster]\nname = \"a/b\"\n").unwrap_err();
        assert!(e.message.contains("cluster.name"), "{}", e.message);
        let e = Settings::from_toml("[kafka]\nmax_request_bytes = 10\n").unwrap_err();
        assert!(e.message.contains("kafka.max_request_bytes"), "{}", e.message);
        let e = Settings::from_toml("[runtime]\ncpus = \"0-x\"\n").unwrap_err();
        assert!(e.message.contains("runtime.cpus") && e.message.contains("`x`"), "{}", e.message);
    }
}
