//! What a request's handler is given and gives back: the client's session, the call (the
//! request's body and how to answer it) and the answer. The connection and the dispatcher
//! above hand these to the handlers below; none of the three is imported upward.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::frame;
use shale_broker::api::{Identity, ScramExchange};

/// What a connection knows of its client.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The peer's address, for log lines.
    pub peer: SocketAddr,
    /// This connection's number, unique in the process (share sessions belong to one).
    pub connection: u64,
    /// Who the client is: from its certificate (mTLS) or SASL, else anonymous.
    pub identity: Identity,
    /// The client id of its latest request.
    pub client_id: String,
    /// Where its SASL exchange is.
    pub sasl: Sasl,
    /// The SASL exchange runs in bare size-prefixed frames (after a `SaslHandshake` v0),
    /// not in `SaslAuthenticate` requests.
    pub bare_sasl: bool,
    /// Close the connection once the answer to the current request is written (a failed
    /// authentication).
    pub close_after: bool,
}

/// The answer to one request.
pub(crate) enum Answer {
    /// No answer (a produce with `acks=0`).
    Nothing,
    /// An encoded response frame, and how long the client is throttled after it.
    Ready(Bytes, Duration),
    /// A response still being computed, polled by the connection's writer beside the
    /// other pending answers: no task of its own (a spawn, a schedule and a second
    /// wake-up per request, the writer's, cost more than the wait they served).
    Later(Pending),
    /// The connection must close (the reason is logged by whoever decided so).
    Close,
}

/// An answer being computed: its frame and throttle, or why the connection closes.
pub(crate) type Pending = futures::future::BoxFuture<'static, Result<(Bytes, Duration), String>>;

impl Answer {
    /// An answer computed by `work` while the connection reads on.
    pub(crate) fn later<F>(work: F) -> Answer
    where
        F: std::future::Future<Output = Result<(Bytes, Duration), String>> + Send + 'static,
    {
        Answer::Later(Box::pin(work))
    }
}

/// Where a connection is in its SASL exchange.
#[derive(Debug, Clone, Default)]
pub(crate) enum Sasl {
    /// No handshake yet.
    #[default]
    Idle,
    /// The mechanism was agreed; its first `SaslAuthenticate` comes next.
    Chosen(String),
    /// A SCRAM exchange waits for the client's final message.
    Scram(Box<ScramExchange>),
    /// Authenticated.
    Done,
}

/// A served request: its body, and what its answer needs.
#[derive(Debug)]
pub(crate) struct Call {
    /// The body, at the request's version.
    pub(crate) body: Bytes,
    /// How to answer it.
    pub replier: Replier,
}

/// What answering a request needs once its body is read: its API, version, correlation
/// id, and the throttle its request quota asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replier {
    /// The API.
    pub key: ApiKey,
    /// Its version.
    pub version: i16,
    /// Its correlation id, echoed in the answer.
    pub correlation_id: i32,
    /// Throttle from the request quota, added to the answer's own.
    pub throttle: Duration,
}

impl Call {
    /// The body decoded at the request's version; an error names the API and version.
    pub(crate) fn decode<T: Decodable>(&mut self) -> Result<T, String> {
        let (key, version) = (self.replier.key, self.replier.version);
        T::decode(&mut self.body, version)
            .map_err(|e| format!("malformed {key:?} v{version} request: {e}"))
    }

    /// The request's version.
    pub(crate) fn version(&self) -> i16 {
        self.replier.version
    }

    /// See [`Replier::reply`].
    pub(crate) fn reply<R: Encodable>(&self, body: &R, throttle: Duration) -> Answer {
        self.replier.reply(body, throttle)
    }

    /// See [`Replier::throttle_ms`].
    pub(crate) fn throttle_ms(&self, more: Duration) -> i32 {
        self.replier.throttle_ms(more)
    }
}

impl Replier {
    /// The encoded response frame, the client throttled by `throttle` or the request
    /// quota's, whichever is longer; the response's own `throttle_time_ms` is the caller's
    /// to set from [`Replier::throttle_ms`].
    pub(crate) fn reply<R: Encodable>(&self, body: &R, throttle: Duration) -> Answer {
        match self.encode(body) {
            Ok(bytes) => Answer::Ready(bytes, self.throttle.max(throttle)),
            Err(why) => {
                tracing::error!(error = %why, "cannot encode a Kafka response");
                Answer::Close
            }
        }
    }

    /// [`Replier::reply`] for an answer computed later: the frame and the throttle.
    pub(crate) fn later<R: Encodable>(
        &self,
        body: &R,
        throttle: Duration,
    ) -> Result<(Bytes, Duration), String> {
        Ok((self.encode(body)?, self.throttle.max(throttle)))
    }

    /// The encoded response frame.
    fn encode<R: Encodable>(&self, body: &R) -> Result<Bytes, String> {
        let header_version = self.key.response_header_version(self.version);
        frame::encode_response(self.correlation_id, header_version, self.version, body)
    }

    /// The request quota's throttle or `more`, whichever is longer, in ms, for a
    /// response's `throttle_time_ms`; 0 at versions whose response has no such field (the
    /// connection is still muted for it).
    pub(crate) fn throttle_ms(&self, more: Duration) -> i32 {
        let since = match self.key {
            ApiKey::Metadata => 3,
            ApiKey::ListOffsets => 2,
            ApiKey::OffsetCommit | ApiKey::OffsetFetch => 3,
            ApiKey::JoinGroup => 2,
            ApiKey::ApiVersions
            | ApiKey::DeleteTopics
            | ApiKey::FindCoordinator
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::ListGroups
            | ApiKey::DescribeGroups
            | ApiKey::SaslAuthenticate => 1,
            _ => 0,
        };
        if self.version < since {
            return 0;
        }
        i32::try_from(self.throttle.max(more).as_millis()).unwrap_or(i32::MAX)
    }
}
