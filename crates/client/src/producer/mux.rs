//! One produce stream per broker, shared by every partition the producer sends to it: its
//! bounds, and how it is opened.
//!
//! The sender (`sender`) puts requests of many partitions into one `ProduceMany` message
//! whenever fewer than [`MAX_MESSAGES_IN_FLIGHT`] messages await answers on the broker's
//! stream, so a busy producer's messages grow with the load, as its batches do. Messages
//! are answered whole and in order, so a partition's answers come back in the order it
//! sent its requests.
//!
//! A broker older than `ProduceMany` (it answers `UNIMPLEMENTED`) gets the same requests
//! over `ProduceStream`, one request per stream message, answered in order: clients may
//! be upgraded before the brokers, as Kafka's clients speak to older brokers.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};

use shale_core::error::Error;
use shale_proto::pb;

use crate::{Client, status_error};

/// Messages awaiting answers on one broker's stream before the next waits (and fills).
pub(super) const MAX_MESSAGES_IN_FLIGHT: usize = 8;
/// Requests awaiting answers on a `ProduceStream` to a broker older than `ProduceMany`
/// (one request per message there).
pub(super) const MAX_LEGACY_IN_FLIGHT: usize = 64;
/// Requests in one message at most.
pub(super) const MAX_REQUESTS_PER_MESSAGE: usize = 4096;
/// Batch bytes in one message at most (one request may be larger and goes alone): well
/// under the broker's `log.max_request_bytes`, 64 MiB by default.
pub(super) const MAX_BYTES_PER_MESSAGE: usize = 4 << 20;

/// Why a stream gave no answer.
pub(super) struct Failure {
    pub(super) error: Error,
    /// The broker refused `ProduceMany` as unimplemented: it is older than this client.
    pub(super) older_broker: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, older_broker: false }
    }
}

/// A broker's answers, one message at a time (a `ProduceStream` answer as a message of
/// one), ending with a failure when the stream ends or breaks.
pub(super) type Answers =
    Pin<Box<dyn Stream<Item = Result<pb::ProduceManyResponse, Failure>> + Send>>;

/// Where requests to a broker go.
pub(super) enum Sink {
    Many(mpsc::UnboundedSender<pb::ProduceManyRequest>),
    /// A broker older than `ProduceMany`: one request per message.
    Legacy(mpsc::UnboundedSender<pb::ProduceRequest>),
}

impl Sink {
    /// Sends one message; `false` when the stream is gone.
    pub(super) fn send(&self, requests: Vec<pb::ProduceRequest>) -> bool {
        match self {
            Sink::Many(tx) => tx.send(pb::ProduceManyRequest { requests }).is_ok(),
            Sink::Legacy(tx) => requests.into_iter().all(|r| tx.send(r).is_ok()),
        }
    }

    pub(super) fn legacy(&self) -> bool {
        matches!(self, Sink::Legacy(_))
    }
}

/// Opens `ProduceMany` to `leader`, unless it is known to be `legacy`, and `ProduceStream`
/// if it is, or if it refuses `ProduceMany` as unimplemented now.
pub(super) async fn open(
    client: &Client,
    leader: &str,
    legacy: bool,
) -> Result<(Sink, Answers), Error> {
    let mut rpc = client.log_rpc(leader)?;
    if !legacy {
        let (tx, rx) = mpsc::unbounded_channel();
        match rpc.produce_many(UnboundedReceiverStream::new(rx)).await {
            Ok(responses) => {
                let answers = responses.into_inner().map(|m| m.map_err(many_failure));
                return Ok((Sink::Many(tx), ending(answers)));
            }
            Err(s) if s.code() == tonic::Code::Unimplemented => {}
            Err(s) => return Err(status_error(&s)),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let responses =
        rpc.produce_stream(UnboundedReceiverStream::new(rx)).await.map_err(|s| status_error(&s))?;
    let answers = responses.into_inner().map(|r| {
        r.map(|r| pb::ProduceManyResponse { responses: vec![r] })
            .map_err(|s| Failure::from(status_error(&s)))
    });
    Ok((Sink::Legacy(tx), ending(answers)))
}

/// `answers`, then a failure saying the broker ended the stream.
fn ending(
    answers: impl Stream<Item = Result<pb::ProduceManyResponse, Failure>> + Send + 'static,
) -> Answers {
    let end =
        tokio_stream::once(Err(Error::unavailable("produce stream ended by the broker").into()));
    Box::pin(answers.chain(end))
}

/// An older broker may refuse `ProduceMany` only on the first read: the requests are then
/// sent again, over `ProduceStream`.
fn many_failure(status: tonic::Status) -> Failure {
    if status.code() == tonic::Code::Unimplemented {
        return Failure {
            error: Error::unavailable(
                "the broker does not serve ProduceMany; sending over ProduceStream",
            ),
            older_broker: true,
        };
    }
    status_error(&status).into()
}
