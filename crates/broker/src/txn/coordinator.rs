//! The transaction coordinator: each transactional id is coordinated by the live broker
//! that wins a rendezvous hash of the id (as groups are), which decides with the rules of
//! `state`, writes each decision to the store (`store`) before answering, and then writes
//! the decision's markers to the transaction's partitions and completes it.
//!
//! Every decision is durable before anything acts on it, so a coordinator may die at any
//! point: the next one (after a change of the live brokers, or its periodic sweep) finds a
//! record in `PrepareCommit` or `PrepareAbort` and writes the same markers again (a marker
//! for a transaction already ended on a partition ends nothing there), and finds open
//! transactions past their timeout and aborts them. A coordinator takes an id over by
//! claiming it (its coordinator epoch one higher), so the markers of one that lost it are
//! refused by the partitions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::offsets::PendingOffsets;
use super::state::{self, EndAsk, EndOutcome, InitAsk, InitOutcome, TxnRecord, TxnState};
use super::store::{Stored, TxnStore};
use crate::groups::records::OffsetRecord;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::control::{Marker, MarkerKind};

mod sweep;

/// What the coordinator needs from the broker it runs on.
#[async_trait]
pub trait TxnHost: Send + Sync {
    /// This broker's id.
    fn broker_id(&self) -> i32;

    /// Wall-clock milliseconds (transaction start times and timeouts).
    fn now_ms(&self) -> i64;

    /// Live brokers that may coordinate, as (id, address).
    fn coordinator_candidates(&self) -> Vec<(i32, String)>;

    /// A new producer id for transactional id `transactional_id`.
    async fn new_producer_id(&self, transactional_id: &str) -> Result<i64, Error>;

    /// Writes `marker` for `producer` on `topic`-`partition` at its leader, acknowledged by
    /// the in-sync replicas. A partition that no longer exists is `UNKNOWN_TOPIC` /
    /// `UNKNOWN_PARTITION`.
    async fn write_marker(
        &self,
        (topic, partition): (&str, u32),
        producer: (i64, i16),
        marker: Marker,
        tv2: bool,
    ) -> Result<(), Error>;
}

/// How long a producer's request waits for its decided transaction to complete (its
/// markers written) before it is answered CONCURRENT_TRANSACTIONS, which the client retries
/// only after its backoff (librdkafka's and the Java client's `retry.backoff.ms`, 100 ms):
/// completion takes a few milliseconds, so the next transaction usually starts at once.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// The coordinator's limits.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// The longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// The first pause before writing a failed marker again (doubling up to 5 s).
    pub marker_retry: Duration,
}

/// One transactional id as this broker holds it: its record once claimed here.
type Held = Arc<tokio::sync::Mutex<Option<Stored>>>;
/// An id held for one request: no other request on it runs meanwhile.
type Holding = tokio::sync::OwnedMutexGuard<Option<Stored>>;

/// How a transaction ended, for the metrics: (commit or abort, why).
pub type EndCause = (&'static str, &'static str);

/// What `/metrics` shows of the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnStats {
    /// Open transactions of the ids this broker coordinates.
    pub open: usize,
    /// How long the oldest of them has been open (ms), 0 with none.
    pub oldest_open_ms: i64,
    /// Transactions decided here, by (outcome, cause): a producer's `commit` or `abort`
    /// (`client`), or an `abort` by the coordinator (`timeout`, `fenced`).
    pub ended: Vec<(EndCause, u64)>,
}

/// The coordinator's counts: open transactions by id (their start), ends by cause.
#[derive(Debug, Default)]
struct Counts {
    open: HashMap<String, i64>,
    ended: std::collections::BTreeMap<EndCause, u64>,
}

/// The coordinator of the transactional ids this broker wins.
pub struct TxnCoordinator {
    host: Arc<dyn TxnHost>,
    store: TxnStore,
    offsets: PendingOffsets,
    settings: TxnSettings,
    held: Mutex<HashMap<String, Held>>,
    counts: Mutex<Counts>,
    /// Bumped at every write that leaves a decided state (a completion above all).
    settled: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator").field("broker", &self.host.broker_id()).finish()
    }
}

fn not_coordinator(id: &str, coordinator: Option<(i32, String)>) -> Error {
    let whom =
        coordinator.map_or("no live broker".to_string(), |(b, a)| format!("broker {b} ({a})"));
    Error::new(
        ErrorKind::NotLeader,
        Reason::NotCoordinator,
        format!("transactional id {id:?} is coordinated by {whom}; find the coordinator again"),
    )
}

