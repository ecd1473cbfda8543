//! `shale.v1.Log`: Produce, ProduceStream, ProduceMany, Fetch, FetchMany, ListOffsets.

use shale_proto::status::into_status;
use std::future::Future;
use std::pin::Pin;

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth_layer::identity;
use crate::log_fetch::{self, BoxStream};
use shale_broker::api::observe_since;
use shale_broker::api::{
    Api, Identity, Isolation, JournalMarks, Payload, Produced, QuotaKind, TxnProduce,
};
use shale_core::error::{Error, Reason};
use shale_proto::convert;
use shale_proto::pb;

/// Requests of one ProduceStream in flight at once (appended, awaiting their acks).
const MAX_IN_FLIGHT: usize = 256;
/// Messages of one ProduceMany stream in flight at once.
const MAX_MANY_IN_FLIGHT: usize = 64;

/// The Log service over a broker.
#[derive(Debug, Clone)]
pub struct LogService {
    api: Api,
}

impl LogService {
    /// Serves `api`.
    pub fn new(api: Api) -> Self {
        LogService { api }
    }
}

fn payload(req: &mut pb::ProduceRequest) -> Result<Payload, Error> {
    match req.payload.take() {
        Some(pb::produce_request::Payload::Batches(b)) => Ok(Payload::Batches(b)),
        Some(pb::produce_request::Payload::Records(r)) => {
            let codec = convert::compression(r.compression)?;
            Ok(Payload::Records(r.records.into_iter().map(convert::record).collect(), codec))
        }
        None => Err(Error::new(
            shale_core::error::ErrorKind::Invalid,
            Reason::InvalidBatch,
            "produce request has neither batches nor records",
        )),
    }
}

impl LogService {
    /// Admits the request (authorization, produce quota, held for here), then appends;
    /// the returned future resolves when `acks` is satisfied.
    async fn append(
        &self,
        who: &Identity,
        mut req: pb::ProduceRequest,
    ) -> Result<impl Future<Output = Result<Produced, Error>> + Send + 'static, Error> {
        let payload = payload(&mut req)?;
        let acks = convert::acks(req.acks)?;
        let admitted = match req.transactional_id.is_empty() {
            true => self.api.admit_produce(who, &req.topic, &payload)?,
            false => {
                let transactional_id = std::mem::take(&mut req.transactional_id);
                let txn = TxnProduce { transactional_id, tv2: true };
                self.api.admit_transactional_produce(who, &req.topic, &payload, txn)?
            }
        };
        if !admitted.wait().is_zero() {
            shale_core::clock::sleep(admitted.wait()).await;
        }
        self.api.append(admitted, req.partition, payload, acks).await
    }
}

/// A boxed future, sent across tasks.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A produce request's answer, once appended and acknowledged (or failed).
type Answer = BoxFuture<pb::ProduceResponse>;

impl LogService {
    /// Serves a pipelined produce stream (ProduceStream, ProduceMany). `start` appends one
    /// message and returns its answer to await: messages are started one at a time, in
    /// order (so a partition's requests append in the order sent); their answers are
    /// awaited concurrently, at most `max_in_flight`, and sent in message order. When the
    /// broker stops, no more messages are taken, those started are answered, and the
    /// stream ends so the client reconnects.
    fn serve_pipelined<Req, Resp>(
        &self,
        mut inbound: Streaming<Req>,
        max_in_flight: usize,
        start: impl Fn(Req) -> BoxFuture<BoxFuture<Resp>> + Send + 'static,
    ) -> ReceiverStream<Result<Resp, Status>>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let mut closed = self.api.closed_signal();
        let stages = self.api.metrics().produce_stages.clone();
        let (tx, rx) = mpsc::channel::<Result<Resp, Status>>(64);
        self.api.spawn(async move {
            let mut pending = FuturesOrdered::new();
            let mut inbound_done = false;
            loop {
                tokio::select! {
                    next = inbound.next(), if !inbound_done && pending.len() < max_in_flight => {
                        match next {
                            Some(Ok(msg)) => {
                                let answer = start(msg).await;
                                pending.push_back(async move {
                                    (answer.await, shale_core::clock::monotonic_now())
                                });
                            }
                            Some(Err(status)) => {
                                tracing::debug!(%status, "produce stream broke");
                                inbound_done = true;
                            }
                            None => inbound_done = true,
                        }
                    }
                    Some((answer, acked)) = pending.next(), if !pending.is_empty() => {
                        if tx.send(Ok(answer)).await.is_err() {
                            return;
                        }
                        observe_since(&stages.answer, acked);
                    }
                    _ = async { drop(closed.wait_for(|c| *c).await) }, if !inbound_done => {
                        inbound_done = true;
                    }
                    else => return,
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// Appends the requests of one ProduceMany message, in one journal round
    /// (`append_all`). Returns each request's answer to await, in request order, and
    /// where their journal frames end (awaited first: one wake-up a round for the
    /// message). `throttled` is the request quota's verdict on the message.
    fn append_many<'a>(
        &'a self,
        who: &'a Identity,
        requests: Vec<pb::ProduceRequest>,
        throttled: Result<(), Error>,
    ) -> impl Future<Output = (Vec<Answer>, JournalMarks)> + 'a {
        shale_broker::api::append_all(self.append_in_order(who, requests, throttled))
    }

    /// Appends `requests` in order; returns each one's answer to await.
    async fn append_in_order(
        &self,
        who: &Identity,
        requests: Vec<pb::ProduceRequest>,
        throttled: Result<(), Error>,
    ) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(requests.len());
        for req in requests {
            answers.push(self.append_one(who, req, &throttled).await);
        }
        answers
    }

    /// Appends one request unless the request quota refused it (`throttled`); returns its
    /// answer to await.
    async fn append_one(
        &self,
        who: &Identity,
        req: pb::ProduceRequest,
        throttled: &Result<(), Error>,
    ) -> Answer {
        let id = req.correlation_id;
        let appended = match throttled {
            Ok(()) => self.append(who, req).await,
            Err(e) => Err(e.clone()),
        };
        match appended {
            Ok(ack) => Box::pin(async move { answer(id, ack.await) }),
            Err(e) => Box::pin(std::future::ready(answer(id, Err(e)))),
        }
    }
}

/// The wire answer to the produce request `id`.
fn answer(id: u64, result: Result<Produced, Error>) -> pb::ProduceResponse {
    match result {
        Ok(p) => pb::ProduceResponse {
            correlation_id: id,
            base_offset: p.base_offset,
            last_offset: p.last_offset,
            log_start_offset: p.log_start_offset,
            error: None,
            leader_epoch: p.leader_epoch,
        },
        Err(e) => pb::ProduceResponse {
            correlation_id: id,
            base_offset: -1,
            last_offset: -1,
            log_start_offset: -1,
            error: Some(convert::error_to_proto(&e)),
            leader_epoch: -1,
        },
    }
}

#[tonic::async_trait]
impl pb::log_server::Log for LogService {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let correlation_id = req.correlation_id;
        let produced =
            self.append(&who, req).await.map_err(into_status)?.await.map_err(into_status)?;
        Ok(Response::new(pb::ProduceResponse {
            correlation_id,
            base_offset: produced.base_offset,
            last_offset: produced.last_offset,
            log_start_offset: produced.log_start_offset,
            error: None,
            leader_epoch: produced.leader_epoch,
        }))
    }

