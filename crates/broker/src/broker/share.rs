//! Share partitions on their leader (KIP-932): what `groups::share` keeps, applied to this
//! broker's logs. An acquisition reads the log from the first record that may be given
//! out, hands the member what is available under a lock, and answers the whole batches
//! holding those records; acknowledgements and releases change the state and store it
//! before they are confirmed. Every call checks that this broker leads the partition and
//! loads the share partition for its current leader epoch.

use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};

use super::fetch::{Isolation, ReadWant, WaitFor};
use super::{Broker, Partition};
use crate::groups::configs::{ShareConfigs, ShareReset};
use crate::groups::share::{
    Ack, AckBatch, Acquired, Archived, Held, Limits, Locked, LogBatch, SharePartitionKey, Slot,
    Start,
};
use shale_core::error::Error;
use shale_core::record::batch::BatchFrames;
use shale_meta::{Keys, MetaStore};

/// What a member acquired from one partition: the batches that hold its records (whole,
/// as stored: the client delivers only the acquired offsets) and the runs it holds.
#[derive(Debug, Clone, Default)]
pub struct ShareChunk {
    pub batches: Bytes,
    pub acquired: Vec<Acquired>,
}

/// A share partition opened for one operation: the group's configs as of `now`, and its
/// state, locked.
struct Opened {
    now: i64,
    configs: ShareConfigs,
    limits: Limits,
    slot: Arc<Slot>,
    key: SharePartitionKey,
    guard: Locked,
}

fn share_key(group: &str, partition: &Partition) -> SharePartitionKey {
    SharePartitionKey {
        group: group.to_string(),
        topic: partition.topic().to_string(),
        partition: partition.index(),
    }
}

impl Opened {
    /// The state (present: `share_open` checked it).
    fn held(&mut self) -> &mut Held {
        self.guard.as_mut().unwrap_or_else(|| unreachable!("checked by share_open"))
    }
}

fn limits(c: &ShareConfigs) -> Limits {
    Limits {
        lock_ms: i64::from(c.lock_ms),
        delivery_limit: c.delivery_limit,
        max_in_flight: c.max_in_flight,
    }
}

impl Broker {
    /// `group`'s share partition of `partition`, locked and loaded for its current leader,
    /// with the group's configs.
    async fn share_open(&self, group: &str, partition: &Partition) -> Result<Opened, Error> {
        let now = self.clock.now_ms();
        let configs = self.groups().share_configs(group, now).await;
        let key = share_key(group, partition);
        let shares = self.groups().shares();
        let slot = shares.slot(&key);
        let initial = match configs.reset {
            ShareReset::Latest => partition.high_watermark(),
            ShareReset::Earliest => partition.log_start_offset(),
        };
        let start = Start { leader_epoch: partition.leader_epoch(), initial };
        let guard = shares.lock(&slot, &key, partition.topic_id(), start).await?;
        if guard.is_none() {
            return Err(Error::internal("share slot empty"));
        }
        Ok(Opened { now, limits: limits(&configs), configs, slot, key, guard })
    }

