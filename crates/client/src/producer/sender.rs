//! The sender task of one partition: links to the leader's `ProduceMany` stream (see
//! `mux`), pipelines sealed batches up to `max_in_flight`, matches answers to batches in
//! order, and on a failure requeues the failed batch and everything sent after it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::{convert, pb};

use super::lane::{Lane, Taken};
use super::mux::{Link, Links};
use super::{Pending, ProducerConfig, Sealed, Tp};
use crate::{Client, locate};

/// The partition's link to its leader, through the leader's `ProduceMany` mux.
async fn open_link(client: &Client, links: &Links, tp: &Tp) -> Result<Link, Error> {
    let leader = client.leader(&tp.0, tp.1).await?;
    Ok(links.link(&leader))
}

/// Whether a failed batch is sent again (after its leader is looked up again): any
/// retriable failure, and, as Kafka's producer does, UNKNOWN_TOPIC from a broker whose
/// metadata is behind (restarted a moment ago, or not yet past the topic's creation). A
/// topic that is really gone fails its batches at the delivery timeout; a send to a topic
/// that never existed fails at once, before any batch (`Producer::send`).
fn worth_retrying(error: &Error) -> bool {
    error.kind.is_retriable() || error.reason == Reason::UnknownTopic
}

/// Moves batches back to the front of the queue (in order) for another attempt, failing
/// those out of retries.
fn requeue(
    batches: impl DoubleEndedIterator<Item = Sealed>,
    queue: &mut VecDeque<Sealed>,
    error: &Error,
    config: &ProducerConfig,
    pending: &Pending,
) {
    for mut b in batches.rev() {
        if worth_retrying(error)
            && b.attempts < config.retries
            && b.created.elapsed() < config.delivery_timeout
        {
            b.attempts += 1;
            queue.push_front(b);
        } else {
            b.fail(error, pending);
        }
    }
}

/// Batches a partition keeps unanswered before it stops sending batches that are not
/// full. Past it the open batch keeps filling until an answer comes back (or it fills):
/// one batch in the leader's fsync, one waiting for the next, the rest of a moderate load
/// gathering into the batch after. A load that fills batches still gets the whole
/// `max_in_flight` window, so peak throughput is kept. At 50,000 records/s on one
/// partition, two instead of five cut the broker's CPU by about 15% with p50 and p99 no
/// worse (docs/benchmarks.md); one cut it by 40% but raised p50 by a millisecond and
/// halved peak throughput.
const PARTIAL_IN_FLIGHT: usize = 2;

