//! One `FetchMany` stream per broker for all the partitions a consumer reads from it.
//!
//! A router task owns the consumer's partitions (position, backoff, the broker reading
//! each) and one session per broker: a bidirectional stream whose requests add and remove
//! partitions and whose answers interleave their batches. A session's reader decodes the
//! batches (one reader per broker, so decoding spreads over brokers) and hands them to the
//! router, which keeps each partition's position, so a partition that moves — a leader
//! change, a broker restart, a retriable error — is added again from the next offset not
//! yet delivered: a pause, not a gap or a duplicate. Each add carries a tag the broker
//! echoes, so messages of an earlier read of a partition (before a seek) are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{ConsumerConfig, ConsumerRecord, Event, EventKind, Isolation, decode_fetched};
use crate::retry::{Backoff, gave_up, worth_retrying};
use crate::{Client, locate, status_error};
use shale_core::error::Error;
use shale_core::task::OwnedTask;
use shale_proto::{convert, pb};

/// A partition: topic and index.
type Key = (String, u32);

/// What the consumer asks of the router.
#[derive(Debug)]
enum Cmd {
    /// Read `key` from `offset`, reporting as `task`.
    Start { key: Key, task: u64, offset: i64 },
    /// Stop reading `key`.
    Stop { key: Key },
    /// The pause after a failure of `key`'s read `task` is over: place it again.
    Retry { key: Key, task: u64 },
}

/// The consumer's handle on its router; dropping it stops the router and every session.
#[derive(Debug)]
pub(super) struct Router {
    cmds: mpsc::UnboundedSender<Cmd>,
    streams: Arc<AtomicUsize>,
    _task: OwnedTask<()>,
}

impl Router {
    /// A router reporting to `events`.
    pub(super) fn new(
        client: Client,
        config: ConsumerConfig,
        events: mpsc::Sender<Event>,
    ) -> Router {
        let (cmds, rx) = mpsc::unbounded_channel();
        let streams = Arc::new(AtomicUsize::new(0));
        let state = State {
            streams: streams.clone(),
            client,
            config,
            events,
            cmds: cmds.clone(),
            parts: HashMap::new(),
            sessions: HashMap::new(),
            next_tag: 0,
            next_session: 0,
        };
        Router { cmds, streams, _task: shale_core::task::spawn_owned(state.run(rx)) }
    }

    /// Streams open now (one per broker read from).
    pub(super) fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Starts (or moves) reading `key` from `offset`, as `task`.
    pub(super) fn start(&self, key: Key, task: u64, offset: i64) {
        // Fails only once the router is gone, with the consumer.
        let _ = self.cmds.send(Cmd::Start { key, task, offset });
    }

    /// Stops reading `key`.
    pub(super) fn stop(&self, key: Key) {
        let _ = self.cmds.send(Cmd::Stop { key });
    }
}

/// One partition's read.
struct Part {
    task: u64,
    /// The next offset not yet delivered.
    position: i64,
    backoff: Backoff,
    /// Whether a broker answered since the last failure (the wait then starts over).
    answered: bool,
    /// The broker whose session reads it, while one does.
    broker: Option<String>,
    /// This read's tag in its session.
    tag: u64,
}

/// One broker's stream.
struct Session {
    id: u64,
    requests: mpsc::UnboundedSender<pb::FetchManyRequest>,
    _reader: OwnedTask<()>,
}

/// What a session's reader hands to the router.
enum Input {
    /// A partition's message, decoded.
    Message { session: u64, broker: String, msg: Decoded },
    /// The stream ended or broke.
    Closed { session: u64, broker: String, error: Error },
}

/// A `FetchManyResponse` with its batches decoded.
struct Decoded {
    key: Key,
    tag: u64,
    records: Vec<ConsumerRecord>,
    next_offset: i64,
    end: bool,
    error: Option<Error>,
}

struct State {
    streams: Arc<AtomicUsize>,
    client: Client,
    config: ConsumerConfig,
    events: mpsc::Sender<Event>,
    cmds: mpsc::UnboundedSender<Cmd>,
    parts: HashMap<Key, Part>,
    sessions: HashMap<String, Session>,
    next_tag: u64,
    next_session: u64,
}

