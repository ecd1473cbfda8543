//! The gRPC floor: what tonic, HTTP/2 and protobuf cost a produce message with no broker
//! behind them, so that the broker's CPU and instructions a record can be read beside
//! the part no change inside the broker can take away.
//!
//! - `shale-bench grpc-floor --listen ADDR` serves `Log/ProduceMany` (with the broker's
//!   HTTP/2 windows and message limits) and answers each message, one answer a request,
//!   from the message's own stream: no task, no channel, no storage; at once, or with
//!   `--answer-every-us` on the next tick, as a broker answers at its rounds' ends. Every
//!   other method is refused as unimplemented: it is a floor, not a broker.
//! - [`RawSender`] (`shale-bench latency --raw`) is the load that both the floor and a
//!   broker can take: each record a request of its own (a one-record batch, no producer
//!   id) on one `ProduceMany` stream, the requests waiting packed into one
//!   message while eight are unanswered — what the client's producer sends at its default
//!   linger of 0 — but with no metadata, partition senders or lanes in the client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use futures::{Stream, StreamExt};
use shale_client::producer::MAX_MESSAGES_IN_FLIGHT;
use shale_core::acks::Acks;
use shale_core::record::{BatchBuilder, Compression, Record};
use shale_proto::pb;
use shale_proto::transport::{CONNECTION_WINDOW, MAX_STREAMS_PER_CONNECTION, STREAM_WINDOW};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Messages the floor awaits the tick for at once, as the broker's `ProduceMany` does.
const ANSWERS_IN_FLIGHT: usize = 64;

