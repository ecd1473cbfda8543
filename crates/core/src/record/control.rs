//! Transaction markers: the control batch that ends a producer's transaction on one
//! partition (Kafka's `EndTransactionMarker`). It holds one record whose key is version 0
//! and the control type (0 abort, 1 commit), both i16, and whose value is version 0 (i16)
//! and the epoch of the coordinator that wrote it (i32); the batch is transactional and
//! control, and carries the producer's id and epoch with sequence -1. Only brokers write
//! them: a producer's control batch is refused by [`super::validate_batches`].

use bytes::{BufMut, Bytes};

use super::batch::{ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader};
use super::{BatchBuilder, Compression, Limits, Record, RecordError, decode_batch};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    /// Its records are dropped by `read_committed` readers.
    Abort,
    /// Its records become visible to `read_committed` readers.
    Commit,
}

/// The end of one producer's transaction on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Commit or abort.
    pub kind: MarkerKind,
    /// The epoch of the coordinator that decided it: markers of an older coordinator are
    /// refused once a newer one wrote.
    pub coordinator_epoch: i32,
}

impl Marker {
    /// The marker's control batch for producer `producer_id` at `producer_epoch`.
    pub fn batch(&self, producer_id: i64, producer_epoch: i16, timestamp_ms: i64) -> Bytes {
        let mut key = Vec::with_capacity(4);
        key.put_i16(0);
        key.put_i16(match self.kind {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        });
        let mut value = Vec::with_capacity(6);
        value.put_i16(0);
        value.put_i32(self.coordinator_epoch);
        let mut b = BatchBuilder::new(Compression::None)
            .with_producer(producer_id, producer_epoch, -1)
            .with_flags(ATTR_TRANSACTIONAL | ATTR_CONTROL);
        b.push(Record {
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            headers: Vec::new(),
            timestamp_ms,
        });
        b.build()
    }

    /// The marker in `batch`, a whole control batch; what is wrong with it otherwise.
    pub fn read(batch: &Bytes) -> Result<Marker, RecordError> {
        let (header, records) = decode_batch(batch, &Limits::default())?;
        if !is_marker_header(&header) {
            return Err(corrupt("a transaction marker is a transactional control batch"));
        }
        let [record] = records.as_slice() else {
            return Err(corrupt(format!("a marker batch holds {} records, not 1", records.len())));
        };
        let key = record.key.as_deref().unwrap_or_default();
        let kind = match key {
            [0, 0, 0, 0] => MarkerKind::Abort,
            [0, 0, 0, 1] => MarkerKind::Commit,
            _ => return Err(corrupt(format!("control record key {key:02x?} is not a marker's"))),
        };
        let value = record.value.as_deref().unwrap_or_default();
        let coordinator_epoch = match value {
            [0, 0, e @ ..] if e.len() >= 4 => i32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            _ => return Err(corrupt(format!("marker value {value:02x?} is not version 0"))),
        };
        Ok(Marker { kind, coordinator_epoch })
    }
}

/// Whether `header` is a transaction marker's (control and transactional).
pub fn is_marker_header(header: &BatchHeader) -> bool {
    header.is_control() && header.attributes & ATTR_TRANSACTIONAL != 0
}

/// A transaction an abort marker ended on a partition: its producer's batches from
/// `first_offset` through the marker at `last_offset` are aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// Its producer.
    pub producer_id: i64,
    /// Its first batch's base offset.
    pub first_offset: i64,
    /// Its abort marker's offset.
    pub last_offset: i64,
}

