//! Per-group configs: Kafka's GROUP config resource (KIP-848), set with
//! IncrementalAlterConfigs or AlterConfigs and read with DescribeConfigs. A group may
//! override the broker's session timeout and heartbeat interval for its consumer-protocol
//! members (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`).
//!
//! Overrides live at `group_configs/{g}` (JSON, key → value), apart from the group's own
//! keys, so a group with only configs is not listed as a group. Any broker may change them;
//! each coordinator reads them when it loads a group and again, for the groups it holds,
//! at most once a second from its sweep, so a change applies to the next heartbeat after
//! that. A session timeout applies to members at once: the sweep times them out by it.

use std::collections::BTreeMap;

use super::Coordinator;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_group;

/// `consumer.session.timeout.ms`.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// How often the sweep reads the overrides of the groups this broker holds (ms).
const REFRESH_EVERY_MS: i64 = 1_000;

/// A group's overrides, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) session_timeout_ms: Option<u32>,
    pub(crate) heartbeat_interval_ms: Option<u32>,
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

impl Coordinator {
    /// `raw` parsed and checked: known keys, whole numbers in the broker's bounds, the
    /// heartbeat interval below the session timeout.
    fn parse_overrides(&self, raw: &BTreeMap<String, String>) -> Result<Overrides, Error> {
        let s = &self.settings;
        let mut out = Overrides::default();
        for (key, value) in raw {
            let ms: u32 = value.trim().parse().map_err(|_| {
                invalid_config(key, value, "not a whole number of milliseconds".into())
            })?;
            match key.as_str() {
                SESSION_TIMEOUT => {
                    let (min, max) = (s.min_session_timeout_ms, s.max_session_timeout_ms);
                    if !(min..=max).contains(&ms) {
                        let why = format!("outside the broker's bounds {min}..={max}");
                        return Err(invalid_config(key, value, why));
                    }
                    out.session_timeout_ms = Some(ms);
                }
                HEARTBEAT_INTERVAL => {
                    if ms == 0 {
                        return Err(invalid_config(key, value, "must be above 0".into()));
                    }
                    out.heartbeat_interval_ms = Some(ms);
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
        let session = out.session_timeout_ms.unwrap_or(s.consumer_session_timeout_ms);
        if let Some(beat) = out.heartbeat_interval_ms
            && beat >= session
        {
            let why = format!("must be below the session timeout, {session} ms");
            return Err(invalid_config(HEARTBEAT_INTERVAL, &beat.to_string(), why));
        }
        Ok(out)
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
            (SESSION_TIMEOUT, s.consumer_session_timeout_ms),
            (HEARTBEAT_INTERVAL, s.consumer_heartbeat_interval_ms),
        ];
        Ok(KEYS
            .iter()
            .zip(defaults)
            .map(|((name, doc), (_, default))| GroupConfig {
                name: name.to_string(),
                value: raw.get(*name).cloned().unwrap_or_else(|| default.to_string()),
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
        let txn =
            shale_meta::Txn::new().when(shale_meta::Compare::mod_revision(key, rev)).and_then(op);
        if !self.meta().txn(txn).await?.succeeded {
            return Err(Error::unavailable(format!(
                "the configs of group {group:?} changed meanwhile; retry"
            )));
        }
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
