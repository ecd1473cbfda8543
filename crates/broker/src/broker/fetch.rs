//! The fetch loop behind the `Fetch` stream: read whole batches below the high watermark,
//! then long-poll on the partition's offsets watch until more become visible.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Partition;
use shale_core::error::{Error, RangeEnd};

/// What the consumer asked for.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// First offset wanted.
    pub offset: i64,
    /// Batch bytes per message (at least one batch is always sent).
    pub max_bytes: usize,
    /// Send an empty message after this long at the end; `None` waits silently.
    pub max_wait: Option<Duration>,
    /// End the stream at the high watermark (once it is known) instead of waiting.
    pub stop_at_end: bool,
}

/// One message of the stream.
#[derive(Debug, Clone)]
pub struct FetchChunk {
    /// Whole batches, as stored.
    pub batches: Bytes,
    /// High watermark when the chunk was read.
    pub high_watermark: i64,
    /// Log start offset when the chunk was read.
    pub log_start_offset: i64,
    /// Where to continue.
    pub next_offset: i64,
}

/// Messages buffered per stream: small, so a slow consumer pushes back on reads.
pub(crate) const STREAM_BUFFER: usize = 2;

/// The error for a fetch offset outside the log.
pub fn offset_out_of_range(offset: i64, log_start: i64, high_watermark: i64) -> Error {
    shale_core::error::offset_out_of_range(
        offset,
        log_start,
        high_watermark,
        RangeEnd::HighWatermark,
    )
}

/// Checks the start offset and starts the loop; the receiver ends when the loop does.
pub fn start(
    partition: Arc<Partition>,
    opts: FetchOptions,
    closed: tokio::sync::watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Result<FetchChunk, Error>>, Error> {
    let log_start = partition.log_start_offset();
    let log_end = partition.log().log_end_offset();
    if opts.offset < log_start || opts.offset > log_end {
        return Err(offset_out_of_range(opts.offset, log_start, partition.high_watermark()));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    // Detached: the loop ends when the receiver is dropped, the partition closes or the
    // broker does (`closed`).
    shale_core::task::spawn_detached(run(partition, opts, tx, closed));
    Ok(rx)
}

async fn run(
    partition: Arc<Partition>,
    opts: FetchOptions,
    tx: mpsc::Sender<Result<FetchChunk, Error>>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let mut offset = opts.offset;
    let mut watermark = partition.subscribe_hw();
    let mut partition_closed = partition.closed_signal();
    loop {
        // Mark the current value seen before checking, so no advance between the check
        // and the wait is missed.
        let hw = *watermark.borrow_and_update();
        if offset < hw {
            let chunk = match partition.read(offset, opts.max_bytes).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if chunk.bytes.is_empty() {
                // Nothing readable below the watermark: the log moved under us.
                let e = offset_out_of_range(offset, partition.log_start_offset(), hw);
                let _ = tx.send(Err(e)).await;
                return;
            }
            offset = chunk.next_offset;
            let msg = FetchChunk {
                batches: chunk.bytes,
                high_watermark: partition.high_watermark(),
                log_start_offset: partition.log_start_offset(),
                next_offset: offset,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
            continue;
        }
        // The end is the high watermark once it is known: a new leader's can lag until its
        // followers fetch, and records below its log end may be acknowledged already.
        if opts.stop_at_end && partition.high_watermark_known() {
            return;
        }
        let heartbeat = async {
            match opts.max_wait {
                Some(d) => shale_core::clock::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = watermark.changed() => {}
            _ = async { drop(partition_closed.wait_for(|c| *c).await) } => {
                // Deleted, or moved away from this broker: the client re-resolves.
                let _ = tx.send(Err(Error::unavailable(format!(
                    "partition {}-{} closed on this broker; retry", partition.topic(), partition.index()
                )))).await;
                return;
            }
            _ = heartbeat => {
                let msg = FetchChunk {
                    batches: Bytes::new(),
                    high_watermark: hw,
                    log_start_offset: partition.log_start_offset(),
                    next_offset: offset,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
            _ = async { drop(closed.wait_for(|c| *c).await) } => {
                let _ = tx.send(Err(Error::unavailable("broker is shutting down; retry"))).await;
                return;
            }
        }
    }
}
