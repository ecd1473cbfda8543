//! Keeping some of a batch's records, as a log cleaner does (Kafka's `MemoryRecords.filterTo`
//! under compaction).
//!
//! A batch that keeps every record is left as it is. One that keeps some is rebuilt around
//! them: the same base offset and `lastOffsetDelta` (so the offset after the batch does not
//! move and a compacted log has gaps, never renumbered records), the same producer id,
//! epoch and base sequence (idempotent producers' state survives), leader epoch,
//! attributes and base timestamp; the kept records' bytes as they were (their offset and
//! timestamp deltas stay relative to the unchanged base), compressed again with the batch's
//! codec; the record count, the max timestamp (the kept records' largest, unless the batch
//! is LogAppendTime) and the CRC new. A batch that keeps none may still be needed for its
//! producer's state: [`empty_batch`] writes the header-only batch Kafka keeps then.

use std::ops::Range;

use super::RecordError;
use super::batch::{BatchHeader, Compression, HEADER_LEN, write_crc};
use super::compression::compress;
use super::limits::{Limits, check_batch, records_area};
use super::reader::RecordsReader;

const OFF_LENGTH: usize = 8;
const OFF_ATTRIBUTES: usize = 21;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_COUNT: usize = 57;

/// A record as the cleaner decides on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its offset (base offset plus its delta).
    pub offset: i64,
    /// Its timestamp (the batch's max timestamp for LogAppendTime batches).
    pub timestamp_ms: i64,
    /// Its key, none for null.
    pub key: Option<&'a [u8]>,
    /// Whether its value is null (a tombstone: the key is deleted).
    pub tombstone: bool,
}

/// What [`filter_batch`] left of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record kept: the batch as it was.
    Whole,
    /// Some kept: the batch rebuilt around them.
    Part(Vec<u8>),
    /// None kept.
    Nothing,
}

/// Calls `visit` on each record of `batch` (exactly one whole batch; its CRC is checked and
/// its records decompressed within `limits`), in offset order.
pub fn for_each_record(
    batch: &[u8],
    limits: &Limits,
    mut visit: impl FnMut(&Candidate<'_>),
) -> Result<(), RecordError> {
    walk(batch, limits, |record, _| visit(record)).map(|_| ())
}

/// The header, record count and decompressed records area of `batch` (`None`: not
/// compressed, the area is the batch after its header), once `visit` has seen each record
/// with its bytes' range in the area.
fn walk(
    batch: &[u8],
    limits: &Limits,
    mut visit: impl FnMut(&Candidate<'_>, Range<usize>),
) -> Result<(BatchHeader, usize, Option<Vec<u8>>), RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        let (declared, actual) = (header.total_len(), batch.len());
        return Err(RecordError::BatchLengthMismatch { declared, actual });
    }
    let count = check_batch(&header, batch, limits)?;
    let inflated = records_area(&header, batch, limits)?;
    let area = inflated.as_deref().unwrap_or(&batch[HEADER_LEN..]);
    let mut reader = RecordsReader::new(area);
    let mut headers = Vec::new();
    for _ in 0..count {
        let start = reader.position();
        let raw = reader.next_record(&mut headers)?;
        let timestamp_ms = match header.is_log_append_time() {
            true => header.max_timestamp,
            false => header.base_timestamp.wrapping_add(raw.timestamp_delta),
        };
        let candidate = Candidate {
            offset: header.base_offset.wrapping_add(i64::from(raw.offset_delta)),
            timestamp_ms,
            key: raw.key,
            tombstone: raw.value.is_none(),
        };
        visit(&candidate, start..reader.position());
    }
    reader.finish()?;
    Ok((header, count, inflated))
}

/// Decides on each record of `batch` (exactly one whole batch; its CRC is checked and its
/// records decompressed within `limits`) with `keep`, in offset order.
pub fn filter_batch(
    batch: &[u8],
    limits: &Limits,
    mut keep: impl FnMut(&Candidate<'_>) -> bool,
) -> Result<Filtered, RecordError> {
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut max_timestamp = i64::MIN;
    let (header, count, inflated) = walk(batch, limits, |record, range| {
        if keep(record) {
            kept.push(range);
            max_timestamp = max_timestamp.max(record.timestamp_ms);
        }
    })?;
    let area = inflated.as_deref().unwrap_or(&batch[HEADER_LEN..]);
    if kept.len() == count {
        return Ok(Filtered::Whole);
    }
    if kept.is_empty() {
        return Ok(Filtered::Nothing);
    }
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for range in kept.iter() {
        records.extend_from_slice(&area[range.clone()]);
    }
    let codec = header.compression()?;
    if codec != Compression::None {
        records = compress(codec, &records);
    }
    if header.is_log_append_time() {
        max_timestamp = header.max_timestamp;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&records);
    finish(&mut out, kept.len() as i32, max_timestamp);
    Ok(Filtered::Part(out))
}

/// The batch Kafka keeps when none of a batch's records are: its header with no records
/// and no compression, the same base offset, `lastOffsetDelta`, producer id, epoch and base
/// sequence, leader epoch and timestamp type, both timestamps the batch's max timestamp.
/// `batch` starts with the original batch's header.
pub fn empty_batch(batch: &[u8]) -> Result<Vec<u8>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    let mut out = batch[..HEADER_LEN].to_vec();
    let attributes = header.attributes & !0x07;
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let ts = header.max_timestamp.to_be_bytes();
    out[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&ts);
    finish(&mut out, 0, header.max_timestamp);
    Ok(out)
}

