//! The write path of a partition replica: validate, check leadership and the idempotent
//! producer's sequence, append under the append lock, then hand the acknowledgement to
//! `ack` (fsync, the high watermark over `min.insync.replicas`, cuts), as `acks` and the
//! topic's flush policy ask. Also the follower's writes: appends replicated from the
//! leader, truncation and reset.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::Partition;
use crate::broker::producers::{TxnGuard, Verdict};
use crate::metrics::observe_since;
use shale_core::acks::Acks;
use shale_core::clock::monotonic_now;
use shale_core::error::{Error, Reason};
use shale_core::record::control::Marker;
use shale_core::record::{BatchHeader, Limits, validate_batches};
use shale_storage::log::{AppendInfo, JournalMarks};

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Leader epoch the batches were stamped with.
    pub leader_epoch: i32,
}

/// The most bytes an append runs inline, on the task that received it: validating them
/// (inflating them, when compressed) takes well under a millisecond. A larger one, or one
/// the log cannot take in memory, goes to a blocking thread, its cost spread over more
/// records.
const INLINE_MAX_BYTES: usize = 64 << 10;

tokio::task_local! {
    /// Set inside [`append_all`]: appends that touch memory only run inline. True once an
    /// acknowledgement of the request waits for its log's fsync (`flush.policy=always`):
    /// only then does the request wait for its journal rounds.
    static APPENDING: Cell<bool>;
}

/// Runs one request's `appends` (a Kafka Produce's partitions, a ProduceMany message's
/// requests), in order, on the task that received it: each append that touches memory
/// only (`PartitionLog::appends_in_memory`: buffered, pushed to the journal) and is small
/// runs inline; at the first other (a roll's fsync, a full buffer's write, a large batch)
/// the task's thread turns blocking for the rest of the request (`block_in_place`). The
/// journal's writer is woken once, after the last of them (`deferring_journal_kicks_task`):
/// one journal round for the request, and no thread hop for it in the usual case.
///
/// Returns `appends`' output and, when an acknowledgement of the request waits for an
/// fsync, where the request's journal frames end: awaiting [`JournalMarks::told`] before
/// the acknowledgements answers the request's partitions after one wake-up a journal
/// round, not one per partition (each partition's wait then finds its log durable and
/// subscribes to nothing, unless its log was told by the notifier or appended off the
/// task: those wait as before). No marks when none waits (`flush.policy=interval`,
/// `acks=0`): such a request is answered without waiting for a round.
///
/// Combinators for the reason `deferring_journal_kicks_task` uses them: an `async fn` or
/// block holds the future it awaits twice over, and this one is a request's, built and
/// moved per request (`append_all_adds_little_to_the_future_it_wraps`).
pub fn append_all<F: std::future::Future>(
    appends: F,
) -> impl std::future::Future<Output = (F::Output, JournalMarks)> {
    use futures::FutureExt;
    // The first closure runs inside the scope's poll, where `APPENDING` is set.
    let scoped =
        APPENDING.scope(Cell::new(false), appends.map(|out| (out, APPENDING.with(Cell::get))));
    shale_storage::log::deferring_journal_kicks_task(scoped)
        .map(|((out, waits), marks)| (out, if waits { marks } else { JournalMarks::default() }))
}

/// Notes, inside [`append_all`], that an acknowledgement of the request waits for an
/// fsync: the request then waits for its journal rounds.
pub(super) fn note_fsync_wait() {
    let _ = APPENDING.try_with(|waits| waits.set(true));
}

/// Where an append's step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepOn {
    /// On the calling task: it touches memory only.
    Task,
    /// On the calling thread, turned blocking for the rest of the request
    /// (`block_in_place`): later appends of the request then cost no hop either, where a
    /// hop each would take them one round trip at a time (10,000 partitions, most buffers
    /// full: p50 0.55 s -> 2.5 s).
    ThreadInPlace,
    /// On a blocking thread, by a hop there and back (outside [`append_all`], or on a
    /// single-threaded runtime, which cannot hand its work over).
    BlockingThread,
}

/// Resolves when a produce is acknowledged per its `acks`.
pub type PendingAck = futures::future::BoxFuture<'static, Result<Produced, Error>>;

impl Partition {
    /// Validates and appends producer batches, then waits as `acks` asks.
    pub async fn produce(self: &Arc<Self>, batches: Bytes, acks: Acks) -> Result<Produced, Error> {
        self.append(batches, acks).await?.await
    }

    /// Validates and appends producer batches; the returned future resolves when `acks` is
    /// satisfied. Appends happen in call order, waits may overlap, so a pipelined stream
    /// keeps its order while its fsyncs are shared (group commit).
    pub async fn append(self: &Arc<Self>, batches: Bytes, acks: Acks) -> Result<PendingAck, Error> {
        self.append_guarded(batches, acks, None).await
    }

