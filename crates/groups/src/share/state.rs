//! One share partition's records in flight (KIP-932), as its leader holds them: the share
//! partition start offset (SPSO), below which every record is done, and each record from
//! there to the end offset (SPEO) that a member was given: AVAILABLE (again), ACQUIRED by
//! one member until its lock lapses, ACKNOWLEDGED, or ARCHIVED (rejected, past its delivery
//! limit, or not a record at all). Records at and past the end were never given out.
//!
//! Pure: no I/O and no clock of its own. `share::partitions` loads it from the metadata
//! store, calls it under a lock and persists what it changed before anyone is answered.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// A record's state in a share partition (Kafka's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    /// May be acquired.
    Available,
    /// Held by one member until it acknowledges it or its lock lapses.
    Acquired,
    /// Accepted: processed, never delivered again.
    Acknowledged,
    /// Rejected, past the delivery limit, or a gap: never delivered again.
    Archived,
}

impl RecordState {
    /// Kafka's code: AVAILABLE 0, ACQUIRED 1, ACKNOWLEDGED 2, ARCHIVED 4.
    pub fn code(self) -> i8 {
        match self {
            RecordState::Available => 0,
            RecordState::Acquired => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }

    fn done(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// How a member acknowledges a record (Kafka's `AcknowledgeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// 0: the offset is no record (compacted away, a control record); archived.
    Gap,
    /// 1: processed.
    Accept,
    /// 2: give it back for another delivery (archived past the delivery limit).
    Release,
    /// 3: unprocessable; archived.
    Reject,
}

impl Ack {
    /// The type for Kafka's code, or INVALID_REQUEST naming it.
    pub fn from_code(code: i8) -> Result<Ack, Error> {
        match code {
            0 => Ok(Ack::Gap),
            1 => Ok(Ack::Accept),
            2 => Ok(Ack::Release),
            3 => Ok(Ack::Reject),
            other => Err(Error::invalid(format!(
                "acknowledge type {other} is not one of 0 (gap), 1 (accept), 2 (release), \
                 3 (reject)"
            ))
            .with("acknowledge_type", other)),
        }
    }
}

/// One acknowledgement batch of a partition: `first..=last`, one type for all or one per
/// offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<Ack>,
}

/// What bounds a share partition: the group's configs and the broker's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long an acquired record stays with its member (ms).
    pub lock_ms: i64,
    /// Deliveries a record gets at most; released or lapsed past it, it is archived.
    pub delivery_limit: u16,
    /// Records between the SPSO and the SPEO at most: no new record is acquired past it.
    pub max_in_flight: usize,
}

/// A run of offsets given to a member in one acquisition, with their delivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub deliveries: u16,
}

/// Why a record was archived rather than accepted (a dead-letter record says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    /// A member rejected it.
    Rejected,
    /// Released, or its lock lapsed, after its last allowed delivery.
    DeliveryLimit,
}

/// A record archived by a change: it goes to the group's dead-letter topic, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archived {
    pub offset: i64,
    pub deliveries: u16,
    pub reason: ArchiveReason,
}

/// One batch of the log as the acquisition sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatch {
    pub first: i64,
    pub last: i64,
    /// A control batch (a transaction marker) or a batch of an aborted transaction: no
    /// record a member should see; archived as it is passed.
    pub skip: bool,
}

#[derive(Debug, Clone)]
struct Slot {
    state: RecordState,
    deliveries: u16,
    /// The member holding it, while acquired.
    owner: Option<Arc<str>>,
    /// When its lock lapses (ms), while acquired.
    deadline_ms: i64,
}

impl Slot {
    fn stored(state: RecordState, deliveries: u16) -> Slot {
        Slot { state, deliveries, owner: None, deadline_ms: 0 }
    }
}

/// A stored run of offsets in one state with one delivery count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub first: i64,
    pub last: i64,
    pub state: RecordState,
    pub deliveries: u16,
}

/// A share partition's records in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    start: i64,
    slots: VecDeque<Slot>,
}

impl InFlight {
    /// Nothing in flight; the next record to deliver is `start`.
    pub fn new(start: i64) -> InFlight {
        InFlight { start, slots: VecDeque::new() }
    }

    /// As stored: `start` and the runs that follow it (acquired records were stored as
    /// available; their locks do not outlive the leader that granted them).
    pub fn from_runs(start: i64, runs: &[Run]) -> Result<InFlight, Error> {
        let mut f = InFlight::new(start);
        for r in runs {
            if r.first != f.end() || r.last < r.first || r.last - r.first >= 1 << 20 {
                return Err(Error::new(
                    ErrorKind::Data,
                    Reason::CorruptMetadata,
                    format!(
                        "share state run {}..={} does not follow offset {}",
                        r.first,
                        r.last,
                        f.end()
                    ),
                ));
            }
            let state = match r.state {
                RecordState::Acquired => RecordState::Available,
                s => s,
            };
            f.slots.extend((r.first..=r.last).map(|_| Slot::stored(state, r.deliveries)));
        }
        f.advance();
        Ok(f)
    }

