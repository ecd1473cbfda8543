//! Transactions as operators see them (Kafka's ListTransactions and DescribeTransactions):
//! each broker answers for the transactional ids it coordinates, and shows only those the
//! caller may Describe.

use super::{Api, Identity};
use crate::acl::{Operation, ResourceType};
use crate::txn::state::{TxnRecord, TxnState};
use shale_core::error::{Error, ErrorKind, Reason};

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

impl Api {
    /// The transactions this broker coordinates that `filter` selects and `who` may
    /// Describe, by transactional id; and the filter's state names that are no state.
    pub async fn list_transactions(
        &self,
        who: &Identity,
        filter: &TxnFilter,
    ) -> Result<(Vec<(String, TxnRecord)>, Vec<String>), Error> {
        let known =
            |s: &str| STATES.iter().any(|k| k.name() == s) || OTHER_KAFKA_STATES.contains(&s);
        let unknown: Vec<String> = filter.states.iter().filter(|s| !known(s)).cloned().collect();
        let now_ms = self.broker.clock().now_ms();
        let acl = self.broker.acl();
        let mut out = Vec::new();
        for (id, r) in self.broker.txn()?.list().await? {
            let state_ok =
                filter.states.is_empty() || filter.states.iter().any(|s| s == r.state.name());
            let pid_ok =
                filter.producer_ids.is_empty() || filter.producer_ids.contains(&r.producer_id);
            let old_enough = filter.open_longer_than_ms.is_none_or(|d| now_ms - r.started_ms > d);
            let visible = acl.allows(who, Operation::Describe, ResourceType::TransactionalId, &id);
            if state_ok && pid_ok && old_enough && visible {
                out.push((id, r));
            }
        }
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
