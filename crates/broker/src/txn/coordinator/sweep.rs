//! The coordinator's own decisions, made without a client asking: its periodic pass
//! (decided transactions finished after a coordinator's death, open ones aborted at their
//! timeout), an operator's abort, and the cluster-wide listing.

use std::sync::Arc;

use super::{TxnCoordinator, state};
use crate::txn::state::{TxnRecord, TxnState};
use shale_core::error::{Error, ErrorKind, Reason};

/// Why the coordinator aborts an open transaction on its own.
#[derive(Debug, Clone, Copy)]
enum AbortCause {
    /// It stayed open past its timeout.
    Timeout,
    /// An operator asked (`shale txn abort`).
    Operator,
}

impl AbortCause {
    /// The `cause` label of the aborts metric.
    fn name(self) -> &'static str {
        match self {
            AbortCause::Timeout => "timeout",
            AbortCause::Operator => "operator",
        }
    }
}

impl TxnCoordinator {
    /// One pass over the ids this broker coordinates: decided transactions whose markers
    /// are not all written (a coordinator died between decision and completion) are
    /// finished, and open ones past their timeout are aborted. How many of each.
    pub async fn sweep(self: &Arc<Self>) -> Result<(usize, usize), Error> {
        let (mut resumed, mut aborted) = (0, 0);
        let now_ms = self.host.now_ms();
        for (id, record) in self.list().await? {
            if record.state.is_prepare() {
                resumed += 1;
                self.spawn_finish(&id);
            } else if record.timed_out(now_ms) {
                match self.abort_timed_out(&id).await {
                    Ok(true) => aborted += 1,
                    Ok(false) => {}
                    Err(e) => tracing::info!(transactional_id = %id, error = %e,
                        "a timed-out transaction was not aborted here"),
                }
            }
        }
        Ok((resumed, aborted))
    }

    /// Aborts the id's open transaction if it is past its timeout (checked again under the
    /// id's lock); whether it did.
    async fn abort_timed_out(self: &Arc<Self>, id: &str) -> Result<bool, Error> {
        self.abort_open(id, AbortCause::Timeout).await
    }

    /// An operator's abort of the id's open transaction (`shale txn abort`), as at its
    /// timeout: the producer that opened it is fenced. `INVALID_TXN_STATE` when none is
    /// open.
    pub async fn abort_by_operator(self: &Arc<Self>, id: &str) -> Result<(), Error> {
        self.check_coordinates(id)?;
        match self.abort_open(id, AbortCause::Operator).await? {
            true => Ok(()),
            false => Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidTxnState,
                format!("transactional id {id:?} has no open transaction to abort"),
            )),
        }
    }

    /// Aborts the id's open transaction for `cause`: at its timeout only when past it
    /// (checked under the id's lock), for an operator whenever one is open. Whether it did.
    async fn abort_open(self: &Arc<Self>, id: &str, cause: AbortCause) -> Result<bool, Error> {
        let (mut slot, stored) = self.hold(id).await?;
        let Some(stored) = stored else { return Ok(false) };
        let now_ms = self.host.now_ms();
        let due = match cause {
            AbortCause::Timeout => stored.record.timed_out(now_ms),
            AbortCause::Operator => stored.record.state == TxnState::Ongoing,
        };
        let cause = cause.name();
        if !due {
            return Ok(false);
        }
        let spare = self.spare(id, state::end_needs_new_id(Some(&stored.record))).await?;
        let next = state::abort_timed_out(&stored.record, now_ms, spare)?;
        tracing::info!(transactional_id = %id, producer_id = next.producer_id, cause,
            started_ms = stored.record.started_ms, timeout_ms = stored.record.timeout_ms,
            "aborting an open transaction");
        let stored = self.write(id, &mut slot, next).await?;
        self.decided(&stored.record, cause);
        drop(slot);
        self.spawn_finish(id);
        Ok(true)
    }

    /// Every transactional id of the cluster with its record and the broker coordinating
    /// it (read from the store, so any broker answers for all).
    pub async fn list_all(&self) -> Result<Vec<(String, TxnRecord, Option<i32>)>, Error> {
        let all = self.store.list().await?;
        let candidates = self.host.coordinator_candidates();
        Ok(all
            .into_iter()
            .map(|(id, s)| {
                let by = crate::groups::coordinator_of(&id, &candidates).map(|(b, _)| b);
                (id, s.record, by)
            })
            .collect())
    }
}
