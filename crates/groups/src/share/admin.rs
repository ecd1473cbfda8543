//! An administrator's view and changes of a share group's state (Kafka's
//! DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets): each share
//! partition's start offset, read from the store; moved or forgotten only while the group
//! has no members. A change is written with a bump of the group's reset marker
//! (`share_resets/{g}`), which every broker follows, so a leader that holds the group's
//! partitions drops them and loads the new state on their next use.

use std::collections::{BTreeMap, BTreeSet};

use super::partitions::ShareStateRecord;
use crate::offsets::{Stored, group_not_empty, group_not_found};
use crate::records::{self, GroupRecord};
use crate::{Coordinator, GroupHost, assignor::Assignor};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_group;
use shale_core::offsets::OffsetSpec;
use shale_meta::{Compare, Txn, TxnOp};

use crate::configs::ShareReset;

/// A share partition's start offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareOffset {
    pub topic: String,
    pub partition: u32,
    /// The share partition start offset; -1 when the partition has no state (yet).
    pub start: i64,
    /// The leader epoch of the leader that last claimed it; -1 without state.
    pub leader_epoch: i32,
}

impl Coordinator {
    /// `group`'s stored share states by (topic, partition), of topics that still are the
    /// incarnation they were written for.
    pub(crate) async fn share_states(
        &self,
        b: &dyn GroupHost,
        group: &str,
    ) -> Result<BTreeMap<(String, u32), ShareStateRecord>, Error> {
        let prefix = self.keys().group_share_states(group);
        let mut out = BTreeMap::new();
        for kv in self.meta().range(&prefix).await?.kvs {
            let Some(parts) = self.keys().components(&prefix, &kv.key) else { continue };
            let [topic, p] = parts.as_slice() else { continue };
            let Ok(p) = p.parse::<u32>() else { continue };
            let what = format!("share group {group:?}'s state of {topic}/{p}");
            let record: ShareStateRecord = records::decode(&kv.value, &what)?;
            let current = b.topic_record(topic).map(|t| t.id).unwrap_or_default();
            if record.topic_id == current {
                out.insert((topic.clone(), p), record);
            }
        }
        Ok(out)
    }

    /// `group` as stored: GROUP_ID_NOT_FOUND if it is another kind, or when `must_exist`
    /// and it has neither a group state nor share state.
    async fn stored_share_group(
        &self,
        group: &str,
        states: &BTreeMap<(String, u32), ShareStateRecord>,
        must_exist: bool,
    ) -> Result<Stored, Error> {
        validate_group(group)?;
        let stored = self.stored(group).await?;
        match &stored.record {
            Some(r) if !r.share => Err(Error::new(
                ErrorKind::NotFound,
                Reason::GroupNotFound,
                format!("group {group:?} is not a share group"),
            )
            .with("group", group)),
            None if must_exist && states.is_empty() => Err(group_not_found(group)),
            _ => Ok(stored),
        }
    }

    /// The start offsets of `group`'s share partitions: of `topics` (every partition of
    /// each; -1 where there is no state), or of every partition with state.
    pub async fn share_offsets(
        &self,
        b: &dyn GroupHost,
        group: &str,
        topics: Option<&[(String, Vec<u32>)]>,
    ) -> Result<Vec<ShareOffset>, Error> {
        let states = self.share_states(b, group).await?;
        self.stored_share_group(group, &states, true).await?;
        let offset = |(t, p): (String, u32)| {
            let s = states.get(&(t.clone(), p));
            ShareOffset {
                start: s.map_or(-1, |s| s.start),
                leader_epoch: s.map_or(-1, |s| s.leader_epoch),
                topic: t,
                partition: p,
            }
        };
        Ok(match topics {
            None => states.keys().cloned().map(offset).collect(),
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .map(offset)
                .collect(),
        })
    }