/// Writes the length, record count, max timestamp and CRC of a rebuilt batch.
fn finish(out: &mut [u8], count: i32, max_timestamp: i64) {
    let length = (out.len() - OFF_LENGTH - 4) as i32;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    out[OFF_COUNT..OFF_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    out[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    write_crc(out);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::record::batch::{ATTR_LOG_APPEND_TIME, stamp};
    use crate::record::{BatchBuilder, Record, decode_batch};

    fn record(key: u8, value: Option<Vec<u8>>, ts: i64) -> Record {
        Record {
            key: Some(Bytes::from(vec![key])),
            value: value.map(Bytes::from),
            headers: vec![crate::record::Header { key: "h".into(), value: None }],
            timestamp_ms: ts,
        }
    }

    fn build(records: &[Record], codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec).with_producer(77, 3, 1000);
        for r in records {
            b.push(r.clone());
        }
        let mut batch = b.build().to_vec();
        stamp(&mut batch, 500, 9);
        batch
    }

    fn codecs() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ]
    }

    proptest! {
        /// The rebuilt batch decodes to exactly the kept records, at their offsets, with
        /// their timestamps, keys, values and headers; the batch's offsets, producer fields
        /// and leader epoch are unchanged, and it is valid (length, CRC, count).
        #[test]
        fn a_filtered_batch_holds_exactly_the_kept_records(
            values in proptest::collection::vec(
                (any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                 0i64..5000),
                1..30,
            ),
            keep in proptest::collection::vec(any::<bool>(), 30),
            codec in codecs(),
        ) {
            let records: Vec<Record> =
                values.iter().map(|(k, v, ts)| record(*k, v.clone(), 1_000_000 + ts)).collect();
            let batch = build(&records, codec);
            let (before, all) = decode_batch(&Bytes::from(batch.clone()), &Limits::default()).unwrap();
            let mut i = 0;
            let filtered = filter_batch(&batch, &Limits::default(), |c| {
                let r = &all[i];
                assert_eq!((c.offset, c.timestamp_ms), (r.offset, r.timestamp_ms));
                assert_eq!((c.key, c.tombstone), (r.key.as_deref(), r.value.is_none()));
                i += 1;
                keep[i - 1]
            }).unwrap();
            let wanted: Vec<_> =
                all.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r.clone()).collect();
            match filtered {
                Filtered::Whole => prop_assert_eq!(wanted.len(), all.len()),
                Filtered::Nothing => prop_assert!(wanted.is_empty()),
                Filtered::Part(out) => {
                    let (after, got) = decode_batch(&Bytes::from(out), &Limits::default()).unwrap();
                    prop_assert_eq!(&got, &wanted);
                    prop_assert_eq!(after.base_offset, before.base_offset);
                    prop_assert_eq!(after.next_offset(), before.next_offset());
                    prop_assert_eq!(
                        (after.producer_id, after.producer_epoch, after.base_sequence),
                        (before.producer_id, before.producer_epoch, before.base_sequence)
                    );
                    prop_assert_eq!(after.partition_leader_epoch, before.partition_leader_epoch);
                    prop_assert_eq!(after.attributes, before.attributes);
                    prop_assert_eq!(after.records_count as usize, wanted.len());
                    let max = wanted.iter().map(|r| r.timestamp_ms).max().unwrap();
                    prop_assert_eq!(after.max_timestamp, max);
                }
            }
        }
    }

    #[test]
    fn a_batch_keeping_every_record_is_left_whole_and_one_keeping_none_says_so() {
        let batch = build(&[record(1, Some(vec![1]), 5), record(2, None, 6)], Compression::Zstd);
        assert_eq!(filter_batch(&batch, &Limits::default(), |_| true), Ok(Filtered::Whole));
        assert_eq!(filter_batch(&batch, &Limits::default(), |_| false), Ok(Filtered::Nothing));
    }

    #[test]
    fn an_empty_batch_keeps_the_offsets_and_the_producer_state() {
        let batch = build(&[record(1, Some(vec![1]), 5), record(2, None, 8)], Compression::Lz4);
        let empty = empty_batch(&batch).unwrap();
        let (header, records) = decode_batch(&Bytes::from(empty), &Limits::default()).unwrap();
        assert!(records.is_empty());
        assert_eq!((header.base_offset, header.next_offset()), (500, 502));
        assert_eq!(
            (header.producer_id, header.producer_epoch, header.base_sequence),
            (77, 3, 1000)
        );
        assert_eq!(header.partition_leader_epoch, 9);
        assert_eq!(header.compression(), Ok(Compression::None));
        assert_eq!((header.base_timestamp, header.max_timestamp), (8, 8));
    }

    #[test]
    fn log_append_time_batches_keep_their_max_timestamp() {
        let mut batch =
            build(&[record(1, Some(vec![1]), 5), record(2, Some(vec![2]), 6)], Compression::None);
        let attrs = i16::from_be_bytes([batch[21], batch[22]]) | ATTR_LOG_APPEND_TIME;
        batch[21..23].copy_from_slice(&attrs.to_be_bytes());
        batch[35..43].copy_from_slice(&90_000i64.to_be_bytes());
        write_crc(&mut batch);
        let Filtered::Part(out) =
            filter_batch(&batch, &Limits::default(), |c| c.key == Some(&[1][..])).unwrap()
        else {
            panic!("one record kept");
        };
        let header = BatchHeader::parse(&out).unwrap();
        assert_eq!(header.max_timestamp, 90_000);
    }

    #[test]
    fn a_corrupt_batch_is_refused_not_filtered() {
        let mut batch = build(&[record(1, Some(vec![1]), 5)], Compression::None);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        let e = filter_batch(&batch, &Limits::default(), |_| true).unwrap_err();
        assert!(matches!(e, RecordError::CrcMismatch { .. }), "{e}");
    }
}
