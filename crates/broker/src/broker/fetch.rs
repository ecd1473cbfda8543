//! The one read path of consumers, whatever their protocol: whole batches from each asked
//! partition below what readers may see, and a long-poll on the partitions' watermarks
//! until enough is there, the wait runs out, a partition closes here or the broker does.
//! `api::fetch` wraps it in authorization, quotas and counters; the gRPC stream and the
//! Kafka `Fetch` are both made of it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::watch;

use super::Partition;
use shale_core::error::{Error, RangeEnd};

/// One partition to read: where from, how much at most, and what the reader may see.
#[derive(Debug, Clone)]
pub(crate) struct ReadWant {
    pub partition: Arc<Partition>,
    pub offset: i64,
    pub max_bytes: usize,
    pub isolation: Isolation,
}

/// What a reader may see of transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Everything below the high watermark, open and aborted transactions included.
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset, where every transaction is decided.
    ReadCommitted,
}

/// When a read answers.
#[derive(Debug, Clone, Copy)]
pub struct WaitFor {
    /// Batch bytes of all partitions together: past the first partition with data, a
    /// batch beyond what is left waits for the next read (KIP-74: the first one goes out
    /// whatever its size).
    pub max_bytes: usize,
    /// Answer once this many bytes are read (at least 1).
    pub min_bytes: usize,
    /// Answer after this long with what there is; `None` waits without end.
    pub max_wait: Option<Duration>,
    /// Answer at once when every partition is at its end and that end is known (a new
    /// leader's high watermark is known once its followers fetched), instead of waiting.
    pub answer_at_end: bool,
}

/// What one partition of a read found.
#[derive(Debug, Clone)]
pub struct FetchChunk {
    /// Whole batches, as stored.
    pub batches: Bytes,
    /// The high watermark when the chunk was read.
    pub high_watermark: i64,
    /// The last stable offset when the chunk was read (see `Partition::last_stable_offset`).
    pub last_stable_offset: i64,
    /// The log start offset when the chunk was read.
    pub log_start_offset: i64,
    /// Where to continue.
    pub next_offset: i64,
    /// For a `read_committed` read: the aborted transactions its batches overlap, as
    /// (producer id, first offset); the reader skips each one's batches from its first
    /// offset until its abort marker. Empty for `read_uncommitted`.
    pub aborted: Vec<(i64, i64)>,
    /// Whether `next_offset` is the known end: nothing more to read until records arrive.
    pub at_end: bool,
}

/// The error for a fetch offset outside the log.
pub fn offset_out_of_range(offset: i64, log_start: i64, high_watermark: i64) -> Error {
    shale_core::error::offset_out_of_range(
        offset,
        log_start,
        high_watermark,
        RangeEnd::HighWatermark,
    )
}

/// `OFFSET_OUT_OF_RANGE` unless `want`'s offset is within its partition's log (at most its
/// end: a reader may wait there).
pub(crate) fn check_range(want: &ReadWant) -> Result<(), Error> {
    let p = &want.partition;
    let (start, end) = (p.log_start_offset(), p.log().log_end_offset());
    if want.offset < start || want.offset > end {
        return Err(offset_out_of_range(want.offset, start, p.high_watermark()));
    }
    Ok(())
}

/// Why a waiting read woke.
enum Woke {
    /// New data, or the wait ran out: read again.
    Data,
    /// The broker closes.
    Closing,
}