    /// Moves the start offsets of `group`'s share partitions (GROUP_NOT_EMPTY while it has
    /// members): each one starts over at its offset with nothing in flight. A group id
    /// not in use becomes an empty share group.
    pub async fn alter_share_offsets(
        &self,
        b: &dyn GroupHost,
        group: &str,
        offsets: &[(String, u32, i64)],
    ) -> Result<(), Error> {
        let states = self.share_states(b, group).await?;
        let stored = self.stored_share_group(group, &states, false).await?;
        if !stored.members.is_empty() {
            return Err(group_not_empty(group, stored.members.len(), "alter the share offsets of"));
        }
        let mut txn = Txn::new()
            .when(Compare::mod_revision(self.keys().group_state(group), stored.state_rev));
        if stored.record.is_none() {
            let record =
                GroupRecord { assignor: Assignor::Simple, kafka: true, share: true, epoch: 0 };
            txn =
                txn.and_then(TxnOp::put(self.keys().group_state(group), records::encode(&record)));
        }
        let mut seen = BTreeSet::new();
        for (topic, p, start) in offsets {
            let entry = b.topic_record(topic)?;
            if *p >= entry.partitions {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    Reason::UnknownPartition,
                    format!("topic {topic:?} has no partition {p}"),
                )
                .with("topic", topic.as_str())
                .with("partition", *p));
            }
            if *start < 0 || !seen.insert((topic.clone(), *p)) {
                return Err(Error::invalid(format!(
                    "start offset {start} of {topic}/{p} is negative or given twice"
                ))
                .with("offset", *start));
            }
            let leader_epoch = states.get(&(topic.clone(), *p)).map_or(0, |s| s.leader_epoch);
            let record =
                ShareStateRecord { topic_id: entry.id, leader_epoch, start: *start, runs: vec![] };
            let key = self.keys().share_state(group, topic, *p);
            txn = txn.and_then(TxnOp::put(key, records::encode(&record)));
        }
        self.commit_share_change(group, txn).await
    }

    /// Forgets the state of `topics` in `group` (GROUP_NOT_EMPTY while it has members):
    /// a member given them later starts by `share.auto.offset.reset`.
    pub async fn delete_share_offsets(
        &self,
        b: &dyn GroupHost,
        group: &str,
        topics: &[String],
    ) -> Result<(), Error> {
        let states = self.share_states(b, group).await?;
        let stored = self.stored_share_group(group, &states, true).await?;
        if !stored.members.is_empty() {
            return Err(group_not_empty(
                group,
                stored.members.len(),
                "delete the share offsets of",
            ));
        }
        let mut txn = Txn::new()
            .when(Compare::mod_revision(self.keys().group_state(group), stored.state_rev));
        for topic in topics {
            let prefix = self.keys().group_topic_share_states(group, topic);
            txn = txn.and_then(TxnOp::delete_prefix(prefix));
        }
        self.commit_share_change(group, txn).await
    }

    /// Writes the state of each partition of `assigned` that has none, starting at the log
    /// end (`share.auto.offset.reset=latest`) or start (`earliest`) as of now. Best effort:
    /// a partition left out is initialized by its leader at the first fetch.
    pub(crate) async fn init_share_partitions(
        &self,
        b: &dyn GroupHost,
        group: &str,
        assigned: &BTreeSet<(String, u32)>,
    ) {
        let mut reset = None;
        for (topic, p) in assigned {
            let Ok(entry) = b.topic_record(topic) else { continue };
            let known = (group.to_string(), topic.clone(), *p, entry.id.clone());
            if self.share_initialized(&known) {
                continue;
            }
            let reset = match reset {
                Some(r) => r,
                None => *reset.insert(self.share_configs(group, b.now_ms()).await.reset),
            };
            let spec = match reset {
                ShareReset::Latest => OffsetSpec::Latest,
                ShareReset::Earliest => OffsetSpec::Earliest,
            };
            let start = match b.list_offsets(topic, *p, spec).await {
                Ok(listed) => listed.offset,
                Err(e) => {
                    tracing::debug!(group, topic, partition = p, error = %e,
                        "share partition not initialized here; its leader will");
                    continue;
                }
            };
            let key = self.keys().share_state(group, topic, *p);
            let record =
                ShareStateRecord { topic_id: entry.id, leader_epoch: 0, start, runs: vec![] };
            // Written only where none is (another incarnation's is replaced).
            let stored = self.meta().get(&key).await.ok().flatten();
            let current = stored
                .as_ref()
                .and_then(|kv| records::decode::<ShareStateRecord>(&kv.value, "share state").ok());
            if current.is_some_and(|c| c.topic_id == record.topic_id) {
                self.mark_share_initialized(known);
                continue;
            }
            let rev = stored.map_or(0, |kv| kv.mod_revision);
            let txn = Txn::new()
                .when(Compare::mod_revision(key.clone(), rev))
                .and_then(TxnOp::put(key, records::encode(&record)));
            if self.meta().txn(txn).await.is_ok_and(|t| t.succeeded) {
                self.mark_share_initialized(known);
            }
        }
    }

    /// Commits an administrator's change of `group`'s share state with a bump of its reset
    /// marker, and drops what this broker holds of the group.
    pub(crate) async fn commit_share_change(&self, group: &str, txn: Txn) -> Result<(), Error> {
        let marker = records::encode(&shale_core::clock::system().now_ms());
        let txn = txn.and_then(TxnOp::put(self.keys().share_reset(group), marker));
        if !self.meta().txn(txn).await?.succeeded {
            return Err(Error::unavailable(format!(
                "group {group:?} changed meanwhile (a member joined?); retry"
            )));
        }
        self.shares().forget(group);
        self.forget_share_initialized(group);
        Ok(())
    }
}
