//! Transactions as a front end calls them. A transactional producer's requests (Write on
//! its transactional id) go to the id's coordinator, which answers `NOT_COORDINATOR`
//! elsewhere; its offsets go to the group's coordinator, which checks them and hands them
//! to the id's. Operators list and describe transactions (Kafka's ListTransactions and
//! DescribeTransactions): each broker answers for the ids it coordinates, and shows only
//! those the caller may Describe.

use super::{Api, Identity};
use crate::acl::{Operation, ResourceType};
use crate::groups::classic::OffsetToCommit;
use crate::txn::state::{EndAsk, TxnRecord, TxnState};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::topics::BrokerRecord;

/// A partition as a transactional request names it.
pub type TxnPartition = (String, i32);

/// The consumer a transactional producer commits offsets for (KIP-447), as
/// `TxnOffsetCommit` names it: member id, static instance id, generation. An older client
/// names none (`""`, `None`, -1).
#[derive(Debug, Clone, Copy)]
pub struct TxnCommitter<'a> {
    /// The member id.
    pub member: &'a str,
    /// The static instance id.
    pub instance: Option<&'a str>,
    /// The group generation.
    pub generation: i32,
}

/// Which transactions [`Api::list_transactions`] lists (every part empty or unset: all).
#[derive(Debug, Clone, Default)]
pub struct TxnFilter {
    /// Kafka's state names (`Ongoing`, `CompleteCommit`, ...).
    pub states: Vec<String>,
    /// Producer ids.
    pub producer_ids: Vec<i64>,
    /// Only transactions open longer than this (ms), as Kafka's `DurationFilter`.
    pub open_longer_than_ms: Option<i64>,
}

/// The state names Kafka knows, those this broker's records take among them.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

/// Kafka's state names that no record takes but a filter may name.
const OTHER_KAFKA_STATES: [&str; 2] = ["Dead", "PrepareEpochFence"];

/// `filter`'s state names that are no state Kafka knows.
fn unknown_states(filter: &TxnFilter) -> Vec<String> {
    let known = |s: &str| STATES.iter().any(|k| k.name() == s) || OTHER_KAFKA_STATES.contains(&s);
    filter.states.iter().filter(|s| !known(s)).cloned().collect()
}

impl Api {
    /// The broker coordinating transactional id `id` (Describe on it).
    pub fn find_txn_coordinator(&self, who: &Identity, id: &str) -> Result<BrokerRecord, Error> {
        let acl = self.broker.acl();
        acl.check(who, "FindCoordinator", Operation::Describe, ResourceType::TransactionalId, id)?;
        if id.is_empty() {
            return Err(Error::invalid("a transactional id must not be empty"));
        }
        self.coordinator_record(id, "transactional id")
    }

