//! Idempotent producers: producer ids allocated through the metadata store, and per
//! partition the last few batches of each producer (by sequence number), so a retried batch
//! is answered with its original offsets instead of being written twice, and a gap in the
//! sequence is refused until the missing batch arrives.
//!
//! Leaders and followers keep the state as they append (the producer id, epoch and base
//! sequence travel in the batch header), so a new leader after failover dedups too. After a
//! restart the state is rebuilt from the log's recent tail.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind};
use crate::meta::json::encode;
use crate::meta::{Compare, Keys, MetaStore, Txn, TxnOp, Versioned};
use crate::record::BatchHeader;

/// Batches remembered per producer and partition (Kafka's max in-flight for idempotence).
pub const REMEMBERED_BATCHES: usize = 5;
/// Producer ids a broker takes from the store at a time.
const ID_BLOCK: i64 = 1000;

/// Where one batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

#[derive(Debug, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New and in order: append it.
    Append,
    /// Seen before: answer with where it landed.
    Duplicate(BatchMeta),
}

/// The producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: Mutex<HashMap<i64, Entry>>,
}

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta)
}

impl ProducerStates {
    /// Checks a producer batch against what this partition has seen from its producer.
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, Error> {
        let map = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = map.get(&header.producer_id) else { return Ok(Verdict::Append) };
        if header.producer_epoch < entry.epoch {
            return Err(Error::new(
                ErrorKind::Fenced,
                "INVALID_PRODUCER_EPOCH",
                format!(
                    "producer {} epoch {} is older than epoch {} already seen; a newer \
                     instance of this producer exists",
                    header.producer_id, header.producer_epoch, entry.epoch
                ),
            ));
        }
        if header.producer_epoch > entry.epoch {
            return Ok(Verdict::Append);
        }
        let last = last_seq(header);
        if let Some(meta) =
            entry.batches.iter().find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return Ok(Verdict::Duplicate(*meta));
        }
        let expected = entry.batches.back().map_or(0, |b| b.last_seq.wrapping_add(1));
        if header.base_sequence != expected {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "OUT_OF_ORDER_SEQUENCE",
                format!(
                    "producer {} sent sequence {} but {expected} comes next; the batch was \
                     not written (an earlier one is missing: retry in order)",
                    header.producer_id, header.base_sequence
                ),
            ));
        }
        Ok(Verdict::Append)
    }

    /// Remembers a batch appended at `base_offset` (leader or follower).
    pub fn record(&self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        let mut map = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset,
            last_offset: base_offset + header.last_offset_delta as i64,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets batches at or after `offset` (the log was truncated there).
    pub fn truncate(&self, offset: i64) {
        let mut map = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        for entry in map.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        map.retain(|_, e| !e.batches.is_empty());
    }
}

/// Hands out producer ids, taking blocks of them from the store's counter.
#[derive(Debug)]
pub struct ProducerIds {
    store: Arc<dyn MetaStore>,
    key: String,
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// An allocator over the cluster's `producer_id_seq` key.
    pub fn new(store: Arc<dyn MetaStore>, keys: &Keys) -> Self {
        ProducerIds {
            store,
            key: format!("{}producer_id_seq", keys.root()),
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The next producer id.
    pub async fn next(&self) -> Result<i64, Error> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            *block = self.take_block().await?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    async fn take_block(&self) -> Result<(i64, i64), Error> {
        loop {
            let (start, revision) = match self.store.get(&self.key).await? {
                Some(kv) => {
                    let rev = kv.mod_revision;
                    (Versioned::<i64>::decode(kv)?.value, rev)
                }
                None => (0, 0),
            };
            let end = start + ID_BLOCK;
            let txn = Txn::new()
                .when(Compare::mod_revision(self.key.clone(), revision))
                .and_then(TxnOp::put(self.key.clone(), encode(&self.key, &end)?));
            if self.store.txn(txn).await?.succeeded {
                return Ok((start, end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    #[test]
    fn duplicates_are_recognised_and_gaps_refused() {
        let s = ProducerStates::default();
        let a = header(7, 0, 0, 3);
        assert_eq!(s.check(&a).unwrap(), Verdict::Append);
        s.record(&a, 100);
        let b = header(7, 0, 3, 2);
        assert_eq!(s.check(&b).unwrap(), Verdict::Append);
        s.record(&b, 103);
        match s.check(&a).unwrap() {
            Verdict::Duplicate(m) => assert_eq!((m.base_offset, m.last_offset), (100, 102)),
            v => panic!("{v:?}"),
        }
        let gap = header(7, 0, 9, 1);
        assert_eq!(s.check(&gap).unwrap_err().reason, "OUT_OF_ORDER_SEQUENCE");
        assert_eq!(s.check(&header(7, 0, 5, 1)).unwrap(), Verdict::Append);
        // A newer epoch starts over; an older one is fenced.
        s.record(&header(7, 1, 0, 1), 200);
        assert_eq!(s.check(&header(7, 0, 5, 1)).unwrap_err().reason, "INVALID_PRODUCER_EPOCH");
        // Truncation forgets what was cut.
        s.truncate(200);
        assert_eq!(s.check(&header(7, 1, 0, 1)).unwrap(), Verdict::Append);
    }

    #[tokio::test]
    async fn ids_come_in_blocks_from_the_store() {
        let store: Arc<dyn MetaStore> =
            crate::meta::EmbeddedStore::in_memory(crate::clock::system());
        let keys = Keys::new("c").unwrap();
        let a = ProducerIds::new(store.clone(), &keys);
        let b = ProducerIds::new(store, &keys);
        let (x, y) = (a.next().await.unwrap(), b.next().await.unwrap());
        assert_ne!(x, y);
        assert_eq!(a.next().await.unwrap(), x + 1);
    }
}