    /// [`append`](Self::append) of a transactional producer's batch, with the guard of the
    /// coordinator's confirmation when the batch opens the producer's transaction here.
    pub async fn append_guarded(
        self: &Arc<Self>,
        batches: Bytes,
        acks: Acks,
        guard: Option<TxnGuard>,
    ) -> Result<PendingAck, Error> {
        self.append_validated(batches, None, acks, guard).await
    }

    /// [`append_guarded`](Self::append_guarded) of batches the caller has validated
    /// already against the partition's produce limits (`headers`, theirs), so
    /// they are not decoded twice; `None` validates them here.
    pub async fn append_validated(
        self: &Arc<Self>,
        batches: Bytes,
        headers: Option<Vec<BatchHeader>>,
        acks: Acks,
        guard: Option<TxnGuard>,
    ) -> Result<PendingAck, Error> {
        let limits = self.produce_limits();
        let on = self.step_on(&batches);
        self.append_by(acks, on, move |p| p.append_step(batches, headers, &limits, guard)).await
    }

    /// Appends `batches` only if they land at exactly `expected` (the log ends there) and
    /// this broker still leads at `epoch`: a writer that decided on the log up to
    /// `expected` appends after nothing it has not seen (the schema registry's writer).
    /// Refused otherwise, with nothing appended: `NOT_LEADER` for another epoch, a
    /// retriable `Unavailable` for a log that moved on.
    pub async fn append_at(
        self: &Arc<Self>,
        batches: Bytes,
        expected: i64,
        epoch: i32,
        acks: Acks,
    ) -> Result<PendingAck, Error> {
        let limits = self.produce_limits();
        let on = self.step_on(&batches);
        self.append_by(acks, on, move |p| {
            validate_batches(&batches, &limits)?;
            let _guard = p.append_lock.lock().unwrap_or_else(|p| p.into_inner());
            let cuts = p.cuts.load(Ordering::Acquire);
            let leading = p.leading_epoch()?;
            if leading != epoch {
                return Err(shale_core::error::not_leader(
                    &p.topic,
                    p.index,
                    (p.broker_id, leading),
                    "",
                    format!(
                        "{}-{} is led at epoch {leading}, not {epoch}: the write was not appended",
                        p.topic, p.index
                    ),
                ));
            }
            let end = p.log.log_end_offset();
            if end != expected {
                return Err(Error::unavailable(format!(
                    "{}-{} ends at offset {end}, not {expected}: another write came first; \
                     the write was not appended",
                    p.topic, p.index
                )));
            }
            let mut buf = BytesMut::from(batches);
            let info: AppendInfo = p.log.append(&mut buf, epoch)?;
            p.snapshot_if_rolled(info.segment_base);
            Ok((p.produced(info.base_offset, info.last_offset, epoch), cuts))
        })
        .await
    }

    /// Appends the marker that ends `producer`'s transaction here (a control batch at the
    /// producer's id and epoch), as the transaction's coordinator asks; the returned future
    /// resolves once `acks` holds. Refused from an older producer or coordinator epoch than
    /// already seen here, or, for transactions v2 (`tv2`), at the epoch of the open
    /// transaction's batches (`ProducerStates::check_marker`).
    pub async fn append_marker(
        self: &Arc<Self>,
        (producer_id, producer_epoch): (i64, i16),
        marker: Marker,
        tv2: bool,
        acks: Acks,
    ) -> Result<PendingAck, Error> {
        let now = shale_core::clock::system().now_ms();
        let batch = marker.batch(producer_id, producer_epoch, now);
        let on = self.step_on(&batch);
        self.append_by(acks, on, move |p| p.marker_step(batch, &marker, tv2)).await
    }

    /// What a produce's batches are validated against: the topic's `max.message.bytes`,
    /// and keys on a compacted topic.
    pub(crate) fn produce_limits(&self) -> Limits {
        let config = self.config();
        Limits {
            max_batch_bytes: config.max_message_bytes as usize,
            keys_required: config.cleanup_policy.compacts(),
            ..Limits::default()
        }
    }

