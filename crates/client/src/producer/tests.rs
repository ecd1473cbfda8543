//! The producer against a scripted leader: a gRPC `Log` service on 127.0.0.1 that judges
//! sequences as the broker does (`idempotence.rs`: a producer it has no state for is taken
//! at any sequence, a known one must continue where it left off) and injects one fault.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::BatchFrames;
use shale_proto::{convert, pb};

use super::{Producer, ProducerConfig, ProducerRecord};
use crate::Client;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How long the leader holds its answer to the first message while waiting for a second.
const HOLD: Duration = Duration::from_millis(500);

/// The leader's partition: the batches it appended, as `(first, last)` sequences.
#[derive(Default)]
struct Partition {
    batches: Vec<(i32, i32)>,
    refused_first: bool,
}

impl Partition {
    /// The broker's verdict on one request; the very first request is refused, as a
    /// leader refuses while the partition is not ready (here: over a quota, which keeps
    /// the client from looking the leader up again, so no metadata service is needed).
    fn answer(&mut self, req: &pb::ProduceRequest) -> pb::ProduceResponse {
        let refuse = |e: Error| pb::ProduceResponse {
            correlation_id: req.correlation_id,
            error: Some(convert::error_to_proto(&e)),
            ..Default::default()
        };
        if !self.refused_first {
            self.refused_first = true;
            return refuse(Error::new(
                ErrorKind::ResourceExhausted,
                Reason::QuotaExceeded,
                "over the produce quota; retry",
            ));
        }
        let Some(pb::produce_request::Payload::Batches(bytes)) = &req.payload else {
            return refuse(Error::internal("no batch"));
        };
        let (header, _) = BatchFrames::new(bytes, usize::MAX).next().unwrap().unwrap();
        let (first, last) = (header.base_sequence, header.base_sequence + header.last_offset_delta);
        let at =
            |i: usize| -> i64 { self.batches[..i].iter().map(|(f, l)| i64::from(l - f + 1)).sum() };
        let recent = self.batches.len().saturating_sub(5);
        if let Some(i) = self.batches[recent..].iter().position(|b| *b == (first, last)) {
            let base = at(recent + i);
            return pb::ProduceResponse {
                correlation_id: req.correlation_id,
                base_offset: base,
                last_offset: base + i64::from(last - first),
                ..Default::default()
            };
        }
        // A producer with no state here is taken at any sequence (its state may have
        // been truncated away); a known one must go on where it left off.
        if let Some((_, prev)) = self.batches.last()
            && first != prev + 1
        {
            return refuse(Error::new(
                ErrorKind::Unavailable,
                Reason::OutOfOrderSequence,
                format!("sequence {first} but {} comes next", prev + 1),
            ));
        }
        let base = at(self.batches.len());
        self.batches.push((first, last));
        pb::ProduceResponse {
            correlation_id: req.correlation_id,
            base_offset: base,
            last_offset: base + i64::from(last - first),
            ..Default::default()
        }
    }
}

#[derive(Clone, Default)]
struct Leader {
    partition: Arc<Mutex<Partition>>,
    /// Older than `ProduceMany`: it serves `ProduceStream` only.
    older: bool,
}

impl Leader {
    fn answer(&self, msg: &pb::ProduceManyRequest) -> pb::ProduceManyResponse {
        let mut p = self.partition.lock().unwrap();
        pb::ProduceManyResponse { responses: msg.requests.iter().map(|r| p.answer(r)).collect() }
    }
}

#[tonic::async_trait]
impl pb::log_server::Log for Leader {
    async fn produce(
        &self,
        _: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        Err(Status::unimplemented("produce"))
    }

    type ProduceStreamStream = BoxStream<pb::ProduceResponse>;

