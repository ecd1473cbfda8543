//! The v2 record format inside a batch, and decoding whole batches into records.
//!
//! Each record (after the batch header, possibly compressed):
//!
//! ```text
//! length: varint            (bytes after this field)
//! attributes: int8          (unused, 0)
//! timestampDelta: varlong   (from the batch's baseTimestamp)
//! offsetDelta: varint       (from the batch's baseOffset)
//! keyLength: varint, key    (-1 = null)
//! valueLength: varint, value (-1 = null)
//! headerCount: varint
//! headers: [keyLength: varint, key (UTF-8), valueLength: varint, value (-1 = null)]
//! ```

use bytes::Bytes;

use super::RecordError;
use super::batch::{BatchFrames, BatchHeader, HEADER_LEN};
use super::limits::{Limits, check_batch, records_area};
use super::reader::{MIN_RECORD_LEN, RecordsReader};
use super::varint;

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value, or none for null.
    pub value: Option<Bytes>,
}

/// A record to write: what a producer hands to [`super::BatchBuilder`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Key, or none for null.
    pub key: Option<Bytes>,
    /// Value, or none for null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order; keys may repeat.
    pub headers: Vec<Header>,
    /// Creation time in ms since the epoch, written as given.
    pub timestamp_ms: i64,
}

/// A record read from a batch, with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Absolute offset (batch base offset + offset delta).
    pub offset: i64,
    /// CreateTime of the record, or the batch's max timestamp for LogAppendTime batches.
    pub timestamp_ms: i64,
    /// Key, or none for null.
    pub key: Option<Bytes>,
    /// Value, or none for null.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

/// Decodes one whole batch (exactly `batch.len()` bytes): checks framing and CRC,
/// decompresses within `limits`, and decodes every record. Keys and values of uncompressed
/// batches share `batch`'s memory.
pub fn decode_batch(
    batch: &Bytes,
    limits: &Limits,
) -> Result<(BatchHeader, Vec<DecodedRecord>), RecordError> {
    let header = BatchHeader::parse(batch)?;
    let total = header.total_len();
    if total != batch.len() {
        return Err(RecordError::BatchLengthMismatch { declared: total, actual: batch.len() });
    }
    if total > limits.max_batch_bytes {
        return Err(RecordError::BatchTooLarge { size: total, max: limits.max_batch_bytes });
    }
    let count = check_batch(&header, batch, limits)?;
    let area = match records_area(&header, batch, limits)? {
        Some(inflated) => Bytes::from(inflated),
        None => batch.slice(HEADER_LEN..),
    };

    let mut records = Vec::with_capacity(count.min(area.len() / MIN_RECORD_LEN + 1));
    let mut reader = RecordsReader::new(&area);
    let mut headers = Vec::new();
    for _ in 0..count {
        let raw = reader.next_record(&mut headers)?;
        let offset =
            header.base_offset.checked_add(i64::from(raw.offset_delta)).ok_or_else(|| {
                reader.error(format!(
                    "offset delta {} overflows base offset {}",
                    raw.offset_delta, header.base_offset
                ))
            })?;
        // Kafka's LogAppendTime semantics: the broker's time, stored once as maxTimestamp.
        let timestamp_ms = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            // Wrapping like Kafka's Java arithmetic; the builder writes wrapping deltas.
            header.base_timestamp.wrapping_add(raw.timestamp_delta)
        };
        records.push(DecodedRecord {
            offset,
            timestamp_ms,
            key: raw.key.map(|k| area.slice_ref(k)),
            value: raw.value.map(|v| area.slice_ref(v)),
            headers: headers
                .drain(..)
                .map(|(k, v)| Header { key: k.to_owned(), value: v.map(|v| area.slice_ref(v)) })
                .collect(),
        });
    }
    reader.finish()?;
    Ok((header, records))
}

/// Decodes back-to-back whole batches, as a Fetch returns them, into one list of records:
/// those of data batches (control batches, transaction markers, are checked and skipped).
/// A partial batch at the end is an error, not skipped.
pub fn decode_batches(buf: &Bytes, limits: &Limits) -> Result<Vec<DecodedRecord>, RecordError> {
    decode_batches_except(buf, limits, |_, _| false)
}

