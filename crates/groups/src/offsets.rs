//! Committed offsets and group administration, served by any broker straight from etcd.

use std::collections::{BTreeMap, BTreeSet};

use super::Coordinator;
use super::GroupHost;
use super::records::{self, GroupRecord, MemberRecord, OffsetRecord};
use super::types::{CommitOffsets, CommittedOffset, OffsetToCommit, ResetOffsets, ResetTo};
use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};
use shale_core::names::validate_group;
use shale_meta::keys::Keys;
use shale_meta::{Compare, KeyValue, MetaStore, Txn, TxnOp};

/// Puts per etcd transaction (etcd's default `--max-txn-ops` is 128; one goes to the
/// compare). A commit of more partitions is split, each part fenced the same way.
const PUTS_PER_TXN: usize = 120;

/// Attempts of a commit whose fence moved (the member's record changed) before it failed.
const COMMIT_ATTEMPTS: usize = 5;

fn fenced_member(group: &str, member: &str, why: String) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::FencedMember,
        format!("commit to group {group:?} refused: {why}"),
    )
    .with("group", group)
    .with("member_id", member)
}

/// `STALE_MEMBER_EPOCH`: a current member committed at an epoch or for a partition that
/// is not (or not yet) its own; it retries once its heartbeat brought its assignment.
fn stale_epoch(group: &str, member: &str, why: String) -> Error {
    Error::new(
        ErrorKind::Fenced,
        Reason::StaleMemberEpoch,
        format!("commit to group {group:?} refused: {why}"),
    )
    .with("group", group)
    .with("member_id", member)
}

pub(super) fn group_not_empty(group: &str, members: usize, what: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::GroupNotEmpty,
        format!(
            "cannot {what} group {group:?}: it has {members} active member(s); stop them (or wait \
             for their sessions to time out) first"
        ),
    )
    .with("group", group)
}

pub(super) fn group_not_found(group: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        Reason::GroupNotFound,
        format!("group {group:?} does not exist"),
    )
    .with("group", group)
}

/// An offset to store: topic, partition, record.
type ToStore = (String, u32, OffsetRecord);

/// Largest metadata a commit may carry per partition (Kafka's `offset.metadata.max.bytes`).
const MAX_METADATA_BYTES: usize = 4096;

/// The record `o` is stored as, committed at `now_ms`, once checked: the partition exists,
/// the offset is not negative, the metadata is not too long. Every kind of group commits
/// through this check.
pub(crate) fn offset_record(
    b: &dyn GroupHost,
    o: &OffsetToCommit,
    now_ms: i64,
) -> Result<OffsetRecord, Error> {
    let entry = b.topic_record(&o.topic)?;
    if o.partition >= entry.partitions {
        return Err(shale_core::error::partition_out_of_range(
            &o.topic,
            o.partition,
            entry.partitions,
        ));
    }
    if o.offset < 0 {
        return Err(Error::invalid(format!(
            "offset {} for {}-{} is negative",
            o.offset, o.topic, o.partition
        ))
        .with("offset", o.offset));
    }
    if o.metadata.len() > MAX_METADATA_BYTES {
        return Err(Error::invalid(format!(
            "commit metadata of {} bytes for {}-{} is over {MAX_METADATA_BYTES}",
            o.metadata.len(),
            o.topic,
            o.partition
        )));
    }
    Ok(OffsetRecord {
        offset: o.offset,
        metadata: o.metadata.clone(),
        commit_ms: now_ms,
        topic_id: entry.id.clone(),
    })
}

/// One store transaction of `puts` (at most [`PUTS_PER_TXN`]) under `fence`.
fn fenced_txn(fence: Compare, puts: &[TxnOp]) -> Txn {
    puts.iter().fold(Txn::new().when(fence), |t, op| t.and_then(op.clone()))
}

/// Writes `offsets` of `group` at `now`, each transaction of [`PUTS_PER_TXN`] under the
/// same `fence`; false if the fence failed (the group changed hands or state meanwhile).
pub(crate) async fn put_offsets_fenced(
    meta: &dyn MetaStore,
    keys: &Keys,
    b: &dyn GroupHost,
    group: &str,
    fence: Compare,
    offsets: &[OffsetToCommit],
) -> Result<bool, Error> {
    let now = b.now_ms();
    let mut puts = Vec::with_capacity(offsets.len());
    for o in offsets {
        let record = offset_record(b, o, now)?;
        puts.push(TxnOp::put(keys.offset(group, &o.topic, o.partition), records::encode(&record)));
    }
    for chunk in puts.chunks(PUTS_PER_TXN) {
        if !meta.txn(fenced_txn(fence.clone(), chunk)).await?.succeeded {
            return Ok(false);
        }
    }
    Ok(true)
}

