//! What a broker checks on producer input before it stamps and appends it.
//!
//! Checks run cheapest first and every size a sender declares is compared with a limit
//! before anything is allocated from it, so hostile input costs at most the limits.

use super::RecordError;
use super::batch::{BatchFrames, BatchHeader, HEADER_LEN};
use super::limits::{Limits, check_batch, records_area};
use super::reader::RecordsReader;

/// Validates one or more back-to-back batches of producer input and returns their headers.
/// Rejects what a producer must not send: empty batches, control batches, offset deltas
/// other than 0..n-1, and anything malformed. Errors name the batch index and byte position.
pub fn validate_batches(buf: &[u8], limits: &Limits) -> Result<Vec<BatchHeader>, RecordError> {
    validate_batches_with(buf, limits, &mut |_, _| Ok(()))
}

/// A check of one record's key and value beyond the format's (the broker's schema ID
/// validation): `Err` says what is wrong with the record.
pub type RecordCheck<'c> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<(), String> + 'c;

/// [`validate_batches`], with `check` run on every record in order; the first record it
/// refuses fails the whole input as [`RecordError::BadRecord`] naming the record's index
/// (its offset in the batch) and the batch.
pub fn validate_batches_with(
    buf: &[u8],
    limits: &Limits,
    check: &mut RecordCheck<'_>,
) -> Result<Vec<BatchHeader>, RecordError> {
    if buf.is_empty() {
        return Err(RecordError::Empty);
    }
    let mut headers = Vec::new();
    let mut position = 0;
    for (index, frame) in BatchFrames::new(buf, limits.max_batch_bytes).enumerate() {
        let start = position;
        let in_batch = |e| RecordError::InBatch { index, position: start, error: Box::new(e) };
        let (header, range) = frame.map_err(in_batch)?;
        position = range.end;
        validate_one(&header, &buf[range], limits, check).map_err(in_batch)?;
        headers.push(header);
    }
    Ok(headers)
}