impl State {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let (inputs_tx, mut inputs) = mpsc::channel(self.config.buffered_messages.max(1));
        loop {
            tokio::select! {
                Some(cmd) = cmds.recv() => match cmd {
                    Cmd::Start { key, task, offset } => {
                        self.stop(&key);
                        self.next_tag += 1;
                        let part = Part {
                            task,
                            position: offset,
                            backoff: self.config.retry_policy().start(),
                            answered: false,
                            broker: None,
                            tag: self.next_tag,
                        };
                        self.parts.insert(key.clone(), part);
                        self.place(&key, &inputs_tx).await;
                    }
                    Cmd::Stop { key } => self.stop(&key),
                    Cmd::Retry { key, task } => {
                        let waiting =
                            self.parts.get(&key).is_some_and(|p| p.task == task && p.broker.is_none());
                        if waiting {
                            self.place(&key, &inputs_tx).await;
                        }
                    }
                },
                Some(input) = inputs.recv() => match input {
                    Input::Message { session, broker, msg } => {
                        if self.sessions.get(&broker).is_some_and(|s| s.id == session) {
                            self.deliver(&broker, msg).await;
                        }
                    }
                    Input::Closed { session, broker, error } => {
                        if self.sessions.get(&broker).is_some_and(|s| s.id == session) {
                            self.sessions.remove(&broker);
                            self.streams.store(self.sessions.len(), Ordering::Relaxed);
                            let moved: Vec<Key> = self
                                .parts
                                .iter()
                                .filter(|(_, p)| p.broker.as_deref() == Some(broker.as_str()))
                                .map(|(k, _)| k.clone())
                                .collect();
                            for key in moved {
                                self.failed(&key, error.clone()).await;
                            }
                        }
                    }
                },
                else => return,
            }
        }
    }

    /// Stops reading `key`, if it is read.
    fn stop(&mut self, key: &Key) {
        let Some(part) = self.parts.remove(key) else { return };
        let Some(session) = part.broker.and_then(|b| self.sessions.get(&b)) else { return };
        let remove =
            pb::FetchPosition { topic: key.0.clone(), partition: key.1, ..Default::default() };
        let _ = session
            .requests
            .send(pb::FetchManyRequest { remove: vec![remove], ..Default::default() });
    }

    /// Adds `key` to the session of its leader (opening it if needed).
    async fn place(&mut self, key: &Key, inputs: &mpsc::Sender<Input>) {
        let leader = match self.client.leader(&key.0, key.1).await {
            Ok(leader) => leader,
            Err(e) => return self.failed(key, e).await,
        };
        if !self.sessions.contains_key(&leader) {
            match self.open(&leader, inputs) {
                Ok(session) => {
                    self.sessions.insert(leader.clone(), session);
                    self.streams.store(self.sessions.len(), Ordering::Relaxed);
                }
                Err(e) => return self.failed(key, e).await,
            }
        }
        let (Some(part), Some(session)) = (self.parts.get_mut(key), self.sessions.get(&leader))
        else {
            return;
        };
        let add = pb::FetchPosition {
            topic: key.0.clone(),
            partition: key.1,
            offset: part.position,
            tag: part.tag,
        };
        part.broker = Some(leader);
        let _ = session.requests.send(pb::FetchManyRequest { add: vec![add], ..self.shape() });
    }

    /// The stream settings every request carries (the broker reads the first one's).
    fn shape(&self) -> pb::FetchManyRequest {
        pb::FetchManyRequest {
            max_bytes: self.config.max_bytes,
            max_wait_ms: 0,
            stop_at_end: self.config.stop_at_end,
            isolation: self.config.isolation.to_proto(),
            ..Default::default()
        }
    }

    /// Opens a session to `broker`, whose reader reports to `inputs`.
    fn open(&mut self, broker: &str, inputs: &mpsc::Sender<Input>) -> Result<Session, Error> {
        let mut log = self.client.log_rpc(broker).map_err(|e| locate(e, broker, None, None))?;
        self.next_session += 1;
        let id = self.next_session;
        let (requests, rx) = mpsc::unbounded_channel();
        let (inputs, broker) = (inputs.clone(), broker.to_string());
        let isolation = self.config.isolation;
        let reader = async move {
            let closed = |error| Input::Closed { session: id, broker: broker.clone(), error };
            let mut stream = match log.fetch_many(UnboundedReceiverStream::new(rx)).await {
                Ok(answer) => answer.into_inner(),
                Err(s) => {
                    let _ =
                        inputs.send(closed(locate(status_error(&s), &broker, None, None))).await;
                    return;
                }
            };
            loop {
                let error = match stream.message().await {
                    Ok(Some(msg)) => {
                        let msg = Input::Message {
                            session: id,
                            broker: broker.clone(),
                            msg: decode(msg, isolation),
                        };
                        if inputs.send(msg).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(None) => Error::unavailable("fetch stream ended by the broker"),
                    Err(s) => status_error(&s),
                };
                let _ = inputs.send(closed(locate(error, &broker, None, None))).await;
                return;
            }
        };
        Ok(Session { id, requests, _reader: shale_core::task::spawn_owned(reader) })
    }

    /// Hands a message of `broker`'s session to the consumer.
    async fn deliver(&mut self, broker: &str, msg: Decoded) {
        let Some(part) = self.parts.get_mut(&msg.key) else { return };
        if part.tag != msg.tag || part.broker.as_deref() != Some(broker) {
            return;
        }
        part.answered = true;
        if let Some(e) = msg.error {
            part.broker = None;
            let e = locate(e, broker, Some(&msg.key.0), Some(msg.key.1));
            return self.failed(&msg.key, e).await;
        }
        if msg.end {
            part.broker = None;
            if self.config.stop_at_end {
                let task = part.task;
                self.parts.remove(&msg.key);
                return self.report(msg.key, task, EventKind::Done).await;
            }
            // Only a broker going away ends a long poll.
            let e = Error::unavailable("fetch ended by the broker");
            let e = locate(e, broker, Some(&msg.key.0), Some(msg.key.1));
            return self.failed(&msg.key, e).await;
        }
        let position = part.position;
        let records: Vec<ConsumerRecord> =
            msg.records.into_iter().filter(|r| r.offset >= position).collect();
        part.position = position.max(msg.next_offset);
        let task = part.task;
        if !records.is_empty() {
            self.report(msg.key, task, EventKind::Records(records)).await;
        }
    }

    /// A failure of `key`'s read: retried after a pause when retriable, within the
    /// consumer's leader wait; reported (and the partition dropped) otherwise.
    async fn failed(&mut self, key: &Key, e: Error) {
        let Some(part) = self.parts.get_mut(key) else { return };
        part.broker = None;
        if !worth_retrying(&e) {
            let task = part.task;
            self.parts.remove(key);
            return self.report(key.clone(), task, EventKind::Failed(e)).await;
        }
        tracing::debug!(topic = key.0, partition = key.1, position = part.position, error = %e, "fetch interrupted; reading again");
        self.client.invalidate(&key.0);
        if part.answered {
            part.answered = false;
            part.backoff = self.config.retry_policy().start();
        }
        let Some(pause) = part.backoff.next_delay() else {
            let (task, total) = (part.task, part.backoff.total());
            self.parts.remove(key);
            return self
                .report(key.clone(), task, EventKind::Failed(gave_up("leader", e, total)))
                .await;
        };
        let (cmds, key, task) = (self.cmds.clone(), key.clone(), part.task);
        // Detached: one pause, then a message to the router (dropped if it is gone).
        shale_core::task::spawn_detached(async move {
            shale_core::clock::sleep(pause).await;
            let _ = cmds.send(Cmd::Retry { key, task });
        });
    }

    async fn report(&self, key: Key, task: u64, kind: EventKind) {
        let _ = self.events.send(Event { key, task, kind }).await;
    }
}

