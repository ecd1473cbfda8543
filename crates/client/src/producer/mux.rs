//! One `ProduceMany` stream per broker for all the partitions a producer sends to it.
//!
//! Each partition's sender hands its requests to the broker's mux task over a [`Link`].
//! The mux sends everything waiting as one message whenever fewer than
//! [`MAX_MESSAGES_IN_FLIGHT`] messages await answers, so requests of many partitions share
//! a message (and a busy producer's messages grow with the load, as its batches do), and
//! it routes each answer back to the partition's link. Messages are answered in order, so
//! a partition's answers come back in the order it sent its requests.
//!
//! A broken stream (or one whose oldest message goes unanswered past `request.timeout.ms`)
//! fails every request on it; each partition's sender then resends in order, as it would
//! on its own stream. Requests a sender gave up on (it dropped its link) are not sent.
//!
//! A broker older than `ProduceMany` (it answers `UNIMPLEMENTED`) gets the same requests
//! over `ProduceStream`, one request per stream message, answered in order: clients may
//! be upgraded before the brokers, as Kafka's clients speak to older brokers.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use shale_core::clock::Instant;
use shale_core::error::Error;
use shale_proto::pb;

use crate::{Client, status_error};

/// Messages awaiting answers on one broker's stream before the next waits (and fills).
pub const MAX_MESSAGES_IN_FLIGHT: usize = 8;
/// Requests awaiting answers on a `ProduceStream` to a broker older than `ProduceMany`
/// (one request per message there).
const MAX_LEGACY_IN_FLIGHT: usize = 64;
/// Requests in one message at most.
const MAX_REQUESTS_PER_MESSAGE: usize = 4096;
/// Batch bytes in one message at most (one request may be larger and goes alone): well
/// under the broker's `log.max_request_bytes`, 64 MiB by default.
const MAX_BYTES_PER_MESSAGE: usize = 4 << 20;

type Answer = Result<pb::ProduceResponse, Error>;

/// A request on its way, and where its answer goes.
struct Outgoing {
    req: pb::ProduceRequest,
    reply: mpsc::UnboundedSender<Answer>,
}

/// The producer's mux tasks, one per broker address.
pub(super) struct Links {
    client: Client,
    request_timeout: Duration,
    muxes: std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>,
}

/// One partition's way to its leader, through the leader's mux.
pub(super) struct Link {
    /// The leader's address.
    pub(super) leader: String,
    to_mux: mpsc::UnboundedSender<Outgoing>,
    reply: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl Link {
    /// Queues a request; an error means the mux is gone.
    pub(super) fn send(&self, req: pb::ProduceRequest) -> Result<(), ()> {
        self.to_mux.send(Outgoing { req, reply: self.reply.clone() }).map_err(|_| ())
    }

    /// The next answer, in the order the requests were sent; `None` once the mux is gone.
    pub(super) async fn next(&mut self) -> Option<Answer> {
        self.answers.recv().await
    }
}

impl Links {
    pub(super) fn new(client: Client, request_timeout: Duration) -> Links {
        Links { client, request_timeout, muxes: Default::default() }
    }

    /// A new link to `leader` (a fresh one after every failure: answers still due on the
    /// old one are dropped with it).
    pub(super) fn link(&self, leader: &str) -> Link {
        let to_mux = {
            let mut muxes = self.muxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match muxes.get(leader) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let mux = Mux {
                        client: self.client.clone(),
                        leader: leader.to_string(),
                        inbound: rx,
                        timeout: self.request_timeout,
                        carried: None,
                        legacy: false,
                    };
                    shale_core::task::spawn_detached(mux.run());
                    muxes.insert(leader.to_string(), tx.clone());
                    tx
                }
            }
        };
        let (reply, answers) = mpsc::unbounded_channel();
        Link { leader: leader.to_string(), to_mux, reply, answers }
    }
}

/// The open stream to one broker: `ProduceMany`, or `ProduceStream` to a broker older
/// than it.
enum Stream {
    Many {
        requests: mpsc::Sender<pb::ProduceManyRequest>,
        responses: tonic::Streaming<pb::ProduceManyResponse>,
    },
    Legacy {
        requests: mpsc::Sender<pb::ProduceRequest>,
        responses: tonic::Streaming<pb::ProduceResponse>,
    },
}

