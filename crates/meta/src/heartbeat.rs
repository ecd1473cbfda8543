//! Heartbeats: a leader lease much shorter than the membership lease, so a frozen broker
//! (SIGSTOP, a paused VM, a stalled disk) is replaced in well under a second instead of
//! after its 10 s lease, while one that is only busy is not.
//!
//! **Beating.** Every `interval` a broker rewrites `heartbeats/{id}` (bound to its lease)
//! with a compare on the key's mod revision it last wrote. A beat sent at `t` that
//! succeeded makes the broker *beat-valid* until `t + validity`; [`Membership::is_live`](crate::membership::Membership::is_live)
//! requires it, so a broker whose beats stop stops acknowledging within `validity` of its
//! last successful one, by its own clock, whatever else it is doing.
//!
//! **Fencing** (`watchdog`). Every broker watches the heartbeats. One whose key has not changed for
//! `timeout` (> `validity`) since the watcher *saw* it change is fenced: a transaction that
//! holds only if the key still has the revision the watcher saw, and replaces it with
//! `fenced`. The controller fences any broker; any broker fences the controller (and
//! deletes the controller key in the same transaction, so the next election starts at
//! once). A fenced broker's beats fail their compare from then on, so it is never
//! beat-valid again under that key's history. Safety: the fence commits at least `timeout`
//! after the watcher saw the last beat, which committed after it was sent; the broker
//! stopped trusting that beat `validity` after sending it, `timeout - validity` earlier.
//! The margin absorbs clock-rate differences between machines (parts per million, here a
//! fifth).
//!
//! **Moving away.** The controller plans as if fenced brokers were not live, and each of
//! its writes compares every fenced broker's heartbeat revision: if the broker came back
//! meanwhile, the write fails and the next pass plans with it live.
//!
//! **Coming back.** A fenced broker that wakes finds its beat refused and the key saying
//! `fenced`. It replaces `fenced` with a beat (a compare on the fenced revision) and starts
//! a new membership *session*: like after a lost lease, it re-reads the metadata, at a
//! revision after its un-fencing and so after every move its fence allowed, before it leads
//! anything again. Until then it acknowledges nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::json::encode;
use super::{Compare, Keys, LeaseId, MetaStore, Revision, Txn, TxnOp, Versioned};
use shale_core::error::Error;

/// How often beats go out, how long one keeps a broker valid, and how long a silence gets
/// a broker fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// Between beats.
    pub interval: Duration,
    /// A broker fenced after this long without a beat seen; it trusts a beat for
    /// `timeout - interval` after sending it.
    pub timeout: Duration,
}

impl HeartbeatSettings {
    /// How long a successful beat keeps its sender valid, counted from when it was sent.
    pub fn validity(&self) -> Duration {
        self.timeout.saturating_sub(self.interval)
    }
}

/// What `heartbeats/{id}` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beat {
    /// The broker's latest beat.
    Alive {
        /// The beating process.
        incarnation: u64,
        /// The lease the key is bound to (a fence keeps it bound to the same one).
        lease: LeaseId,
    },
    /// Fenced by broker `by`: no beat was seen for the heartbeat timeout.
    Fenced {
        /// The process that was fenced.
        incarnation: u64,
        /// The lease the key is bound to.
        lease: LeaseId,
        /// The broker that fenced it.
        by: i32,
    },
}

/// A beat's outcome, for [`Membership`]'s loop.
pub(crate) enum Beaten {
    /// Written at this revision.
    Written(Revision),
    /// The key says fenced, at this revision, by this broker.
    Fenced(Revision, i32),
    /// The key changed otherwise (a lost answer, a new lease): beat again from here.
    Moved(Revision),
}

/// One beat of broker `id`: rewrites its key if it still has revision `last` (0: absent).
pub(crate) async fn beat(
    store: &Arc<dyn MetaStore>,
    key: &str,
    last: Revision,
    beat: &Beat,
    lease: LeaseId,
) -> Result<Beaten, Error> {
    let txn = Txn::new().when(Compare::mod_revision(key, last)).and_then(TxnOp::put_with_lease(
        key,
        encode(key, beat)?,
        lease,
    ));
    let outcome = store.txn(txn).await?;
    if outcome.succeeded {
        return Ok(Beaten::Written(outcome.revision));
    }
    Ok(match store.get(key).await? {
        None => Beaten::Moved(0),
        Some(kv) => match Versioned::<Beat>::decode(kv.clone()).map(|v| v.value) {
            Ok(Beat::Fenced { by, .. }) => Beaten::Fenced(kv.mod_revision, by),
            _ => Beaten::Moved(kv.mod_revision),
        },
    })
}

/// The brokers whose heartbeat says fenced, with the key's mod revision: the controller
/// plans without them, and each of its writes holds only while those revisions stand.
pub async fn fenced(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
) -> Result<Vec<(i32, Revision)>, Error> {
    let all = store.range(&keys.heartbeats()).await?;
    Ok(all
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let id = kv.key.strip_prefix(&keys.heartbeats())?.parse().ok()?;
            let rev = kv.mod_revision;
            match Versioned::<Beat>::decode(kv).ok()?.value {
                Beat::Fenced { .. } => Some((id, rev)),
                Beat::Alive { .. } => None,
            }
        })
        .collect())
}