fn partitions_of(records: &[ToStore]) -> BTreeSet<(String, u32)> {
    records.iter().map(|(t, p, _)| (t.clone(), *p)).collect()
}

/// The group's state and member records as stored, with the state key's mod revision.
pub(super) struct Stored {
    pub(super) state_rev: i64,
    pub(super) record: Option<GroupRecord>,
    pub(super) members: BTreeMap<String, (MemberRecord, i64)>,
}

impl Coordinator {
    pub(super) async fn stored(&self, group: &str) -> Result<Stored, Error> {
        let state_key = self.keys().group_state(group);
        let prefix = self.keys().group_members(group);
        let range = self.meta().range(&self.keys().group(group)).await?;
        let mut out = Stored { state_rev: 0, record: None, members: BTreeMap::new() };
        for kv in range.kvs {
            if kv.key == state_key {
                out.record = Some(records::decode(&kv.value, &format!("group {group:?} state"))?);
                out.state_rev = kv.mod_revision;
            } else if let Some(id) =
                self.keys().components(&prefix, &kv.key).and_then(|c| c.into_iter().next())
            {
                let rec: MemberRecord =
                    records::decode(&kv.value, &format!("member {id:?} of group {group:?}"))?;
                out.members.insert(id, (rec, kv.mod_revision));
            }
        }
        Ok(out)
    }

    /// The offset records of `req` (each checked by [`offset_record`], each partition
    /// once), committed now.
    fn offset_records(b: &dyn GroupHost, req: &CommitOffsets) -> Result<Vec<ToStore>, Error> {
        validate_group(&req.group)?;
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(req.offsets.len());
        let now = b.now_ms();
        for o in &req.offsets {
            let record = offset_record(b, o, now)?;
            if !seen.insert((o.topic.clone(), o.partition)) {
                return Err(Error::invalid(format!(
                    "{}-{} appears twice in one commit",
                    o.topic, o.partition
                )));
            }
            out.push((o.topic.clone(), o.partition, record));
        }
        Ok(out)
    }

    /// Checks offsets a transactional producer commits for its consumer (gRPC's
    /// `SendOffsets`) as [`commit`](Self::commit) checks them, the member's fence included,
    /// without writing them: the records its transaction writes if it commits.
    pub async fn check_txn_commit(
        &self,
        b: &dyn GroupHost,
        req: &CommitOffsets,
    ) -> Result<Vec<ToStore>, Error> {
        let records = Self::offset_records(b, req)?;
        if !records.is_empty() {
            self.commit_fence(&req.group, req, &partitions_of(&records)).await?;
        }
        Ok(records)
    }

