//! Per-group configs: Kafka's GROUP config resource (KIP-848, KIP-932), set with
//! IncrementalAlterConfigs or AlterConfigs and read with DescribeConfigs. A group may
//! override the broker's session timeout and heartbeat interval for its consumer-protocol
//! members (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`) and its share
//! members (`share.session.timeout.ms`, `share.heartbeat.interval.ms`), and say how its
//! share partitions deliver: where a new one starts (`share.auto.offset.reset`), what it
//! reads of transactions (`share.isolation.level`), how long a record stays with the
//! member that acquired it (`share.record.lock.duration.ms`), how many deliveries a
//! record gets (`share.delivery.count.limit`) and where the records it rejects or gives up
//! on are copied (`errors.deadletterqueue.topic.name`, KIP-1191's name; the topic's name
//! must start with the broker's `groups.share_dead_letter_topic_prefix`, so a group cannot
//! make the broker write into any topic).
//!
//! Overrides live at `group_configs/{g}` (JSON, key → value), apart from the group's own
//! keys, so a group with only configs is not listed as a group. Any broker may change them;
//! each coordinator reads them when it loads a group and again, for the groups it holds,
//! at most once a second from its sweep, so a change applies to the next heartbeat after
//! that. A session timeout applies to members at once: the sweep times them out by it.
//! Share partitions' leaders read them at most once a second as well ([`Coordinator::share_configs`]).

use std::collections::BTreeMap;

use super::Coordinator;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_group;

/// `consumer.session.timeout.ms`.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";
/// `share.session.timeout.ms`.
pub const SHARE_SESSION_TIMEOUT: &str = "share.session.timeout.ms";
/// `share.heartbeat.interval.ms`.
pub const SHARE_HEARTBEAT_INTERVAL: &str = "share.heartbeat.interval.ms";
/// `share.auto.offset.reset`.
pub const SHARE_RESET: &str = "share.auto.offset.reset";
/// `share.isolation.level`.
pub const SHARE_ISOLATION: &str = "share.isolation.level";
/// `share.record.lock.duration.ms`.
pub const SHARE_LOCK: &str = "share.record.lock.duration.ms";
/// `share.delivery.count.limit`.
pub const SHARE_DELIVERY_LIMIT: &str = "share.delivery.count.limit";
/// `errors.deadletterqueue.topic.name` (KIP-1191).
pub const SHARE_DEAD_LETTER_TOPIC: &str = "errors.deadletterqueue.topic.name";

/// How often the sweep reads the overrides of the groups this broker holds (ms).
const REFRESH_EVERY_MS: i64 = 1_000;

/// Where a share partition without state starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShareReset {
    /// At the log's end: only records written from then on (Kafka's default).
    #[default]
    Latest,
    /// At the log's start.
    Earliest,
}

/// A group's overrides, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) session_timeout_ms: Option<u32>,
    pub(crate) heartbeat_interval_ms: Option<u32>,
    pub(crate) share_session_timeout_ms: Option<u32>,
    pub(crate) share_heartbeat_interval_ms: Option<u32>,
    pub(crate) share_reset: Option<ShareReset>,
    pub(crate) share_read_committed: Option<bool>,
    pub(crate) share_lock_ms: Option<u32>,
    pub(crate) share_delivery_limit: Option<u16>,
    pub(crate) share_dead_letter_topic: Option<String>,
}

/// How a share group's partitions deliver, its overrides over the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfigs {
    pub reset: ShareReset,
    /// Only committed transactions' records, below the last stable offset.
    pub read_committed: bool,
    pub lock_ms: u32,
    pub delivery_limit: u16,
    /// The broker's bound on records in flight per share partition.
    pub max_in_flight: usize,
    /// Where records rejected or past the delivery limit are copied, if anywhere.
    pub dead_letter_topic: Option<String>,
}

/// One config of a group as described: its name, its value, and whether the group sets
/// it (else it is the broker's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub value: String,
    pub overridden: bool,
    pub doc: &'static str,
}