/// Validates a single framed batch (`batch` is exactly its bytes).
fn validate_one(
    header: &BatchHeader,
    batch: &[u8],
    limits: &Limits,
    check: &mut RecordCheck<'_>,
) -> Result<(), RecordError> {
    let count = check_batch(header, batch, limits)?;
    if count == 0 {
        return Err(RecordError::InvalidField {
            field: "recordCount",
            value: 0,
            expected: "at least 1".into(),
        });
    }
    let expected_delta = header.records_count - 1;
    if header.last_offset_delta != expected_delta {
        return Err(RecordError::InvalidField {
            field: "lastOffsetDelta",
            value: header.last_offset_delta.into(),
            expected: format!("{expected_delta} (recordCount - 1)"),
        });
    }
    if header.is_control() {
        return Err(RecordError::ControlBatch);
    }
    let inflated = records_area(header, batch, limits)?;
    let area = inflated.as_deref().unwrap_or(&batch[HEADER_LEN..]);

    let mut reader = RecordsReader::new(area);
    let mut headers = Vec::new();
    for i in 0..count {
        let raw = reader.next_record(&mut headers)?;
        if usize::try_from(raw.offset_delta).ok() != Some(i) {
            return Err(reader.error(format!(
                "offset delta {}, expected {i}: deltas must run 0..recordCount-1 in order",
                raw.offset_delta
            )));
        }
        if limits.keys_required && raw.key.is_none() {
            return Err(RecordError::BadRecord {
                index: i,
                detail: "null key: a compacted topic (cleanup.policy=compact) keeps each \
                         key's latest record, so every record needs a key"
                    .into(),
            });
        }
        if let Err(detail) = check(raw.key, raw.value) {
            return Err(RecordError::BadRecord { index: i, detail });
        }
    }
    reader.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::batch::{LOG_OVERHEAD, stamp, write_crc};
    use crate::record::codec::encode_record;
    use crate::record::compression::compress;
    use crate::record::{
        BatchBuilder, Compression, DecodedRecord, Header, Record, decode_batch, decode_batches,
    };
    use bytes::Bytes;
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// A batch around an arbitrary records area, with a correct CRC.
    pub(crate) fn raw_batch(
        area: &[u8],
        count: i32,
        last_offset_delta: i32,
        attrs: i16,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + area.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&attrs.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&10i64.to_be_bytes());
        b.extend_from_slice(&20i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(area);
        write_crc(&mut b);
        b
    }

    /// Records area with the given offset deltas, each a small record.
    pub(crate) fn area_with_deltas(deltas: &[i32]) -> Vec<u8> {
        let mut area = Vec::new();
        for &d in deltas {
            let r = Record { value: Some(Bytes::from_static(b"value")), ..Record::default() };
            encode_record(&mut area, &r, d, 0).unwrap();
        }
        area
    }

    fn simple_batch(n: usize, codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for i in 0..n {
            b.push(Record {
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; 50])),
                headers: vec![],
                timestamp_ms: 1_000 + i as i64,
            });
        }
        b.build().to_vec()
    }

    fn err(buf: &[u8]) -> RecordError {
        validate_batches(buf, &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_compacted_topics_limits_refuse_a_keyless_record_naming_it() {
        let mut b = BatchBuilder::new(Compression::Lz4);
        b.push(Record { key: Some(Bytes::from_static(b"k")), ..Record::default() });
        b.push(Record { value: Some(Bytes::from_static(b"v")), ..Record::default() });
        let batch = b.build();
        assert!(validate_batches(&batch, &Limits::default()).is_ok());
        let limits = Limits { keys_required: true, ..Limits::default() };
        let e = validate_batches(&batch, &limits).unwrap_err().to_string();
        assert!(e.contains("record 1: null key") && e.contains("compact"), "{e}");
    }

    /// The error inside the InBatch wrapper, checking the batch index and position.
    fn inner(e: RecordError, want_index: usize, want_position: usize) -> RecordError {
        match e {
            RecordError::InBatch { index, position, error } => {
                assert_eq!((index, position), (want_index, want_position));
                *error
            }
            other => panic!("expected InBatch, got {other:?}"),
        }
    }

    #[test]
    fn a_record_check_refuses_the_first_record_it_fails_naming_it_and_its_batch() {
        let mut first = BatchBuilder::new(Compression::None);
        first.push(Record { value: Some(Bytes::from_static(b"ok")), ..Record::default() });
        let mut buf = first.build().to_vec();
        let mut second = BatchBuilder::new(Compression::Zstd);
        for v in [&b"ok"[..], b"bad", b"bad too"] {
            second.push(Record { value: Some(Bytes::copy_from_slice(v)), ..Record::default() });
        }
        let at = buf.len();
        buf.extend_from_slice(&second.build());
        let mut seen = 0;
        let mut check = |_: Option<&[u8]>, v: Option<&[u8]>| {
            seen += 1;
            match v {
                Some(b"ok") => Ok(()),
                other => Err(format!("value {other:?} is not ok")),
            }
        };
        let e = validate_batches_with(&buf, &Limits::default(), &mut check).unwrap_err();
        assert_eq!(seen, 3, "the check stops at the first refusal");
        assert_eq!(e.reason(), "INVALID_BATCH");
        assert!(e.to_string().contains("record 1: value Some([98, 97, 100])"), "{e}");
        assert!(matches!(inner(e, 1, at), RecordError::BadRecord { index: 1, .. }));
    }

    #[test]
    fn accepts_back_to_back_batches() {
        let mut buf = simple_batch(3, Compression::None);
        buf.extend(simple_batch(5, Compression::Zstd));
        let headers = validate_batches(&buf, &Limits::default()).unwrap();
        let counts: Vec<i32> = headers.iter().map(|h| h.records_count).collect();
        assert_eq!(counts, [3, 5]);
    }

    #[test]
    fn empty_input_is_rejected() {
        assert_eq!(err(&[]), RecordError::Empty);
        assert_eq!(err(&[]).reason(), "INVALID_BATCH");
    }

    #[test]
    fn crc_error_names_the_batch() {
        let first = simple_batch(2, Compression::None);
        let mut buf = first.clone();
        buf.extend(simple_batch(2, Compression::None));
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let e = err(&buf);
        assert_eq!(e.reason(), "CORRUPT_BATCH");
        assert!(
            e.to_string().starts_with(&format!("batch 1 (at byte {}): batch crc", first.len()))
        );
        assert!(matches!(inner(e, 1, first.len()), RecordError::CrcMismatch { .. }));
    }

    #[test]
    fn header_field_errors_name_field_and_value() {
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                raw_batch(&[], 0, -1, 0),
                "invalid recordCount 0: expected at least 1",
                "INVALID_BATCH",
            ),
            (
                raw_batch(&[], -3, -4, 0),
                "invalid recordCount -3: expected a count >= 0",
                "INVALID_BATCH",
            ),
            (
                raw_batch(&area_with_deltas(&[0, 1]), 2, 5, 0),
                "invalid lastOffsetDelta 5: expected 1 (recordCount - 1)",
                "INVALID_BATCH",
            ),
            (raw_batch(&area_with_deltas(&[0]), 1, 0, 1 << 5), "control batches", "INVALID_BATCH"),
            (
                raw_batch(&area_with_deltas(&[0]), 1, 0, 5),
                "unknown compression codec id 5",
                "UNSUPPORTED_COMPRESSION",
            ),
            (
                raw_batch(&[], i32::MAX, i32::MAX - 1, 0),
                "batch claims 2147483647 records, more than the limit of 1000000",
                "TOO_MANY_RECORDS",
            ),
        ];
        for (buf, want, reason) in cases {
            let e = err(&buf);
            assert!(e.to_string().contains(want), "{e} does not contain {want}");
            assert_eq!(e.reason(), reason, "{e}");
        }
    }

    #[test]
    fn record_errors_name_record_and_field() {
        let mut trailing = area_with_deltas(&[0, 1]);
        trailing.push(0);
        let mut long_len = area_with_deltas(&[0]);
        long_len[0] += 2; // zigzag: length one more than the record holds
        let mut bad_key = area_with_deltas(&[0]);
        // attributes, ts, offset, key length -2 (zigzag 3)
        bad_key[4] = 0x03;
        let cases: Vec<(Vec<u8>, i32, &str)> = vec![
            (area_with_deltas(&[0, 2]), 2, "record 1: offset delta 2, expected 1"),
            (area_with_deltas(&[1, 0]), 2, "record 0: offset delta 1, expected 0"),
            (trailing, 2, "1 trailing bytes after the last of 2 records"),
            (
                long_len,
                1,
                "record 0: record length 12 exceeds the 11 bytes left in the records area",
            ),
            (bad_key, 1, "record 0: key length -2 is invalid"),
            (area_with_deltas(&[0]), 2, "record 1: truncated varint for record length"),
        ];
        for (area, count, want) in cases {
            let e = err(&raw_batch(&area, count, count - 1, 0));
            assert!(e.to_string().contains(want), "{e} does not contain {want}");
            assert_eq!(e.reason(), "INVALID_BATCH");
        }
    }

    #[test]
    fn header_key_must_be_utf8_and_present() {
        let mut area = Vec::new();
        let r =
            Record { headers: vec![Header { key: "ab".into(), value: None }], ..Record::default() };
        encode_record(&mut area, &r, 0, 0).unwrap();
        let key_at = area.len() - 3; // "ab" then the null value length
        let mut bad_utf8 = area.clone();
        bad_utf8[key_at] = 0xff;
        let e = err(&raw_batch(&bad_utf8, 1, 0, 0));
        assert!(e.to_string().contains("header 0 key is not valid UTF-8"), "{e}");
        let mut null_key = area.clone();
        null_key[key_at - 1] = 0x01; // key length -1, leaving "ab" to misparse
        let e = err(&raw_batch(&null_key, 1, 0, 0));
        assert!(e.to_string().contains("header 0 has a null key"), "{e}");
    }

    #[test]
    fn framing_errors() {
        let batch = simple_batch(1, Compression::None);
        let e = err(&batch[..batch.len() - 1]);
        assert!(matches!(inner(e, 0, 0), RecordError::Truncated { .. }));
        let mut two = batch.clone();
        two.extend_from_slice(&batch[..30]);
        let e = inner(err(&two), 1, batch.len());
        assert_eq!(e, RecordError::Truncated { needed: HEADER_LEN, available: 30 });
        let mut magic = batch.clone();
        magic[16] = 1;
        assert_eq!(inner(err(&magic), 0, 0), RecordError::BadMagic(1));
        let small = Limits { max_batch_bytes: 64, ..Limits::default() };
        let e = validate_batches(&batch, &small).unwrap_err();
        assert_eq!(e.reason(), "BATCH_TOO_LARGE");
    }

    #[test]
    fn records_over_limit_are_rejected() {
        let batch = simple_batch(10, Compression::Lz4);
        let limits = Limits { max_records: 9, ..Limits::default() };
        let e = validate_batches(&batch, &limits).unwrap_err();
        assert_eq!(e.reason(), "TOO_MANY_RECORDS");
        assert!(validate_batches(&batch, &Limits { max_records: 10, ..limits }).is_ok());
    }

    #[test]
    fn compressed_bomb_batch_is_rejected() {
        // 32 MiB of zeros in one record; well under the batch size limit once compressed.
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let area = {
                let r =
                    Record { value: Some(Bytes::from(vec![0u8; 32 << 20])), ..Record::default() };
                let mut a = Vec::new();
                encode_record(&mut a, &r, 0, 0).unwrap();
                a
            };
            let packed = compress(codec, &area);
            let batch = raw_batch(&packed, 1, 0, i16::from(codec.id()));
            let limits = Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() };
            let e = validate_batches(&batch, &limits).unwrap_err();
            assert_eq!(e.reason(), "BATCH_TOO_LARGE", "{codec:?}: {e}");
            assert!(e.to_string().contains("beyond the limit of 1048576 bytes"), "{e}");
            let e = decode_batch(&Bytes::from(batch), &limits).unwrap_err();
            assert!(matches!(e, RecordError::DecompressedTooLarge { .. }), "{e}");
        }
    }

    #[test]
    fn stamping_keeps_the_batch_valid() {
        let mut batch = simple_batch(4, Compression::Snappy);
        stamp(&mut batch, 1_000, 7);
        let h = validate_batches(&batch, &Limits::default()).unwrap()[0];
        assert_eq!((h.base_offset, h.partition_leader_epoch, h.last_offset()), (1_000, 7, 1_003));
        let (_, recs) = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1_000, 1_001, 1_002, 1_003]);
    }

    fn arb_bytes() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let header = ("[a-z\u{e9}\u{4e2d}]{0,8}", arb_bytes())
            .prop_map(|(key, value)| Header { key, value });
        (arb_bytes(), arb_bytes(), proptest::collection::vec(header, 0..4), any::<i64>()).prop_map(
            |(key, value, headers, timestamp_ms)| Record { key, value, headers, timestamp_ms },
        )
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        proptest::sample::select(CODECS.to_vec())
    }

    fn build(records: &[Record], codec: Compression) -> Bytes {
        let mut b = BatchBuilder::new(codec);
        for r in records {
            b.push(r.clone());
        }
        b.build()
    }

    /// Validation and decoding must agree: whatever validates must decode.
    fn check_never_panics(buf: &[u8]) {
        let limits = Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() };
        let validated = validate_batches(buf, &limits);
        let decoded = decode_batches(&Bytes::copy_from_slice(buf), &limits);
        if validated.is_ok() {
            assert!(decoded.is_ok(), "validated but failed to decode: {decoded:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip_every_codec(records in proptest::collection::vec(arb_record(), 1..20)) {
            for codec in CODECS {
                let batch = build(&records, codec);
                let headers = validate_batches(&batch, &Limits::default()).unwrap();
                prop_assert_eq!(headers.len(), 1);
                prop_assert_eq!(headers[0].records_count as usize, records.len());
                let (_, decoded) = decode_batch(&batch, &Limits::default()).unwrap();
                let want: Vec<DecodedRecord> = records.iter().enumerate().map(|(i, r)| DecodedRecord {
                    offset: i as i64,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                }).collect();
                prop_assert_eq!(decoded, want);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_never_panics(&bytes);
            // Behind a plausible header, so the fuzzing reaches past the magic check.
            let mut b = raw_batch(&bytes, 3, 2, 0);
            check_never_panics(&b);
            b[21..23].copy_from_slice(&(i16::from(bytes.first().copied().unwrap_or(0)) & 0x7).to_be_bytes());
            write_crc(&mut b);
            check_never_panics(&b);
        }

        #[test]
        fn mutated_batches_never_panic(
            records in proptest::collection::vec(arb_record(), 1..6),
            codec in arb_codec(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            recrc: bool,
            truncate: bool,
        ) {
            let mut b = build(&records, codec).to_vec();
            for (at, byte) in edits {
                let i = at.index(b.len());
                b[i] = byte;
            }
            if truncate {
                b.truncate(cut.index(b.len()));
            }
            // With the CRC fixed up, the mutation reaches the record parser and codecs.
            if recrc && b.len() > 21 {
                write_crc(&mut b);
            }
            check_never_panics(&b);
        }
    }
}