    /// Where an append of `batches` runs: inside [`append_all`] on the task when it is
    /// small and the log takes it in memory, else on the task's thread turned blocking;
    /// outside, on a blocking thread.
    fn step_on(&self, batches: &[u8]) -> StepOn {
        if APPENDING.try_with(|_| ()).is_err() {
            return StepOn::BlockingThread;
        }
        if batches.len() <= INLINE_MAX_BYTES && self.log.appends_in_memory(batches.len()) {
            return StepOn::Task;
        }
        let handle = tokio::runtime::Handle::try_current();
        match handle.map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => StepOn::ThreadInPlace,
            _ => StepOn::BlockingThread,
        }
    }

    /// Runs an append `step` and returns the wait for `acks`.
    async fn append_by<S>(
        self: &Arc<Self>,
        acks: Acks,
        on: StepOn,
        step: S,
    ) -> Result<PendingAck, Error>
    where
        S: FnOnce(&Partition) -> Result<(Produced, u64), Error> + Send + 'static,
    {
        let config = self.config();
        let min_isr = config.min_insync_replicas as usize;
        if acks == Acks::All && self.repl.isr_len() < min_isr {
            return Err(self.not_enough_replicas(
                min_isr,
                Reason::NotEnoughReplicas,
                "are refused",
            ));
        }
        // One step, run to the end even if this caller is dropped (a client that
        // disconnects): what reaches the log always reaches the producer state too. On the
        // task when it touches memory only; else off the runtime's workers (a write can
        // wait on the file system for a long time under fsync load; see `step_on`).
        let p = self.clone();
        let queued = monotonic_now();
        let step = move || {
            observe_since(&p.stages.append_queue, queued);
            let started = monotonic_now();
            let produced = step(&p);
            observe_since(&p.stages.append, started);
            (produced, monotonic_now())
        };
        let (produced, appended) = match on {
            StepOn::Task => step(),
            StepOn::ThreadInPlace => tokio::task::block_in_place(step),
            StepOn::BlockingThread => tokio::task::spawn_blocking(step)
                .await
                .map_err(|e| Error::internal(format!("append task failed: {e}")))?,
        };
        observe_since(&self.stages.append_resume, appended);
        let (produced, cuts) = produced?;
        Ok(self.pending_ack(produced, cuts, acks, &config, min_isr))
    }

    /// Validates, checks leadership and producer state, appends and records, under the
    /// append lock. Returns what was appended and how many cuts the log had seen then.
    fn append_step(
        &self,
        batches: Bytes,
        headers: Option<Vec<BatchHeader>>,
        limits: &Limits,
        guard: Option<TxnGuard>,
    ) -> Result<(Produced, u64), Error> {
        let headers = match headers {
            Some(headers) => headers,
            None => validate_batches(&batches, limits)?,
        };
        let idempotent = headers.iter().any(|h| h.producer_id >= 0);
        if idempotent && headers.len() != 1 {
            return Err(Error::invalid(format!(
                "a produce request with idempotent batches must carry exactly one batch, not {}",
                headers.len()
            )));
        }
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cuts = self.cuts.load(Ordering::Acquire);
        let epoch = self.leading_epoch()?;
        // A transactional batch continues its producer's open transaction here, or opens
        // one the coordinator confirmed (`guard`): else nothing would ever end it, and the
        // last stable offset would stop there.
        for h in &headers {
            self.producers.check_txn_start(h, guard)?;
        }
        if idempotent && let Verdict::Duplicate(meta) = self.producers.check(&headers[0])? {
            tracing::debug!(
                topic = %self.topic,
                partition = self.index,
                producer = headers[0].producer_id,
                offset = meta.base_offset,
                "duplicate batch answered with its original offsets"
            );
            return Ok((self.produced(meta.base_offset, meta.last_offset, epoch), cuts));
        }
        let mut buf = BytesMut::from(batches);
        let info: AppendInfo = self.log.append(&mut buf, epoch)?;
        if idempotent {
            self.producers.record(&headers[0], info.base_offset);
        }
        self.snapshot_if_rolled(info.segment_base);
        Ok((self.produced(info.base_offset, info.last_offset, epoch), cuts))
    }

    /// Where a produce landed: `base`..=`last`, stamped at `epoch`.
    fn produced(&self, base: i64, last: i64, epoch: i32) -> Produced {
        Produced {
            base_offset: base,
            last_offset: last,
            log_start_offset: self.log.log_start_offset(),
            leader_epoch: epoch,
        }
    }

    /// The epoch this broker leads the partition at, checked under the append lock: a
    /// follower's fetcher truncates and appends under it too, so nothing is written here
    /// after this broker stopped leading at this epoch.
    fn leading_epoch(&self) -> Result<i32, Error> {
        let (leader, epoch) = self.leadership();
        if leader != self.broker_id {
            return Err(shale_core::error::not_leader(
                &self.topic,
                self.index,
                (leader, epoch),
                "",
                format!(
                    "broker {} no longer leads {}-{} (leader {leader}, epoch {epoch}); the \
                     write was not appended",
                    self.broker_id, self.topic, self.index
                ),
            ));
        }
        Ok(epoch)
    }

    /// Appends a marker's control `batch` under the append lock, after the producer
    /// state's check, and records what it ended.
    fn marker_step(
        &self,
        batch: Bytes,
        marker: &Marker,
        tv2: bool,
    ) -> Result<(Produced, u64), Error> {
        let header = shale_core::record::BatchHeader::parse(&batch)?;
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cuts = self.cuts.load(Ordering::Acquire);
        let epoch = self.leading_epoch()?;
        self.producers.check_marker(&header, marker, tv2)?;
        let mut buf = BytesMut::from(batch);
        let info: AppendInfo = self.log.append(&mut buf, epoch)?;
        let ended = self.producers.record_marker(&header, marker, info.base_offset);
        tracing::debug!(topic = %self.topic, partition = self.index,
            producer = header.producer_id, offset = info.base_offset, ?marker, ?ended,
            "transaction marker appended");
        self.snapshot_if_rolled(info.segment_base);
        Ok((self.produced(info.base_offset, info.last_offset, epoch), cuts))
    }

    /// Appends batches replicated from `leader` at `epoch` (a blocking step): only while
    /// this broker still follows that leader at that epoch, and with their producer state,
    /// so that once this broker leads it answers a client's retry of them as a duplicate.
    /// Returns false, appending nothing, when leadership has moved on.
    pub fn append_replicated(
        &self,
        leader: i32,
        epoch: i32,
        batches: &[u8],
    ) -> Result<bool, Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.follows((leader, epoch)) {
            return Ok(false);
        }
        // Kafka's UnexpectedAppendOffset: a log restarted at the leader's log start, which
        // DeleteRecords put inside a batch, gets that whole batch: it starts at the batch.
        let end = self.log.log_end_offset();
        let first = shale_core::record::BatchFrames::new(batches, usize::MAX).next();
        if let Some(Ok((first, _))) = first
            && first.base_offset < end
            && first.next_offset() > end
            && self.log.size_bytes() == 0
        {
            self.reset_locked(first.base_offset)?;
        }
        let info = self.log.append_replicated(batches)?;
        for (header, range) in shale_core::record::BatchFrames::new(batches, usize::MAX).flatten() {
            self.producers.record_stored(&header, &batches[range]);
        }
        self.snapshot_if_rolled(info.segment_base);
        Ok(true)
    }

    /// Whether this broker follows `following` (leader, epoch) in the state last applied
    /// (checked under the append lock by a follower's writes).
    fn follows(&self, following: (i32, i32)) -> bool {
        self.leadership() == following && following.0 != self.broker_id
    }

    /// Empties the log and restarts it at `offset` (a blocking step): for a follower of
    /// `leader` at `epoch` (`following`) whose log ends below what the leader keeps
    /// locally, or below what is already in the bucket, so that it copies only the rest.
    /// Returns false, changing nothing, once it no longer follows them.
    pub fn reset_to(&self, offset: i64, following: (i32, i32)) -> Result<bool, Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.follows(following) {
            return Ok(false);
        }
        self.reset_locked(offset).map(|()| true)
    }

    /// [`reset_to`](Self::reset_to) under the append lock.
    fn reset_locked(&self, offset: i64) -> Result<(), Error> {
        // Counted before the cut, so that a produce whose wait fails because of it sees it.
        self.cuts.fetch_add(1, Ordering::AcqRel);
        let reset = self.log.reset_to(offset);
        self.repl.cap(offset);
        reset?;
        self.producers.truncate(i64::MIN);
        // The producer state forgot the remote log's aborted transactions too.
        self.aborted_learned.store(0, Ordering::Release);
        self.remove_snapshots(|_| true);
        Ok(())
    }

    /// Cuts the log at `offset` (a follower of `leader` at `epoch`, `following`, diverging
    /// from its leader; a blocking step), with the producer state and high watermark that
    /// go with it. Returns the offset cut to, or `None`, cutting nothing, once this broker
    /// no longer follows them: a fetcher of an earlier epoch, whose cut was under way when
    /// this broker was elected, must not cut the log it now leads (its epoch starts at
    /// the log's end when elected; the cut left that start above every follower's end,
    /// and no follower could rejoin the ISR).
    pub fn truncate_to(&self, offset: i64, following: (i32, i32)) -> Result<Option<i64>, Error> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.follows(following) {
            return Ok(None);
        }
        let target = offset.max(self.log.log_start_offset());
        if target < self.log.log_end_offset() {
            // Counted before the cut, so that a produce whose wait fails because of it
            // sees it; the cap below wakes those waiting on the high watermark.
            self.cuts.fetch_add(1, Ordering::AcqRel);
        }
        self.log.truncate_to(target)?;
        self.repl.cap(target);
        self.producers.truncate(target);
        // A snapshot past the cut would vouch for batches that are gone.
        self.remove_snapshots(|o| o > target);
        Ok(Some(target))
    }
}