/// The configs a group may set, with their documentation.
pub const KEYS: &[(&str, &str)] = &[
    (
        SESSION_TIMEOUT,
        "A consumer-protocol member is removed after this long without a heartbeat (ms).",
    ),
    (HEARTBEAT_INTERVAL, "How often consumer-protocol members heartbeat (ms)."),
    (SHARE_SESSION_TIMEOUT, "A share member is removed after this long without a heartbeat (ms)."),
    (SHARE_HEARTBEAT_INTERVAL, "How often share members heartbeat (ms)."),
    (
        SHARE_RESET,
        "Where a share partition without state starts: latest (the log's end) or earliest.",
    ),
    (
        SHARE_ISOLATION,
        "read_uncommitted, or read_committed: only records of committed transactions.",
    ),
    (SHARE_LOCK, "How long a record stays with the share member that acquired it (ms)."),
    (
        SHARE_DELIVERY_LIMIT,
        "Deliveries a record gets at most; released or lapsed past it, it is archived.",
    ),
    (
        SHARE_DEAD_LETTER_TOPIC,
        "A topic (named with the broker's dead-letter prefix) that receives a copy of each \
         record the share group rejects or gives up on, with the reason in its headers.",
    ),
];

fn invalid_config(key: &str, value: &str, why: String) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::InvalidConfig,
        format!("group config {key}={value:?} is invalid: {why}"),
    )
    .with("config", key)
    .with("value", value)
}

/// `value` as a whole number in `min..=max`, or INVALID_CONFIG naming both.
fn number_in(key: &str, value: &str, min: u32, max: u32) -> Result<u32, Error> {
    let n: u32 = value
        .trim()
        .parse()
        .map_err(|_| invalid_config(key, value, "not a whole number".into()))?;
    if !(min..=max).contains(&n) {
        return Err(invalid_config(
            key,
            value,
            format!("outside the broker's bounds {min}..={max}"),
        ));
    }
    Ok(n)
}