    /// One answer per request, in order (an older broker's only produce stream).
    async fn produce_stream(
        &self,
        request: Request<Streaming<pb::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let partition = self.partition.clone();
        shale_core::task::spawn_detached(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let answer = partition.lock().unwrap().answer(&req);
                if tx.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ProduceManyStream = BoxStream<pb::ProduceManyResponse>;

    /// Answers in order, but holds the first message's answer until the next message has
    /// been appended (for at most [`HOLD`]): the partition became ready between the two,
    /// as after a restart.
    async fn produce_many(
        &self,
        request: Request<Streaming<pb::ProduceManyRequest>>,
    ) -> Result<Response<Self::ProduceManyStream>, Status> {
        if self.older {
            return Err(Status::unimplemented("Operation is not implemented or not supported"));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let leader = self.clone();
        shale_core::task::spawn_detached(async move {
            let mut held: Option<pb::ProduceManyResponse> = None;
            let mut first = true;
            loop {
                let next = match held {
                    Some(_) => match tokio::time::timeout(HOLD, inbound.message()).await {
                        Ok(m) => m,
                        Err(_) => {
                            let _ = tx.send(Ok(held.take().unwrap())).await;
                            continue;
                        }
                    },
                    None => inbound.message().await,
                };
                let Ok(Some(msg)) = next else { break };
                let answer = leader.answer(&msg);
                if std::mem::take(&mut first) {
                    held = Some(answer);
                    continue;
                }
                if let Some(h) = held.take() {
                    let _ = tx.send(Ok(h)).await;
                }
                let _ = tx.send(Ok(answer)).await;
            }
            if let Some(h) = held {
                let _ = tx.send(Ok(h)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchStream = BoxStream<pb::FetchResponse>;

    async fn fetch(
        &self,
        _: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        Err(Status::unimplemented("fetch"))
    }

    type FetchManyStream = BoxStream<pb::FetchManyResponse>;

    async fn fetch_many(
        &self,
        _: Request<Streaming<pb::FetchManyRequest>>,
    ) -> Result<Response<Self::FetchManyStream>, Status> {
        Err(Status::unimplemented("fetch_many"))
    }

    async fn list_offsets(
        &self,
        _: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        Err(Status::unimplemented("list_offsets"))
    }

    async fn init_producer_id(
        &self,
        _: Request<pb::InitProducerIdRequest>,
    ) -> Result<Response<pb::InitProducerIdResponse>, Status> {
        Ok(Response::new(pb::InitProducerIdResponse { producer_id: 7, producer_epoch: 0 }))
    }
}

/// Serves `leader` on a free port of 127.0.0.1; the server ends with the test's runtime.
async fn serve(leader: Leader) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tonic::transport::Server::builder()
        .add_service(pb::log_server::LogServer::new(leader))
        .serve_with_incoming(TcpListenerStream::new(listener));
    shale_core::task::spawn_detached(async move {
        if let Err(e) = server.await {
            panic!("the scripted leader stopped: {e}");
        }
    });
    addr
}

/// Sends 50 records to partition 0 of `t` on `leader` and checks that each landed once,
/// in order, at offsets 0 to 49.
async fn fifty_records_land_once_in_order(leader: Leader) {
    let addr = serve(leader.clone()).await;
    let client = Client::new(&addr).unwrap();
    client.seed_metadata("t", 1, &addr);
    fifty_records_land_once_in_order_with(client, leader, |_| async {}).await;
}

/// As [`fifty_records_land_once_in_order`] over `client`, `before` given the producer
/// first.
async fn fifty_records_land_once_in_order_with<F>(
    client: Client,
    leader: Leader,
    before: impl FnOnce(Producer) -> F,
) where
    F: std::future::Future<Output = ()>,
{
    let config = ProducerConfig {
        delivery_timeout: Duration::from_secs(5),
        retry_backoff: Duration::from_millis(10),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    before(producer.clone()).await;
    let mut deliveries = Vec::new();
    for i in 0..50 {
        let record = ProducerRecord::new("t", format!("v{i}")).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        let landed = tokio::time::timeout(Duration::from_secs(30), d)
            .await
            .unwrap_or_else(|_| panic!("record {i} answered within 30 s"))
            .unwrap_or_else(|e| panic!("record {i} failed: {e}"));
        assert_eq!(landed.offset, i as i64, "record {i}'s offset");
    }
    // Every sequence once, in order: nothing lost, nothing written twice.
    let batches = leader.partition.lock().unwrap().batches.clone();
    let sequences: Vec<i32> = batches.iter().flat_map(|&(f, l)| f..=l).collect();
    assert_eq!(sequences, (0..50).collect::<Vec<_>>(), "sequences in the log: {batches:?}");
}

/// A client newer than its broker: the broker answers `ProduceMany` with UNIMPLEMENTED,
/// and the producer sends the same requests over `ProduceStream` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_older_than_produce_many_gets_the_records_over_produce_stream() {
    fifty_records_land_once_in_order(Leader { older: true, ..Leader::default() }).await;
}

/// A partition's first answer is a refusal, held until a later message was appended: the
/// producer must not have sent one. Were later batches appended past the refused one, its
/// resend would be out of order for good (the leader took the later sequence as the start
/// of a producer it did not know) and its records lost. (Without `probe_window` the test
/// fails so: the resend is refused as out of order, and the leader lookup that follows
/// fails, as this leader serves no metadata.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_first_batch_is_not_overtaken_by_the_batches_after_it() {
    fifty_records_land_once_in_order(Leader::default()).await;
}

/// A producer's partitions share its tasks, so none may wait on one broker for the
/// others: here the leader of topic `stuck` accepts connections and never answers, and the
/// records of `t`, on a broker that answers, must land all the same. (Checked against the
/// one-sender design of session 24: it fails when that sender opens a stream inline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_holds_up_only_its_own_partitions() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    // Accepts and holds every connection, and never writes a byte.
    shale_core::task::spawn_detached(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let leader = Leader::default();
    let addr = serve(leader.clone()).await;
    let client = Client::new(&addr).unwrap();
    client.seed_metadata("t", 1, &addr);
    client.seed_metadata("stuck", 2, &silent_addr);
    let stuck = Arc::new(Mutex::new(None));
    let keep = stuck.clone();
    fifty_records_land_once_in_order_with(client, leader, |producer| async move {
        let record = ProducerRecord::new("stuck", "v").partition(0);
        *keep.lock().unwrap() = Some(producer.send(record).await.unwrap());
    })
    .await;
    let mut stuck = stuck.lock().unwrap().take().expect("the stuck record was queued");
    let answered = answer_now(&mut stuck);
    assert!(answered.is_none(), "the record to the silent broker was answered: {answered:?}");
}

/// The delivery's answer if it has one now.
fn answer_now(d: &mut super::Delivery) -> Option<Result<super::RecordMetadata, Error>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(d).poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}
