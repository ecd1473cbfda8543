//! Reads in decoded form: a read's batches, whatever their codec, decoded into records,
//! for the front ends that hand records rather than batches to their callers (gRPC's
//! `FETCH_FORMAT_RECORDS`, the console). Decoding runs on a blocking thread, never on the
//! threads that serve requests, one per core at most, each bounded by the read it decodes
//! (at most `max_bytes` of batches, each inflated to at most 64 MiB). A stored batch that
//! does not decode is an error naming the topic, partition and offset, answered to that
//! read only.

use bytes::Bytes;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::control::CommittedFilter;
use shale_core::record::{BatchFrames, DecodedRecord, Limits, decode_batch};

use super::{FetchChunk, Isolation};

/// Bytes a decoded record counts besides its key, value and headers: offset, timestamp,
/// field tags.
const RECORD_OVERHEAD: usize = 24;

/// One part of a decoded read: records, and the offset to read after them.
#[derive(Debug, Default)]
pub struct DecodedPart {
    /// The records, in offset order.
    pub records: Vec<DecodedRecord>,
    /// Where to read next.
    pub next_offset: i64,
}

/// The filter of a read `c` at `isolation`: `read_committed` leaves out the aborted
/// transactions the read lists.
pub fn committed_filter(c: &FetchChunk, isolation: Isolation) -> Option<CommittedFilter> {
    (isolation == Isolation::ReadCommitted).then(|| CommittedFilter::new(c.aborted.clone()))
}

/// A read to decode: its whole batches (ending where the read's `next_offset` is), the
/// first offset wanted, the bytes per part, and for a `read_committed` read the filter of
/// its aborted transactions.
#[derive(Debug)]
pub struct DecodeRead {
    /// Whole batches, as read.
    pub batches: Bytes,
    /// The first offset wanted.
    pub from: i64,
    /// Where the read ends.
    pub next_offset: i64,
    /// Bytes of records per part.
    pub max_bytes: usize,
    /// For a `read_committed` read: its aborted transactions.
    pub committed: Option<CommittedFilter>,
}

/// Decodes the read of `topic`-`partition` into parts of about `max_bytes` each (at least
/// one record): records below `from` are left out, control batches too, and aborted
/// transactions' for a `read_committed` read. Each part's next offset is the one after its
/// last record, the last part's the read's. No records: one empty part.
pub async fn decode_read(
    topic: &str,
    partition: u32,
    read: DecodeRead,
) -> Result<Vec<DecodedPart>, Error> {
    if read.batches.is_empty() {
        return Ok(vec![DecodedPart { records: Vec::new(), next_offset: read.next_offset }]);
    }
    let named = format!("{topic}-{partition}");
    // At most one decode per core at a time, whatever the number of fetches: a burst of
    // decoded fetches queues here instead of taking every blocking thread.
    let _permit =
        DECODERS.acquire().await.map_err(|_| Error::internal("the decoders are closed"))?;
    tokio::task::spawn_blocking(move || decode_now(&named, read))
        .await
        .map_err(|e| Error::internal(format!("decoding a fetch failed: {e}")))?
}

/// Decodes running at once: one per core.
static DECODERS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    tokio::sync::Semaphore::new(cores)
});

fn decode_now(named: &str, read: DecodeRead) -> Result<Vec<DecodedPart>, Error> {
    let DecodeRead { batches, from, next_offset, max_bytes, mut committed } = read;
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    let (mut parts, mut part, mut bytes) = (Vec::new(), DecodedPart::default(), 0);
    // Where the batch being decoded starts, for the error when it does not.
    let mut at = from;
    let corrupt = |offset: i64, e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Data,
            Reason::CorruptBatch,
            format!("{named}: the stored batch at offset {offset} does not decode: {e}"),
        )
        .with("offset", offset)
    };
    for frame in BatchFrames::new(&batches, usize::MAX) {
        let (header, range) = frame.map_err(|e| corrupt(at, &e))?;
        at = header.base_offset;
        let aborted = committed.as_mut().is_some_and(|f| f.skips(&header, &batches[range.clone()]));
        if aborted || header.is_control() || header.next_offset() <= from {
            at = header.next_offset();
            continue;
        }
        let (_, records) =
            decode_batch(&batches.slice(range), &limits).map_err(|e| corrupt(at, &e))?;
        for r in records.into_iter().filter(|r| r.offset >= from) {
            let size = RECORD_OVERHEAD
                + r.key.as_ref().map_or(0, Bytes::len)
                + r.value.as_ref().map_or(0, Bytes::len)
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                    .sum::<usize>();
            if !part.records.is_empty() && bytes + size > max_bytes {
                part.next_offset = part.records.last().map_or(from, |r| r.offset + 1);
                parts.push(std::mem::take(&mut part));
                bytes = 0;
            }
            bytes += size;
            part.records.push(r);
        }
        at = header.next_offset();
    }
    part.next_offset = next_offset;
    parts.push(part);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shale_core::record::{BatchBuilder, Compression, Header, Record};

    fn batch(base: i64, codec: Compression, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for i in 0..n {
            b.push(Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100])),
                headers: vec![Header { key: "h".into(), value: Some(Bytes::from_static(b"x")) }],
                timestamp_ms: 1_000 + i as i64,
            });
        }
        let mut bytes = b.build().to_vec();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        bytes
    }

    fn read(batches: Vec<u8>, from: i64, next_offset: i64, max_bytes: usize) -> DecodeRead {
        DecodeRead { batches: Bytes::from(batches), from, next_offset, max_bytes, committed: None }
    }

    /// Every codec decodes to the same records; records before `from` in the first batch
    /// are left out; parts stay near `max_bytes`, each ending where the next begins.
    #[test]
    fn batches_of_every_codec_decode_into_parts_that_continue_each_other() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        let all: Vec<u8> =
            codecs.iter().enumerate().flat_map(|(i, c)| batch(i as i64 * 10, *c, 10)).collect();
        let parts = decode_now("t-0", read(all, 3, 50, 1_000)).unwrap();
        let offsets: Vec<i64> =
            parts.iter().flat_map(|p| p.records.iter().map(|r| r.offset)).collect();
        assert_eq!(offsets, (3..50).collect::<Vec<_>>());
        assert!(parts.len() > 3, "{} parts", parts.len());
        for w in parts.windows(2) {
            assert_eq!(w[0].next_offset, w[1].records[0].offset, "parts continue each other");
        }
        assert_eq!(parts.last().unwrap().next_offset, 50);
        let r = &parts[0].records[0];
        assert_eq!((r.key.as_deref(), r.timestamp_ms), (Some(&b"k3"[..]), 1_003));
        assert_eq!(r.headers[0].key, "h");
    }

    /// A batch whose bytes were damaged is an error naming the partition and the batch's
    /// offset, not a panic.
    #[test]
    fn a_damaged_batch_is_an_error_naming_partition_and_offset() {
        let mut all = batch(0, Compression::None, 5);
        let mut second = batch(5, Compression::Zstd, 5);
        let n = second.len();
        second[n - 3] ^= 0xff;
        all.extend(second);
        let e = decode_now("orders-2", read(all, 0, 10, 1 << 20)).unwrap_err();
        assert_eq!(e.reason, "CORRUPT_BATCH");
        assert!(e.message.contains("orders-2") && e.message.contains("offset 5"), "{e}");
    }
}