impl Coordinator {
    /// `raw` parsed and checked: known keys, values in the broker's bounds, each heartbeat
    /// interval below its session timeout.
    fn parse_overrides(&self, raw: &BTreeMap<String, String>) -> Result<Overrides, Error> {
        let s = &self.settings;
        let mut out = Overrides::default();
        let (min_session, max_session) = (s.min_session_timeout_ms, s.max_session_timeout_ms);
        for (key, value) in raw {
            match key.as_str() {
                SESSION_TIMEOUT => {
                    out.session_timeout_ms = Some(number_in(key, value, min_session, max_session)?)
                }
                HEARTBEAT_INTERVAL => {
                    out.heartbeat_interval_ms = Some(number_in(key, value, 1, u32::MAX)?)
                }
                SHARE_SESSION_TIMEOUT => {
                    out.share_session_timeout_ms =
                        Some(number_in(key, value, min_session, max_session)?)
                }
                SHARE_HEARTBEAT_INTERVAL => {
                    out.share_heartbeat_interval_ms = Some(number_in(key, value, 1, u32::MAX)?)
                }
                SHARE_RESET => {
                    out.share_reset = Some(match value.trim() {
                        "latest" => ShareReset::Latest,
                        "earliest" => ShareReset::Earliest,
                        _ => {
                            let why = "use \"latest\" or \"earliest\"".to_string();
                            return Err(invalid_config(key, value, why));
                        }
                    })
                }
                SHARE_ISOLATION => {
                    out.share_read_committed = Some(match value.trim() {
                        "read_uncommitted" => false,
                        "read_committed" => true,
                        _ => {
                            let why = "use \"read_uncommitted\" or \"read_committed\"".into();
                            return Err(invalid_config(key, value, why));
                        }
                    })
                }
                SHARE_LOCK => {
                    let (min, max) =
                        (s.share_min_record_lock_duration_ms, s.share_max_record_lock_duration_ms);
                    out.share_lock_ms = Some(number_in(key, value, min, max)?)
                }
                SHARE_DEAD_LETTER_TOPIC => {
                    let name = value.trim();
                    let prefix = &s.share_dead_letter_topic_prefix;
                    if name.is_empty() {
                        out.share_dead_letter_topic = None;
                        continue;
                    }
                    shale_core::names::validate_topic_name(name)
                        .map_err(|e| invalid_config(key, value, e.message))?;
                    if !name.starts_with(prefix.as_str()) {
                        let why = format!("a dead-letter topic's name must start with {prefix:?}");
                        return Err(invalid_config(key, value, why));
                    }
                    out.share_dead_letter_topic = Some(name.to_string());
                }
                SHARE_DELIVERY_LIMIT => {
                    let (min, max) =
                        (s.share_min_delivery_count_limit, s.share_max_delivery_count_limit);
                    out.share_delivery_limit =
                        Some(number_in(key, value, u32::from(min), u32::from(max))? as u16)
                }
                other => {
                    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        Reason::UnknownConfig,
                        format!("unknown group config {other:?}: known are {}", known.join(", ")),
                    )
                    .with("config", other));
                }
            }
        }
        let pairs = [
            (
                HEARTBEAT_INTERVAL,
                out.heartbeat_interval_ms,
                out.session_timeout_ms.unwrap_or(s.consumer_session_timeout_ms),
            ),
            (
                SHARE_HEARTBEAT_INTERVAL,
                out.share_heartbeat_interval_ms,
                out.share_session_timeout_ms.unwrap_or(s.share_session_timeout_ms),
            ),
        ];
        for (key, beat, session) in pairs {
            if let Some(beat) = beat
                && beat >= session
            {
                let why = format!("must be below the session timeout, {session} ms");
                return Err(invalid_config(key, &beat.to_string(), why));
            }
        }
        Ok(out)
    }

    /// How `group`'s share partitions deliver: its overrides, read at most once a
    /// second, over the broker's defaults.
    pub async fn share_configs(&self, group: &str, now_ms: i64) -> ShareConfigs {
        let cached = {
            let cache =
                self.share_configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.get(group).cloned()
        };
        let o = match cached {
            Some((o, at)) if now_ms - at < REFRESH_EVERY_MS => o,
            _ => {
                let o = self.load_overrides(group).await.unwrap_or_default();
                let mut cache =
                    self.share_configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.insert(group.to_string(), (o.clone(), now_ms));
                o
            }
        };
        let s = &self.settings;
        ShareConfigs {
            reset: o.share_reset.unwrap_or_default(),
            read_committed: o.share_read_committed.unwrap_or(false),
            lock_ms: o.share_lock_ms.unwrap_or(s.share_record_lock_duration_ms),
            delivery_limit: o.share_delivery_limit.unwrap_or(s.share_delivery_count_limit),
            max_in_flight: s.share_partition_max_record_locks as usize,
            dead_letter_topic: o.share_dead_letter_topic,
        }
    }

    async fn stored_configs(&self, group: &str) -> Result<(BTreeMap<String, String>, i64), Error> {
        let key = self.keys().group_config(group);
        match self.meta().get(&key).await? {
            None => Ok((BTreeMap::new(), 0)),
            Some(kv) => {
                let what = format!("configs of group {group:?}");
                Ok((super::records::decode(&kv.value, &what)?, kv.mod_revision))
            }
        }
    }

    /// Every config of `group`, its own value or the broker's default.
    pub async fn group_configs(&self, group: &str) -> Result<Vec<GroupConfig>, Error> {
        validate_group(group)?;
        let (raw, _) = self.stored_configs(group).await?;
        let s = &self.settings;
        let defaults = [
            (SESSION_TIMEOUT, s.consumer_session_timeout_ms.to_string()),
            (HEARTBEAT_INTERVAL, s.consumer_heartbeat_interval_ms.to_string()),
            (SHARE_SESSION_TIMEOUT, s.share_session_timeout_ms.to_string()),
            (SHARE_HEARTBEAT_INTERVAL, s.share_heartbeat_interval_ms.to_string()),
            (SHARE_RESET, "latest".to_string()),
            (SHARE_ISOLATION, "read_uncommitted".to_string()),
            (SHARE_LOCK, s.share_record_lock_duration_ms.to_string()),
            (SHARE_DELIVERY_LIMIT, s.share_delivery_count_limit.to_string()),
            (SHARE_DEAD_LETTER_TOPIC, String::new()),
        ];
        Ok(KEYS
            .iter()
            .zip(defaults)
            .map(|((name, doc), (_, default))| GroupConfig {
                name: name.to_string(),
                value: raw.get(*name).cloned().unwrap_or(default),
                overridden: raw.contains_key(*name),
                doc,
            })
            .collect())
    }

    /// Sets `set` and removes `delete` from `group`'s overrides (checked together, so an
    /// interval valid only with the new session timeout is taken); nothing is written
    /// when `validate_only`.
    pub async fn alter_group_configs(
        &self,
        group: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<(), Error> {
        validate_group(group)?;
        let key = self.keys().group_config(group);
        // Changes of the same group by several clients at once all apply: a write that
        // lost its compare reads again and applies its change to what won.
        let mut attempts = 0;
        let parsed = loop {
            let (mut raw, rev) = self.stored_configs(group).await?;
            for k in delete {
                raw.remove(k);
            }
            raw.extend(set.iter().map(|(k, v)| (k.clone(), v.trim().to_string())));
            let parsed = self.parse_overrides(&raw)?;
            if validate_only {
                return Ok(());
            }
            let op = match raw.is_empty() {
                true => shale_meta::TxnOp::delete(key.clone()),
                false => shale_meta::TxnOp::put(key.clone(), super::records::encode(&raw)),
            };
            let compare = shale_meta::Compare::mod_revision(key.clone(), rev);
            if self.meta().txn(shale_meta::Txn::new().when(compare).and_then(op)).await?.succeeded {
                break parsed;
            }
            attempts += 1;
            if attempts == 10 {
                return Err(Error::unavailable(format!(
                    "the configs of group {group:?} kept changing under this change; retry"
                )));
            }
        };
        // Held here: at once; elsewhere: at the holder's next refresh.
        let slot = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(group)
            .cloned();
        if let Some(slot) = slot
            && let Some(g) = slot.lock().await.as_mut()
        {
            g.configs = parsed;
        }
        let mut cache =
            self.share_configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.remove(group);
        Ok(())
    }

    /// The overrides of `group` as stored, for a group being loaded; none when they no
    /// longer parse (the broker's bounds changed): the defaults apply.
    pub(crate) async fn load_overrides(&self, group: &str) -> Result<Overrides, Error> {
        let (raw, _) = self.stored_configs(group).await?;
        Ok(self.parse_overrides(&raw).unwrap_or_default())
    }

    /// Every group's overrides (one range), for the sweep to give the groups this broker
    /// holds; None when read less than [`REFRESH_EVERY_MS`] ago (or unreadable now).
    pub(crate) async fn due_overrides(&self, now_ms: i64) -> Option<BTreeMap<String, Overrides>> {
        {
            let mut last =
                self.configs_read_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if now_ms - *last < REFRESH_EVERY_MS {
                return None;
            }
            *last = now_ms;
        }
        let prefix = self.keys().group_configs();
        let range = self.meta().range(&prefix).await.ok()?;
        let mut all = BTreeMap::new();
        for kv in range.kvs {
            let name = self.keys().components(&prefix, &kv.key).and_then(|c| c.into_iter().next());
            let raw =
                super::records::decode::<BTreeMap<String, String>>(&kv.value, "group configs");
            if let (Some(name), Ok(raw)) = (name, raw) {
                all.insert(name, self.parse_overrides(&raw).unwrap_or_default());
            }
        }
        Some(all)
    }
}