/// Reads every partition (in order, within `wait.max_bytes`) and, while fewer than
/// `min_bytes` are there, waits for the high watermarks to move, as `wait` says. A partition
/// that closed here (deleted, moved away) answers `UNAVAILABLE` at once; when the broker
/// closes, every partition without data does.
pub(crate) async fn long_poll(
    wants: &[Result<ReadWant, Error>],
    wait: &WaitFor,
    mut closed: watch::Receiver<bool>,
) -> Vec<Result<FetchChunk, Error>> {
    let deadline = wait.max_wait.map(|d| shale_core::clock::monotonic_now() + d);
    // Watches are taken only once a read finds too little, and the read is then done once
    // more: what arrived between the read and the watch is not missed, and a read that
    // answers at once (the busy case) costs no subscription.
    let mut watches: Option<Vec<_>> = None;
    loop {
        let (reads, bytes) = read_all(wants, wait.max_bytes).await;
        let failed = reads.iter().any(Result::is_err);
        let at_end = wait.answer_at_end && reads.iter().flatten().all(|r| r.at_end);
        let expired = deadline.is_some_and(|d| shale_core::clock::monotonic_now() >= d);
        let nothing_to_watch = !wants.iter().any(Result::is_ok);
        if bytes >= wait.min_bytes.max(1) || failed || at_end || nothing_to_watch || expired {
            return reads;
        }
        let Some(watches) = watches.as_mut() else {
            watches = Some(
                wants
                    .iter()
                    .flatten()
                    .map(|w| {
                        let mut hw = w.partition.subscribe_hw();
                        hw.borrow_and_update();
                        (hw, w.partition.closed_signal())
                    })
                    .collect(),
            );
            continue;
        };
        let changed = futures::future::select_all(watches.iter_mut().map(|(hw, closed)| {
            async move {
                tokio::select! {
                    _ = hw.changed() => {}
                    _ = closed.wait_for(|c| *c) => {}
                }
            }
            .boxed()
        }));
        let timeout = async {
            match deadline {
                Some(d) => shale_core::clock::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let woke = tokio::select! {
            _ = changed => Woke::Data,
            _ = timeout => Woke::Data,
            _ = closed.wait_for(|c| *c) => Woke::Closing,
        };
        if let Woke::Closing = woke {
            let reads = read_all(wants, wait.max_bytes).await.0;
            return reads
                .into_iter()
                .map(|r| match r {
                    Ok(c) if c.batches.is_empty() => {
                        Err(Error::unavailable("broker is shutting down; retry"))
                    }
                    other => other,
                })
                .collect();
        }
    }
}

/// Reads each partition in order within `max_bytes`; the total read.
async fn read_all(
    wants: &[Result<ReadWant, Error>],
    max_bytes: usize,
) -> (Vec<Result<FetchChunk, Error>>, usize) {
    let mut left = max_bytes;
    let mut total = 0;
    let mut out = Vec::with_capacity(wants.len());
    for want in wants {
        let want = match want {
            Ok(w) => w,
            Err(e) => {
                out.push(Err(e.clone()));
                continue;
            }
        };
        let limit = want.max_bytes.min(left);
        let mut chunk = read_one(want, limit.max(1), limit > 0 || total == 0).await;
        if let Ok(c) = &mut chunk {
            // Past the first partition with data, a batch beyond the limits waits for the
            // next read.
            if total > 0 && c.batches.len() > limit {
                c.batches = Bytes::new();
                c.next_offset = want.offset;
                c.at_end = false;
            }
            total += c.batches.len();
            left = left.saturating_sub(c.batches.len());
        }
        out.push(chunk);
    }
    (out, total)
}

/// One partition's read below its high watermark (none when `read` is false: no bytes
/// left), with the partition's offsets.
async fn read_one(want: &ReadWant, max_bytes: usize, read: bool) -> Result<FetchChunk, Error> {
    let p = &want.partition;
    if p.is_closed() {
        return Err(Error::unavailable(format!(
            "partition {}-{} closed on this broker; retry",
            p.topic(),
            p.index()
        )));
    }
    check_range(want)?;
    let offset = want.offset;
    let (hw, lso) = (p.high_watermark(), p.last_stable_offset());
    let mut chunk = FetchChunk {
        batches: Bytes::new(),
        high_watermark: hw,
        last_stable_offset: lso,
        log_start_offset: p.log_start_offset(),
        next_offset: offset,
        aborted: Vec::new(),
        at_end: false,
    };
    let upper = match want.isolation {
        Isolation::ReadUncommitted => hw,
        Isolation::ReadCommitted => lso,
    };
    if offset >= upper {
        // The end is the high watermark once it is known: a new leader's can lag until its
        // followers fetch, and records below its log end may be acknowledged already.
        chunk.at_end = p.high_watermark_known();
        return Ok(chunk);
    }
    if !read {
        return Ok(chunk);
    }
    let read = p.read_below(offset, max_bytes, upper).await?;
    if read.bytes.is_empty() {
        // Nothing readable below the bound: the log moved under the read.
        return Err(offset_out_of_range(offset, p.log_start_offset(), p.high_watermark()));
    }
    chunk.batches = read.bytes;
    chunk.next_offset = read.next_offset;
    chunk.high_watermark = p.high_watermark();
    chunk.last_stable_offset = p.last_stable_offset();
    chunk.log_start_offset = p.log_start_offset();
    let end = match want.isolation {
        Isolation::ReadUncommitted => chunk.high_watermark,
        Isolation::ReadCommitted => {
            chunk.aborted = p.aborted_for_read(offset, chunk.next_offset).await?;
            chunk.last_stable_offset
        }
    };
    chunk.at_end = chunk.next_offset >= end && p.high_watermark_known();
    Ok(chunk)
}
