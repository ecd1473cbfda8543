//! Fetches in decoded form (`FETCH_FORMAT_RECORDS`): a read's batches, whatever their codec,
//! decoded into records for a client that has only the protos. Raw batches stay the
//! default and the fast path; decoding runs on a blocking thread, never on the threads that
//! serve requests, one per core at most, each bounded by the read it decodes (at most
//! `max_bytes` of batches, each inflated to at most 64 MiB). A stored batch that does not
//! decode is an error naming the topic, partition and offset, answered to this fetch only.

use shale_broker::api::{
    DecodeRead, DecodedPart, FetchChunk, Isolation, ShareChunk, committed_filter, decode_read,
};
use shale_core::error::Error;
use shale_core::record::DecodedRecord;
use shale_proto::pb;

/// A decoded record as the protos carry it.
fn record(r: DecodedRecord) -> pb::FetchedRecord {
    pb::FetchedRecord {
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| pb::Header { key: h.key, value: h.value }).collect(),
    }
}

/// A part's records as the protos carry them.
fn records(part: DecodedPart) -> Vec<pb::FetchedRecord> {
    part.records.into_iter().map(record).collect()
}

/// A Fetch's read `c` of `topic`-`partition` in decoded form, records from `from` in
/// messages of about `max_bytes`: its messages.
pub(crate) async fn fetch_messages(
    (topic, partition): (&str, u32),
    c: FetchChunk,
    (from, max_bytes): (i64, usize),
    isolation: Isolation,
) -> Result<Vec<pb::FetchResponse>, Error> {
    let committed = committed_filter(&c, isolation);
    let read =
        DecodeRead { batches: c.batches, from, next_offset: c.next_offset, max_bytes, committed };
    let parts = decode_read(topic, partition, read).await?;
    Ok(parts
        .into_iter()
        .map(|part| pb::FetchResponse {
            high_watermark: c.high_watermark,
            log_start_offset: c.log_start_offset,
            next_offset: part.next_offset,
            last_stable_offset: c.last_stable_offset,
            records: records(part),
            ..Default::default()
        })
        .collect())
}

/// A FetchMany read `c` of partition `key` (for the add tagged `tag`) in decoded form: its
/// messages.
pub(crate) async fn fetch_many_messages(
    key: &(String, u32),
    tag: u64,
    c: FetchChunk,
    (from, max_bytes): (i64, usize),
    isolation: Isolation,
) -> Result<Vec<pb::FetchManyResponse>, Error> {
    let committed = committed_filter(&c, isolation);
    let read =
        DecodeRead { batches: c.batches, from, next_offset: c.next_offset, max_bytes, committed };
    let parts = decode_read(&key.0, key.1, read).await?;
    Ok(parts
        .into_iter()
        .map(|part| pb::FetchManyResponse {
            topic: key.0.clone(),
            partition: key.1,
            tag,
            high_watermark: c.high_watermark,
            log_start_offset: c.log_start_offset,
            next_offset: part.next_offset,
            last_stable_offset: c.last_stable_offset,
            records: records(part),
            ..Default::default()
        })
        .collect())
}

/// What a share member acquired of `topic`-`partition` (`c`), decoded: the records in its
/// acquired runs with their delivery counts, and the acquired offsets that hold no record
/// (compacted away, transaction markers), as (first, last) runs.
pub(crate) async fn shared_records(
    (topic, partition): (&str, u32),
    c: ShareChunk,
) -> Result<(Vec<pb::SharedRecord>, Vec<(i64, i64)>), Error> {
    let Some(first) = c.acquired.first().map(|a| a.first) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let read = DecodeRead {
        batches: c.batches,
        from: first,
        next_offset: first,
        max_bytes: usize::MAX,
        committed: None,
    };
    let records: Vec<pb::FetchedRecord> =
        decode_read(topic, partition, read).await?.into_iter().flat_map(records).collect();
    let mut out = Vec::new();
    let mut gaps: Vec<(i64, i64)> = Vec::new();
    let mut records = records.into_iter().peekable();
    for a in &c.acquired {
        for offset in a.first..=a.last {
            while records.peek().is_some_and(|r| r.offset < offset) {
                records.next();
            }
            match records.next_if(|r| r.offset == offset) {
                Some(record) => out.push(pb::SharedRecord {
                    record: Some(record),
                    delivery_count: u32::from(a.deliveries),
                }),
                None => match gaps.last_mut() {
                    Some(g) if g.1 + 1 == offset => g.1 = offset,
                    _ => gaps.push((offset, offset)),
                },
            }
        }
    }
    Ok((out, gaps))
}