    type ProduceStreamStream = BoxStream<pb::ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<pb::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let who = identity(&request);
        let service = self.clone();
        let answers = self.serve_pipelined(request.into_inner(), MAX_IN_FLIGHT, move |req| {
            let (service, who) = (service.clone(), who.clone());
            Box::pin(async move {
                // Each message is a request (the stream itself was one).
                let throttled = service.api.throttle(&who, QuotaKind::Requests, 1).await;
                service.append_one(&who, req, &throttled).await
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }

    type ProduceManyStream = BoxStream<pb::ProduceManyResponse>;

    async fn produce_many(
        &self,
        request: Request<Streaming<pb::ProduceManyRequest>>,
    ) -> Result<Response<Self::ProduceManyStream>, Status> {
        let who = identity(&request);
        let service = self.clone();
        let answers = self.serve_pipelined(request.into_inner(), MAX_MANY_IN_FLIGHT, move |msg| {
            let (service, who) = (service.clone(), who.clone());
            Box::pin(async move {
                // Each message is a request, as Kafka counts them.
                let throttled = service.api.throttle(&who, QuotaKind::Requests, 1).await;
                let (acks, marks) = service.append_many(&who, msg.requests, throttled).await;
                Box::pin(async move {
                    // One request's own wait is as cheap as a wait for its round.
                    if acks.len() > 1 {
                        marks.told().await;
                    }
                    pb::ProduceManyResponse { responses: futures::future::join_all(acks).await }
                }) as BoxFuture<_>
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }

    type FetchStream = BoxStream<pb::FetchResponse>;

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let who = identity(&request);
        let stream =
            log_fetch::fetch(&self.api, &who, request.into_inner()).map_err(into_status)?;
        Ok(Response::new(stream))
    }

    type FetchManyStream = BoxStream<pb::FetchManyResponse>;

    async fn fetch_many(
        &self,
        request: Request<Streaming<pb::FetchManyRequest>>,
    ) -> Result<Response<Self::FetchManyStream>, Status> {
        let who = identity(&request);
        Ok(Response::new(log_fetch::fetch_many(self.api.clone(), who, request.into_inner())))
    }

    async fn init_producer_id(
        &self,
        request: Request<pb::InitProducerIdRequest>,
    ) -> Result<Response<pb::InitProducerIdResponse>, Status> {
        let who = identity(&request);
        let (producer_id, epoch) = self.api.init_producer_id(&who).await.map_err(into_status)?;
        Ok(Response::new(pb::InitProducerIdResponse { producer_id, producer_epoch: epoch as i32 }))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let who = identity(&request);
        let req = request.into_inner();
        let spec = shale_proto::convert::offset_spec(req.spec);
        let found = self
            .api
            .list_offsets(&who, (&req.topic, req.partition), spec, None, Isolation::ReadUncommitted)
            .await
            .map_err(into_status)?;
        let answer = pb::ListOffsetsResponse {
            offset: found.offset,
            timestamp_ms: found.timestamp_ms,
            log_start_offset: found.log_start_offset,
            high_watermark: found.high_watermark,
        };
        Ok(Response::new(answer))
    }
}
