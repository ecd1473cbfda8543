//! `shale.v1.Log`'s reads, Fetch and FetchMany: a partition's reads (`Api::fetch_stream`)
//! as whole batches, or decoded into records; at either isolation. A `read_committed`
//! stream ends at the last stable offset; its batches come with the aborted transactions
//! they overlap, or, decoded, without their records.

use std::pin::Pin;

use futures::stream::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::decoded;
use shale_broker::api::{Api, FetchChunk, FetchShape, Identity, Isolation};
use shale_core::error::Error;
use shale_proto::convert;
use shale_proto::pb;
use shale_proto::status::into_status;

/// A stream of answers, boxed.
pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Messages buffered per FetchMany stream: small, so a slow consumer pushes back on reads.
const FETCH_STREAM_BUFFER: usize = 2;

/// A request's isolation.
fn isolation(wire: i32) -> Result<Isolation, Error> {
    Ok(match convert::read_committed(wire)? {
        true => Isolation::ReadCommitted,
        false => Isolation::ReadUncommitted,
    })
}

/// A read's aborted transactions as the wire lists them.
fn aborted(list: &[(i64, i64)]) -> Vec<pb::AbortedTransaction> {
    list.iter()
        .map(|&(producer_id, first_offset)| pb::AbortedTransaction { producer_id, first_offset })
        .collect()
}

/// `Fetch`: one partition's reads, from the request's offset.
pub(crate) fn fetch(
    api: &Api,
    who: &Identity,
    req: pb::FetchRequest,
) -> Result<BoxStream<pb::FetchResponse>, Error> {
    let isolation = isolation(req.isolation)?;
    let shape = FetchShape::new(api, req.max_bytes, req.max_wait_ms, req.stop_at_end)
        .with_isolation(isolation);
    let decoded = convert::decoded(req.format)?;
    let reader = api.fetch_stream(who, "Fetch", &req.topic, req.partition, req.offset, &shape)?;
    if !decoded {
        let stream = reader.map(|item| {
            item.map(|c| pb::FetchResponse {
                high_watermark: c.high_watermark,
                log_start_offset: c.log_start_offset,
                next_offset: c.next_offset,
                last_stable_offset: c.last_stable_offset,
                aborted_transactions: aborted(&c.aborted),
                batches: c.batches,
                records: Vec::new(),
            })
            .map_err(into_status)
        });
        return Ok(Box::pin(stream));
    }
    // Where the stream stands: records below it in a read's first batch are left out.
    let position = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(req.offset));
    let (topic, partition, max_bytes) = (req.topic, req.partition, shape.max_bytes());
    let stream = reader
        .then(move |item| {
            let (topic, position) = (topic.clone(), position.clone());
            async move {
                let c = item.map_err(into_status)?;
                let from = position.load(std::sync::atomic::Ordering::Relaxed);
                let next = c.next_offset;
                let messages =
                    decoded::fetch_messages((&topic, partition), c, (from, max_bytes), isolation)
                        .await;
                position.store(next, std::sync::atomic::Ordering::Relaxed);
                messages.map_err(into_status)
            }
        })
        .flat_map(|answer: Result<Vec<pb::FetchResponse>, Status>| {
            futures::stream::iter(match answer {
                Ok(messages) => messages.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(status) => vec![Err(status)],
            })
        });
    Ok(Box::pin(stream))
}

