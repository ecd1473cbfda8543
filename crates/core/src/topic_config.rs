//! Per-topic configuration by Kafka's names, parsed and validated in one place.
//!
//! A topic stores only the keys set on it (its overrides); everything else comes from the
//! broker's defaults (`[topic_defaults]` in the settings file). [`TopicConfig::resolve`]
//! merges the two and rejects unknown keys and invalid values, naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Reason};

/// What happens to old data (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete segments past retention.
    Delete,
    /// Keep each key's latest record (log compaction); no retention by time or size.
    Compact,
    /// Both: compact, and delete segments past retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Whether retention deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Kafka's string form.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicyKind {
    /// Before every acknowledgement (group commit). The default.
    Always,
    /// Every `flush.ms`; acknowledgements do not wait for fsync (explicit opt-in).
    Interval,
}

/// Every topic config in force for one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `retention.ms`: delete data older than this; -1 keeps it forever.
    pub retention_ms: i64,
    /// `retention.bytes`: per-partition size cap; -1 for none.
    pub retention_bytes: i64,
    /// `local.retention.ms`: local copies of tiered data; -2 means "same as retention.ms".
    pub local_retention_ms: i64,
    /// `local.retention.bytes`: local tail size; -2 means "same as retention.bytes".
    pub local_retention_bytes: i64,
    /// `remote.storage.enable`: tier sealed segments to the object store.
    pub remote_storage_enable: bool,
    /// `segment.bytes`: roll the active segment at this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment at this age.
    pub segment_ms: i64,
    /// `min.insync.replicas`: replicas an acks=all write needs.
    pub min_insync_replicas: u32,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: u32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: the dirty share of a compacted log's cleanable bytes
    /// that makes it due for a clean.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a compacted log whose oldest uncompacted record is older
    /// is cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone of a compacted log stays readable.
    pub delete_retention_ms: i64,
    /// `flush.policy`: `always` (fsync before ack) or `interval`.
    pub flush_policy: FlushPolicyKind,
    /// `flush.ms`: fsync period under `flush.policy=interval`.
    pub flush_ms: u64,
    /// `unclean.leader.election.enable`: let an out-of-sync replica lead when no in-sync one
    /// is live (availability over durability).
    pub unclean_leader_election: bool,
    /// `confluent.key.schema.validation`: every record's key must carry the ID of a
    /// schema registered under the topic's key subject (Confluent's wire format).
    pub key_schema_validation: bool,
    /// `confluent.value.schema.validation`: the same for every record's value.
    pub value_schema_validation: bool,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            remote_storage_enable: false,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            min_insync_replicas: 1,
            max_message_bytes: 1024 * 1024 + 12,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
            flush_policy: FlushPolicyKind::Always,
            flush_ms: 1000,
            unclean_leader_election: false,
            key_schema_validation: false,
            value_schema_validation: false,
        }
    }
}

/// The one subject name strategy served: a topic's key and value schemas are registered
/// under `<topic>-key` and `<topic>-value`.
pub const TOPIC_NAME_STRATEGY: &str = "io.confluent.kafka.serializers.subject.TopicNameStrategy";

/// One documented config key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// Kafka name.
    pub name: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

/// Every topic config key Shale knows, in documentation order.
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "retention.ms",
        doc: "delete data older than this (ms); -1 keeps it forever",
    },
    ConfigKey { name: "retention.bytes", doc: "per-partition size cap (bytes); -1 for none" },
    ConfigKey {
        name: "local.retention.ms",
        doc: "how long tiered data stays on local disk (ms); -2 = retention.ms",
    },
    ConfigKey {
        name: "local.retention.bytes",
        doc: "local tail size per partition (bytes); -2 = retention.bytes",
    },
    ConfigKey { name: "remote.storage.enable", doc: "tier sealed segments to the object store" },
    ConfigKey { name: "segment.bytes", doc: "roll the active segment at this size (bytes)" },
    ConfigKey { name: "segment.ms", doc: "roll the active segment at this age (ms)" },
    ConfigKey { name: "min.insync.replicas", doc: "in-sync replicas an acks=all write needs" },
    ConfigKey { name: "max.message.bytes", doc: "largest record batch accepted (bytes)" },
    ConfigKey {
        name: "cleanup.policy",
        doc: "delete, compact (keep each key's latest record), or compact,delete",
    },
    ConfigKey {
        name: "min.cleanable.dirty.ratio",
        doc: "dirty share of a compacted log that makes it due for a clean (0 to 1)",
    },
    ConfigKey {
        name: "min.compaction.lag.ms",
        doc: "records younger than this are not compacted (ms)",
    },
    ConfigKey {
        name: "max.compaction.lag.ms",
        doc: "records older than this are compacted whatever the dirty ratio (ms)",
    },
    ConfigKey {
        name: "delete.retention.ms",
        doc: "how long a compacted log's tombstones stay readable (ms)",
    },
    ConfigKey { name: "flush.policy", doc: "always: fsync before ack; interval: every flush.ms" },
    ConfigKey { name: "flush.ms", doc: "fsync period under flush.policy=interval (ms)" },
    ConfigKey {
        name: "unclean.leader.election.enable",
        doc: "let an out-of-sync replica lead when no in-sync one is live (may lose data)",
    },
    ConfigKey {
        name: "confluent.key.schema.validation",
        doc: "refuse records whose key lacks the ID of a schema under <topic>-key",
    },
    ConfigKey {
        name: "confluent.value.schema.validation",
        doc: "refuse records whose value lacks the ID of a schema under <topic>-value",
    },
    ConfigKey {
        name: "confluent.key.subject.name.strategy",
        doc: "how the key subject is named (TopicNameStrategy only)",
    },
    ConfigKey {
        name: "confluent.value.subject.name.strategy",
        doc: "how the value subject is named (TopicNameStrategy only)",
    },
];

