//! Building one complete RecordBatch v2 from records, as a producer does.

use bytes::Bytes;

use super::RecordError;
use super::batch::Compression;
use super::batch::{
    ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, write_crc,
};
use super::codec::{Record, encode_record};
use super::compression::compress;

/// Largest records area a builder accepts: far above any sane batch, and low enough that
/// even incompressible data plus codec framing stays inside the format's i32 batch length.
const MAX_RECORDS_AREA: usize = 1 << 30;

/// Accumulates records and encodes them into one batch.
///
/// The batch has base offset 0 and partition leader epoch -1, as Kafka's clients write them;
/// the broker stamps both. Timestamps are CreateTime, taken as given (0 stays 0).
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Transactional and control attribute bits.
    flags: i16,
    /// HEADER_LEN placeholder bytes followed by the encoded, uncompressed records, so an
    /// uncompressed batch is finished in place without a copy.
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty builder for a batch compressed with `compression`.
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            flags: 0,
            buf: vec![0; HEADER_LEN],
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Sets the idempotent producer id, epoch and first sequence (all -1 when not called).
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional (part of its producer's open transaction).
    pub fn transactional(self) -> Self {
        self.with_flags(ATTR_TRANSACTIONAL)
    }

    /// Sets the transactional and control attribute bits (other bits are ignored).
    pub(crate) fn with_flags(mut self, flags: i16) -> Self {
        self.flags = flags & (ATTR_TRANSACTIONAL | ATTR_CONTROL);
        self
    }

    /// Appends a record.
    ///
    /// # Panics
    /// If a key, value or header is 2 GiB or larger, or the batch would pass 1 GiB; use
    /// [`BatchBuilder::try_push`] where such sizes can reach the builder.
    pub fn push(&mut self, record: Record) {
        if let Err(e) = self.try_push(record) {
            panic!("BatchBuilder::push: {e}");
        }
    }

    /// Appends a record, or refuses it (leaving the builder unchanged) if it cannot fit the
    /// format's limits.
    pub fn try_push(&mut self, record: Record) -> Result<(), RecordError> {
        if self.count == i32::MAX {
            return Err(RecordError::TooManyRecords {
                count: i64::from(i32::MAX) + 1,
                max: i32::MAX as usize,
            });
        }
        if self.count == 0 {
            self.base_timestamp = record.timestamp_ms;
        }
        // Wrapping, so any pair of timestamps round-trips; decode wraps back.
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.base_timestamp);
        let before = self.buf.len();
        if let Err(e) = encode_record(&mut self.buf, &record, self.count, timestamp_delta) {
            self.reset_base_if_empty();
            return Err(e);
        }
        if self.buf.len() - HEADER_LEN > MAX_RECORDS_AREA {
            self.buf.truncate(before);
            self.reset_base_if_empty();
            return Err(RecordError::RecordTooLarge {
                field: "batch",
                size: self.buf.len() - HEADER_LEN,
            });
        }
        self.max_timestamp = if self.count == 0 {
            record.timestamp_ms
        } else {
            self.max_timestamp.max(record.timestamp_ms)
        };
        self.count += 1;
        Ok(())
    }

    fn reset_base_if_empty(&mut self) {
        if self.count == 0 {
            self.base_timestamp = -1;
        }
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if built uncompressed; an upper bound in practice for compressed
    /// batches. O(1), for producers that close batches at `batch.size`.
    pub fn estimated_size(&self) -> usize {
        self.buf.len()
    }

    /// Encodes the batch. An empty builder yields a batch of zero records (lastOffsetDelta
    /// -1, timestamps -1), which [`super::validate_batches`] rejects.
    pub fn build(self) -> Bytes {
        let mut out = if self.compression == Compression::None {
            self.buf
        } else {
            let packed = compress(self.compression, &self.buf[HEADER_LEN..]);
            let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
            out.resize(HEADER_LEN, 0);
            out.extend_from_slice(&packed);
            out
        };
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
            .expect("try_push caps the records area at 1 GiB, below i32::MAX after compression");
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&0i64.to_be_bytes()); // baseOffset: stamped by the broker
        h.extend_from_slice(&batch_length.to_be_bytes());
        h.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch: stamped by the broker
        h.push(MAGIC_V2 as u8);
        h.extend_from_slice(&0u32.to_be_bytes()); // crc: written last
        h.extend_from_slice(&(i16::from(self.compression.id()) | self.flags).to_be_bytes());
        h.extend_from_slice(&(self.count - 1).to_be_bytes());
        h.extend_from_slice(&self.base_timestamp.to_be_bytes());
        h.extend_from_slice(&self.max_timestamp.to_be_bytes());
        h.extend_from_slice(&self.producer_id.to_be_bytes());
        h.extend_from_slice(&self.producer_epoch.to_be_bytes());
        h.extend_from_slice(&self.base_sequence.to_be_bytes());
        h.extend_from_slice(&self.count.to_be_bytes());
        debug_assert_eq!(h.len(), HEADER_LEN);
        out[..HEADER_LEN].copy_from_slice(&h);
        write_crc(&mut out);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::{BatchHeader, compute_crc};
    use crate::record::{Header, Limits, decode_batch, validate_batches};

    fn record(key: &str, value: &str, ts: i64) -> Record {
        Record {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![],
            timestamp_ms: ts,
        }
    }

    /// The batch for one record (key "k", value "v", ts 1000, header "h" = "x"), written
    /// field by field from Kafka's published RecordBatch v2 layout.
    fn expected_bytes() -> Vec<u8> {
        let record: Vec<u8> = vec![
            0x18, // length 12 (zigzag 24)
            0x00, // attributes
            0x00, // timestampDelta 0
            0x00, // offsetDelta 0
            0x02, b'k', // keyLength 1, key
            0x02, b'v', // valueLength 1, value
            0x02, // header count 1
            0x02, b'h', // header key length 1, key
            0x02, b'x', // header value length 1, value
        ];
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
        b.extend_from_slice(&(49 + record.len() as i32).to_be_bytes()); // batchLength
        b.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, filled below
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
        b.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
        b.extend_from_slice(&1000i64.to_be_bytes()); // baseTimestamp
        b.extend_from_slice(&1000i64.to_be_bytes()); // maxTimestamp
        b.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
        b.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
        b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
        b.extend_from_slice(&1i32.to_be_bytes()); // recordCount
        b.extend_from_slice(&record);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn known_batch_bytes_are_pinned() {
        let expected = expected_bytes();
        assert_eq!(expected.len(), 74);
        // Pinned so that a change to the CRC region or the layout cannot pass unnoticed;
        // cross-checked with an independent bitwise CRC-32C.
        assert_eq!(&expected[17..21], &0x85d4_936fu32.to_be_bytes());
        assert_eq!(compute_crc(&expected), 0x85d4_936f);

        let mut b = BatchBuilder::new(Compression::None);
        let mut r = record("k", "v", 1000);
        r.headers.push(Header { key: "h".into(), value: Some(Bytes::from_static(b"x")) });
        b.push(r.clone());
        assert_eq!(b.estimated_size(), 74);
        let built = b.build();
        assert_eq!(built.as_ref(), expected.as_slice());

        let headers = validate_batches(&built, &Limits::default()).unwrap();
        assert_eq!(headers.len(), 1);
        let (h, recs) = decode_batch(&Bytes::from(expected), &Limits::default()).unwrap();
        assert_eq!(h.records_count, 1);
        assert_eq!(h.crc, 0x85d4_936f);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 0);
        assert_eq!(recs[0].timestamp_ms, 1000);
        assert_eq!(recs[0].key, r.key);
        assert_eq!(recs[0].value, r.value);
        assert_eq!(recs[0].headers, r.headers);
    }

    #[test]
    fn header_fields_follow_the_records() {
        let mut b = BatchBuilder::new(Compression::Lz4).with_producer(42, 3, 7);
        for (i, ts) in [500i64, 900, 100].into_iter().enumerate() {
            b.push(record(&i.to_string(), "v", ts));
        }
        assert_eq!(b.len(), 3);
        let h = BatchHeader::parse(&b.build()).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.compression().unwrap(), Compression::Lz4);
        assert!(!h.is_log_append_time());
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 500);
        assert_eq!(h.max_timestamp, 900);
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, 7));
        assert_eq!(h.records_count, 3);
    }

    #[test]
    fn empty_builder_builds_a_batch_validation_rejects() {
        let b = BatchBuilder::new(Compression::None);
        assert!(b.is_empty());
        assert_eq!(b.estimated_size(), HEADER_LEN);
        let built = b.build();
        let h = BatchHeader::parse(&built).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta, h.base_timestamp), (0, -1, -1));
        assert!(decode_batch(&built, &Limits::default()).unwrap().1.is_empty());
        let err = validate_batches(&built, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("invalid recordCount 0"), "{err}");
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let mut b = BatchBuilder::new(Compression::None);
        for ts in [i64::MAX, i64::MIN, 0, -5] {
            b.push(record("k", "v", ts));
        }
        let (h, recs) = decode_batch(&b.build(), &Limits::default()).unwrap();
        assert_eq!(h.max_timestamp, i64::MAX);
        let ts: Vec<i64> = recs.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(ts, [i64::MAX, i64::MIN, 0, -5]);
    }

    #[test]
    fn estimated_size_tracks_uncompressed_length() {
        let mut plain = BatchBuilder::new(Compression::None);
        let mut packed = BatchBuilder::new(Compression::Zstd);
        for i in 0..100 {
            plain.push(record("key", &"x".repeat(100), i));
            packed.push(record("key", &"x".repeat(100), i));
        }
        let est = packed.estimated_size();
        assert_eq!(est, plain.estimated_size());
        assert_eq!(plain.build().len(), est);
        assert!(packed.build().len() < est);
    }
}