/// `FetchMany`: the partitions the client adds, each read from its position, interleaved.
pub(crate) fn fetch_many(
    api: Api,
    who: Identity,
    mut inbound: Streaming<pb::FetchManyRequest>,
) -> BoxStream<pb::FetchManyResponse> {
    let (tx, rx) = mpsc::channel(FETCH_STREAM_BUFFER);
    // Detached: ends when the client goes (its requests end with an error or its
    // answers can no longer be sent), or once it half-closed and no partition is left.
    shale_core::task::spawn_detached(async move {
        let mut readers = tokio_stream::StreamMap::new();
        let mut shape = None;
        // Decoded records (FETCH_FORMAT_RECORDS), from the first message.
        let mut decoded = false;
        let mut inbound_done = false;
        loop {
            tokio::select! {
                req = inbound.message(), if !inbound_done => {
                    let req = match req {
                        Ok(Some(req)) => req,
                        Ok(None) => {
                            inbound_done = true;
                            continue;
                        }
                        Err(_) => return,
                    };
                    if shape.is_none() {
                        match convert::decoded(req.format).and_then(|d| Ok((d, isolation(req.isolation)?))) {
                            Ok((d, i)) => {
                                decoded = d;
                                shape = Some(
                                    FetchShape::new(&api, req.max_bytes, req.max_wait_ms, req.stop_at_end)
                                        .with_isolation(i),
                                );
                            }
                            Err(e) => {
                                let _ = tx.send(Err(into_status(e))).await;
                                return;
                            }
                        }
                    }
                    let Some(shape) = shape.as_ref() else { return };
                    for stop in req.remove {
                        readers.remove(&(stop.topic, stop.partition));
                    }
                    for p in req.add {
                        let key = (p.topic.clone(), p.partition);
                        // A partition already read moves: its reader is replaced.
                        readers.remove(&key);
                        match api.fetch_stream(&who, "FetchMany", &p.topic, p.partition, p.offset, shape) {
                            Ok(reader) => {
                                let decoded = decoded.then(|| (p.offset, shape.max_bytes()));
                                let messages = many_reader(key.clone(), p.tag, reader, decoded, shape.isolation());
                                readers.insert(key, messages);
                            }
                            Err(e) => {
                                if tx.send(Ok(ended(key, p.tag, Some(&e)))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                Some((key, (tag, item))) = readers.next(), if !readers.is_empty() => {
                    let msgs = match item {
                        Some(Ok(messages)) => messages,
                        Some(Err(e)) => {
                            readers.remove(&key);
                            vec![ended(key, tag, Some(&e))]
                        }
                        None => vec![ended(key, tag, None)],
                    };
                    for msg in msgs {
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                }
                else => return,
            }
            if inbound_done && readers.is_empty() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// One partition's messages in a FetchMany stream (a read's, or its decoded records'), each
/// with the add's tag, ended by `None` so that its end is seen.
type BoxReader =
    Pin<Box<dyn Stream<Item = (u64, Option<Result<Vec<pb::FetchManyResponse>, Error>>)> + Send>>;

/// The messages of partition `key`'s reads for the add tagged `tag`: each read as it was
/// (batches), or decoded (records below `from` left out), inside the partition's own
/// stream, so that one partition's decoding does not hold the others' reads.
fn many_reader(
    key: (String, u32),
    tag: u64,
    reader: impl Stream<Item = Result<FetchChunk, Error>> + Send + 'static,
    decoded: Option<(i64, usize)>,
    isolation: Isolation,
) -> BoxReader {
    let messages = match decoded {
        None => reader
            .map(move |item| {
                item.map(|c| {
                    vec![pb::FetchManyResponse {
                        topic: key.0.clone(),
                        partition: key.1,
                        tag,
                        high_watermark: c.high_watermark,
                        log_start_offset: c.log_start_offset,
                        next_offset: c.next_offset,
                        last_stable_offset: c.last_stable_offset,
                        aborted_transactions: aborted(&c.aborted),
                        batches: c.batches,
                        ..Default::default()
                    }]
                })
            })
            .boxed(),
        Some((from, max_bytes)) => {
            let position = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(from));
            reader
                .then(move |item| {
                    let (key, position) = (key.clone(), position.clone());
                    async move {
                        let c = item?;
                        let from = position.load(std::sync::atomic::Ordering::Relaxed);
                        let next = c.next_offset;
                        let messages = decoded::fetch_many_messages(
                            &key,
                            tag,
                            c,
                            (from, max_bytes),
                            isolation,
                        )
                        .await;
                        position.store(next, std::sync::atomic::Ordering::Relaxed);
                        messages
                    }
                })
                .boxed()
        }
    };
    Box::pin(
        messages
            .map(move |item| (tag, Some(item)))
            .chain(futures::stream::once(async move { (tag, None) })),
    )
}

/// The message that takes a partition out of a FetchMany stream: at its end, or failed.
fn ended(
    (topic, partition): (String, u32),
    tag: u64,
    error: Option<&Error>,
) -> pb::FetchManyResponse {
    pb::FetchManyResponse {
        topic,
        partition,
        tag,
        end: true,
        error: error.map(convert::error_to_proto),
        ..Default::default()
    }
}
