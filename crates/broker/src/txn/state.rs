//! A transactional id's durable record and the rules that move it, as pure functions: each
//! takes the current record and a request and says what to write and what to answer. The
//! coordinator (which holds the id, writes the record with a compare on its revision and
//! sends the markers) is elsewhere; these functions decide, so that they are tested alone.
//!
//! The rules are Kafka's (its `TransactionMetadata` and `TransactionCoordinator`), with one
//! simplification that a store with compare-and-swap allows: a transition is one write,
//! so there is no pending state held in memory beside the record, and fencing an open
//! transaction writes `PrepareAbort` at once (Kafka's `PrepareEpochFence` is never stored).
//! Transactions v2 (KIP-890) bump the epoch at every end; the markers carry the new epoch.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// No producer id, or no epoch.
pub const NONE: i64 = -1;
/// Epochs at or above this are exhausted: the producer moves to a new id (Kafka keeps the
/// last epoch, `i16::MAX`, so that it can always fence once more).
pub const EXHAUSTED_EPOCH: i16 = i16::MAX - 1;

/// Where a transactional id stands, by Kafka's names (DescribeTransactions shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction since the producer id was issued.
    Empty,
    /// A transaction is open: partitions or offsets were added to it.
    Ongoing,
    /// Decided to commit; markers are being written.
    PrepareCommit,
    /// Decided to abort; markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Between a decision and its markers.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The durable record of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// The producer id the transactional id has.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none): a request at it is a retry, answered.
    pub last_producer_epoch: i16,
    /// The producer id before an exhausted epoch moved it to a new one (-1: none).
    pub prev_producer_id: i64,
    /// The producer id that completing the current end moves to (-1: none).
    pub next_producer_id: i64,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// Where the transactional id stands.
    pub state: TxnState,
    /// Partitions by topic: written in the open transaction, or, while preparing, still
    /// to get their marker.
    pub partitions: BTreeMap<String, BTreeSet<u32>>,
    /// Consumer groups whose offsets the transaction commits.
    pub groups: BTreeSet<String>,
    /// When the open transaction began (ms since the epoch; -1: none open).
    pub started_ms: i64,
    /// When the record last changed.
    pub updated_ms: i64,
    /// Whether the current transaction is of transactions v2 (KIP-890).
    pub tv2: bool,
    /// Bumped by each coordinator that takes the id over; its markers carry it.
    #[serde(default)]
    pub coordinator_epoch: i32,
}

impl TxnRecord {
    /// The partitions as (topic, partition) pairs.
    pub fn partition_list(&self) -> Vec<(String, u32)> {
        self.partitions.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect()
    }

    /// Whether an open transaction is past its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.started_ms >= 0
            && self.started_ms.saturating_add(i64::from(self.timeout_ms)) < now_ms
    }

    /// The producer id and epoch the markers of the current end carry.
    pub fn marker_producer(&self) -> (i64, i16) {
        (self.producer_id, self.producer_epoch)
    }

    fn touched(mut self, now_ms: i64) -> TxnRecord {
        self.updated_ms = now_ms;
        self
    }
}

fn error(kind: ErrorKind, reason: Reason, message: String) -> Error {
    Error::new(kind, reason, message)
}

fn concurrent(id: &str, state: TxnState) -> Error {
    error(
        ErrorKind::Unavailable,
        Reason::ConcurrentTransactions,
        format!(
            "transactional id {id:?} is in state {}: its markers are being written; retry",
            state.name()
        ),
    )
}

fn fenced(id: &str, epoch: i16, current: i16) -> Error {
    error(
        ErrorKind::Fenced,
        Reason::ProducerFenced,
        format!(
            "transactional id {id:?}: epoch {epoch} is not the current epoch {current}; a newer \
             instance of this producer exists"
        ),
    )
}

fn mapping(id: &str, asked: i64, current: Option<i64>) -> Error {
    let has = current.map_or("no producer id".to_string(), |c| format!("producer id {c}"));
    error(
        ErrorKind::Invalid,
        Reason::InvalidProducerIdMapping,
        format!("transactional id {id:?} has {has}, not producer id {asked}"),
    )
}

fn invalid_state(id: &str, state: TxnState, what: &str) -> Error {
    error(
        ErrorKind::Invalid,
        Reason::InvalidTxnState,
        format!("transactional id {id:?} is in state {}: {what} is not allowed", state.name()),
    )
}