/// Opens `ProduceMany` to `leader`, unless it is known to be `legacy`, and `ProduceStream`
/// if it is, or if it refuses `ProduceMany` as unimplemented now.
async fn open(client: &Client, leader: &str, legacy: bool) -> Result<Stream, Error> {
    let mut rpc = client.log_rpc(leader)?;
    if !legacy {
        let (requests, rx) = mpsc::channel(MAX_MESSAGES_IN_FLIGHT);
        match rpc.produce_many(ReceiverStream::new(rx)).await {
            Ok(responses) => {
                return Ok(Stream::Many { requests, responses: responses.into_inner() });
            }
            Err(s) if s.code() == tonic::Code::Unimplemented => {}
            Err(s) => return Err(status_error(&s)),
        }
    }
    let (requests, rx) = mpsc::channel(MAX_LEGACY_IN_FLIGHT);
    let responses =
        rpc.produce_stream(ReceiverStream::new(rx)).await.map_err(|s| status_error(&s))?;
    Ok(Stream::Legacy { requests, responses: responses.into_inner() })
}

/// A message sent and not yet answered: when, and where each answer goes.
struct Sent {
    at: Instant,
    replies: Vec<mpsc::UnboundedSender<Answer>>,
}

/// The task behind one broker's links.
struct Mux {
    client: Client,
    /// The broker's address.
    leader: String,
    inbound: mpsc::UnboundedReceiver<Outgoing>,
    /// `request.timeout.ms`: the longest the oldest message may go unanswered.
    timeout: Duration,
    /// A request taken but left for the next message (its partition had one already).
    carried: Option<Outgoing>,
    /// The broker does not serve `ProduceMany`: requests go over `ProduceStream`.
    legacy: bool,
}

impl Mux {
    /// Sends what waits while there is room, routes answers, until every link is gone and
    /// every message answered.
    ///
    /// One function on purpose, like the partition sender: the stream and the messages in
    /// flight live in its locals, so every transition is in view.
    async fn run(mut self) {
        let timeout = self.timeout;
        let mut stream: Option<Stream> = None;
        let mut in_flight: VecDeque<Sent> = VecDeque::new();
        let mut closed = false;
        loop {
            let most = if self.legacy { MAX_LEGACY_IN_FLIGHT } else { MAX_MESSAGES_IN_FLIGHT };
            let room = !closed && in_flight.len() < most;
            let deadline = in_flight.front().map(|s| s.at + timeout);
            tokio::select! {
                first = next_request(&mut self.inbound, &mut self.carried), if room => {
                    let Some(first) = first else {
                        closed = true;
                        continue;
                    };
                    let batch = self.take_waiting(first);
                    if batch.is_empty() {
                        continue;
                    }
                    if stream.is_none() {
                        match open(&self.client, &self.leader, self.legacy).await {
                            Ok(s) => {
                                if matches!(s, Stream::Legacy { .. }) {
                                    self.fall_back();
                                }
                                stream = Some(s);
                            }
                            Err(e) => {
                                fail(batch.into_iter().map(|o| o.reply), &e);
                                continue;
                            }
                        }
                    }
                    let at = shale_core::clock::monotonic_now();
                    let sent = match &stream {
                        Some(Stream::Many { requests, .. }) => {
                            let (reqs, replies): (Vec<_>, Vec<_>) =
                                batch.into_iter().map(|o| (o.req, o.reply)).unzip();
                            in_flight.push_back(Sent { at, replies });
                            requests.send(pb::ProduceManyRequest { requests: reqs }).await.is_ok()
                        }
                        // One request per message, each answered on its own.
                        Some(Stream::Legacy { requests, .. }) => {
                            let mut sent = true;
                            for o in batch {
                                in_flight.push_back(Sent { at, replies: vec![o.reply] });
                                sent = sent && requests.send(o.req).await.is_ok();
                            }
                            sent
                        }
                        None => continue,
                    };
                    if !sent {
                        let e = Error::unavailable("produce stream closed by the broker");
                        fail(in_flight.drain(..).flat_map(|s| s.replies), &e);
                        stream = None;
                    }
                }
                answer = next_message(&mut stream, deadline, timeout), if !in_flight.is_empty() => {
                    let sent = in_flight.pop_front();
                    let failure = match (answer, sent) {
                        (Ok(msg), Some(sent)) if msg.responses.len() == sent.replies.len() => {
                            for (reply, resp) in sent.replies.into_iter().zip(msg.responses) {
                                let _ = reply.send(Ok(resp));
                            }
                            None
                        }
                        (Ok(msg), Some(sent)) => {
                            let e = Error::internal(format!(
                                "broker answered {} requests of a message of {}",
                                msg.responses.len(),
                                sent.replies.len()
                            ));
                            in_flight.push_front(sent);
                            Some(e)
                        }
                        (Err(f), sent) => {
                            if let Some(sent) = sent {
                                in_flight.push_front(sent);
                            }
                            if f.older_broker {
                                self.fall_back();
                            }
                            Some(f.error)
                        }
                        (Ok(_), None) => None,
                    };
                    if let Some(e) = failure {
                        // Everything on this stream fails; the partitions resend in order
                        // (over ProduceStream if the broker turned out to be older).
                        fail(in_flight.drain(..).flat_map(|s| s.replies), &e);
                        stream = None;
                    }
                }
                else => return,
            }
        }
    }