fn bad(key: &str, value: &str, expected: &str) -> Error {
    Error::new(
        crate::error::ErrorKind::Invalid,
        Reason::InvalidConfig,
        format!("invalid value {value:?} for topic config {key}: expected {expected}"),
    )
    .with("key", key)
    .with("value", value)
}

/// The error for a config key Shale does not know, listing the ones it does.
pub fn unknown_key(key: &str) -> Error {
    let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    Error::new(
        crate::error::ErrorKind::Invalid,
        Reason::UnknownConfig,
        format!("unknown topic config {key:?}; known keys: {}", known.join(", ")),
    )
    .with("key", key)
}

/// Whether `key` is a topic config Shale knows.
pub fn is_known_key(key: &str) -> bool {
    KEYS.iter().any(|k| k.name == key)
}

fn boolean(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "true or false")),
    }
}

fn int_at_least(key: &str, value: &str, min: i64) -> Result<i64, Error> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(bad(key, value, &format!("an integer >= {min}"))),
    }
}

impl TopicConfig {
    /// Sets one key from its string form, validating it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "retention.ms" => self.retention_ms = int_at_least(key, value, -1)?,
            "retention.bytes" => self.retention_bytes = int_at_least(key, value, -1)?,
            "local.retention.ms" => self.local_retention_ms = int_at_least(key, value, -2)?,
            "local.retention.bytes" => self.local_retention_bytes = int_at_least(key, value, -2)?,
            "remote.storage.enable" => self.remote_storage_enable = boolean(key, value)?,
            "segment.bytes" => {
                let v = int_at_least(key, value, 1024)?;
                self.segment_bytes =
                    u64::try_from(v).map_err(|_| bad(key, value, "an integer >= 1024"))?;
            }
            "segment.ms" => self.segment_ms = int_at_least(key, value, 1)?,
            "min.insync.replicas" => {
                let v = int_at_least(key, value, 1)?;
                self.min_insync_replicas =
                    u32::try_from(v).map_err(|_| bad(key, value, "an integer from 1 to 2^32-1"))?;
            }
            "max.message.bytes" => {
                let v = int_at_least(key, value, 128)?;
                self.max_message_bytes = u32::try_from(v)
                    .ok()
                    .filter(|v| *v <= 256 * 1024 * 1024)
                    .ok_or_else(|| bad(key, value, "an integer from 128 to 268435456"))?;
            }
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                self.cleanup_policy = match parts.as_slice() {
                    ["delete"] => CleanupPolicy::Delete,
                    ["compact"] => CleanupPolicy::Compact,
                    ["compact", "delete"] => CleanupPolicy::CompactDelete,
                    _ => return Err(bad(key, value, "delete, compact, or compact,delete")),
                }
            }
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| bad(key, value, "a number from 0 to 1"))?;
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int_at_least(key, value, 0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = int_at_least(key, value, 1)?,
            "delete.retention.ms" => self.delete_retention_ms = int_at_least(key, value, 0)?,
            "flush.policy" => {
                self.flush_policy = match value.trim() {
                    "always" => FlushPolicyKind::Always,
                    "interval" => FlushPolicyKind::Interval,
                    _ => return Err(bad(key, value, "always or interval")),
                }
            }
            "flush.ms" => {
                let v = int_at_least(key, value, 1)?;
                self.flush_ms = v as u64;
            }
            "unclean.leader.election.enable" => self.unclean_leader_election = boolean(key, value)?,
            "confluent.key.schema.validation" => self.key_schema_validation = boolean(key, value)?,
            "confluent.value.schema.validation" => {
                self.value_schema_validation = boolean(key, value)?
            }
            "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy" => {
                if value.trim() != TOPIC_NAME_STRATEGY {
                    return Err(bad(
                        key,
                        value,
                        &format!(
                            "{TOPIC_NAME_STRATEGY} (RecordNameStrategy and \
                             TopicRecordNameStrategy are not served)"
                        ),
                    ));
                }
            }
            other => return Err(unknown_key(other)),
        }
        Ok(())
    }

    /// The string form of one key's value, or `None` for an unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "remote.storage.enable" => self.remote_storage_enable.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.as_str().to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "flush.policy" => match self.flush_policy {
                FlushPolicyKind::Always => "always",
                FlushPolicyKind::Interval => "interval",
            }
            .to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election.to_string(),
            "confluent.key.schema.validation" => self.key_schema_validation.to_string(),
            "confluent.value.schema.validation" => self.value_schema_validation.to_string(),
            "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy" => {
                TOPIC_NAME_STRATEGY.to_string()
            }
            _ => return None,
        })
    }

    /// Checks rules that span keys.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(bad(
                "min.compaction.lag.ms",
                &self.min_compaction_lag_ms.to_string(),
                &format!("at most max.compaction.lag.ms ({})", self.max_compaction_lag_ms),
            ));
        }
        if self.retention_ms >= 0
            && self.local_retention_ms >= 0
            && self.local_retention_ms > self.retention_ms
        {
            return Err(bad(
                "local.retention.ms",
                &self.local_retention_ms.to_string(),
                &format!("at most retention.ms ({})", self.retention_ms),
            ));
        }
        if self.retention_bytes >= 0
            && self.local_retention_bytes >= 0
            && self.local_retention_bytes > self.retention_bytes
        {
            return Err(bad(
                "local.retention.bytes",
                &self.local_retention_bytes.to_string(),
                &format!("at most retention.bytes ({})", self.retention_bytes),
            ));
        }
        Ok(())
    }

    /// Defaults overlaid with a topic's overrides, validated.
    pub fn resolve(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, Error> {
        let mut config = defaults.clone();
        for (k, v) in overrides {
            config.set(k, v)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Every key with its value and source (`topic` if overridden, else `default`).
    pub fn entries(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<(String, String, &'static str)> {
        KEYS.iter()
            .map(|k| {
                let source = if overrides.contains_key(k.name) { "topic" } else { "default" };
                (k.name.to_string(), self.get(k.name).unwrap_or_default(), source)
            })
            .collect()
    }

    /// The fsync period under `flush.policy=interval`.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let c = TopicConfig::default();
        for k in KEYS {
            let v = c.get(k.name).expect("every documented key has a value");
            let mut d = TopicConfig::default();
            d.set(k.name, &v).expect("a default value is valid");
            assert_eq!(c, d, "{}", k.name);
        }
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let mut c = TopicConfig::default();
        let e = c.set("retention.hours", "1").unwrap_err();
        assert_eq!(e.reason, "UNKNOWN_CONFIG");
        assert!(e.message.contains("retention.hours"), "{}", e.message);
        let e = c.set("segment.bytes", "12").unwrap_err();
        assert!(
            e.message.contains("segment.bytes") && e.message.contains("\"12\""),
            "{}",
            e.message
        );
        let e = c.set("flush.policy", "sometimes").unwrap_err();
        assert!(e.message.contains("always or interval"), "{}", e.message);
        assert!(c.set("cleanup.policy", "compacted").is_err());
        let e = c.set("min.cleanable.dirty.ratio", "1.5").unwrap_err();
        assert!(e.message.contains("from 0 to 1"), "{}", e.message);
        let e = c.set("confluent.value.schema.validation", "yes").unwrap_err();
        assert!(e.message.contains("\"yes\"") && e.message.contains("true or false"));
        let strategy = "io.confluent.kafka.serializers.subject.RecordNameStrategy";
        let e = c.set("confluent.value.subject.name.strategy", strategy).unwrap_err();
        assert!(e.message.contains(strategy) && e.message.contains(TOPIC_NAME_STRATEGY));
        c.set("confluent.key.subject.name.strategy", TOPIC_NAME_STRATEGY).unwrap();
    }

    #[test]
    fn resolve_checks_cross_key_rules() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("local.retention.ms".to_string(), "2000".to_string());
        let e = TopicConfig::resolve(&TopicConfig::default(), &o).unwrap_err();
        assert!(e.message.contains("local.retention.ms"), "{}", e.message);
    }

    #[test]
    fn cleanup_policies_parse_in_either_order_and_compacted_topics_may_tier() {
        let mut c = TopicConfig::default();
        for (value, policy) in [
            ("compact", CleanupPolicy::Compact),
            ("delete, compact", CleanupPolicy::CompactDelete),
            ("compact,delete", CleanupPolicy::CompactDelete),
            ("delete", CleanupPolicy::Delete),
        ] {
            c.set("cleanup.policy", value).expect(value);
            assert_eq!(c.cleanup_policy, policy, "{value}");
        }
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        o.insert("remote.storage.enable".to_string(), "true".to_string());
        let tiered = TopicConfig::resolve(&TopicConfig::default(), &o).unwrap();
        assert!(tiered.cleanup_policy.compacts() && tiered.remote_storage_enable);
        o.remove("remote.storage.enable");
        o.insert("min.compaction.lag.ms".to_string(), "10".to_string());
        o.insert("max.compaction.lag.ms".to_string(), "5".to_string());
        let e = TopicConfig::resolve(&TopicConfig::default(), &o).unwrap_err();
        assert!(e.message.contains("max.compaction.lag.ms (5)"), "{}", e.message);
    }
}