/// What an `InitProducerId` with a transactional id asks.
#[derive(Debug, Clone, Copy)]
pub struct InitAsk {
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// The producer id and epoch the producer had (KIP-360), when it names them.
    pub expected: Option<(i64, i16)>,
    /// `transactions.max_timeout_ms`.
    pub max_timeout_ms: i32,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// What to do for an `InitProducerId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write the record, then answer its producer id and epoch.
    Ready(TxnRecord),
    /// The producer's open transaction must be aborted first (its previous instance is
    /// fenced): write the record (`PrepareAbort` at the next epoch), write its markers,
    /// and answer `CONCURRENT_TRANSACTIONS`; the producer retries.
    Fence(TxnRecord),
}

/// The new producer id the caller allocated because a rule said one is needed.
fn allocated(spare: Option<i64>) -> Result<i64, Error> {
    spare.ok_or_else(|| Error::internal("a new producer id was not allocated"))
}

/// Whether [`init_producer_id`] on `current` needs a new producer id.
pub fn needs_new_id(current: Option<&TxnRecord>) -> bool {
    current.is_none_or(|r| r.producer_epoch >= EXHAUSTED_EPOCH)
}

/// `InitProducerId` for transactional id `id`: the next epoch of its producer id (or a
/// new id, `spare`, when it has none or its epoch is exhausted), its open transaction
/// fenced. `spare` is needed when [`needs_new_id`] says so.
pub fn init_producer_id(
    id: &str,
    current: Option<&TxnRecord>,
    ask: &InitAsk,
    spare: Option<i64>,
) -> Result<InitOutcome, Error> {
    if ask.timeout_ms <= 0 || ask.timeout_ms > ask.max_timeout_ms {
        return Err(error(
            ErrorKind::Invalid,
            Reason::InvalidTransactionTimeout,
            format!(
                "transaction timeout {} ms is not within 1..={} ms (transactions.max_timeout_ms)",
                ask.timeout_ms, ask.max_timeout_ms
            ),
        ));
    }
    let Some(r) = current else {
        return Ok(InitOutcome::Ready(TxnRecord {
            producer_id: allocated(spare)?,
            producer_epoch: 0,
            last_producer_epoch: -1,
            prev_producer_id: NONE,
            next_producer_id: NONE,
            timeout_ms: ask.timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeMap::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: ask.now_ms,
            tv2: false,
            coordinator_epoch: 0,
        }));
    };
    if let Some((pid, epoch)) = ask.expected {
        let known = pid == r.producer_id || (pid == r.prev_producer_id && epoch >= EXHAUSTED_EPOCH);
        if !known {
            return Err(fenced(id, epoch, r.producer_epoch));
        }
    }
    match r.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(concurrent(id, r.state)),
        TxnState::Ongoing => {
            // Fence: abort the open transaction at the next epoch; the new instance
            // retries once its markers are written.
            let mut next = prepare_end(r, false, true, ask.now_ms, spare)?;
            next.last_producer_epoch = -1;
            Ok(InitOutcome::Fence(next))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut next = r.clone();
            let expected_epoch = ask.expected.map(|(_, e)| e);
            if r.producer_epoch >= EXHAUSTED_EPOCH
                && expected_epoch.is_none_or(|e| e == r.producer_epoch)
            {
                next.prev_producer_id = r.producer_id;
                next.producer_id = allocated(spare)?;
                next.producer_epoch = 0;
                next.last_producer_epoch = expected_epoch.map_or(-1, |_| r.producer_epoch);
            } else {
                match expected_epoch {
                    None => {
                        next.producer_epoch = r.producer_epoch + 1;
                        next.last_producer_epoch = -1;
                    }
                    Some(e) if e == r.producer_epoch => {
                        next.producer_epoch = r.producer_epoch + 1;
                        next.last_producer_epoch = r.producer_epoch;
                    }
                    // A retry of a bump that succeeded: answered as it was.
                    Some(e) if e == r.last_producer_epoch => {
                        return Ok(InitOutcome::Ready(r.clone()));
                    }
                    Some(e) => return Err(fenced(id, e, r.producer_epoch)),
                }
            }
            next.timeout_ms = ask.timeout_ms;
            next.state = TxnState::Empty;
            next.partitions.clear();
            next.groups.clear();
            next.started_ms = -1;
            Ok(InitOutcome::Ready(next.touched(ask.now_ms)))
        }
    }
}