fn invalid_id(id: &str) -> Result<(), Error> {
    match id.is_empty() {
        true => Err(Error::invalid("a transactional id must not be empty")),
        false => Ok(()),
    }
}

impl TxnCoordinator {
    /// A coordinator over `store` (and the transactions' pending `offsets`) on `host`.
    pub fn new(
        host: Arc<dyn TxnHost>,
        store: TxnStore,
        offsets: PendingOffsets,
        settings: TxnSettings,
    ) -> Arc<Self> {
        let (held, counts) = (Mutex::new(HashMap::new()), Mutex::new(Counts::default()));
        let settled = tokio::sync::watch::Sender::new(0);
        Arc::new(TxnCoordinator { host, store, offsets, settings, held, counts, settled })
    }

    /// Whether this broker wins `id` among `candidates` (live brokers, as (id, address)).
    fn wins(&self, id: &str, candidates: &[(i32, String)]) -> bool {
        crate::groups::coordinator_of(id, candidates)
            .is_some_and(|(b, _)| b == self.host.broker_id())
    }

    /// Whether this broker coordinates `id`.
    pub fn coordinates(&self, id: &str) -> bool {
        self.wins(id, &self.host.coordinator_candidates())
    }

    /// `Ok` if this broker coordinates `id`, else `NOT_COORDINATOR` naming the one that
    /// does.
    fn check_coordinates(&self, id: &str) -> Result<(), Error> {
        invalid_id(id)?;
        let candidates = self.host.coordinator_candidates();
        match self.wins(id, &candidates) {
            true => Ok(()),
            false => Err(not_coordinator(id, crate::groups::coordinator_of(id, &candidates))),
        }
    }