    /// What to store: acquired records as available, with their delivery counts.
    pub fn to_runs(&self) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let offset = self.start + i as i64;
            let state = match s.state {
                RecordState::Acquired => RecordState::Available,
                st => st,
            };
            match runs.last_mut() {
                Some(r) if r.state == state && r.deliveries == s.deliveries => r.last = offset,
                _ => {
                    runs.push(Run { first: offset, last: offset, state, deliveries: s.deliveries })
                }
            }
        }
        runs
    }

    /// The share partition start offset: every record below it is done.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The share partition end offset: records from here were never delivered.
    pub fn end(&self) -> i64 {
        self.start + self.slots.len() as i64
    }

    /// Where a read of the log for this partition starts: the first available record in
    /// flight, else the end; None when nothing can be acquired (none available and the
    /// in-flight window is full).
    pub fn next_read(&self, limits: &Limits) -> Option<i64> {
        if let Some(i) = self.slots.iter().position(|s| s.state == RecordState::Available) {
            return Some(self.start + i as i64);
        }
        (self.slots.len() < limits.max_in_flight).then(|| self.end())
    }

    /// Drops what the log no longer has: records below `log_start` are done.
    pub fn skip_to(&mut self, log_start: i64) -> bool {
        if log_start <= self.start {
            return false;
        }
        let n = ((log_start - self.start) as usize).min(self.slots.len());
        self.slots.drain(..n);
        self.start = log_start;
        true
    }

    /// Acquires for `member`, from `batches` (read from the log at [`next_read`]), the
    /// available records and those never delivered, `max_records` at most, locked until
    /// `now + lock_ms`. Batches to skip are archived as they are passed. Answers the runs
    /// acquired, in offset order.
    ///
    /// [`next_read`]: Self::next_read
    pub fn acquire(
        &mut self,
        member: &Arc<str>,
        batches: &[LogBatch],
        max_records: usize,
        now: i64,
        limits: &Limits,
    ) -> Vec<Acquired> {
        let mut out: Vec<Acquired> = Vec::new();
        let mut taken = 0usize;
        let deadline = now + limits.lock_ms;
        'batches: for b in batches {
            for offset in b.first.max(self.start)..=b.last {
                if taken >= max_records {
                    break 'batches;
                }
                let i = (offset - self.start) as usize;
                if i == self.slots.len() {
                    if i >= limits.max_in_flight {
                        break 'batches;
                    }
                    self.slots.push_back(Slot::stored(RecordState::Available, 0));
                }
                let slot = &mut self.slots[i];
                if slot.state != RecordState::Available {
                    continue;
                }
                if b.skip {
                    slot.state = RecordState::Archived;
                    continue;
                }
                slot.state = RecordState::Acquired;
                slot.deliveries = slot.deliveries.saturating_add(1);
                slot.owner = Some(member.clone());
                slot.deadline_ms = deadline;
                taken += 1;
                match out.last_mut() {
                    Some(r) if r.last + 1 == offset && r.deliveries == slot.deliveries => {
                        r.last = offset
                    }
                    _ => out.push(Acquired {
                        first: offset,
                        last: offset,
                        deliveries: slot.deliveries,
                    }),
                }
            }
        }
        self.advance();
        out
    }

    /// Applies `member`'s acknowledgements of one partition, all or none: every batch is
    /// checked (its types, one or one per offset; not overlapping another; every offset
    /// acquired by `member`) before any is applied. INVALID_RECORD_STATE for an offset the
    /// member does not hold. Answers the records it archived.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        limits: &Limits,
    ) -> Result<Vec<Archived>, Error> {
        let mut ranges: Vec<(i64, i64)> = Vec::with_capacity(batches.len());
        for b in batches {
            self.check_held(member, b)?;
            ranges.push((b.first, b.last));
        }
        ranges.sort_unstable();
        if let Some(w) = ranges.windows(2).find(|w| w[1].0 <= w[0].1) {
            return Err(Error::invalid(format!(
                "acknowledgement batches {}..={} and {}..={} overlap",
                w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
        let mut archived = Vec::new();
        for b in batches {
            for offset in b.first..=b.last {
                let ack = b.types[if b.types.len() == 1 { 0 } else { (offset - b.first) as usize }];
                let slot = &mut self.slots[(offset - self.start) as usize];
                slot.owner = None;
                match ack {
                    Ack::Accept => slot.state = RecordState::Acknowledged,
                    Ack::Gap => slot.state = RecordState::Archived,
                    Ack::Reject => {
                        slot.state = RecordState::Archived;
                        archived.push(Archived {
                            offset,
                            deliveries: slot.deliveries,
                            reason: ArchiveReason::Rejected,
                        });
                    }
                    Ack::Release => archived.extend(give_back(slot, offset, limits)),
                }
            }
        }
        self.advance();
        Ok(archived)
    }

    /// Whether `b` is well formed and each of its offsets acquired by `member`.
    fn check_held(&self, member: &str, b: &AckBatch) -> Result<(), Error> {
        let (first, last) = (b.first, b.last);
        let count = last.checked_sub(first).map(|d| d + 1).filter(|n| *n > 0);
        let Some(count) = count else {
            return Err(Error::invalid(format!(
                "acknowledgement batch {first}..={last} is empty or reversed"
            )));
        };
        if b.types.len() != 1 && b.types.len() as i64 != count {
            return Err(Error::invalid(format!(
                "acknowledgement batch {first}..={last} has {} types: give one, or one per \
                 offset ({count})",
                b.types.len()
            )));
        }
        for offset in first..=last {
            let held = offset >= self.start
                && self.slot(offset).is_some_and(|s| {
                    s.state == RecordState::Acquired && s.owner.as_deref() == Some(member)
                });
            if !held {
                let state = self.state_of(offset);
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::InvalidRecordState,
                    format!(
                        "offset {offset} is not acquired by member {member:?} (it is {state}); \
                         nothing of {first}..={last} was acknowledged"
                    ),
                )
                .with("offset", offset)
                .with("member_id", member));
            }
        }
        Ok(())
    }

    /// Gives back every record `member` holds (its session closed or it left): available
    /// again, or archived past the delivery limit. Answers how many, and what it archived.
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> (usize, Vec<Archived>) {
        let mut released = 0;
        let mut archived = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state == RecordState::Acquired && slot.owner.as_deref() == Some(member) {
                released += 1;
                archived.extend(give_back(slot, self.start + i as i64, limits));
            }
        }
        self.advance();
        (released, archived)
    }

    /// Gives back every record whose lock lapsed by `now`. Answers how many, and what it
    /// archived.
    pub fn expire(&mut self, now: i64, limits: &Limits) -> (usize, Vec<Archived>) {
        let mut lapsed = 0;
        let mut archived = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state == RecordState::Acquired && slot.deadline_ms <= now {
                lapsed += 1;
                archived.extend(give_back(slot, self.start + i as i64, limits));
            }
        }
        self.advance();
        (lapsed, archived)
    }

    /// When the first lock lapses, if any record is acquired.
    pub fn next_deadline(&self) -> Option<i64> {
        self.slots.iter().filter(|s| s.state == RecordState::Acquired).map(|s| s.deadline_ms).min()
    }

    /// The state of `offset` and its delivery count: done below the start, available
    /// (never delivered) past the end.
    #[cfg(test)]
    pub fn state_at(&self, offset: i64) -> (RecordState, u16) {
        match self.slot(offset) {
            Some(s) => (s.state, s.deliveries),
            None if offset < self.start => (RecordState::Acknowledged, 0),
            None => (RecordState::Available, 0),
        }
    }

    fn slot(&self, offset: i64) -> Option<&Slot> {
        let i = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.slots.get(i)
    }

    fn state_of(&self, offset: i64) -> &'static str {
        match self.slot(offset) {
            _ if offset < self.start => "below the share partition start, done",
            None => "not delivered yet",
            Some(s) => match s.state {
                RecordState::Available => "available",
                RecordState::Acquired => "acquired by another member",
                RecordState::Acknowledged => "already acknowledged",
                RecordState::Archived => "archived",
            },
        }
    }

    /// Moves the start past the records that are done.
    fn advance(&mut self) {
        while self.slots.front().is_some_and(|s| s.state.done()) {
            self.slots.pop_front();
            self.start += 1;
        }
    }
}

/// An acquired record given back: available again, or archived when its last allowed
/// delivery was made.
fn give_back(slot: &mut Slot, offset: i64, limits: &Limits) -> Option<Archived> {
    slot.owner = None;
    if slot.deliveries >= limits.delivery_limit {
        slot.state = RecordState::Archived;
        return Some(Archived {
            offset,
            deliveries: slot.deliveries,
            reason: ArchiveReason::DeliveryLimit,
        });
    }
    slot.state = RecordState::Available;
    None
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
