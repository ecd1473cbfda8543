//! One partition's lane between `Producer::send` and its sender task: the batch filling,
//! the sealed batches waiting, and the idempotent sequence that goes with them.
//!
//! Batches are *taken* by the sender when it has room in its in-flight window, as Kafka's
//! sender does: with `linger` zero (the default) a batch is ready at once, so a record on
//! an idle pipeline goes out immediately, and while the window is full the next batch fills
//! until an answer frees a slot, up to `batch_size`. The batch size adapts to the load:
//! one record at a time when idle, large batches under load, no timer in between. With
//! `linger` above zero a batch is taken only once full or that old (Kafka's `linger.ms`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Sealed, Waiter};
use shale_core::clock::Instant;
use shale_core::record::{BatchBuilder, Compression, Record};

/// The batch being filled.
pub(super) struct OpenBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    opened: Instant,
}

/// What a lane holds, under its lock (never held across an await).
#[derive(Default)]
pub(super) struct LaneState {
    open: Option<OpenBatch>,
    ready: VecDeque<Sealed>,
    /// The sequence of the next batch's first record (idempotence).
    next_seq: i32,
    /// Take the open batch whatever its age (a flush, or the producer dropped).
    hurry: bool,
    /// The producer is gone: the sender sends what is left, then ends.
    closed: bool,
}

/// One partition's lane; shared by the producer and the partition's sender task.
#[derive(Default)]
pub(super) struct Lane {
    state: Mutex<LaneState>,
    /// Wakes the sender: a batch opened or filled, a flush, the producer dropped.
    pub(super) work: Notify,
    /// Wakes senders of records waiting for room among the sealed batches.
    pub(super) room: Notify,
}

/// What a record's push did, so the caller wakes the sender only when it has news.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Joined a batch that was already open.
    Joined,
    /// Opened a batch, or filled one: the sender may take it.
    News,
}

/// How a lane batches records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batching {
    pub(super) batch_size: usize,
    pub(super) compression: Compression,
    /// Sealed batches a lane keeps before `send` waits.
    pub(super) queued_batches: usize,
    /// `(producer id, epoch)` when idempotent.
    pub(super) producer: Option<(i64, i16)>,
    /// The batches are a transaction's.
    pub(super) transactional: bool,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a record of about `size` bytes, sealing the open batch first if it would
    /// overflow and after if it is full.
    pub(super) fn push(
        &self,
        record: Record,
        size: usize,
        waiter: Waiter,
        how: &Batching,
        now: Instant,
    ) -> Result<Pushed, (Record, Waiter)> {
        // `Err` hands the record back: `ready` is full, wait for room and push again.
        let mut st = self.lock();
        if st.ready.len() >= how.queued_batches.max(1) {
            return Err((record, waiter));
        }
        let overflows = st.open.as_ref().is_some_and(|b| {
            !b.builder.is_empty() && b.builder.estimated_size() + size > how.batch_size
        });
        let mut news = false;
        if overflows {
            st.seal(how.producer.is_some());
            news = true;
        }
        let next_seq = st.next_seq;
        let batch = st.open.get_or_insert_with(|| {
            news = true;
            let builder = BatchBuilder::new(how.compression);
            OpenBatch {
                builder: match how.producer {
                    Some((id, epoch)) if how.transactional => {
                        builder.with_producer(id, epoch, next_seq).transactional()
                    }
                    Some((id, epoch)) => builder.with_producer(id, epoch, next_seq),
                    None => builder,
                },
                waiters: Vec::new(),
                opened: now,
            }
        });
        batch.builder.push(record);
        batch.waiters.push(waiter);
        if batch.builder.estimated_size() >= how.batch_size {
            st.seal(how.producer.is_some());
            news = true;
        }
        Ok(if news { Pushed::News } else { Pushed::Joined })
    }

    /// The next batch for the sender: a sealed one, else the open one if it is due (linger
    /// zero, old enough, or a flush) and `partial` batches may go now. `None` with the
    /// time the open batch falls due, if any.
    pub(super) fn take(
        &self,
        linger: Duration,
        idempotent: bool,
        now: Instant,
        partial: bool,
    ) -> Taken {
        let mut st = self.lock();
        if st.ready.is_empty() {
            let due = st.open.as_ref().map(|b| b.opened + linger);
            match due {
                // The open batch keeps filling until an answer comes back.
                Some(_) if !partial && !st.hurry => return Taken::Nothing { closed: false },
                Some(due) if st.hurry || linger.is_zero() || due <= now => {
                    st.seal(idempotent);
                }
                Some(due) => return Taken::Later(due),
                None => return Taken::Nothing { closed: st.closed },
            }
        }
        let batch = st.ready.pop_front();
        if st.ready.is_empty() && st.open.is_none() {
            st.hurry = false;
        }
        drop(st);
        self.room.notify_waiters();
        match batch {
            Some(b) => Taken::Batch(b),
            None => Taken::Nothing { closed: false },
        }
    }

    /// Makes the open batch due now (a flush).
    pub(super) fn hurry(&self) {
        let mut st = self.lock();
        if st.open.is_some() {
            st.hurry = true;
        }
        drop(st);
        self.work.notify_one();
    }

    /// The next batch's sequence is 0 again (a new producer epoch).
    pub(super) fn restart_sequence(&self) {
        self.lock().next_seq = 0;
    }

    /// The producer is gone: the sender sends what is left and ends.
    pub(super) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.hurry = true;
        drop(st);
        self.work.notify_one();
    }
}