/// Sends one partition's batches in order over a pipelined stream to its leader.
///
/// One function on purpose: a single `select!` loop whose state (the stream, the batches
/// in flight in order, the retry queue) lives in its locals, so every transition is in
/// view; the steps that need no loop state (`open_stream`, `requeue`, `next_answer`) are
/// outside.
pub(super) async fn sender_loop(
    client: Client,
    links: Arc<Links>,
    tp: Tp,
    config: Arc<ProducerConfig>,
    lane: Arc<Lane>,
    pending: Arc<Pending>,
    transactional_id: Option<Arc<str>>,
) {
    let acks = convert::acks_to_proto(config.acks) as i32;
    let window = config.max_in_flight.max(1);
    let mut queue: VecDeque<Sealed> = VecDeque::new();
    let mut in_flight: VecDeque<(u64, Sealed)> = VecDeque::new();
    let mut conn: Option<Link> = None;
    // A fresh link carries one batch until the leader accepts one (see `probe_window`).
    let mut probing = true;
    let mut next_id: u64 = 0;
    loop {
        // Take batches from the lane while the window has room; a batch left there keeps
        // filling until an answer frees a slot.
        let mut due = None;
        let mut closed = false;
        while queue.len() + in_flight.len() < window {
            let now = shale_core::clock::monotonic_now();
            let partial = queue.len() + in_flight.len() < PARTIAL_IN_FLIGHT.min(window);
            match lane.take(config.linger, config.idempotence, now, partial) {
                Taken::Batch(b) => queue.push_back(b),
                Taken::Later(at) => {
                    due = Some(at);
                    break;
                }
                Taken::Nothing { closed: c } => {
                    closed = c;
                    break;
                }
            }
        }
        if closed && queue.is_empty() && in_flight.is_empty() {
            return;
        }
        if conn.is_none() && !queue.is_empty() {
            match open_link(&client, &links, &tp).await {
                Ok(c) => {
                    conn = Some(c);
                    probing = true;
                }
                Err(e) => {
                    if e.kind != ErrorKind::ResourceExhausted {
                        client.invalidate(&tp.0);
                    }
                    let batches: Vec<Sealed> = queue.drain(..).collect();
                    requeue(batches.into_iter(), &mut queue, &e, &config, &pending);
                    let wait = e.retry_after().unwrap_or_default().max(config.retry_backoff);
                    shale_core::clock::sleep(wait).await;
                    continue;
                }
            }
        }
        if let Some(c) = &conn {
            let mut broken = false;
            while in_flight.len() < probe_window(probing, window) {
                let Some(batch) = queue.pop_front() else { break };
                next_id += 1;
                let req = pb::ProduceRequest {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    acks,
                    payload: Some(pb::produce_request::Payload::Batches(batch.bytes.clone())),
                    correlation_id: next_id,
                    timeout_ms: config.request_timeout.as_millis() as u32,
                    transactional_id: transactional_id.as_deref().unwrap_or_default().to_string(),
                };
                in_flight.push_back((next_id, batch));
                if c.send(req).is_err() {
                    broken = true;
                    break;
                }
            }
            if broken {
                let e = locate(
                    Error::unavailable("produce stream closed by the broker"),
                    &c.leader,
                    Some(&tp.0),
                    Some(tp.1),
                );
                let batches: Vec<Sealed> = in_flight.drain(..).map(|(_, b)| b).collect();
                requeue(batches.into_iter(), &mut queue, &e, &config, &pending);
                conn = None;
                shale_core::clock::sleep(config.retry_backoff).await;
                continue;
            }
        }
        let waiting = !in_flight.is_empty();
        let room = queue.len() + in_flight.len() < window;
        tokio::select! {
            // A batch opened or filled, a flush, the producer dropped.
            () = lane.work.notified(), if room => {}
            () = sleep_until(due), if room && due.is_some() => {}
            answer = next_answer(&mut conn, config.request_timeout), if waiting => {
                let failure = match answer {
                    Ok(resp) => match in_flight.pop_front() {
                        Some((id, batch)) if id == resp.correlation_id => match resp.error {
                            None => {
                                batch.complete(&tp.0, tp.1, &resp, &pending);
                                probing = false;
                                None
                            }
                            Some(err) => {
                                let e = convert::error_from_proto(&err);
                                in_flight.push_front((id, batch));
                                Some(e)
                            }
                        },
                        Some((id, batch)) => {
                            in_flight.push_front((id, batch));
                            Some(Error::internal(format!(
                                "broker answered correlation id {} while {} was expected",
                                resp.correlation_id, id
                            )))
                        }
                        None => None,
                    },
                    Err(e) => Some(e),
                };
                if let Some(e) = failure {
                    let e = match &conn {
                        Some(c) => locate(e, &c.leader, Some(&tp.0), Some(tp.1)),
                        None => e,
                    };
                    // The leader may have moved (NOT_LEADER) or stopped serving (its lease,
                    // the connection): look it up again before the resend.
                    // Over a quota, the leader is where it was.
                    if worth_retrying(&e) && e.kind != ErrorKind::ResourceExhausted {
                        client.invalidate(&tp.0);
                    }
                    // Everything in flight is resent in order on a fresh stream (or failed).
                    let batches: Vec<Sealed> = in_flight.drain(..).map(|(_, b)| b).collect();
                    requeue(batches.into_iter(), &mut queue, &e, &config, &pending);
                    conn = None;
                    if worth_retrying(&e) {
                        // Over a quota, the broker says when to come back (RetryInfo).
                        let wait = e.retry_after().unwrap_or_default().max(config.retry_backoff);
                        shale_core::clock::sleep(wait).await;
                    }
                }
            }
        }
    }
}

/// Batches a link may carry unanswered: one until the leader has accepted one over it,
/// then `window`.
///
/// A leader that refuses a batch (a partition still opening after a restart, a leader
/// moving) may accept the next one a moment later. Were later batches in flight behind the
/// refused one, they would be appended past it, and a leader that had no state for this
/// producer takes whatever sequence comes first (its state may have been truncated away),
/// so the resent batch would then be refused as out of order for good and its records
/// lost. Once a batch is accepted, the leader knows the producer and refuses any batch
/// that overtakes a missing one, so pipelining is safe.
fn probe_window(probing: bool, window: usize) -> usize {
    if probing { 1 } else { window }
}

/// Until `at`, or forever.
async fn sleep_until(at: Option<shale_core::clock::Instant>) {
    match at {
        Some(at) => shale_core::clock::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_answer(
    conn: &mut Option<Link>,
    timeout: Duration,
) -> Result<pb::ProduceResponse, Error> {
    let Some(c) = conn.as_mut() else {
        return Err(Error::unavailable("no produce stream"));
    };
    match tokio::time::timeout(timeout, c.next()).await {
        Ok(Some(answer)) => answer,
        Ok(None) => Err(Error::unavailable("produce stream ended")),
        Err(_) => Err(Error::unavailable(format!(
            "no answer from the broker within {} ms (request.timeout.ms)",
            timeout.as_millis()
        ))),
    }
}