    /// The broker does not serve `ProduceMany`: from now on this mux sends over
    /// `ProduceStream`.
    fn fall_back(&mut self) {
        if !self.legacy {
            tracing::info!(broker = %self.leader,
                "the broker does not serve ProduceMany (older than this client); producing \
                 over ProduceStream, one stream message per request");
            self.legacy = true;
        }
    }

    /// `first` and whatever else waits, up to a message's bounds and one request per
    /// partition, leaving out requests whose partition gave up on its link. A message is
    /// answered whole, so a second request of a partition goes in the next message: the
    /// partition's requests stay pipelined, each answer freeing its slot.
    fn take_waiting(&mut self, first: Outgoing) -> Vec<Outgoing> {
        let mut partitions = std::collections::HashSet::new();
        partitions.insert((first.req.topic.clone(), first.req.partition));
        let mut bytes = size(&first.req);
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS_PER_MESSAGE && bytes < MAX_BYTES_PER_MESSAGE {
            let Ok(o) = self.inbound.try_recv() else { break };
            if !partitions.insert((o.req.topic.clone(), o.req.partition)) {
                self.carried = Some(o);
                break;
            }
            bytes += size(&o.req);
            batch.push(o);
        }
        batch.retain(|o| !o.reply.is_closed());
        batch
    }
}

/// The request carried over from the last message, or the next to arrive.
async fn next_request(
    inbound: &mut mpsc::UnboundedReceiver<Outgoing>,
    carried: &mut Option<Outgoing>,
) -> Option<Outgoing> {
    match carried.take() {
        Some(o) => Some(o),
        None => inbound.recv().await,
    }
}

fn size(req: &pb::ProduceRequest) -> usize {
    match &req.payload {
        Some(pb::produce_request::Payload::Batches(b)) => b.len(),
        _ => 0,
    }
}

fn fail(replies: impl Iterator<Item = mpsc::UnboundedSender<Answer>>, e: &Error) {
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

/// Why a stream gave no answer.
struct Failure {
    error: Error,
    /// The broker refused `ProduceMany` as unimplemented: it is older than this client.
    older_broker: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, older_broker: false }
    }
}

/// The next answer message (a `ProduceStream` answer as a message of one), or why none
/// came by `deadline` (the oldest message's send time plus `timeout`).
async fn next_message(
    stream: &mut Option<Stream>,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<pb::ProduceManyResponse, Failure> {
    let Some(s) = stream.as_mut() else {
        return Err(Error::unavailable("no produce stream").into());
    };
    let wait = async {
        match deadline {
            Some(at) => shale_core::clock::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let message = async {
        match s {
            Stream::Many { responses, .. } => responses.message().await,
            Stream::Legacy { responses, .. } => responses
                .message()
                .await
                .map(|r| r.map(|r| pb::ProduceManyResponse { responses: vec![r] })),
        }
    };
    tokio::select! {
        msg = message => match msg {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(Error::unavailable("produce stream ended by the broker").into()),
            // An older broker may refuse ProduceMany only here, on the first read: the
            // requests are sent again, over ProduceStream.
            Err(status) if status.code() == tonic::Code::Unimplemented => Err(Failure {
                error: Error::unavailable(
                    "the broker does not serve ProduceMany; sending over ProduceStream",
                ),
                older_broker: true,
            }),
            Err(status) => Err(status_error(&status).into()),
        },
        () = wait => Err(Error::unavailable(format!(
            "no answer from the broker within {} ms (request.timeout.ms)",
            timeout.as_millis()
        )).into()),
    }
}