/// [`decode_batches`], leaving out the records of the batches `skip` picks (it is shown
/// every batch in order, its header and whole bytes): a `read_committed` reader's aborted
/// transactions ([`super::control::CommittedFilter`]).
pub fn decode_batches_except(
    buf: &Bytes,
    limits: &Limits,
    mut skip: impl FnMut(&super::BatchHeader, &[u8]) -> bool,
) -> Result<Vec<DecodedRecord>, RecordError> {
    let mut records = Vec::new();
    let mut position = 0;
    for (index, frame) in BatchFrames::new(buf, limits.max_batch_bytes).enumerate() {
        let start = position;
        let in_batch = |e| RecordError::InBatch { index, position: start, error: Box::new(e) };
        let (header, range) = frame.map_err(in_batch)?;
        position = range.end;
        if skip(&header, &buf[range.clone()]) {
            continue;
        }
        let (_, batch_records) = decode_batch(&buf.slice(range), limits).map_err(in_batch)?;
        // A control batch (a transaction marker) is checked like any, but holds no record
        // a reader is given, as Kafka's consumers skip it.
        if !header.is_control() {
            records.extend(batch_records);
        }
    }
    Ok(records)
}

/// Appends the encoding of `record` with the given deltas.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    record: &Record,
    offset_delta: i32,
    timestamp_delta: i64,
) -> Result<(), RecordError> {
    let body_len = body_len(record, offset_delta, timestamp_delta)?;
    out.reserve(varint::MAX_VARINT_LEN + body_len as usize);
    varint::put_varint(out, body_len);
    out.push(0); // attributes: unused in v2
    varint::put_varlong(out, timestamp_delta);
    varint::put_varint(out, offset_delta);
    put_nullable(out, record.key.as_deref());
    put_nullable(out, record.value.as_deref());
    varint::put_varint(out, len_i32("header count", record.headers.len())?);
    for h in &record.headers {
        put_nullable(out, Some(h.key.as_bytes()));
        put_nullable(out, h.value.as_deref());
    }
    Ok(())
}

/// Bytes `encode_record` writes after the length varint; errors if any length overflows i32.
fn body_len(record: &Record, offset_delta: i32, timestamp_delta: i64) -> Result<i32, RecordError> {
    let mut n = 1 + varint::varlong_len(timestamp_delta) + varint::varint_len(offset_delta);
    n += nullable_len("key", record.key.as_deref())?;
    n += nullable_len("value", record.value.as_deref())?;
    n += varint::varint_len(len_i32("header count", record.headers.len())?);
    for h in &record.headers {
        n += nullable_len("header key", Some(h.key.as_bytes()))?;
        n += nullable_len("header value", h.value.as_deref())?;
    }
    len_i32("record", n)
}

fn len_i32(field: &'static str, size: usize) -> Result<i32, RecordError> {
    i32::try_from(size).map_err(|_| RecordError::RecordTooLarge { field, size })
}

