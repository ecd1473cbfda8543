//! The producer's sender: one task per producer, as Kafka's sender thread. It takes the
//! partitions' ready batches, groups them by leader into one `ProduceMany` message per
//! broker (see `mux`), pipelines up to `max_in_flight` batches per partition, matches
//! answers to batches in order, and on a failure requeues the failed batch and everything
//! its partition sent after it.
//!
//! One task instead of one per partition plus one per broker: a record costs one wake-up
//! of the sender (shared by every record that arrives while it works) and none between
//! tasks on its way to the broker and back, whatever the number of partitions.
//!
//! Nothing in the loop waits on the network: leader lookups and stream openings run as
//! tasks of their own and report back as [`Event`]s, so a broker that does not answer
//! holds up only its own partitions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, mpsc};
use tokio_stream::{StreamExt, StreamMap};

use shale_core::clock::Instant;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::{convert, pb};

use super::lane::{Lane, Taken};
use super::mux::{self, Answers, Failure, Sink};
use super::{Pending, ProducerConfig, Sealed, Tp};
use crate::{Client, locate};

/// Batches a partition keeps unanswered before it stops sending batches that are not
/// full. Past it the open batch keeps filling until an answer comes back (or it fills):
/// one batch in the leader's fsync, one waiting for the next, the rest of a moderate load
/// gathering into the batch after. A load that fills batches still gets the whole
/// `max_in_flight` window, so peak throughput is kept. At 50,000 records/s on one
/// partition, two instead of five cut the broker's CPU by about 15% with p50 and p99 no
/// worse (docs/benchmarks.md); one cut it by 40% but raised p50 by a millisecond and
/// halved peak throughput.
const PARTIAL_IN_FLIGHT: usize = 2;

/// What wakes the sender: lanes with news (a batch opened or filled, a flush, the
/// producer dropped).
#[derive(Default)]
pub(super) struct Wake {
    marked: Mutex<Vec<Arc<Lane>>>,
    notify: Notify,
    closed: AtomicBool,
}

impl Wake {
    /// Has the sender look at `lane`; one wake-up until it does, however many records come.
    pub(super) fn mark(&self, lane: &Arc<Lane>) {
        if !lane.marked.swap(true, Ordering::AcqRel) {
            self.marked.lock().unwrap_or_else(PoisonError::into_inner).push(lane.clone());
            self.notify.notify_one();
        }
    }