    /// Commits offsets in one transaction (per 120 partitions), fenced by the member.
    pub async fn commit(&self, b: &dyn GroupHost, req: CommitOffsets) -> Result<(), Error> {
        let group = req.group.as_str();
        let records = Self::offset_records(b, &req)?;
        let seen = partitions_of(&records);
        let puts: Vec<TxnOp> = records
            .iter()
            .map(|(topic, p, record)| {
                TxnOp::put(self.keys().offset(group, topic, *p), records::encode(record))
            })
            .collect();
        for chunk in puts.chunks(PUTS_PER_TXN) {
            let mut done = false;
            for _ in 0..COMMIT_ATTEMPTS {
                let fence = self.commit_fence(group, &req, &seen).await?;
                if self.meta().txn(fenced_txn(fence, chunk)).await?.succeeded {
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(Error::unavailable(format!(
                    "group {group:?} kept changing during the commit; retry"
                )));
            }
        }
        Ok(())
    }

    /// The compare that fences a commit: the member's record as read now (it must exist and
    /// own every partition committed), or, for a commit outside the group protocol, the
    /// group state of a group without members.
    async fn commit_fence(
        &self,
        group: &str,
        req: &CommitOffsets,
        partitions: &BTreeSet<(String, u32)>,
    ) -> Result<Compare, Error> {
        if req.member_id.is_empty() {
            let stored = self.stored(group).await?;
            if !stored.members.is_empty() {
                return Err(fenced_member(
                    group,
                    "",
                    format!(
                        "the group has {} active member(s); only they may commit (join the \
                         group, or commit under another group id)",
                        stored.members.len()
                    ),
                ));
            }
            return Ok(Compare::mod_revision(self.keys().group_state(group), stored.state_rev));
        }
        let key = self.keys().group_member(group, &req.member_id);
        let Some(kv) = self.meta().get(&key).await? else {
            return Err(fenced_member(
                group,
                &req.member_id,
                format!(
                    "member {:?} is not in the group (its session timed out, it left or was \
                     removed); rejoin",
                    req.member_id
                ),
            ));
        };
        let rec: MemberRecord = records::decode(&kv.value, &format!("member {:?}", req.member_id))?;
        if req.member_epoch > rec.epoch {
            return Err(stale_epoch(
                group,
                &req.member_id,
                format!(
                    "member epoch {} is newer than the group's {}",
                    req.member_epoch, rec.epoch
                ),
            ));
        }
        let owned: BTreeSet<(String, u32)> = records::to_set(&rec.assigned)
            .union(&records::to_set(&rec.revoking))
            .cloned()
            .collect();
        if let Some((t, p)) = partitions.iter().find(|tp| !owned.contains(*tp)) {
            return Err(stale_epoch(
                group,
                &req.member_id,
                format!("member {:?} does not own {t}-{p}", req.member_id),
            ));
        }
        Ok(Compare::mod_revision(key, kv.mod_revision))
    }

    /// Committed offsets of `group` (for `topics`, or all), skipping offsets of deleted
    /// topic incarnations.
    pub async fn fetch_offsets(
        &self,
        b: &dyn GroupHost,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<CommittedOffset>, Error> {
        validate_group(group)?;
        let kvs: Vec<KeyValue> = if topics.is_empty() {
            self.meta().range(&self.keys().group_offsets(group)).await?.kvs
        } else {
            let mut all = Vec::new();
            for t in topics {
                all.extend(
                    self.meta().range(&self.keys().group_topic_offsets(group, t)).await?.kvs,
                );
            }
            all
        };
        let prefix = self.keys().group_offsets(group);
        let mut out = Vec::new();
        for kv in kvs {
            let Some(parts) = self.keys().components(&prefix, &kv.key) else { continue };
            let [topic, partition] = parts.as_slice() else { continue };
            let Ok(partition) = partition.parse::<u32>() else { continue };
            let rec: OffsetRecord =
                records::decode(&kv.value, &format!("offset of {topic}-{partition}"))?;
            let current = b.topic_record(topic).ok();
            if current.is_none_or(|e| e.id != rec.topic_id) {
                continue;
            }
            out.push(CommittedOffset {
                topic: topic.clone(),
                partition,
                offset: rec.offset,
                metadata: rec.metadata,
                commit_time_ms: rec.commit_ms,
            });
        }
        Ok(out)
    }

    /// Sets committed offsets of an empty group.
    pub async fn reset_offsets(
        &self,
        b: &dyn GroupHost,
        req: ResetOffsets,
    ) -> Result<Vec<CommittedOffset>, Error> {
        use shale_core::offsets::OffsetSpec as Spec;
        let group = req.group.as_str();
        validate_group(group)?;
        let entry = b.topic_record(&req.topic)?;
        let partitions: Vec<u32> = if req.partitions.is_empty() {
            (0..entry.partitions).collect()
        } else {
            req.partitions.clone()
        };
        if let Some(p) = partitions.iter().find(|p| **p >= entry.partitions) {
            return Err(shale_core::error::partition_out_of_range(
                &req.topic,
                *p,
                entry.partitions,
            ));
        }
        let stored = self.stored(group).await?;
        if !stored.members.is_empty() {
            return Err(group_not_empty(group, stored.members.len(), "reset the offsets of"));
        }
        let now = b.now_ms();
        let mut out = Vec::new();
        let mut txn = Txn::new()
            .when(Compare::mod_revision(self.keys().group_state(group), stored.state_rev));
        for p in partitions {
            let offsets = |spec| b.list_offsets(&req.topic, p, spec);
            let offset = match req.to {
                ResetTo::Earliest => offsets(Spec::Earliest).await?.offset,
                ResetTo::Latest => offsets(Spec::Latest).await?.offset,
                ResetTo::Timestamp(ts) => {
                    let r = offsets(Spec::Timestamp(ts)).await?;
                    if r.offset < 0 { r.high_watermark } else { r.offset }
                }
                ResetTo::Offset(o) => {
                    let r = offsets(Spec::Latest).await?;
                    if o < r.log_start_offset || o > r.high_watermark {
                        let (start, hw) = (r.log_start_offset, r.high_watermark);
                        return Err(offset_out_of_range(o, start, hw, RangeEnd::HighWatermark)
                            .with("topic", &req.topic)
                            .with("partition", p));
                    }
                    o
                }
            };
            let record = OffsetRecord {
                offset,
                metadata: String::new(),
                commit_ms: now,
                topic_id: entry.id.clone(),
            };
            txn = txn.and_then(TxnOp::put(
                self.keys().offset(group, &req.topic, p),
                records::encode(&record),
            ));
            out.push(CommittedOffset {
                topic: req.topic.clone(),
                partition: p,
                offset,
                metadata: String::new(),
                commit_time_ms: now,
            });
        }
        if !req.dry_run && !self.meta().txn(txn).await?.succeeded {
            return Err(Error::unavailable(format!(
                "group {group:?} changed during the reset (a member joined?); retry"
            )));
        }
        Ok(out)
    }

    /// Removes an empty group's state and offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), Error> {
        validate_group(group)?;
        let stored = self.stored(group).await?;
        if !stored.members.is_empty() {
            return Err(group_not_empty(group, stored.members.len(), "delete"));
        }
        let classic = self.classic().stored_members(group).await?;
        if let Some((members, _)) = classic.filter(|(m, _)| *m > 0) {
            return Err(group_not_empty(group, members, "delete"));
        }
        let offsets = self.meta().range(&self.keys().group_offsets(group)).await?;
        let shares = self.meta().range(&self.keys().group_share_states(group)).await?;
        if stored.record.is_none()
            && classic.is_none()
            && offsets.kvs.is_empty()
            && shares.kvs.is_empty()
        {
            return Err(group_not_found(group));
        }
        let classic_rev = classic.map_or(0, |(_, rev)| rev);
        let txn = Txn::new()
            .when(Compare::mod_revision(self.keys().group_state(group), stored.state_rev))
            .when(Compare::mod_revision(self.keys().group_classic(group), classic_rev))
            .and_then(TxnOp::delete_prefix(self.keys().group(group)))
            .and_then(TxnOp::delete_prefix(self.keys().group_offsets(group)));
        match shares.kvs.is_empty() {
            true => {
                if !self.meta().txn(txn).await?.succeeded {
                    return Err(Error::unavailable(format!(
                        "group {group:?} changed during the delete (a member joined?); retry"
                    )));
                }
            }
            // A share group's partitions' states go too; their leaders drop them.
            false => {
                let txn = txn.and_then(TxnOp::delete_prefix(self.keys().group_share_states(group)));
                self.commit_share_change(group, txn).await?;
            }
        }
        self.classic().forget(group);
        Ok(())
    }

    /// Removes committed offsets of `partitions` of a group, unless a member of it is
    /// assigned the topic now (GROUP_SUBSCRIBED_TO_TOPIC, per partition). The outcome per
    /// partition, in order.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        validate_group(group)?;
        let stored = self.stored(group).await?;
        let classic = self.classic().describe(group).await?;
        if stored.record.is_none() && classic.is_none() {
            let offsets = self.meta().range(&self.keys().group_offsets(group)).await?;
            if offsets.kvs.is_empty() {
                return Err(group_not_found(group));
            }
        }
        let mut busy: BTreeSet<String> = BTreeSet::new();
        for (m, _) in stored.members.values() {
            busy.extend(m.assigned.keys().cloned());
            busy.extend(m.topics.iter().cloned());
        }
        for m in classic.iter().flat_map(|c| c.members.values()) {
            busy.extend(m.assigned.keys().cloned());
        }
        let mut out = Vec::with_capacity(partitions.len());
        let mut txn = Txn::new();
        for (topic, p) in partitions {
            if busy.contains(topic) {
                out.push(Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::GroupSubscribedToTopic,
                    format!("group {group:?} has members consuming {topic:?}; stop them first"),
                )));
                continue;
            }
            txn = txn.and_then(TxnOp::delete(self.keys().offset(group, topic, *p)));
            out.push(Ok(()));
        }
        self.meta().txn(txn).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::types::{CommitOffsets, OffsetToCommit};
    use crate::test_host::{Host, coordinator};
    use shale_core::clock;
    use shale_meta::{EmbeddedStore, MetaStore};

    fn commit(partition: u32, offset: i64) -> CommitOffsets {
        CommitOffsets {
            group: "g".into(),
            member_id: String::new(),
            member_epoch: 0,
            offsets: vec![OffsetToCommit {
                topic: "orders".into(),
                partition,
                offset,
                metadata: String::new(),
            }],
        }
    }

    /// The coordinator runs on any `GroupHost`: offsets commit, read back, and a partition
    /// past the topic's count is refused by name, without a broker.
    #[tokio::test]
    async fn offsets_commit_and_read_back_on_a_host_that_is_not_a_broker() {
        let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
        let (c, host) = (coordinator(&store), Host::new(&[("orders", 2)]));
        c.commit(&host, commit(1, 42)).await.unwrap();
        let got = c.fetch_offsets(&host, "g", &["orders".to_string()]).await.unwrap();
        let offsets: Vec<(&str, u32, i64)> =
            got.iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
        assert_eq!(offsets, vec![("orders", 1, 42)]);
        let e = c.commit(&host, commit(2, 1)).await.unwrap_err();
        assert_eq!(e.reason, "UNKNOWN_PARTITION");
        assert_eq!(e.details["partition"], "2");
    }
}