/// Decodes a message's batches (with generous limits: the broker validated them on the way
/// in); a message that does not decode fails its partition.
fn decode(msg: pb::FetchManyResponse, isolation: Isolation) -> Decoded {
    let key = (msg.topic, msg.partition);
    let mut error = msg.error.as_ref().map(convert::error_from_proto);
    let mut records = Vec::new();
    if !msg.batches.is_empty() && error.is_none() {
        match decode_fetched(&msg.batches, &msg.aborted_transactions, isolation) {
            Ok(decoded) => {
                records =
                    decoded.into_iter().map(|r| ConsumerRecord::of(&key.0, key.1, r)).collect();
            }
            Err(e) => error = Some(e.into()),
        }
    }
    Decoded { key, tag: msg.tag, records, next_offset: msg.next_offset, end: msg.end, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: vec![],
        }
    }

    /// After a seek, messages the earlier read still had in flight (its tag) are dropped,
    /// even when their offsets lie past the new position; the new read's are delivered.
    #[tokio::test]
    async fn messages_of_an_earlier_read_are_dropped() {
        let (events, mut rx) = mpsc::channel(16);
        let (cmds, _cmds_rx) = mpsc::unbounded_channel();
        let config = ConsumerConfig::default();
        let mut state = State {
            streams: Arc::default(),
            client: Client::new("127.0.0.1:1").unwrap(),
            config: config.clone(),
            events,
            cmds,
            parts: HashMap::new(),
            sessions: HashMap::new(),
            next_tag: 2,
            next_session: 0,
        };
        let key = ("t".to_string(), 0);
        let part = Part {
            task: 9,
            position: 7,
            backoff: config.retry_policy().start(),
            answered: false,
            broker: Some("b1".into()),
            tag: 2,
        };
        state.parts.insert(key.clone(), part);
        let message = |tag, offsets: std::ops::Range<i64>| Decoded {
            key: key.clone(),
            tag,
            next_offset: offsets.end,
            records: offsets.map(record).collect(),
            end: false,
            error: None,
        };
        // The earlier read (tag 1) was at 60: dropped.
        state.deliver("b1", message(1, 60..63)).await;
        // The new read (tag 2) from 7: delivered, as task 9.
        state.deliver("b1", message(2, 7..10)).await;
        let event = rx.try_recv().unwrap();
        assert_eq!(event.task, 9);
        let EventKind::Records(records) = event.kind else { panic!("records expected") };
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), [7, 8, 9]);
        assert!(rx.try_recv().is_err(), "nothing of the earlier read");
        assert_eq!(state.parts[&key].position, 10);
    }
}