/// Aborted transactions by producer, to ask whether a batch is aborted data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbortedSet {
    /// Per producer, its aborted transactions' (first, last) offsets, ascending.
    by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedSet {
    /// The set of `txns`.
    pub fn new(txns: impl IntoIterator<Item = AbortedTxn>) -> AbortedSet {
        let mut by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>> = Default::default();
        for t in txns {
            by_producer.entry(t.producer_id).or_default().push((t.first_offset, t.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedSet { by_producer }
    }

    /// Whether the batch of `header` is data of an aborted transaction (a transactional
    /// data batch of a producer inside one of its aborted ranges).
    pub fn holds(&self, header: &BatchHeader) -> bool {
        if header.attributes & ATTR_TRANSACTIONAL == 0 || header.is_control() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&header.producer_id) else { return false };
        let offset = header.base_offset;
        let after = ranges.partition_point(|(first, _)| *first <= offset);
        after > 0 && offset <= ranges[after - 1].1
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }
}

/// A `read_committed` reader's filter over the batches of a fetch, as Kafka's consumer
/// runs it: the fetch lists the aborted transactions its batches overlap as (producer id,
/// first offset); from a transaction's first offset, its producer's transactional batches
/// are skipped until that producer's abort marker. Control batches are skipped always.
/// Batches must be shown in offset order, across the fetches of one partition too (a new
/// fetch's list is [`add`](Self::add)ed).
#[derive(Debug, Default, Clone)]
pub struct CommittedFilter {
    /// Aborted transactions not reached yet, as (first offset, producer), last first.
    ahead: Vec<(i64, i64)>,
    /// Producers inside one of their aborted transactions.
    aborting: std::collections::HashSet<i64>,
}

impl CommittedFilter {
    /// A filter for a fetch that listed `aborted` as (producer id, first offset).
    pub fn new(aborted: impl IntoIterator<Item = (i64, i64)>) -> CommittedFilter {
        let mut f = CommittedFilter::default();
        f.add(aborted);
        f
    }

    /// Adds the aborted transactions a later fetch listed.
    pub fn add(&mut self, aborted: impl IntoIterator<Item = (i64, i64)>) {
        self.ahead.extend(aborted.into_iter().map(|(pid, first)| (first, pid)));
        self.ahead.sort_unstable_by(|a, b| b.cmp(a));
        self.ahead.dedup();
    }

    /// Whether a `read_committed` reader skips the batch of `header` (whose whole bytes are
    /// `batch`, read to tell an abort marker from a commit marker).
    pub fn skips(&mut self, header: &BatchHeader, batch: &[u8]) -> bool {
        if header.producer_id >= 0 {
            while let Some(&(first, pid)) = self.ahead.last() {
                if first > header.last_offset() {
                    break;
                }
                self.aborting.insert(pid);
                self.ahead.pop();
            }
            if is_marker_header(header) {
                // Only a producer inside an aborted transaction needs its marker read.
                let aborting = self.aborting.contains(&header.producer_id);
                if aborting
                    && Marker::read(&Bytes::copy_from_slice(batch))
                        .is_ok_and(|m| m.kind == MarkerKind::Abort)
                {
                    self.aborting.remove(&header.producer_id);
                }
            } else if header.attributes & ATTR_TRANSACTIONAL != 0
                && self.aborting.contains(&header.producer_id)
            {
                return true;
            }
        }
        header.is_control()
    }
}

fn corrupt(why: impl Into<String>) -> RecordError {
    RecordError::Corrupt(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a commit marker, field by field from Kafka's layout.
    #[test]
    fn a_marker_round_trips_and_is_laid_out_as_kafkas() {
        let m = Marker { kind: MarkerKind::Commit, coordinator_epoch: 7 };
        let batch = m.batch(42, 3, 1_000);
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.attributes, ATTR_TRANSACTIONAL | ATTR_CONTROL);
        assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (42, 3, -1));
        let (_, records) = decode_batch(&batch, &Limits::default()).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(records[0].value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 7][..]));
        assert_eq!(Marker::read(&batch).unwrap(), m);
        let abort = Marker { kind: MarkerKind::Abort, coordinator_epoch: 0 };
        assert_eq!(Marker::read(&abort.batch(1, 0, 0)).unwrap(), abort);
    }

    #[test]
    fn a_data_batch_is_not_a_marker() {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(Record { key: None, value: None, headers: vec![], timestamp_ms: 0 });
        let e = Marker::read(&b.build()).unwrap_err();
        assert!(e.to_string().contains("transactional control batch"), "{e}");
    }

    fn batch_of(pid: i64, base: i64, n: usize, transactional: bool) -> Bytes {
        let mut b = BatchBuilder::new(Compression::None).with_producer(pid, 0, 0);
        if transactional {
            b = b.transactional();
        }
        for _ in 0..n {
            b.push(Record { key: None, value: None, headers: vec![], timestamp_ms: 0 });
        }
        let mut bytes = b.build().to_vec();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        Bytes::from(bytes)
    }

    fn marker_at(pid: i64, offset: i64, kind: MarkerKind) -> Bytes {
        let mut bytes = Marker { kind, coordinator_epoch: 0 }.batch(pid, 0, 0).to_vec();
        bytes[..8].copy_from_slice(&offset.to_be_bytes());
        Bytes::from(bytes)
    }

    /// Kafka's consumer's walk: producer 7's transaction from offset 2 is aborted (its
    /// batches skipped through its abort marker), producer 8's interleaved committed one is
    /// kept, as are plain batches; markers are never shown. A transaction listed by a
    /// later fetch is honoured too.
    #[test]
    fn a_committed_filter_skips_aborted_transactions_and_markers_only() {
        let log = [
            (batch_of(9, 0, 2, false), false),
            (batch_of(7, 2, 2, true), true),
            (batch_of(8, 4, 1, true), false),
            (batch_of(7, 5, 3, true), true),
            (marker_at(7, 8, MarkerKind::Abort), true),
            (marker_at(8, 9, MarkerKind::Commit), true),
            (batch_of(7, 10, 1, true), false),
            (marker_at(7, 11, MarkerKind::Commit), true),
            (batch_of(8, 12, 1, true), true),
            (marker_at(8, 13, MarkerKind::Abort), true),
        ];
        let mut f = CommittedFilter::new([(7, 2)]);
        for (i, (bytes, skipped)) in log.iter().enumerate() {
            if i == 8 {
                f.add([(8, 12)]);
            }
            let h = BatchHeader::parse(bytes).unwrap();
            assert_eq!(f.skips(&h, bytes), *skipped, "batch at {}", h.base_offset);
        }
    }

    /// A transactional data batch inside one of its producer's aborted ranges is held; a
    /// batch of another producer, after the marker, plain, or a marker itself is not.
    #[test]
    fn an_aborted_set_holds_the_aborted_batches_only() {
        let txn = |pid: i64, offset: i64| {
            let mut b =
                BatchBuilder::new(Compression::None).with_producer(pid, 0, 0).transactional();
            b.push(Record { key: None, value: None, headers: vec![], timestamp_ms: 0 });
            let mut h = BatchHeader::parse(&b.build()).unwrap();
            h.base_offset = offset;
            h
        };
        let set = AbortedSet::new([
            AbortedTxn { producer_id: 7, first_offset: 10, last_offset: 14 },
            AbortedTxn { producer_id: 7, first_offset: 2, last_offset: 4 },
        ]);
        assert!(set.holds(&txn(7, 2)) && set.holds(&txn(7, 3)) && set.holds(&txn(7, 12)));
        assert!(!set.holds(&txn(7, 5)) && !set.holds(&txn(7, 15)) && !set.holds(&txn(7, 1)));
        assert!(!set.holds(&txn(8, 3)), "another producer");
        let mut plain = txn(7, 3);
        plain.attributes = 0;
        assert!(!set.holds(&plain), "not transactional");
        let mut marker = txn(7, 4);
        marker.attributes |= ATTR_CONTROL;
        assert!(!set.holds(&marker), "the marker is no data");
    }
}