    /// Acquires for `member` of `group` up to `max_records` records of `partition` (led
    /// here), reading at most `max_bytes`. Locks that lapsed are given back first.
    pub(crate) async fn share_acquire(
        self: &Arc<Self>,
        group: &str,
        member: &Arc<str>,
        partition: &Arc<Partition>,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ShareChunk, Error> {
        let mut o = self.share_open(group, partition).await?;
        let (now, limits) = (o.now, o.limits);
        let (lapsed, archived) = o.held().flight.expire(now, &limits);
        self.dead_letter_of(group, &o.configs, partition, &archived).await;
        let skipped = o.held().flight.skip_to(partition.log_start_offset());
        let mut dirty = !archived.is_empty() | skipped;
        let Some(offset) = o.held().flight.next_read(&limits) else {
            return self
                .share_settle(&mut o, dirty, lapsed > 0)
                .await
                .map(|_| ShareChunk::default());
        };
        let isolation = match o.configs.read_committed {
            true => Isolation::ReadCommitted,
            false => Isolation::ReadUncommitted,
        };
        let want = ReadWant { partition: partition.clone(), offset, max_bytes, isolation };
        let wait = WaitFor {
            max_bytes,
            min_bytes: 1,
            max_wait: Some(std::time::Duration::ZERO),
            answer_at_end: true,
        };
        let read = super::fetch::long_poll(&[Ok(want)], &wait, self.closed_signal()).await;
        let chunk = read.into_iter().next().unwrap_or_else(|| Err(Error::internal("no read")))?;
        let batches = log_batches(&chunk.batches, &chunk.aborted);
        let acquired = o.held().flight.acquire(member, &batches, max_records, now, &limits);
        // A redelivery is stored, so the delivery limit holds across a failover.
        dirty |= acquired.iter().any(|a| a.deliveries > 1);
        let taken = holding(&chunk.batches, &acquired);
        self.share_settle(&mut o, dirty, lapsed > 0).await?;
        Ok(ShareChunk { batches: taken, acquired })
    }

    /// Copies `archived` to the group's dead-letter topic, if it names one; before the
    /// archive is stored (`share_dlq.rs`).
    async fn dead_letter_of(
        self: &Arc<Self>,
        group: &str,
        configs: &ShareConfigs,
        partition: &Partition,
        archived: &[Archived],
    ) {
        if let Some(topic) = &configs.dead_letter_topic {
            self.dead_letter(group, topic, partition, archived).await;
        }
    }

    /// Stores the state of `o` when `dirty`, and wakes waiting readers when records
    /// became available.
    async fn share_settle(&self, o: &mut Opened, dirty: bool, freed: bool) -> Result<(), Error> {
        if dirty {
            self.groups().shares().persist(&o.key, &mut o.guard).await?;
        }
        if freed {
            o.slot.wake();
        }
        Ok(())
    }

    /// Applies `member`'s acknowledgements of `partition` (led here), all or none, and
    /// stores them before answering. Answers the records archived.
    pub(crate) async fn share_acknowledge(
        self: &Arc<Self>,
        group: &str,
        member: &str,
        partition: &Arc<Partition>,
        batches: &[AckBatch],
    ) -> Result<Vec<Archived>, Error> {
        let mut o = self.share_open(group, partition).await?;
        let limits = o.limits;
        let archived = o.held().flight.acknowledge(member, batches, &limits)?;
        self.dead_letter_of(group, &o.configs, partition, &archived).await;
        let freed = batches.iter().any(|b| b.types.contains(&Ack::Release));
        self.share_settle(&mut o, true, freed).await?;
        Ok(archived)
    }

    /// Gives back what `member` of `group` holds of `partition` (its share session closed).
    pub(crate) async fn share_release(
        self: &Arc<Self>,
        group: &str,
        member: &str,
        partition: &Arc<Partition>,
    ) -> Result<usize, Error> {
        let mut o = self.share_open(group, partition).await?;
        let limits = o.limits;
        let (released, archived) = o.held().flight.release_member(member, &limits);
        self.dead_letter_of(group, &o.configs, partition, &archived).await;
        self.share_settle(&mut o, !archived.is_empty(), released > 0).await?;
        Ok(released)
    }

    /// `group`'s share partition of `partition`: its slot (state and wake-ups).
    pub(crate) fn share_slot(&self, group: &str, partition: &Partition) -> Arc<Slot> {
        self.groups().shares().slot(&share_key(group, partition))
    }

    /// When the first lock of `group`'s share partition of `partition` lapses (wall ms).
    pub(crate) fn share_next_deadline(&self, group: &str, partition: &Partition) -> Option<i64> {
        self.share_slot(group, partition).try_peek(|h| h.flight.next_deadline()).flatten()
    }
}

/// The batches of `bytes` as an acquisition sees them: control batches, and for a
/// `read_committed` read the batches of the transactions in `aborted` (producer id, first
/// offset) up to their abort markers, are to be skipped.
fn log_batches(bytes: &Bytes, aborted: &[(i64, i64)]) -> Vec<LogBatch> {
    let mut aborting: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    for frame in BatchFrames::new(bytes, usize::MAX) {
        let Ok((h, _)) = frame else { break };
        for (pid, first) in aborted {
            if *pid == h.producer_id && *first <= h.base_offset && !aborting.contains(pid) {
                aborting.push(*pid);
            }
        }
        let aborted_data = !h.is_control() && aborting.contains(&h.producer_id);
        if h.is_control() {
            aborting.retain(|p| *p != h.producer_id);
        }
        out.push(LogBatch {
            first: h.base_offset,
            last: h.last_offset(),
            skip: h.is_control() || aborted_data,
        });
    }
    out
}

/// The batches of `bytes` that hold an offset of `acquired`.
fn holding(bytes: &Bytes, acquired: &[Acquired]) -> Bytes {
    let mut out = BytesMut::new();
    for frame in BatchFrames::new(bytes, usize::MAX) {
        let Ok((h, range)) = frame else { break };
        if acquired.iter().any(|a| a.first <= h.last_offset() && h.base_offset <= a.last) {
            out.extend_from_slice(&bytes[range]);
        }
    }
    out.freeze()
}

/// Follows the groups' share reset markers (`share_resets/{g}`): when an administrator
/// changed a group's share state (altered or deleted its offsets, deleted the group), this
/// broker drops what it holds of the group, to load the new state on its next use. Runs
/// until the broker stops.
pub(crate) async fn follow_resets(broker: Weak<Broker>, meta: Arc<dyn MetaStore>, keys: Keys) {
    fn decode(_: &str, value: &[u8]) -> Option<i64> {
        serde_json::from_slice(value).ok()
    }
    let prefix = keys.share_resets();
    let (known, from) = loop {
        match crate::watched::read(&*meta, &prefix, decode).await {
            Ok(read) => break read,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the share reset markers; retrying");
                shale_core::clock::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    };
    let seen = std::sync::Mutex::new(known.clone());
    let watched = prefix.clone();
    crate::watched::follow(meta, prefix, from, known, decode, move |now| {
        let Some(broker) = broker.upgrade() else { return };
        let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, marker) in now {
            if seen.get(key) != Some(marker)
                && let Some(group) =
                    keys.components(&watched, key).and_then(|c| c.into_iter().next())
            {
                broker.groups().shares().forget(&group);
            }
        }
        *seen = now.clone();
    })
    .await
}