/// `shale-bench grpc-floor`.
#[derive(Debug, Args)]
pub(crate) struct GrpcFloor {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Answer on ticks this many microseconds apart (each message at the first tick after
    /// it came), as a broker answers at the end of its journal's paced rounds
    /// (`log.journal_round_interval_us`, 1,000 by default), so that the client packs its
    /// messages as it does for a broker; 0 answers each message at once.
    #[arg(long, default_value_t = 0)]
    pub answer_every_us: u64,
}

/// Serves the floor until interrupted.
pub(crate) async fn serve(b: GrpcFloor) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(b.listen).await?;
    println!("gRPC floor listening on {}", listener.local_addr()?);
    let tick = Duration::from_micros(b.answer_every_us);
    serve_on(listener, tick, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Serves the floor on `listener`, answering on ticks `tick` apart (zero: at once), until
/// `stop` resolves.
async fn serve_on(
    listener: tokio::net::TcpListener,
    tick: Duration,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let ticks = Arc::new(watch::Sender::new(0u64));
    if !tick.is_zero() {
        let ticks = Arc::downgrade(&ticks);
        std::thread::Builder::new().name("floor-ticks".into()).spawn(move || {
            // Until the floor is gone.
            while let Some(ticks) = ticks.upgrade() {
                ticks.send_modify(|t| *t += 1);
                drop(ticks);
                std::thread::sleep(tick);
            }
        })?;
    }
    let floor = Floor { next: Arc::default(), tick, ticks };
    let log = pb::log_server::LogServer::new(floor)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(log)
        .serve_with_incoming_shutdown(
            // As the broker's: Nagle's algorithm would hold answers for the peer's delayed
            // ACK.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop,
        )
        .await?;
    Ok(())
}

/// The floor's `Log` service: answers `ProduceMany` and nothing else.
#[derive(Debug)]
struct Floor {
    /// The next base offset handed out (one a request).
    next: Arc<AtomicI64>,
    /// Answers wait for the next tick of this period (zero: none)...
    tick: Duration,
    /// ... counted by a thread of its own, as a broker's answers wait for its journal's
    /// writer thread to end a round.
    ticks: Arc<watch::Sender<u64>>,
}

/// Answers to a `ProduceMany` message's requests, offsets from `next`.
fn answer(msg: &pb::ProduceManyRequest, next: &AtomicI64) -> pb::ProduceManyResponse {
    let responses = msg
        .requests
        .iter()
        .map(|req| {
            let offset = next.fetch_add(1, Ordering::Relaxed);
            pb::ProduceResponse {
                correlation_id: req.correlation_id,
                base_offset: offset,
                last_offset: offset,
                log_start_offset: 0,
                error: None,
                leader_epoch: 0,
            }
        })
        .collect();
    pb::ProduceManyResponse { responses }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the floor says of the methods it does not serve.
fn refused(method: &str) -> Status {
    Status::unimplemented(format!("the gRPC floor serves ProduceMany only, not {method}"))
}

#[tonic::async_trait]
impl pb::log_server::Log for Floor {
    async fn produce(
        &self,
        _: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        Err(refused("Produce"))
    }

    type ProduceStreamStream = BoxStream<pb::ProduceResponse>;

    async fn produce_stream(
        &self,
        _: Request<Streaming<pb::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        Err(refused("ProduceStream"))
    }

    type ProduceManyStream = BoxStream<pb::ProduceManyResponse>;

    async fn produce_many(
        &self,
        request: Request<Streaming<pb::ProduceManyRequest>>,
    ) -> Result<Response<Self::ProduceManyStream>, Status> {
        let next = self.next.clone();
        let inbound = request.into_inner();
        if self.tick.is_zero() {
            let answers = inbound.map(move |msg| Ok(answer(&msg?, &next)));
            return Ok(Response::new(Box::pin(answers)));
        }
        let ticks = self.ticks.clone();
        let answers = inbound
            .map(move |msg| {
                let (next, mut ticks) = (next.clone(), ticks.subscribe());
                let now = *ticks.borrow_and_update();
                async move {
                    // The ticker lives as long as the floor.
                    let _ = ticks.wait_for(|t| *t > now).await;
                    Ok(answer(&msg?, &next))
                }
            })
            .buffered(ANSWERS_IN_FLIGHT);
        Ok(Response::new(Box::pin(answers)))
    }

    type FetchStream = BoxStream<pb::FetchResponse>;

    async fn fetch(
        &self,
        _: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        Err(refused("Fetch"))
    }

    type FetchManyStream = BoxStream<pb::FetchManyResponse>;

    async fn fetch_many(
        &self,
        _: Request<Streaming<pb::FetchManyRequest>>,
    ) -> Result<Response<Self::FetchManyStream>, Status> {
        Err(refused("FetchMany"))
    }

    async fn list_offsets(
        &self,
        _: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        Err(refused("ListOffsets"))
    }

    async fn init_producer_id(
        &self,
        _: Request<pb::InitProducerIdRequest>,
    ) -> Result<Response<pb::InitProducerIdResponse>, Status> {
        Err(refused("InitProducerId"))
    }
}

/// A request waiting for a message, and where its answer goes.
type Waiting = (pb::ProduceRequest, oneshot::Sender<Result<(), String>>);

/// Sends one-record produce requests over one `ProduceMany` stream (see the module).
pub(crate) struct RawSender {
    requests: mpsc::UnboundedSender<Waiting>,
    topic: String,
    acks: i32,
    batch: Bytes,
    next_id: AtomicU64,
}

impl RawSender {
    /// Connects to `broker` (plaintext) and opens the stream; each request carries a
    /// one-record batch of `value` to `topic`, to be acknowledged as `acks` says.
    pub(crate) async fn connect(
        broker: &str,
        topic: &str,
        acks: Acks,
        value: Bytes,
    ) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{broker}"))?
            .initial_connection_window_size(CONNECTION_WINDOW)
            .initial_stream_window_size(STREAM_WINDOW)
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut rpc = pb::log_client::LogClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (messages, rx) = mpsc::channel(MAX_MESSAGES_IN_FLIGHT);
        let answers = rpc.produce_many(ReceiverStream::new(rx)).await?.into_inner();
        let (requests, inbound) = mpsc::unbounded_channel();
        // The client goes with the mux: the stream lives as long as its connection.
        tokio::spawn(async move {
            mux(inbound, messages, answers).await;
            drop(rpc);
        });
        let mut batch = BatchBuilder::new(Compression::None);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        batch.push(Record {
            value: Some(value),
            timestamp_ms: i64::try_from(now.as_millis())?,
            ..Record::default()
        });
        Ok(Self {
            requests,
            topic: topic.to_string(),
            acks: shale_proto::convert::acks_to_proto(acks) as i32,
            batch: batch.build(),
            next_id: AtomicU64::new(0),
        })
    }

    /// Queues a request to `partition`; the receiver gets its answer.
    pub(crate) fn send(&self, partition: u32) -> oneshot::Receiver<Result<(), String>> {
        let req = pb::ProduceRequest {
            topic: self.topic.clone(),
            partition,
            acks: self.acks,
            payload: Some(pb::produce_request::Payload::Batches(self.batch.clone())),
            correlation_id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            timeout_ms: 30_000,
            transactional_id: String::new(),
        };
        let (tx, rx) = oneshot::channel();
        // A send to a mux that has ended is answered by the dropped sender.
        let _ = self.requests.send((req, tx));
        rx
    }
}

/// Packs the waiting requests into one message while fewer than
/// [`MAX_MESSAGES_IN_FLIGHT`] are unanswered, and hands each answer back. A broken
/// stream fails every request on it and every one after.
async fn mux(
    mut inbound: mpsc::UnboundedReceiver<Waiting>,
    messages: mpsc::Sender<pb::ProduceManyRequest>,
    mut answers: Streaming<pb::ProduceManyResponse>,
) {
    let mut in_flight: VecDeque<Vec<oneshot::Sender<Result<(), String>>>> = VecDeque::new();
    let mut open = true;
    let broken = loop {
        if !open && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            first = inbound.recv(), if open && in_flight.len() < MAX_MESSAGES_IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let (mut requests, mut replies) = (vec![first.0], vec![first.1]);
                while let Ok((req, reply)) = inbound.try_recv() {
                    requests.push(req);
                    replies.push(reply);
                }
                in_flight.push_back(replies);
                if messages.send(pb::ProduceManyRequest { requests }).await.is_err() {
                    break match answers.message().await {
                        Err(status) => format!("the stream broke: {status}"),
                        Ok(_) => "the broker stopped reading the stream".to_string(),
                    };
                }
            }
            answer = answers.message(), if !in_flight.is_empty() => {
                let msg = match answer {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break "the broker ended the stream".to_string(),
                    Err(status) => break format!("the stream broke: {status}"),
                };
                let replies = in_flight.pop_front().unwrap_or_default();
                if replies.len() != msg.responses.len() {
                    break format!(
                        "{} answers to a message of {} requests",
                        msg.responses.len(),
                        replies.len()
                    );
                }
                for (reply, resp) in replies.into_iter().zip(msg.responses) {
                    let _ = reply.send(match resp.error {
                        None => Ok(()),
                        Some(e) => Err(format!("{}: {}", e.reason, e.message)),
                    });
                }
            }
        }
    };
    for reply in in_flight.into_iter().flatten() {
        let _ = reply.send(Err(broken.clone()));
    }
    while let Some((_, reply)) = inbound.recv().await {
        let _ = reply.send(Err(broken.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` against a floor answering on ticks `tick` apart.
    async fn with_floor<F: Future<Output = ()>>(tick: Duration, body: impl FnOnce(String) -> F) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let floor = tokio::spawn(serve_on(listener, tick, async {
            let _ = stopped.await;
        }));
        body(addr).await;
        let _ = stop.send(());
        floor.await.expect("the floor's task").expect("the floor served");
    }

    /// Every request of the raw load is answered, once, in order, whether the floor
    /// answers at once or on its ticks; other methods are refused by name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floor_answers_every_raw_request_and_refuses_the_rest() {
        for tick in [Duration::ZERO, Duration::from_millis(1)] {
            with_floor(tick, |addr| async move {
                let sender = RawSender::connect(&addr, "t", Acks::All, Bytes::from_static(b"v"))
                    .await
                    .expect("connect");
                let answers: Vec<_> = (0..500).map(|i| sender.send(i % 7)).collect();
                for (i, answer) in answers.into_iter().enumerate() {
                    let answer = tokio::time::timeout(Duration::from_secs(10), answer).await;
                    let answer = answer.unwrap_or_else(|_| panic!("request {i} unanswered"));
                    answer.expect("the mux").expect("answered without an error");
                }
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .expect("endpoint")
                    .connect()
                    .await
                    .expect("connect");
                let refused = pb::log_client::LogClient::new(channel)
                    .list_offsets(pb::ListOffsetsRequest::default())
                    .await
                    .expect_err("the floor serves ProduceMany only");
                assert_eq!(refused.code(), tonic::Code::Unimplemented);
                assert!(refused.message().contains("ListOffsets"), "{}", refused.message());
            })
            .await;
        }
    }
}
