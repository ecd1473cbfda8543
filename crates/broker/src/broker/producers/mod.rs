//! Idempotent producers: producer ids allocated through the metadata store, and per
//! partition the last few batches of each producer (by sequence number), so a retried batch
//! is answered with its original offsets instead of being written twice, and a gap in the
//! sequence is refused until the missing batch arrives.
//!
//! Leaders and followers keep the state as they append (the producer id, epoch and base
//! sequence travel in the batch header), so a new leader after failover dedups too. After a
//! restart the state comes from the newest snapshot (written at each roll) and the log
//! after it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::BatchHeader;
use shale_meta::json::encode;
use shale_meta::{Compare, Keys, MetaStore, Txn, TxnOp, Versioned};
use shale_storage::log::FileHeader;

/// Producer-state snapshot files: `{offset:020}.snapshot` in a partition directory holds
/// every producer's state as of `offset` (its batches below it), as Kafka's `.snapshot`
/// files. Written when the log rolls; on open the newest one is loaded and the log replayed
/// from its offset, so the state survives restarts however long ago a producer last wrote.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Producer-state snapshot file header: magic `SHPS`, version 1.
const SNAPSHOT_HEADER: FileHeader = FileHeader { magic: *b"SHPS", version: 1 };

/// The file name of the snapshot at `offset`.
pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset a snapshot file name carries.
pub fn snapshot_offset(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

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
                Reason::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is older than epoch {} already seen; a newer \
                     instance of this producer exists",
                    header.producer_id, header.producer_epoch, entry.epoch
                ),
            ));
        }
        if header.producer_epoch > entry.epoch {
            // As Kafka: a new epoch of a known producer starts at sequence 0. Retrying
            // cannot fix it, so it is not retriable.
            if header.base_sequence != 0 {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::OutOfOrderSequence,
                    format!(
                        "producer {} starts epoch {} at sequence {}, but a new epoch starts at \
                         sequence 0; the batch was not written",
                        header.producer_id, header.producer_epoch, header.base_sequence
                    ),
                ));
            }
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
                Reason::OutOfOrderSequence,
                format!(
                    "producer {} sent sequence {} but {expected} comes next; the batch was \
                     not written (an earlier one is missing: retry in order)",
                    header.producer_id, header.base_sequence
                ),
            ));
        }
        Ok(Verdict::Append)
    }

    /// The base offset of each producer's last batch here: a clean keeps those (emptied if
    /// need be), so the producer's state survives it.
    pub fn last_batches(&self) -> std::collections::HashSet<i64> {
        let map = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter_map(|e| e.batches.back().map(|b| b.base_offset)).collect()
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

    /// The state as of `offset` (batches that end below it), as snapshot file bytes:
    /// the shared file header, offset, producer count, then per producer its id, epoch and batches, then a
    /// CRC-32C of everything before it; all big-endian.
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let map = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let mut producers: Vec<(i64, i16, Vec<BatchMeta>)> = map
            .iter()
            .map(|(id, e)| {
                let kept = e.batches.iter().filter(|b| b.last_offset < offset).copied().collect();
                (*id, e.epoch, kept)
            })
            .filter(|(_, _, b): &(i64, i16, Vec<BatchMeta>)| !b.is_empty())
            .collect();
        producers.sort_by_key(|(id, _, _)| *id);
        let mut out = SNAPSHOT_HEADER.to_vec();
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
        for (id, epoch, batches) in producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.push(batches.len() as u8);
            for b in batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Replaces the state with a snapshot's; returns the snapshot's offset.
    pub fn load_snapshot(&self, bytes: &[u8]) -> Result<i64, String> {
        let (body, crc) =
            bytes.split_at_checked(bytes.len().saturating_sub(4)).ok_or("too short")?;
        let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "too short")?);
        if crc32c::crc32c(body) != crc {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader(SNAPSHOT_HEADER.check(body)?);
        let offset = r.i64()?;
        let mut map = HashMap::new();
        for _ in 0..r.u32()? {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let mut batches = VecDeque::new();
            for _ in 0..r.u8()? {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            map.insert(id, Entry { epoch, batches });
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        *self.producers.lock().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(offset)
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

/// Big-endian fields off the front of a snapshot.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self.0.split_at_checked(N).ok_or("truncated snapshot")?;
        self.0 = rest;
        Ok(head.try_into().map_err(|_| "truncated snapshot")?)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
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

    /// As Kafka: a known producer's new epoch starts at sequence 0; a producer this
    /// partition has no state for (never seen, or its batches expired) is accepted at any
    /// sequence.
    #[test]
    fn a_new_epoch_starts_at_sequence_zero_and_unknown_producers_at_any() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&header(9, 0, 42, 1)).unwrap(), Verdict::Append, "unknown producer");
        s.record(&header(7, 0, 0, 1), 10);
        let e = s.check(&header(7, 1, 5, 1)).unwrap_err();
        assert_eq!((&*e.reason, e.kind), ("OUT_OF_ORDER_SEQUENCE", ErrorKind::Invalid));
        assert_eq!(s.check(&header(7, 1, 0, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn a_snapshot_keeps_the_state_below_its_offset_and_refuses_damage() {
        let s = ProducerStates::default();
        s.record(&header(7, 2, 0, 3), 100);
        s.record(&header(7, 2, 3, 1), 103);
        s.record(&header(8, 0, 0, 1), 104);
        let bytes = s.encode_snapshot(104);
        let loaded = ProducerStates::default();
        assert_eq!(loaded.load_snapshot(&bytes), Ok(104));
        match loaded.check(&header(7, 2, 3, 1)).unwrap() {
            Verdict::Duplicate(m) => assert_eq!(m.base_offset, 103),
            v => panic!("{v:?}"),
        }
        // Producer 8's batch is at 104, not below the snapshot: replay brings it back.
        assert_eq!(loaded.check(&header(8, 0, 5, 1)).unwrap(), Verdict::Append);
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(ProducerStates::default().load_snapshot(&bad), Err("checksum mismatch".into()));
        assert!(ProducerStates::default().load_snapshot(&bytes[..10]).is_err());
        assert_eq!(snapshot_offset(&snapshot_name(104)), Some(104));
        assert_eq!(snapshot_offset("00000000000000000104.log"), None);
    }

    #[tokio::test]
    async fn ids_come_in_blocks_from_the_store() {
        let store: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("c").unwrap();
        let a = ProducerIds::new(store.clone(), &keys);
        let b = ProducerIds::new(store, &keys);
        let (x, y) = (a.next().await.unwrap(), b.next().await.unwrap());
        assert_ne!(x, y);
        assert_eq!(a.next().await.unwrap(), x + 1);
    }
}