/// Checks that `(producer_id, epoch)` is the transactional id's current producer and that
/// it may add to a transaction now.
fn check_producer(id: &str, r: &TxnRecord, producer_id: i64, epoch: i16) -> Result<(), Error> {
    if producer_id != r.producer_id {
        return Err(mapping(id, producer_id, Some(r.producer_id)));
    }
    if epoch != r.producer_epoch {
        return Err(fenced(id, epoch, r.producer_epoch));
    }
    if r.state.is_prepare() {
        return Err(concurrent(id, r.state));
    }
    Ok(())
}

/// Adds partitions (and consumer groups' offsets) to the producer's transaction, opening
/// it if none is open: the record to write, or `None` when they are in it already.
/// `tv2`: added by a partition leader for a transactions-v2 producer (KIP-890).
pub fn add_to_txn(
    id: &str,
    current: Option<&TxnRecord>,
    (producer_id, epoch): (i64, i16),
    partitions: &[(String, u32)],
    groups: &[String],
    tv2: bool,
    now_ms: i64,
) -> Result<Option<TxnRecord>, Error> {
    let r = current.ok_or_else(|| mapping(id, producer_id, None))?;
    check_producer(id, r, producer_id, epoch)?;
    let has = |(t, p): &(String, u32)| r.partitions.get(t).is_some_and(|ps| ps.contains(p));
    if r.state == TxnState::Ongoing
        && partitions.iter().all(has)
        && groups.iter().all(|g| r.groups.contains(g))
    {
        return Ok(None);
    }
    let mut next = r.clone();
    if r.state != TxnState::Ongoing {
        next.started_ms = now_ms;
        next.tv2 = tv2;
    }
    next.state = TxnState::Ongoing;
    for (t, p) in partitions {
        next.partitions.entry(t.clone()).or_default().insert(*p);
    }
    next.groups.extend(groups.iter().cloned());
    Ok(Some(next.touched(now_ms)))
}

/// Whether `partition` is in the producer's open transaction (a partition leader's check
/// before it accepts the transaction's first batch there, KIP-890 part 1).
pub fn in_txn(
    id: &str,
    current: Option<&TxnRecord>,
    (producer_id, epoch): (i64, i16),
    (topic, partition): (&str, u32),
) -> Result<bool, Error> {
    let r = current.ok_or_else(|| mapping(id, producer_id, None))?;
    check_producer(id, r, producer_id, epoch)?;
    Ok(r.state == TxnState::Ongoing
        && r.partitions.get(topic).is_some_and(|ps| ps.contains(&partition)))
}

/// Whether `group`'s offsets are in the producer's open transaction (added by
/// `AddOffsetsToTxn`, transactions v1).
pub fn group_in_txn(
    id: &str,
    current: Option<&TxnRecord>,
    (producer_id, epoch): (i64, i16),
    group: &str,
) -> Result<bool, Error> {
    let r = current.ok_or_else(|| mapping(id, producer_id, None))?;
    check_producer(id, r, producer_id, epoch)?;
    Ok(r.state == TxnState::Ongoing && r.groups.contains(group))
}

/// What an `EndTxn` asks.
#[derive(Debug, Clone, Copy)]
pub struct EndAsk {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Commit, else abort.
    pub commit: bool,
    /// Transactions v2: EndTxn v5 and later (the epoch is bumped at every end).
    pub tv2: bool,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// What to do for an `EndTxn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Write the record (`PrepareCommit` or `PrepareAbort`), answer, then write the markers
    /// and complete.
    Prepare(TxnRecord),
    /// A retry of an end that completed: nothing to write.
    Done,
}

/// The record for deciding the open transaction (or, in transactions v2, an abort with
/// none open): the decision, and in v2 the next epoch, which the markers carry (a new
/// producer id, `spare`, once the epoch is exhausted, taken at completion).
fn prepare_end(
    r: &TxnRecord,
    commit: bool,
    bump: bool,
    now_ms: i64,
    spare: Option<i64>,
) -> Result<TxnRecord, Error> {
    let mut next = r.clone();
    next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
    if next.started_ms < 0 {
        next.started_ms = now_ms;
    }
    if !bump {
        return Ok(next.touched(now_ms));
    }
    // Transactions v2 bump at every end; an end by the coordinator (a fence, a timeout)
    // bumps in either version so that the producer it ends is fenced.
    next.last_producer_epoch = r.producer_epoch;
    next.producer_epoch = r.producer_epoch.saturating_add(1);
    if r.producer_epoch >= EXHAUSTED_EPOCH {
        next.next_producer_id = allocated(spare)?;
    }
    Ok(next.touched(now_ms))
}