    fn check_txn_write(&self, who: &Identity, action: &str, id: &str) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, action, Operation::Write, ResourceType::TransactionalId, id)
    }

    /// `InitProducerId` with transactional id `id` (Write on it): the producer id and epoch
    /// of its new instance, which fences every older one. `expected` is the id and epoch
    /// the producer had, when it asks to keep them (KIP-360).
    pub async fn init_transactional_producer(
        &self,
        who: &Identity,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), Error> {
        self.check_txn_write(who, "InitProducerId", id)?;
        self.broker.txn()?.init_producer_id(id, timeout_ms, expected).await
    }

    /// `AddPartitionsToTxn` (transactions v1; Write on the id and on each topic): the
    /// outcome per partition. When any partition fails its checks none is added, and the
    /// others are `OPERATION_NOT_ATTEMPTED`, as Kafka answers.
    pub async fn add_partitions_to_txn(
        &self,
        who: &Identity,
        id: &str,
        producer: (i64, i16),
        partitions: Vec<TxnPartition>,
    ) -> Result<Vec<(TxnPartition, Result<(), Error>)>, Error> {
        self.check_txn_write(who, "AddPartitionsToTxn", id)?;
        let acl = self.broker.acl();
        let checked: Vec<(TxnPartition, Result<u32, Error>)> = partitions
            .into_iter()
            .map(|(topic, p)| {
                let ok = acl
                    .check(who, "AddPartitionsToTxn", Operation::Write, ResourceType::Topic, &topic)
                    .and_then(|()| self.partition_index(&topic, p));
                ((topic, p), ok)
            })
            .collect();
        if checked.iter().any(|(_, r)| r.is_err()) {
            return Ok(checked
                .into_iter()
                .map(|(tp, r)| {
                    let r = r.and_then(|_| {
                        Err(Error::new(
                            ErrorKind::Invalid,
                            Reason::OperationNotAttempted,
                            format!(
                                "{}-{} was not added: another partition of the request failed",
                                tp.0, tp.1
                            ),
                        ))
                    });
                    (tp, r)
                })
                .collect());
        }
        let adding: Vec<(String, u32)> =
            checked.iter().filter_map(|((t, _), r)| Some((t.clone(), *r.as_ref().ok()?))).collect();
        let done = self.broker.txn()?.add(id, producer, &adding, &[], false).await;
        Ok(checked.into_iter().map(|(tp, _)| (tp, done.clone())).collect())
    }

    /// Partition `p` of `topic` when the topic has it.
    fn partition_index(&self, topic: &str, p: i32) -> Result<u32, Error> {
        let t = self.broker.topic(topic)?;
        match u32::try_from(p) {
            Ok(index) if index < t.record.partitions => Ok(index),
            _ => Err(shale_core::error::partition_out_of_range(
                topic,
                u32::try_from(p).unwrap_or(u32::MAX),
                t.record.partitions,
            )),
        }
    }

    /// `AddOffsetsToTxn` (transactions v1; Write on the id, Read on the group): the group's
    /// offsets will commit with the producer's transaction.
    pub async fn add_offsets_to_txn(
        &self,
        who: &Identity,
        id: &str,
        producer: (i64, i16),
        group: &str,
    ) -> Result<(), Error> {
        self.check_txn_write(who, "AddOffsetsToTxn", id)?;
        let acl = self.broker.acl();
        acl.check(who, "AddOffsetsToTxn", Operation::Read, ResourceType::Group, group)?;
        shale_core::names::validate_group(group)?;
        self.broker.txn()?.add(id, producer, &[], &[group.to_string()], false).await
    }

    /// `TxnOffsetCommit`, at the group's coordinator (Write on the id, Read on the group and
    /// on each topic): checks the offsets and the committing consumer, then hands them to
    /// the id's coordinator, which commits them with the transaction. The outcome per
    /// partition; a topic the caller may not read fails its partitions alone. In
    /// transactions v2 (`tv2`) the group joins the transaction here.
    pub async fn txn_offset_commit(
        &self,
        who: &Identity,
        (id, producer): (&str, (i64, i16)),
        group: &str,
        committer: TxnCommitter<'_>,
        offsets: Vec<OffsetToCommit>,
        tv2: bool,
    ) -> Result<Vec<(OffsetToCommit, Result<(), Error>)>, Error> {
        self.check_txn_write(who, "TxnOffsetCommit", id)?;
        let acl = self.broker.acl();
        acl.check(who, "TxnOffsetCommit", Operation::Read, ResourceType::Group, group)?;
        self.broker.check_serving()?;
        let mut out = Vec::with_capacity(offsets.len());
        let mut allowed = Vec::with_capacity(offsets.len());
        for o in offsets {
            match acl.check(who, "TxnOffsetCommit", Operation::Read, ResourceType::Topic, &o.topic)
            {
                Ok(()) => allowed.push(o),
                Err(e) => out.push((o, Err(e))),
            }
        }
        if allowed.is_empty() {
            return Ok(out);
        }
        let b = &self.broker;
        let member = (committer.member, committer.instance, committer.generation);
        let checked = b.groups().classic().check_txn_commit(b.as_ref(), group, member, &allowed);
        let done = match checked.await {
            Ok(records) => b.add_txn_offsets(id, producer, group, &records, tv2).await,
            Err(e) => Err(e),
        };
        out.extend(allowed.into_iter().map(|o| (o, done.clone())));
        Ok(out)
    }

    /// `EndTxn` (Write on the id): commits or aborts the producer's transaction. Answered
    /// once the decision is stored; its markers follow. The producer id and epoch for the
    /// next transaction (transactions v2 bumps the epoch at each end).
    pub async fn end_txn(
        &self,
        who: &Identity,
        id: &str,
        producer: (i64, i16),
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), Error> {
        self.check_txn_write(who, "EndTxn", id)?;
        let now_ms = self.broker.clock().now_ms();
        let ask = EndAsk { producer_id: producer.0, epoch: producer.1, commit, tv2, now_ms };
        self.broker.txn()?.end(id, ask).await
    }

    /// The broker that coordinates transactional id `id` (id, address), if any is live.
    pub fn txn_coordinator(&self, id: &str) -> Option<(i32, String)> {
        self.group_coordinator(id)
    }

    /// Offsets a transactional producer commits for its consumer in Shale's groups
    /// (gRPC's `SendOffsets`: Write on the id, Read on the group and the topics): checked
    /// with the member's fence as `CommitOffsets` checks them, then handed to the id's
    /// coordinator (transactions v2: the group joins the transaction).
    pub async fn send_txn_offsets(
        &self,
        who: &Identity,
        (id, producer): (&str, (i64, i16)),
        req: &crate::groups::CommitOffsets,
    ) -> Result<(), Error> {
        self.check_txn_write(who, "SendOffsets", id)?;
        let topics = req.offsets.iter().map(|o| o.topic.as_str());
        self.check_group_and_topics(who, "SendOffsets", Operation::Read, &req.group, topics)?;
        let b = &self.broker;
        b.check_serving()?;
        let records = b.groups().check_txn_commit(b.as_ref(), req).await?;
        if records.is_empty() {
            return Ok(());
        }
        b.add_txn_offsets(id, producer, &req.group, &records, true).await
    }

    /// Every transaction of the cluster that `filter` selects and `who` may Describe, with
    /// the broker coordinating its id (gRPC's `ListTransactions`; Kafka's asks each broker
    /// for its own, [`list_transactions`](Self::list_transactions)).
    pub async fn list_all_transactions(
        &self,
        who: &Identity,
        filter: &TxnFilter,
    ) -> Result<Vec<(String, TxnRecord, Option<i32>)>, Error> {
        if let Some(s) = unknown_states(filter).first() {
            return Err(Error::invalid(format!(
                "{s:?} is not a transaction state (one of {})",
                STATES.map(|k| k.name()).join(", ")
            )));
        }
        let now_ms = self.broker.clock().now_ms();
        let mut all = self.broker.txn()?.list_all().await?;
        all.retain(|(id, r, _)| self.selects(who, filter, id, r, now_ms));
        Ok(all)
    }

    /// An operator's abort of the open transaction of `id` (Write on it), which this broker
    /// must coordinate: aborted as at its timeout, fencing its producer.
    pub async fn abort_transaction(&self, who: &Identity, id: &str) -> Result<(), Error> {
        self.check_txn_write(who, "AbortTransaction", id)?;
        self.broker.txn()?.abort_by_operator(id).await
    }

    /// Whether `filter` selects the transaction of `id` and `who` may Describe it.
    fn selects(
        &self,
        who: &Identity,
        filter: &TxnFilter,
        id: &str,
        r: &TxnRecord,
        now_ms: i64,
    ) -> bool {
        let state_ok =
            filter.states.is_empty() || filter.states.iter().any(|s| s == r.state.name());
        let pid_ok = filter.producer_ids.is_empty() || filter.producer_ids.contains(&r.producer_id);
        let old_enough = filter
            .open_longer_than_ms
            .is_none_or(|d| r.started_ms >= 0 && now_ms - r.started_ms > d);
        let acl = self.broker.acl();
        state_ok
            && pid_ok
            && old_enough
            && acl.allows(who, Operation::Describe, ResourceType::TransactionalId, id)
    }

    /// The transactions this broker coordinates that `filter` selects and `who` may
    /// Describe, by transactional id; and the filter's state names that are no state.
    pub async fn list_transactions(
        &self,
        who: &Identity,
        filter: &TxnFilter,
    ) -> Result<(Vec<(String, TxnRecord)>, Vec<String>), Error> {
        let unknown = unknown_states(filter);
        let now_ms = self.broker.clock().now_ms();
        let mut out = self.broker.txn()?.list().await?;
        out.retain(|(id, r)| self.selects(who, filter, id, r, now_ms));
        Ok((out, unknown))
    }

    /// The transaction of transactional id `id` (Describe on it), which this broker must
    /// coordinate.
    pub async fn describe_transaction(&self, who: &Identity, id: &str) -> Result<TxnRecord, Error> {
        let acl = self.broker.acl();
        acl.check(
            who,
            "DescribeTransactions",
            Operation::Describe,
            ResourceType::TransactionalId,
            id,
        )?;
        self.broker.txn()?.describe(id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                Reason::TransactionalIdNotFound,
                format!("transactional id {id:?} has no transaction here"),
            )
        })
    }
}