fn nullable_len(field: &'static str, v: Option<&[u8]>) -> Result<usize, RecordError> {
    Ok(match v {
        None => 1,
        Some(b) => varint::varint_len(len_i32(field, b.len())?) + b.len(),
    })
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => varint::put_varint(out, -1),
        Some(b) => {
            // Callers size-check through body_len first.
            varint::put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::{ATTR_LOG_APPEND_TIME, Compression, stamp, write_crc};
    use crate::record::validate::tests::{area_with_deltas, raw_batch};
    use crate::record::{BatchBuilder, validate_batches};

    fn rec(key: Option<&'static [u8]>, value: Option<&'static [u8]>, ts: i64) -> Record {
        Record {
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
            headers: vec![],
            timestamp_ms: ts,
        }
    }

    fn build(records: &[Record], codec: Compression) -> Bytes {
        let mut b = BatchBuilder::new(codec);
        for r in records {
            b.push(r.clone());
        }
        b.build()
    }

    #[test]
    fn null_and_empty_are_distinct() {
        let records = [rec(None, None, 1), rec(Some(b""), Some(b""), 2), rec(Some(b"k"), None, 3)];
        let (_, out) =
            decode_batch(&build(&records, Compression::None), &Limits::default()).unwrap();
        assert_eq!((out[0].key.clone(), out[0].value.clone()), (None, None));
        assert_eq!(out[1].key.as_deref(), Some(&b""[..]));
        assert_eq!(out[1].value.as_deref(), Some(&b""[..]));
        assert_eq!((out[2].key.as_deref(), out[2].value.as_deref()), (Some(&b"k"[..]), None));
    }

    #[test]
    fn uncompressed_values_share_the_batch_memory() {
        let batch = build(&[rec(Some(b"key"), Some(b"a value"), 5)], Compression::None);
        let (_, out) = decode_batch(&batch, &Limits::default()).unwrap();
        let range = batch.as_ptr_range();
        let value = out[0].value.as_ref().unwrap();
        assert!(range.contains(&value.as_ptr()), "value was copied");
    }

    #[test]
    fn log_append_time_uses_max_timestamp() {
        let mut batch =
            build(&[rec(None, Some(b"a"), 5), rec(None, Some(b"b"), 9)], Compression::Gzip)
                .to_vec();
        let attrs = i16::from_be_bytes([batch[21], batch[22]]) | ATTR_LOG_APPEND_TIME;
        batch[21..23].copy_from_slice(&attrs.to_be_bytes());
        batch[35..43].copy_from_slice(&77_000i64.to_be_bytes()); // maxTimestamp
        write_crc(&mut batch);
        let (h, out) = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap();
        assert!(h.is_log_append_time());
        assert!(out.iter().all(|r| r.timestamp_ms == 77_000));
    }

    #[test]
    fn decode_batches_gives_absolute_offsets() {
        let mut first = build(&[rec(None, Some(b"a"), 1)], Compression::None).to_vec();
        let mut second =
            build(&[rec(None, Some(b"b"), 2), rec(None, Some(b"c"), 3)], Compression::Zstd)
                .to_vec();
        stamp(&mut first, 100, 1);
        stamp(&mut second, 101, 1);
        first.extend_from_slice(&second);
        let out = decode_batches(&Bytes::from(first.clone()), &Limits::default()).unwrap();
        let got: Vec<(i64, Option<&[u8]>)> =
            out.iter().map(|r| (r.offset, r.value.as_deref())).collect();
        assert_eq!(got, [(100, Some(&b"a"[..])), (101, Some(&b"b"[..])), (102, Some(&b"c"[..]))]);

        assert!(decode_batches(&Bytes::new(), &Limits::default()).unwrap().is_empty());
        let cut = first.len() - 3;
        let e = decode_batches(&Bytes::from(first[..cut].to_vec()), &Limits::default());
        let e = e.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "batch 1 (at byte {}): truncated batch",
                cut + 3 - second.len()
            )),
            "{e}"
        );
    }

    #[test]
    fn decode_batch_wants_exactly_one_batch() {
        let mut two = build(&[rec(None, None, 1)], Compression::None).to_vec();
        let one = two.len();
        two.extend_from_slice(&two.clone());
        let e = decode_batch(&Bytes::from(two), &Limits::default()).unwrap_err();
        assert_eq!(e, RecordError::BatchLengthMismatch { declared: one, actual: one * 2 });
    }

    #[test]
    fn raw_snappy_from_librdkafka_decodes() {
        let area = area_with_deltas(&[0, 1, 2]);
        let raw = snap::raw::Encoder::new().compress_vec(&area).unwrap();
        let batch = raw_batch(&raw, 3, 2, i16::from(Compression::Snappy.id()));
        validate_batches(&batch, &Limits::default()).unwrap();
        let (_, out) = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].value.as_deref(), Some(&b"value"[..]));
    }

    #[test]
    fn decode_is_lenient_about_offset_gaps_like_compacted_batches() {
        let batch = raw_batch(&area_with_deltas(&[0, 4]), 2, 4, 0);
        assert!(validate_batches(&batch, &Limits::default()).is_err());
        let (_, out) = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap();
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 4]);
    }

    #[test]
    fn offset_overflow_is_an_error() {
        let mut batch = raw_batch(&area_with_deltas(&[0, 1]), 2, 1, 0);
        stamp(&mut batch, i64::MAX, 0);
        let e = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("record 1: offset delta 1 overflows base offset"), "{e}");
    }

    #[test]
    fn malformed_record_fields_are_named() {
        // length 2 (zigzag 4), attributes, then a timestamp varlong cut short.
        let cases: [(&[u8], &str); 4] = [
            (&[0x01], "record 0: record length -1 is negative"),
            (
                &[0x04, 0x00, 0x80],
                "record 0: truncated varint for timestamp delta at byte 1 in the record",
            ),
            (&[0x0e, 0, 0, 0, 1, 1, 0x01, 0], "record 0: header count -1 is negative"),
            (
                &[0x10, 0, 0, 0, 1, 1, 0, 0xff, 0xff],
                "record 0: record length 8 but its fields end after 6 bytes",
            ),
        ];
        for (area, want) in cases {
            let batch = raw_batch(area, 1, 0, 0);
            let e = decode_batch(&Bytes::from(batch), &Limits::default()).unwrap_err();
            assert!(e.to_string().contains(want), "{e} does not contain {want}");
        }
    }

    #[test]
    fn length_prefix_matches_the_encoded_body() {
        let mut out = Vec::new();
        let r = Record {
            key: Some(Bytes::from(vec![1; 300])),
            value: Some(Bytes::from(vec![2; 70_000])),
            headers: vec![Header { key: "k".repeat(200), value: None }],
            timestamp_ms: -1,
        };
        encode_record(&mut out, &r, 1_000_000, -123_456_789).unwrap();
        let (len, n) = varint::get_varint(&out).unwrap();
        assert_eq!(len as usize + n, out.len());
    }
}