/// Whether [`end_txn`] on `current` needs a new producer id (the epoch is exhausted).
pub fn end_needs_new_id(current: Option<&TxnRecord>) -> bool {
    current.is_some_and(|r| r.producer_epoch >= EXHAUSTED_EPOCH)
}

/// `EndTxn`: commit or abort the producer's transaction, or answer a retry of an end that
/// completed.
pub fn end_txn(
    id: &str,
    current: Option<&TxnRecord>,
    ask: &EndAsk,
    spare: Option<i64>,
) -> Result<EndOutcome, Error> {
    let r = current.ok_or_else(|| mapping(id, ask.producer_id, None))?;
    let e = ask.epoch;
    // A retry after the end bumped the epoch (v2), or moved to a new producer id.
    let retry_bump = r.producer_epoch == e.saturating_add(1) && r.producer_id == ask.producer_id;
    let retry_overflow =
        r.prev_producer_id == ask.producer_id && e >= EXHAUSTED_EPOCH && r.producer_epoch == 0;
    if ask.producer_id != r.producer_id && !retry_overflow {
        return Err(mapping(id, ask.producer_id, Some(r.producer_id)));
    }
    let retry = ask.tv2 && (retry_bump || retry_overflow);
    let kind = if ask.commit { "a commit" } else { "an abort" };
    match r.state {
        TxnState::Ongoing if e == r.producer_epoch => {
            // Transactions v1 keep the epoch: markers carry the producer's own.
            let mut next = prepare_end(r, ask.commit, ask.tv2, ask.now_ms, spare)?;
            next.tv2 = ask.tv2;
            Ok(EndOutcome::Prepare(next))
        }
        TxnState::PrepareCommit | TxnState::PrepareAbort
            if retry || (!ask.tv2 && e == r.producer_epoch) =>
        {
            let same = (r.state == TxnState::PrepareCommit) == ask.commit;
            match same {
                true => Err(concurrent(id, r.state)),
                false => Err(invalid_state(id, r.state, kind)),
            }
        }
        TxnState::CompleteCommit | TxnState::CompleteAbort
            if retry || (!ask.tv2 && e == r.producer_epoch) =>
        {
            let same = (r.state == TxnState::CompleteCommit) == ask.commit;
            match same {
                true => Ok(EndOutcome::Done),
                false => Err(invalid_state(id, r.state, kind)),
            }
        }
        // Transactions v2 may abort with nothing open (the producer's abortable error
        // came before any write): the epoch is bumped all the same.
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            if ask.tv2 && !ask.commit && e == r.producer_epoch =>
        {
            let mut next = prepare_end(r, false, true, ask.now_ms, spare)?;
            next.tv2 = true;
            Ok(EndOutcome::Prepare(next))
        }
        // In v2 an end at the current epoch while preparing is from a fenced instance.
        state if e != r.producer_epoch || (ask.tv2 && state.is_prepare()) => {
            Err(fenced(id, e, r.producer_epoch))
        }
        state => Err(invalid_state(id, state, kind)),
    }
}

/// The record that aborts an open transaction past its timeout: `PrepareAbort` at the
/// next epoch, so the producer that let it time out is fenced (in v1; in v2 it may go on,
/// as in Kafka, after its abort is answered as a retry).
pub fn abort_timed_out(r: &TxnRecord, now_ms: i64, spare: Option<i64>) -> Result<TxnRecord, Error> {
    prepare_end(r, false, true, now_ms, spare)
}

/// The record once every marker of the current end is written: `CompleteCommit` or
/// `CompleteAbort`, nothing open, and the new producer id when the epoch was exhausted.
pub fn complete(r: &TxnRecord, now_ms: i64) -> TxnRecord {
    let mut next = r.clone();
    next.state = match r.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        _ => TxnState::CompleteAbort,
    };
    next.partitions.clear();
    next.groups.clear();
    next.started_ms = -1;
    if r.next_producer_id != NONE {
        next.prev_producer_id = r.producer_id;
        next.producer_id = r.next_producer_id;
        next.producer_epoch = 0;
        next.last_producer_epoch = EXHAUSTED_EPOCH;
        next.next_producer_id = NONE;
    }
    next.touched(now_ms)
}