    /// The producer is gone: the sender sends what the lanes hold, then ends.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// The lanes marked since the last call, each to be marked again by its next news.
    fn take(&self) -> Vec<Arc<Lane>> {
        let lanes =
            std::mem::take(&mut *self.marked.lock().unwrap_or_else(PoisonError::into_inner));
        for lane in &lanes {
            // Cleared before the sender reads the lane: news after this marks it again.
            lane.marked.store(false, Ordering::Release);
        }
        lanes
    }
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
    batches: Vec<Sealed>,
    queue: &mut VecDeque<Sealed>,
    error: &Error,
    config: &ProducerConfig,
    pending: &Pending,
) {
    for mut b in batches.into_iter().rev() {
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

/// Batches a partition may have unanswered: one until its leader has accepted one since
/// the partition (re)found it, then `window`.
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

type BrokerId = usize;

/// One partition's batches between its lane and its leader.
struct Part {
    lane: Arc<Lane>,
    /// Taken from the lane (or given back by a failure), not sent yet; in order.
    queue: VecDeque<Sealed>,
    /// Sent and unanswered, with their correlation ids; in order.
    in_flight: VecDeque<(u64, Sealed)>,
    leader: Option<BrokerId>,
    looking_up: bool,
    probing: bool,
    /// Counts the partition's failures: answers and lookups from before one are stale.
    generation: u64,
    /// After a failure, nothing is sent before this.
    backoff: Option<Instant>,
    /// The broker whose `waiting` list holds this partition.
    listed: Option<BrokerId>,
    /// When the open batch's linger runs out (a timer is armed for it).
    due: Option<Instant>,
    /// The lane is closed and empty: nothing more will come.
    finished: bool,
}

impl Part {
    fn new(lane: Arc<Lane>) -> Part {
        Part {
            lane,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            leader: None,
            looking_up: false,
            probing: true,
            generation: 0,
            backoff: None,
            listed: None,
            due: None,
            finished: false,
        }
    }

    /// Whether the next batch may go to `broker` now.
    fn sendable(&self, broker: BrokerId, window: usize) -> bool {
        self.leader == Some(broker)
            && !self.queue.is_empty()
            && self.in_flight.len() < probe_window(self.probing, window)
    }
}

enum Conn {
    Closed,
    Opening,
    Open(Sink),
}

/// A message sent and not yet answered: when, and whose requests it carried, as
/// `(partition, its generation, correlation id)`.
struct Sent {
    at: Instant,
    requests: Vec<(Tp, u64, u64)>,
}

/// One broker's stream and the partitions waiting to send over it.
struct Broker {
    addr: String,
    conn: Conn,
    /// The broker does not serve `ProduceMany`: requests go over `ProduceStream`.
    legacy: bool,
    sent: VecDeque<Sent>,
    /// Partitions with a batch to send here, in the order they asked.
    waiting: Vec<Tp>,
}

/// What the sender's helper tasks report.
enum Event {
    Leader { tp: Tp, generation: u64, result: Result<String, Error> },
    Opened { broker: BrokerId, result: Result<(Sink, Answers), Error> },
}

/// What woke the loop.
enum Step {
    Look,
    Event(Event),
    Answer(BrokerId, Result<pb::ProduceManyResponse, Failure>),
}

/// The sender task's state; see the module.
pub(super) struct Sender {
    client: Client,
    config: Arc<ProducerConfig>,
    pending: Arc<Pending>,
    wake: Arc<Wake>,
    parts: HashMap<Tp, Part>,
    brokers: Vec<Broker>,
    broker_ids: HashMap<String, BrokerId>,
    answers: StreamMap<BrokerId, Answers>,
    /// Lingers and backoffs running out; an entry may be stale (it only makes the
    /// partition be looked at again).
    timers: BinaryHeap<Reverse<(Instant, Tp)>>,
    events: mpsc::UnboundedSender<Event>,
    events_in: mpsc::UnboundedReceiver<Event>,
    /// Partitions to look at again: news, an answer, a timer, a lookup.
    touched: Vec<Tp>,
    next_id: u64,
}

impl Sender {
    pub(super) fn new(
        client: Client,
        config: Arc<ProducerConfig>,
        pending: Arc<Pending>,
        wake: Arc<Wake>,
    ) -> Sender {
        let (events, events_in) = mpsc::unbounded_channel();
        Sender {
            client,
            config,
            pending,
            wake,
            parts: HashMap::new(),
            brokers: Vec::new(),
            broker_ids: HashMap::new(),
            answers: StreamMap::new(),
            timers: BinaryHeap::new(),
            events,
            events_in,
            touched: Vec::new(),
            next_id: 0,
        }
    }

    /// Sends until the producer is gone and every batch is answered or failed.
    pub(super) async fn run(mut self) {
        loop {
            let now = shale_core::clock::monotonic_now();
            self.gather(now);
            let touched = std::mem::take(&mut self.touched);
            for tp in &touched {
                self.advance(tp, now);
            }
            self.send_ready(now);
            if self.finished() {
                return;
            }
            let deadline = self.next_deadline();
            let step = tokio::select! {
                () = self.wake.notify.notified() => Step::Look,
                Some(event) = self.events_in.recv() => Step::Event(event),
                Some((broker, answer)) = self.answers.next(), if !self.answers.is_empty() => {
                    Step::Answer(broker, answer)
                }
                () = sleep_until(deadline) => Step::Look,
            };
            let now = shale_core::clock::monotonic_now();
            match step {
                Step::Look => {}
                Step::Event(event) => self.on_event(event, now),
                Step::Answer(broker, answer) => self.on_answer(broker, answer, now),
            }
        }
    }

    /// Lanes with news, timers run out, and streams whose oldest message went unanswered
    /// past `request.timeout.ms`.
    fn gather(&mut self, now: Instant) {
        for lane in self.wake.take() {
            let tp = lane.tp.clone();
            self.parts.entry(tp.clone()).or_insert_with(|| Part::new(lane));
            self.touched.push(tp);
        }
        while self.timers.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, tp))) = self.timers.pop() {
                self.touched.push(tp);
            }
        }
        let timeout = self.config.request_timeout;
        for b in 0..self.brokers.len() {
            if self.brokers[b].sent.front().is_some_and(|s| s.at + timeout <= now) {
                let e = Error::unavailable(format!(
                    "no answer from the broker within {} ms (request.timeout.ms)",
                    timeout.as_millis()
                ));
                self.fail_stream(b, e, now);
            }
        }
    }

    /// Takes the partition's batches from its lane while its window has room, and puts it
    /// on its leader's waiting list (looking the leader up first if needed).
    fn advance(&mut self, tp: &Tp, now: Instant) {
        let Some(part) = self.parts.get_mut(tp) else { return };
        let window = self.config.max_in_flight.max(1);
        while part.queue.len() + part.in_flight.len() < window {
            let partial = part.queue.len() + part.in_flight.len() < PARTIAL_IN_FLIGHT.min(window);
            match part.lane.take(self.config.linger, self.config.idempotence, now, partial) {
                Taken::Batch(b) => part.queue.push_back(b),
                Taken::Later(at) => {
                    if part.due != Some(at) {
                        part.due = Some(at);
                        self.timers.push(Reverse((at, tp.clone())));
                    }
                    break;
                }
                Taken::Nothing { closed } => {
                    part.finished = closed;
                    break;
                }
            }
        }
        if part.queue.is_empty() {
            return;
        }
        if part.backoff.is_some_and(|at| at > now) {
            return; // its timer is armed
        }
        part.backoff = None;
        match part.leader {
            Some(b) => {
                if part.listed != Some(b) {
                    part.listed = Some(b);
                    self.brokers[b].waiting.push(tp.clone());
                }
            }
            None => self.locate(tp),
        }
    }

    /// Finds the partition's leader: from the client's metadata if it has it, else by a
    /// lookup task that reports back.
    fn locate(&mut self, tp: &Tp) {
        let Some(part) = self.parts.get_mut(tp) else { return };
        if part.looking_up {
            return;
        }
        if let Some(addr) = self.client.leader_cached(&tp.0, tp.1) {
            let b = broker_id(&mut self.brokers, &mut self.broker_ids, addr);
            part.leader = Some(b);
            part.probing = true;
            part.listed = Some(b);
            self.brokers[b].waiting.push(tp.clone());
            return;
        }
        part.looking_up = true;
        let (client, events, tp, generation) =
            (self.client.clone(), self.events.clone(), tp.clone(), part.generation);
        shale_core::task::spawn_detached(async move {
            let result = client.leader(&tp.0, tp.1).await;
            let _ = events.send(Event::Leader { tp, generation, result });
        });
    }

    /// Sends what waits for each broker, opening its stream first if it has none.
    fn send_ready(&mut self, now: Instant) {
        for b in 0..self.brokers.len() {
            if self.brokers[b].waiting.is_empty() {
                continue;
            }
            match self.brokers[b].conn {
                Conn::Open(_) => self.send_to(b, now),
                Conn::Opening => {}
                Conn::Closed => {
                    let broker = &mut self.brokers[b];
                    broker.conn = Conn::Opening;
                    let (client, events, addr, legacy) = (
                        self.client.clone(),
                        self.events.clone(),
                        broker.addr.clone(),
                        broker.legacy,
                    );
                    shale_core::task::spawn_detached(async move {
                        let result = mux::open(&client, &addr, legacy).await;
                        let _ = events.send(Event::Opened { broker: b, result });
                    });
                }
            }
        }
    }

    /// Fills messages to broker `b` from its waiting partitions, one request per
    /// partition per message (a message is answered whole, so a partition's next request
    /// goes in the next message and its requests stay pipelined), while fewer than the
    /// most messages await answers.
    fn send_to(&mut self, b: BrokerId, now: Instant) {
        let acks = convert::acks_to_proto(self.config.acks) as i32;
        let timeout_ms = self.config.request_timeout.as_millis() as u32;
        let window = self.config.max_in_flight.max(1);
        let Sender { brokers, parts, next_id, .. } = &mut *self;
        let broker = &mut brokers[b];
        let Conn::Open(sink) = &broker.conn else { return };
        let (most, per_message) = match sink.legacy() {
            true => (mux::MAX_LEGACY_IN_FLIGHT, 1),
            false => (mux::MAX_MESSAGES_IN_FLIGHT, mux::MAX_REQUESTS_PER_MESSAGE),
        };
        let mut list = std::mem::take(&mut broker.waiting);
        let mut broken = false;
        while broker.sent.len() < most && !list.is_empty() {
            let (mut requests, mut sent, mut bytes) = (Vec::new(), Vec::new(), 0);
            let mut rest = Vec::new();
            for tp in list.drain(..) {
                let Some(part) = parts.get_mut(&tp) else { continue };
                if part.listed != Some(b) {
                    continue; // listed with another broker since
                }
                if requests.len() >= per_message || bytes >= mux::MAX_BYTES_PER_MESSAGE {
                    rest.push(tp);
                    continue;
                }
                if !part.sendable(b, window) {
                    part.listed = None;
                    continue;
                }
                let Some(batch) = part.queue.pop_front() else { continue };
                *next_id += 1;
                bytes += batch.bytes.len();
                requests.push(pb::ProduceRequest {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    acks,
                    payload: Some(pb::produce_request::Payload::Batches(batch.bytes.clone())),
                    correlation_id: *next_id,
                    timeout_ms,
                });
                part.in_flight.push_back((*next_id, batch));
                sent.push((tp.clone(), part.generation, *next_id));
                if part.sendable(b, window) {
                    rest.push(tp);
                } else {
                    part.listed = None;
                }
            }
            list = rest;
            if requests.is_empty() {
                break;
            }
            if sink.legacy() {
                // One request per message there, each answered on its own.
                broker.sent.extend(sent.into_iter().map(|r| Sent { at: now, requests: vec![r] }));
            } else {
                broker.sent.push_back(Sent { at: now, requests: sent });
            }
            if !sink.send(requests) {
                broken = true;
                break;
            }
        }
        broker.waiting = list;
        if broken {
            self.fail_stream(b, Error::unavailable("produce stream closed by the broker"), now);
        }
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Leader { tp, generation, result } => {
                let Some(part) = self.parts.get_mut(&tp) else { return };
                part.looking_up = false;
                if part.generation == generation {
                    match result {
                        Ok(addr) => {
                            part.leader =
                                Some(broker_id(&mut self.brokers, &mut self.broker_ids, addr));
                            part.probing = true;
                        }
                        Err(e) => self.fail_part(&tp, e, now, true),
                    }
                }
                self.touched.push(tp);
            }
            Event::Opened { broker: b, result } => match result {
                Ok((sink, answers)) => {
                    if sink.legacy() {
                        self.fall_back(b);
                    }
                    self.brokers[b].conn = Conn::Open(sink);
                    self.answers.insert(b, answers);
                }
                Err(e) => {
                    // Its partitions look their leaders up again after the backoff.
                    self.brokers[b].conn = Conn::Closed;
                    for tp in std::mem::take(&mut self.brokers[b].waiting) {
                        let Some(part) = self.parts.get_mut(&tp) else { continue };
                        if part.listed == Some(b) {
                            part.listed = None;
                        }
                        if part.leader == Some(b) {
                            self.fail_part(&tp, e.clone(), now, true);
                        }
                    }
                }
            },
        }
    }

    fn on_answer(
        &mut self,
        b: BrokerId,
        answer: Result<pb::ProduceManyResponse, Failure>,
        now: Instant,
    ) {
        let msg = match answer {
            Ok(msg) => msg,
            Err(f) => {
                if f.older_broker {
                    self.fall_back(b);
                }
                return self.fail_stream(b, f.error, now);
            }
        };
        let Some(sent) = self.brokers[b].sent.pop_front() else { return };
        if msg.responses.len() != sent.requests.len() {
            let e = Error::internal(format!(
                "broker answered {} requests of a message of {}",
                msg.responses.len(),
                sent.requests.len()
            ));
            self.brokers[b].sent.push_front(sent);
            return self.fail_stream(b, e, now);
        }
        for ((tp, generation, id), resp) in sent.requests.into_iter().zip(msg.responses) {
            let Some(part) = self.parts.get_mut(&tp) else { continue };
            if part.generation != generation {
                continue; // sent before a failure of its partition, which resends it
            }
            let failure = match part.in_flight.front() {
                Some((front, _)) if *front == id && resp.correlation_id == id => {
                    match &resp.error {
                        None => {
                            if let Some((_, batch)) = part.in_flight.pop_front() {
                                batch.complete(&tp.0, tp.1, &resp, &self.pending);
                            }
                            part.probing = false;
                            None
                        }
                        Some(err) => Some(convert::error_from_proto(err)),
                    }
                }
                Some((front, _)) => Some(Error::internal(format!(
                    "broker answered correlation id {} while {} was expected",
                    resp.correlation_id, front
                ))),
                None => None,
            };
            match failure {
                Some(e) => self.fail_part(&tp, e, now, false),
                None => self.touched.push(tp),
            }
        }
    }

    /// The stream to broker `b` broke: every request on it fails, each partition resends
    /// in order (over a fresh stream, or to a new leader).
    fn fail_stream(&mut self, b: BrokerId, e: Error, now: Instant) {
        self.brokers[b].conn = Conn::Closed;
        self.answers.remove(&b);
        let sent: Vec<Sent> = self.brokers[b].sent.drain(..).collect();
        for (tp, generation, _) in sent.into_iter().flat_map(|s| s.requests) {
            if self.parts.get(&tp).is_some_and(|p| p.generation == generation) {
                self.fail_part(&tp, e.clone(), now, false);
            }
        }
    }

    /// A failure of partition `tp`: what it sent (and with `unsent`, what it was about to
    /// send) goes back to the front of its queue, or fails once out of retries; its leader
    /// is looked up again, after `retry.backoff.ms` (or when the broker said to come back)
    /// if the failure is worth a retry.
    fn fail_part(&mut self, tp: &Tp, e: Error, now: Instant, unsent: bool) {
        let Some(part) = self.parts.get_mut(tp) else { return };
        let e = match part.leader {
            Some(b) => locate(e, &self.brokers[b].addr, Some(&tp.0), Some(tp.1)),
            None => e,
        };
        // The leader may have moved (NOT_LEADER) or stopped serving (its lease, the
        // connection): its metadata is read again. Over a quota, the leader is where it was.
        if worth_retrying(&e) && e.kind != ErrorKind::ResourceExhausted {
            self.client.invalidate(&tp.0);
        }
        let mut batches: Vec<Sealed> = part.in_flight.drain(..).map(|(_, b)| b).collect();
        if unsent {
            batches.extend(part.queue.drain(..));
        }
        requeue(batches, &mut part.queue, &e, &self.config, &self.pending);
        part.generation += 1;
        part.leader = None;
        if worth_retrying(&e) {
            // Over a quota, the broker says when to come back (RetryInfo).
            let at = now + e.retry_after().unwrap_or_default().max(self.config.retry_backoff);
            part.backoff = Some(at);
            self.timers.push(Reverse((at, tp.clone())));
        }
        self.touched.push(tp.clone());
    }

    /// The broker does not serve `ProduceMany`: from now on it is sent `ProduceStream`.
    fn fall_back(&mut self, b: BrokerId) {
        let broker = &mut self.brokers[b];
        if !broker.legacy {
            tracing::info!(broker = %broker.addr,
                "the broker does not serve ProduceMany (older than this client); producing \
                 over ProduceStream, one stream message per request");
            broker.legacy = true;
        }
    }

    /// The producer is gone and every partition's batches are answered or failed.
    fn finished(&self) -> bool {
        self.wake.closed.load(Ordering::Acquire)
            && self
                .parts
                .values()
                .all(|p| p.finished && p.queue.is_empty() && p.in_flight.is_empty())
    }

    /// The next timer, or the time the oldest unanswered message of a broker times out.
    fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.config.request_timeout;
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let answers = self.brokers.iter().filter_map(|b| b.sent.front()).map(|s| s.at + timeout);
        timer.into_iter().chain(answers).min()
    }
}

/// The id of the broker at `addr`, known from now on.
fn broker_id(
    brokers: &mut Vec<Broker>,
    ids: &mut HashMap<String, BrokerId>,
    addr: String,
) -> BrokerId {
    if let Some(&b) = ids.get(&addr) {
        return b;
    }
    let b = brokers.len();
    brokers.push(Broker {
        addr: addr.clone(),
        conn: Conn::Closed,
        legacy: false,
        sent: VecDeque::new(),
        waiting: Vec::new(),
    });
    ids.insert(addr, b);
    b
}

/// Until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => shale_core::clock::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