/// What [`Lane::take`] found.
pub(super) enum Taken {
    /// A batch to send.
    Batch(Sealed),
    /// The open batch falls due at this time.
    Later(Instant),
    /// Nothing to send; `closed` when nothing ever will be.
    Nothing { closed: bool },
}

impl LaneState {
    /// Builds the open batch and queues it, advancing the sequence past its records.
    fn seal(&mut self, idempotent: bool) {
        let Some(open) = self.open.take() else { return };
        if open.waiters.is_empty() {
            return;
        }
        if idempotent {
            self.next_seq = self.next_seq.wrapping_add(open.builder.len() as i32);
        }
        self.ready.push_back(Sealed {
            created: open.opened,
            bytes: open.builder.build(),
            waiters: open.waiters,
            attempts: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shale_core::record::BatchFrames;

    fn how() -> Batching {
        Batching {
            batch_size: 4096,
            compression: Compression::None,
            queued_batches: 2,
            producer: Some((7, 0)),
            transactional: false,
        }
    }

    fn record(size: usize) -> Record {
        Record { value: Some(Bytes::from(vec![1u8; size])), ..Record::default() }
    }

    /// `None` when the lane refused the record (full).
    fn push(lane: &Lane, size: usize, how: &Batching, now: Instant) -> Option<Pushed> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        lane.push(record(size), size + 32, tx, how, now).ok()
    }

    fn base_sequence(b: &Sealed) -> (i32, usize) {
        let (header, _) = BatchFrames::new(&b.bytes, usize::MAX)
            .next()
            .expect("a built batch")
            .expect("a built batch frames");
        (header.base_sequence, header.records_count as usize)
    }

    #[test]
    fn with_no_linger_the_open_batch_is_taken_at_once() {
        let (lane, how, now) = (Lane::default(), how(), shale_core::clock::monotonic_now());
        assert_eq!(push(&lane, 100, &how, now), Some(Pushed::News));
        assert_eq!(push(&lane, 100, &how, now), Some(Pushed::Joined));
        match lane.take(Duration::ZERO, true, now, true) {
            Taken::Batch(b) => assert_eq!(base_sequence(&b), (0, 2)),
            _ => panic!("a batch open with linger 0 is due at once"),
        }
        assert!(matches!(
            lane.take(Duration::ZERO, true, now, true),
            Taken::Nothing { closed: false }
        ));
    }

    #[test]
    fn while_partial_batches_may_not_go_only_full_ones_are_taken() {
        let (lane, how, now) = (Lane::default(), how(), shale_core::clock::monotonic_now());
        push(&lane, 100, &how, now);
        let held = lane.take(Duration::ZERO, true, now, false);
        assert!(matches!(held, Taken::Nothing { closed: false }), "the open batch keeps filling");
        // It fills (4096 bytes) and is sealed: a full batch goes whatever is in flight.
        while push(&lane, 1000, &how, now) == Some(Pushed::Joined) {}
        match lane.take(Duration::ZERO, true, now, false) {
            Taken::Batch(b) => assert!(base_sequence(&b).1 > 1, "a full batch"),
            _ => panic!("a full batch is taken while partial ones wait"),
        }
        // A flush sends the open batch too.
        lane.hurry();
        assert!(matches!(lane.take(Duration::ZERO, true, now, false), Taken::Batch(_)));
    }

    #[test]
    fn with_linger_the_open_batch_waits_until_due_or_hurried() {
        let (lane, how, now) = (Lane::default(), how(), shale_core::clock::monotonic_now());
        let linger = Duration::from_millis(5);
        push(&lane, 100, &how, now);
        match lane.take(linger, true, now + Duration::from_millis(4), true) {
            Taken::Later(due) => assert_eq!(due, now + linger),
            _ => panic!("a batch younger than linger waits"),
        }
        assert!(matches!(lane.take(linger, true, now + linger, true), Taken::Batch(_)));
        push(&lane, 100, &how, now);
        lane.hurry();
        assert!(matches!(lane.take(linger, true, now, true), Taken::Batch(_)));
    }

    #[test]
    fn full_batches_seal_in_order_with_consecutive_sequences_and_bound_the_queue() {
        let (lane, how, now) = (Lane::default(), how(), shale_core::clock::monotonic_now());
        let linger = Duration::from_secs(1);
        // 1000-byte records: a few fill a 4096-byte batch; pushes are refused once two
        // sealed batches wait...
        let mut accepted = 0;
        while push(&lane, 1000, &how, now).is_some() {
            accepted += 1;
            assert!(accepted < 20, "the queue of sealed batches is bounded");
        }
        assert!(accepted >= 6, "two full batches and the start of a third: {accepted}");
        let first = match lane.take(linger, true, now, true) {
            Taken::Batch(b) => base_sequence(&b),
            _ => panic!("a full batch is ready whatever the linger"),
        };
        // ...and taken in order, each starting where the last ended.
        assert!(push(&lane, 1000, &how, now).is_some(), "taking a batch makes room");
        let second = match lane.take(linger, true, now, true) {
            Taken::Batch(b) => base_sequence(&b),
            _ => panic!("the second full batch"),
        };
        assert_eq!(first.0 + first.1 as i32, second.0);
        lane.close();
        let third = match lane.take(linger, true, now, true) {
            Taken::Batch(b) => base_sequence(&b),
            _ => panic!("a closed lane hands over its open batch"),
        };
        assert_eq!(second.0 + second.1 as i32, third.0);
        assert!(matches!(lane.take(linger, true, now, true), Taken::Nothing { closed: true }));
    }
}