    /// Holds `id` for one request (`NOT_COORDINATOR` when another broker coordinates it):
    /// the hold and the id's stored record, claimed here the first time this broker holds
    /// it.
    async fn hold(&self, id: &str) -> Result<(Holding, Option<Stored>), Error> {
        self.check_coordinates(id)?;
        let held = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.entry(id.to_string()).or_default().clone()
        };
        let mut slot = held.lock_owned().await;
        if slot.is_none() {
            *slot = self.store.claim(id).await?;
        }
        let current = slot.clone();
        Ok((slot, current))
    }

    /// [`hold`](Self::hold), once `id`'s transaction is not between its decision and its
    /// completion, or [`SETTLE_WAIT`] has passed (the rules then answer
    /// CONCURRENT_TRANSACTIONS).
    async fn hold_settled(&self, id: &str) -> Result<(Holding, Option<Stored>), Error> {
        let deadline = shale_core::clock::monotonic_now() + SETTLE_WAIT;
        loop {
            let mut settled = self.settled.subscribe();
            let (slot, current) = self.hold(id).await?;
            let deciding = current.as_ref().is_some_and(|s| s.record.state.is_prepare());
            if !deciding || shale_core::clock::monotonic_now() >= deadline {
                return Ok((slot, current));
            }
            drop(slot);
            tokio::select! {
                _ = settled.changed() => {}
                _ = shale_core::clock::sleep_until(deadline) => {}
            }
        }
    }

    /// A new producer id for `id` when `needed` (the rules say when).
    async fn spare(&self, id: &str, needed: bool) -> Result<Option<i64>, Error> {
        match needed {
            true => Ok(Some(self.host.new_producer_id(id).await?)),
            false => Ok(None),
        }
    }

    /// Writes `record` over `previous`; a failed compare forgets the id here.
    async fn write(
        &self,
        id: &str,
        slot: &mut Option<Stored>,
        record: TxnRecord,
    ) -> Result<Stored, Error> {
        match self.store.write(id, record, slot.as_ref()).await {
            Ok(stored) => {
                self.observe(id, &stored.record);
                if !stored.record.state.is_prepare() {
                    self.settled.send_modify(|n| *n += 1);
                }
                *slot = Some(stored.clone());
                Ok(stored)
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    /// Counts what a write did: the transaction open or not.
    fn observe(&self, id: &str, record: &TxnRecord) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match record.state {
            TxnState::Ongoing => counts.open.insert(id.to_string(), record.started_ms),
            _ => counts.open.remove(id),
        };
    }

    /// Counts a decision written here: commit or abort, and why.
    fn decided(&self, record: &TxnRecord, cause: &'static str) {
        let outcome = match record.state {
            TxnState::PrepareCommit => "commit",
            _ => "abort",
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.ended.entry((outcome, cause)).or_default() += 1;
    }

    /// What `/metrics` shows at `now_ms`.
    pub fn stats(&self, now_ms: i64) -> TxnStats {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = counts.open.values().filter(|s| **s >= 0).min().copied();
        TxnStats {
            open: counts.open.len(),
            oldest_open_ms: oldest.map_or(0, |start| (now_ms - start).max(0)),
            ended: counts.ended.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// `InitProducerId` with transactional id `id`: the producer id and epoch to use. An
    /// open transaction of a previous instance is aborted first; meanwhile the answer is
    /// `CONCURRENT_TRANSACTIONS` (retriable).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), Error> {
        let (mut slot, current) = self.hold_settled(id).await?;
        let record = current.as_ref().map(|s| &s.record);
        let spare = self.spare(id, state::needs_new_id(record)).await?;
        let now_ms = self.host.now_ms();
        let ask =
            InitAsk { timeout_ms, expected, max_timeout_ms: self.settings.max_timeout_ms, now_ms };
        match state::init_producer_id(id, record, &ask, spare)? {
            InitOutcome::Ready(next) => {
                if Some(&next) != record {
                    self.write(id, &mut slot, next.clone()).await?;
                }
                Ok((next.producer_id, next.producer_epoch))
            }
            InitOutcome::Fence(next) => {
                let stored = self.write(id, &mut slot, next).await?;
                self.decided(&stored.record, "fenced");
                drop(slot);
                self.spawn_finish(id);
                Err(Error::new(
                    ErrorKind::Unavailable,
                    Reason::ConcurrentTransactions,
                    format!(
                        "transactional id {id:?}: the open transaction of its previous \
                         instance is being aborted; retry"
                    ),
                ))
            }
        }
    }

    /// Adds partitions and groups to the producer's transaction, opening one if none is.
    pub async fn add(
        &self,
        id: &str,
        producer: (i64, i16),
        partitions: &[(String, u32)],
        groups: &[String],
        tv2: bool,
    ) -> Result<(), Error> {
        let (mut slot, current) = self.hold_settled(id).await?;
        let record = current.as_ref().map(|s| &s.record);
        let now_ms = self.host.now_ms();
        if let Some(next) =
            state::add_to_txn(id, record, producer, partitions, groups, tv2, now_ms)?
        {
            self.write(id, &mut slot, next).await?;
        }
        Ok(())
    }

    /// `TxnOffsetCommit`: `offsets` of `group` committed with the producer's transaction.
    /// In transactions v2 the group joins the transaction here; in v1 `AddOffsetsToTxn`
    /// must have added it (`INVALID_TXN_STATE` otherwise).
    pub async fn add_offsets(
        &self,
        id: &str,
        producer: (i64, i16),
        group: &str,
        offsets: &[(String, u32, OffsetRecord)],
        tv2: bool,
    ) -> Result<(), Error> {
        let (mut slot, current) = self.hold_settled(id).await?;
        let record = current.as_ref().map(|s| &s.record);
        if tv2 {
            let groups = [group.to_string()];
            let now_ms = self.host.now_ms();
            if let Some(next) = state::add_to_txn(id, record, producer, &[], &groups, true, now_ms)?
            {
                self.write(id, &mut slot, next).await?;
            }
        } else if !state::group_in_txn(id, record, producer, group)? {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidTxnState,
                format!(
                    "group {group:?} is not in the transaction of {id:?}: AddOffsetsToTxn comes \
                     first"
                ),
            ));
        }
        // Under the id's lock: no end is decided between the check and the write.
        self.offsets.add(id, group, offsets).await
    }

    /// Whether `partition` is in the producer's open transaction (a partition leader's
    /// check before the transaction's first batch there).
    pub async fn verify(
        &self,
        id: &str,
        producer: (i64, i16),
        partition: (&str, u32),
    ) -> Result<bool, Error> {
        let (_slot, current) = self.hold_settled(id).await?;
        state::in_txn(id, current.as_ref().map(|s| &s.record), producer, partition)
    }

    /// `EndTxn`: the decision is stored before the answer; its markers and the completion
    /// follow in the background. The producer id and epoch for the next transaction.
    pub async fn end(self: &Arc<Self>, id: &str, ask: EndAsk) -> Result<(i64, i16), Error> {
        let (mut slot, current) = self.hold(id).await?;
        let record = current.as_ref().map(|s| &s.record);
        let spare = self.spare(id, state::end_needs_new_id(record)).await?;
        match state::end_txn(id, record, &ask, spare)? {
            EndOutcome::Done => {
                let r =
                    record.ok_or_else(|| Error::internal("a completed end without a record"))?;
                Ok((r.producer_id, r.producer_epoch))
            }
            EndOutcome::Prepare(next) => {
                let stored = self.write(id, &mut slot, next).await?;
                self.decided(&stored.record, "client");
                drop(slot);
                self.spawn_finish(id);
                // What the producer uses next: the record once complete.
                let done = state::complete(&stored.record, 0);
                Ok((done.producer_id, done.producer_epoch))
            }
        }
    }

    fn spawn_finish(self: &Arc<Self>, id: &str) {
        let (me, id) = (self.clone(), id.to_string());
        shale_core::task::spawn_detached(async move {
            if let Err(e) = me.finish(&id).await {
                tracing::info!(transactional_id = %id, error = %e,
                    "transaction not completed here; its coordinator will");
            }
        });
    }

    /// Writes the markers of the id's decided transaction and completes it: again and
    /// again for partitions whose leader is away, until each is written or gone. The id is
    /// not held meanwhile (its requests answer `CONCURRENT_TRANSACTIONS`, from the record);
    /// the completion is written only if the record is still the decision it wrote for.
    pub async fn finish(&self, id: &str) -> Result<(), Error> {
        let decided = self.hold(id).await?.1;
        let Some(decided) = decided.filter(|s| s.record.state.is_prepare()) else { return Ok(()) };
        let r = &decided.record;
        let kind = match r.state {
            TxnState::PrepareCommit => MarkerKind::Commit,
            _ => MarkerKind::Abort,
        };
        let marker = Marker { kind, coordinator_epoch: r.coordinator_epoch };
        let mut left = r.partition_list();
        let mut pause = self.settings.marker_retry;
        while !left.is_empty() {
            let writes = left
                .iter()
                .map(|(t, p)| self.host.write_marker((t, *p), r.marker_producer(), marker, r.tv2));
            let results = futures::future::join_all(writes).await;
            let mut failed = Vec::new();
            for (tp, result) in left.into_iter().zip(results) {
                match result {
                    Ok(()) => {}
                    Err(e)
                        if matches!(e.reason, Reason::UnknownTopic | Reason::UnknownPartition) => {}
                    // A newer coordinator or producer epoch wrote there: this decision is
                    // no longer this broker's to complete.
                    Err(e) if e.kind == ErrorKind::Fenced => return Err(e),
                    Err(e) => {
                        tracing::debug!(transactional_id = %id, topic = %tp.0, partition = tp.1,
                            error = %e, "a transaction marker was not written; retrying");
                        failed.push(tp);
                    }
                }
            }
            left = failed;
            if !left.is_empty() {
                shale_core::clock::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        let commit = kind == MarkerKind::Commit;
        for group in &r.groups {
            self.offsets.end(id, group, commit).await?;
        }
        let (mut slot, now) = self.hold(id).await?;
        let Some(now) = now else { return Ok(()) };
        if now.revision != decided.revision {
            return Ok(());
        }
        let done = state::complete(r, self.host.now_ms());
        self.write(id, &mut slot, done).await?;
        Ok(())
    }

    /// The ids this broker coordinates, with their records (ListTransactions).
    pub async fn list(&self) -> Result<Vec<(String, TxnRecord)>, Error> {
        let all = self.store.list().await?;
        let candidates = self.host.coordinator_candidates();
        Ok(all
            .into_iter()
            .filter(|(id, _)| self.wins(id, &candidates))
            .map(|(id, s)| (id, s.record))
            .collect())
    }

    /// The partitions of `group` that an open or deciding transaction has offsets for (any
    /// broker may ask: they are in the store).
    pub async fn pending_offsets(
        &self,
        group: &str,
    ) -> Result<std::collections::BTreeSet<(String, u32)>, Error> {
        self.offsets.pending(group).await
    }

    /// The record of `id`, which this broker must coordinate (DescribeTransactions).
    pub async fn describe(&self, id: &str) -> Result<Option<TxnRecord>, Error> {
        self.check_coordinates(id)?;
        Ok(self.store.load(id).await?.map(|s| s.record))
    }

    /// Forgets what is held for ids this broker no longer coordinates (the live brokers
    /// changed), their open transactions included in the gauges: if it wins them again it
    /// claims them again.
    pub fn release_lost(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let candidates = self.host.coordinator_candidates();
        held.retain(|id, _| self.wins(id, &candidates));
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.open.retain(|id, _| held.contains_key(id));
    }
}
